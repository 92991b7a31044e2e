"""Pytest fixtures for the test servers (loaded as a plugin by tests/conftest.py).

- `test_pki` (session): the test CA and server certificate (tests/servers/certs.py).
- `fake_pop3` (function): async factory; `server = await fake_pop3(**kwargs)` starts a
  `FakePOP3Server(**kwargs)` (tests/servers/fake_pop3.py) on 127.0.0.1 and stops it at
  teardown. It enables sockets (requests `socket_enabled`).
- `dovecot` (session): a running `DovecotServer` (tests/servers/dovecot.py) with users
  alice/secret, bob/hunter2, carol/w0nderland. Skips when Dovecot is not installed,
  fails instead when the environment has POP3_MAIL_REQUIRE_DOVECOT=1.
- `dovecot_user` (function): `(name, password)` of a fresh user with an empty Maildir on
  `dovecot`; deliver with `dovecot.deliver(name, raw)`. Enables sockets.
- `dovecot_factory` (session): `dovecot_factory(**overrides)` returns a running
  `DovecotServer(**overrides)`, started on first request and shared by later requests
  with the same overrides, stopped at session end. Variants: `pop3_lock_session=True`,
  `plaintext_refused=True` (on 127.0.0.2; the test also needs `loopback_aliases`).
  Make users there with `server.new_user()`.
- `loopback_aliases` (function): lets the test connect to any 127.0.0.0/8 address (Home
  Assistant's test plugin allows only 127.0.0.1). Enables sockets.

Tests that use `dovecot` or `dovecot_factory` without `dovecot_user` must request
`socket_enabled` themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
import ipaddress
import os
from pathlib import Path
import socket
from typing import Any

import pytest
import pytest_socket

from tests.servers.certs import TestPKI, make_test_pki
from tests.servers.dovecot import DovecotServer, dovecot_version, find_dovecot
from tests.servers.fake_pop3 import FakePOP3Server

type FakePOP3Factory = Callable[..., Awaitable[FakePOP3Server]]
type DovecotFactory = Callable[..., DovecotServer]


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """The session's test CA and server certificate (localhost, 127.0.0.1, 127.0.0.2)."""
    return make_test_pki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture
async def fake_pop3(socket_enabled: None) -> AsyncIterator[FakePOP3Factory]:
    """Start fake POP3 servers on demand: `server = await fake_pop3(users=..., messages=...)`."""
    servers: list[FakePOP3Server] = []

    async def start(**kwargs: Any) -> FakePOP3Server:
        server = FakePOP3Server(**kwargs)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def _require_dovecot() -> None:
    if find_dovecot() is not None:
        return
    message = "dovecot is not installed"
    if os.environ.get("POP3_MAIL_REQUIRE_DOVECOT") == "1":
        pytest.fail(f"{message} (POP3_MAIL_REQUIRE_DOVECOT=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def dovecot(test_pki: TestPKI) -> Iterator[DovecotServer]:
    """A real Dovecot for the whole test session (users alice, bob, carol)."""
    _require_dovecot()
    with DovecotServer(pki=test_pki) as server:
        yield server


@pytest.fixture
def dovecot_user(dovecot: DovecotServer, socket_enabled: None) -> tuple[str, str]:
    """A fresh user with an empty Maildir on `dovecot`: (name, password)."""
    return dovecot.new_user()


@pytest.fixture(scope="session")
def dovecot_factory(test_pki: TestPKI) -> Iterator[DovecotFactory]:
    """Dovecot variants on demand, e.g. `dovecot_factory(pop3_lock_session=True)`."""
    _require_dovecot()
    servers: dict[str, DovecotServer] = {}

    def get(**overrides: Any) -> DovecotServer:
        key = repr(sorted(overrides.items()))
        if key not in servers:
            servers[key] = DovecotServer(pki=test_pki, **overrides).start()
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


def _is_loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_aliases(socket_enabled: None) -> Iterator[None]:
    """Allow connections to every loopback address (127.0.0.2 for the plaintext variant)."""
    guarded = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and _is_loopback(address[0]):
            return pytest_socket._true_connect(sock, address)
        return guarded(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = guarded  # type: ignore[method-assign]


_DOVECOT_FIXTURES = frozenset({"dovecot", "dovecot_user", "dovecot_factory"})
_dovecot_tests: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Note which tests talk to the real Dovecot, for the summary CI shows."""
    _dovecot_tests.update(
        item.nodeid for item in items if _DOVECOT_FIXTURES & set(getattr(item, "fixturenames", ()))
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many tests passed against a real Dovecot, so a run without one is visible."""
    reports = terminalreporter.stats.get("passed", [])
    passed = {report.nodeid for report in reports if report.when == "call"}
    dovecot = find_dovecot()
    version = dovecot_version(dovecot) if dovecot else "not installed"
    terminalreporter.write_line(
        f"real Dovecot ({version}): {len(passed & _dovecot_tests)} of "
        f"{len(_dovecot_tests)} selected Dovecot tests passed"
    )
