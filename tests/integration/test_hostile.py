"""Issue 9's guarantees at the Home Assistant level: a hostile server drives a real entry.

The server is `tests/servers/hostile.py`, which sends byte-exact scripts; the entry
is set up as a user's would be, and the tests look only at what a user sees: bus
events, entity availability, the retry interval, files on disk and the commands
the server received.
"""

from __future__ import annotations

from datetime import timedelta
import errno
import itertools
import os
import ssl
from typing import TYPE_CHECKING, Any

import aiofiles.threadpool.binary
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, CONF_VERIFY_SSL
from homeassistant.util.ssl import SSL_CIPHER_LISTS, SSLCipherList
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.pop3_mail.const import (
    CONF_ARCHIVE_FOLDER,
    CONF_DELETE_POLICY,
    CONF_SECURITY,
    DOMAIN,
    EVENT_NEW_MESSAGE,
)
from custom_components.pop3_mail.pop3.errors import POP3ProtocolError
from custom_components.pop3_mail.pop3.tls import INTERMEDIATE_CIPHERS
from custom_components.pop3_mail.session import ssl_context_for
from tests.servers.hostile import (
    Close,
    Expect,
    HostileServer,
    ReadUntilClosed,
    Send,
    StartTLS,
    Step,
    login_script,
)

if TYPE_CHECKING:
    from pathlib import Path

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import issue_registry as ir

    from custom_components.pop3_mail.coordinator import Pop3MailCoordinator
    from tests.servers.certs import TestPKI

GREETING = b"+OK hostile\r\n"
CAPA_STLS = b"+OK\r\nSTLS\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
CAPA = b"+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
STLS_OK = b"+OK Begin TLS\r\n"


def entry_for(server: HostileServer, security: str = "none", **options: Any) -> MockConfigEntry:
    """A config entry of alice's mailbox on `server`."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"alice@{server.host}",
        unique_id=f"alice@{server.host}",
        data={
            CONF_HOST: server.host,
            CONF_PORT: server.port,
            CONF_SECURITY: security,
            CONF_USERNAME: "alice",
            CONF_PASSWORD: "secret",
            CONF_VERIFY_SSL: True,
        },
        options=options,
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> Pop3MailCoordinator:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator: Pop3MailCoordinator = entry.runtime_data
    assert coordinator.last_update_success
    return coordinator


async def check(hass: HomeAssistant, coordinator: Pop3MailCoordinator) -> None:
    await coordinator.async_refresh()
    await hass.async_block_till_done()


def starttls_login(context: Any) -> list[Step]:
    """Greeting, CAPA, STLS and an honest login over TLS."""
    return [
        Send(GREETING),
        Expect(rb"CAPA"),
        Send(CAPA_STLS),
        Expect(rb"STLS"),
        Send(STLS_OK),
        StartTLS(context),
        Expect(rb"CAPA"),
        Send(CAPA),
        Expect(rb"USER alice"),
        Send(b"+OK\r\n"),
        Expect(rb"PASS .*"),
        Send(b"+OK\r\n"),
    ]


def empty_mailbox(login: list[Step]) -> list[Step]:
    """A baseline check of an empty mailbox."""
    return [
        *login,
        Expect(rb"STAT"),
        Send(b"+OK 0 0\r\n"),
        Expect(rb"UIDL"),
        Send(b"+OK\r\n.\r\n"),
        Expect(rb"QUIT"),
        Send(b"+OK\r\n"),
    ]


def forgery_prefix() -> bytes:
    """Greeting, CAPA and the STLS +OK, ending exactly at 64 KiB (the client's read size)."""
    pad_line = b"X-PAD " + b"p" * 400 + b"\r\n"
    head = GREETING + b"+OK\r\n"
    tail = b"STLS\r\nUSER\r\n.\r\n" + STLS_OK
    pad = 65536 - len(head) - len(tail)
    filler = pad_line * (pad // len(pad_line))
    filler += b"X-" + b"q" * (pad - len(filler) - 4) + b"\r\n"
    prefix = head + filler + tail
    assert len(prefix) == 65536
    return prefix


FORGED_TOP = b"From: alerts@alarm.example\r\nSubject: DISARM garage\r\nMessage-ID: <f@x>\r\n\r\n"
# Plaintext the attacker wants taken for protected answers: CAPA, USER, PASS, STAT,
# UIDL 1, LIST 1, TOP 1 0, QUIT: a complete check that announces one message.
FORGED = (
    CAPA
    + b"+OK\r\n+OK\r\n+OK 1 120\r\n"
    + b"+OK 1 forged-1\r\n+OK 1 120\r\n"
    + b"+OK\r\n"
    + FORGED_TOP
    + b".\r\n"
    + b"+OK\r\n"
)


async def test_starttls_forgery_fires_no_event(
    hass: HomeAssistant, socket_enabled: None, test_pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plaintext behind an STLS +OK at a 64 KiB boundary: no event, translated error, backoff."""
    monkeypatch.setattr(
        "custom_components.pop3_mail.session.ssl_context_for",
        lambda verify_ssl: test_pki.client_context(),
    )
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    server_context = test_pki.server_context()
    forged_session: list[Step] = [
        Send(forgery_prefix() + FORGED),
        Expect(rb"CAPA"),
        Expect(rb"STLS"),
        StartTLS(server_context),
        ReadUntilClosed(),
    ]
    scripts = [empty_mailbox(starttls_login(server_context)), forged_session]
    async with HostileServer(scripts=scripts) as server:
        coordinator = await set_up(hass, entry_for(server, "starttls"))
        await check(hass, coordinator)
    assert events == []
    assert b"STAT" not in server.received[1]
    assert not coordinator.last_update_success
    assert coordinator.update_interval == timedelta(seconds=120)
    error = coordinator.last_exception
    assert error is not None
    assert getattr(error, "translation_key", None) == "protocol_error"
    assert "alerts@alarm.example" not in str(coordinator.state)


@pytest.mark.parametrize("verify_ssl", [True, False])
def test_tls_contexts_offer_home_assistants_intermediate_ciphers(verify_ssl: bool) -> None:
    """The contexts of Home Assistant sessions offer what the client offers on its own.

    Home Assistant's default list also offers PSK and SRP suites; the client's policy
    (`pop3/tls.py`) is the intermediate list, copied from Home Assistant's.
    """
    expected = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    expected.set_ciphers(INTERMEDIATE_CIPHERS)
    offered = {cipher["name"] for cipher in ssl_context_for(verify_ssl).get_ciphers()}
    assert offered == {cipher["name"] for cipher in expected.get_ciphers()}
    assert SSL_CIPHER_LISTS[SSLCipherList.INTERMEDIATE] == INTERMEDIATE_CIPHERS


async def test_absurd_numbers_fail_cleanly_and_an_honest_answer_works(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    """STAT 10^20, then `+OK 100000000 10`: typed errors, nothing saved; honest mail then works."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    honest_top = b"From: bob@example.com\r\nSubject: hello\r\n\r\n"
    scripts: list[list[Step]] = [
        first_sessions()[0],
        [
            *login_script(),
            Expect(rb"STAT"),
            Send(b"+OK 1 1" + b"0" * 20 + b"\r\n"),
            ReadUntilClosed(),
        ],
        [*login_script(), Expect(rb"STAT"), Send(b"+OK 100000000 10\r\n"), ReadUntilClosed()],
        [
            *login_script(),
            Expect(rb"STAT"),
            Send(b"+OK 1 40\r\n"),
            Expect(rb"UIDL 1"),
            Send(b"+OK 1 honest-1\r\n"),
            Expect(rb"LIST 1"),
            Send(b"+OK 1 40\r\n"),
            Expect(rb"TOP 1 0"),
            Send(b"+OK\r\n" + honest_top + b".\r\n"),
            Expect(rb"QUIT"),
            Send(b"+OK\r\n"),
        ],
    ]
    async with HostileServer(scripts=scripts) as server:
        coordinator = await set_up(hass, entry_for(server))
        baseline = coordinator.state
        for interval in (120, 240):
            await check(hass, coordinator)
            assert not coordinator.last_update_success
            error = coordinator.last_exception
            assert error is not None
            assert getattr(error, "translation_key", None) == "protocol_error"
            assert isinstance(error.__cause__, POP3ProtocolError)
            assert coordinator.update_interval == timedelta(seconds=interval)
            assert coordinator.state == baseline
        await check(hass, coordinator)
    assert server.failures == []
    assert coordinator.last_update_success
    assert [event.data["uid"] for event in events] == ["honest-1"]
    assert coordinator.state.count == 1
    assert coordinator.update_interval == timedelta(seconds=60)


BODY = b"From: bob@example.com\r\nSubject: invoice\r\nMessage-ID: <a@x>\r\n\r\nPay 100 EUR.\r\n"
# Same size, other bytes: what a server that reuses uids (or lies) sends on a second RETR.
OTHER_BODY = BODY.replace(b"100", b"999")


def check_session(count: int, size: int) -> list[Step]:
    """A check that finds message 1 (uid u1) still there, or nothing."""
    steps = [*login_script(), Expect(rb"STAT"), Send(b"+OK %d %d\r\n" % (count, size))]
    if count:
        steps += [Expect(rb"UIDL 1"), Send(b"+OK 1 u1\r\n")]
    return [*steps, Expect(rb"QUIT"), Send(b"+OK\r\n")]


def first_sessions() -> list[list[Step]]:
    """An empty mailbox at setup, then a check that announces u1 (BODY)."""
    baseline = [*login_script(), Expect(rb"STAT"), Send(b"+OK 0 0\r\n"), Expect(rb"UIDL")]
    baseline += [Send(b"+OK\r\n.\r\n"), Expect(rb"QUIT"), Send(b"+OK\r\n")]
    announce = [*login_script(), Expect(rb"STAT"), Send(b"+OK 1 %d\r\n" % len(BODY))]
    announce += [Expect(rb"UIDL 1"), Send(b"+OK 1 u1\r\n"), Expect(rb"LIST 1")]
    announce += [Send(b"+OK 1 %d\r\n" % len(BODY)), Expect(rb"TOP 1 0")]
    announce += [Send(b"+OK\r\n" + BODY.split(b"\r\n\r\n")[0] + b"\r\n\r\n.\r\n")]
    announce += [Expect(rb"QUIT"), Send(b"+OK\r\n")]
    return [baseline, announce]


def archive_session(body: bytes, then: list[Step]) -> list[Step]:
    """An archive run: u1 is message 1 of len(BODY) octets; RETR answers `body`, then `then`."""
    steps = [*login_script(), Expect(rb"UIDL 1"), Send(b"+OK 1 u1\r\n"), Expect(rb"LIST 1")]
    steps += [Send(b"+OK 1 %d\r\n" % len(BODY)), Expect(rb"RETR 1")]
    return [*steps, Send(b"+OK\r\n" + body + b".\r\n"), *then]


DELETE_AND_QUIT: list[Step] = [
    Expect(rb"DELE 1"),
    Send(b"+OK\r\n"),
    Expect(rb"QUIT"),
    Send(b"+OK\r\n"),
]


def archived_files(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((folder / "new").iterdir())]


ARCHIVE_FAULTS: dict[str, tuple[list[list[Step]], bool]] = {
    # Scripts after the first two sessions, and whether u1 ends up deleted. A second RETR
    # with other bytes is archived as a file of its own: only then may it be deleted.
    "drop after RETR": ([archive_session(BODY, [Close()]), check_session(1, len(BODY))], False),
    "other body on a second RETR": (
        [
            archive_session(BODY, [Close()]),
            check_session(1, len(BODY)),
            archive_session(OTHER_BODY, DELETE_AND_QUIT),
            check_session(0, 0),
        ],
        True,
    ),
    "QUIT refused": (
        [
            archive_session(BODY, [*DELETE_AND_QUIT[:3], Send(b"-ERR [SYS/TEMP] not now\r\n")]),
            check_session(1, len(BODY)),
        ],
        True,
    ),
    "disk full": (
        [archive_session(BODY, [Expect(rb"QUIT"), Send(b"+OK\r\n")]), check_session(1, len(BODY))],
        False,
    ),
    "honest": ([archive_session(BODY, DELETE_AND_QUIT), check_session(0, 0)], True),
}


@pytest.mark.parametrize(
    ("later", "may_delete"), ARCHIVE_FAULTS.values(), ids=ARCHIVE_FAULTS.keys()
)
async def test_no_delete_without_a_byte_exact_archive(  # noqa: PLR0917
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    later: list[list[Step]],
    may_delete: bool,
) -> None:
    """Under every fault, a DELE is only ever sent for a message whose file holds its bytes."""
    folder = tmp_path / "archive"
    options = {CONF_ARCHIVE_FOLDER: str(folder), CONF_DELETE_POLICY: "after_archive"}
    async with HostileServer(scripts=[*first_sessions(), *later]) as server:
        coordinator = await set_up(hass, entry_for(server, **options))
        await check(hass, coordinator)
        if request.node.callspec.id == "disk full":
            fail_writes(monkeypatch)
        for _ in range(len(later) // 2):
            await check(hass, coordinator)
        connections = server.connections
    assert connections == 2 + len(later)
    deleted = [n for n, lines in enumerate(server.received) if b"DELE 1" in lines]
    for n in deleted:
        # What that session's RETR sent is what the archive holds, byte for byte.
        assert retrieved(later[n - 2]) in archived_files(folder)
    assert bool(deleted) == may_delete
    if retrieved(later[-2]) == OTHER_BODY:
        # The first file is not adopted for other bytes: both are kept, each exact.
        assert sorted(archived_files(folder)) == sorted([BODY, OTHER_BODY])
    assert server.failures == []


def retrieved(script: list[Step]) -> bytes | None:
    """What a session's RETR answer carried (None: no RETR in it)."""
    for expect, answer in itertools.pairwise(script):
        if expect == Expect(rb"RETR 1") and isinstance(answer, Send):
            return answer.data.removeprefix(b"+OK\r\n").removesuffix(b".\r\n")
    return None


def fail_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file write of the archive fails: the disk is full."""

    async def write(self: Any, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(aiofiles.threadpool.binary.AsyncBufferedIOBase, "write", write)


async def test_an_answer_past_the_budget_fails_with_a_repair_issue(
    hass: HomeAssistant,
    socket_enabled: None,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TOP answer past the check's cap: clear log, translated issue, backoff; gone on success."""
    # The cap of one answer in a check (4 MiB), made small so the test sends kilobytes.
    monkeypatch.setattr("custom_components.pop3_mail.sync.check.CHECK_ANSWER_LIMIT", 4096)
    huge = b"X-Junk: " + b"j" * 8000 + b"\r\n\r\n"
    new_mail = [*login_script(), Expect(rb"STAT"), Send(b"+OK 1 9000\r\n"), Expect(rb"UIDL 1")]
    new_mail += [Send(b"+OK 1 big-1\r\n"), Expect(rb"LIST 1"), Send(b"+OK 1 9000\r\n")]
    new_mail += [Expect(rb"TOP 1 0"), Send(b"+OK\r\n" + huge + b".\r\n"), ReadUntilClosed()]
    gone = [*login_script(), Expect(rb"STAT"), Send(b"+OK 0 0\r\n"), Expect(rb"QUIT")]
    gone += [Send(b"+OK\r\n")]
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    async with HostileServer(scripts=[first_sessions()[0], new_mail, new_mail, gone]) as server:
        entry = entry_for(server)
        coordinator = await set_up(hass, entry)
        issue_id = f"check_too_large_{entry.entry_id}"
        for interval in (120, 240):
            await check(hass, coordinator)
            assert not coordinator.last_update_success
            assert coordinator.update_interval == timedelta(seconds=interval)
            error = coordinator.last_exception
            assert error is not None
            assert getattr(error, "translation_key", None) == "answer_too_large"
            issue = issue_registry.async_get_issue(DOMAIN, issue_id)
            assert issue is not None
            assert issue.translation_key == "check_too_large"
            assert issue.translation_placeholders is not None
            assert issue.translation_placeholders["mailbox"] == entry.title
        assert "larger than a check may hold" in caplog.text
        await check(hass, coordinator)
    assert server.failures == []
    assert coordinator.last_update_success
    assert events == []
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
