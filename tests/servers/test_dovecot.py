"""Tests of the Dovecot fixtures, driven by the standard library's poplib in a thread."""

from __future__ import annotations

import asyncio
import poplib
import time
from typing import TYPE_CHECKING

import pytest

from tests.servers.fake_pop3 import IN_USE

if TYPE_CHECKING:
    from tests.servers.dovecot import DovecotServer
    from tests.servers.fixtures import DovecotFactory


def _message(subject: str, body: str = "body") -> bytes:
    return f"From: a@example.com\nSubject: {subject}\n\n{body}\n".encode()


def _ssl_login(server: DovecotServer, user: str, password: str) -> poplib.POP3_SSL:
    conn = poplib.POP3_SSL(
        server.host, server.pop3s_port, context=server.pki.client_context(), timeout=15
    )
    conn.user(user)
    conn.pass_(password)
    return conn


async def test_implicit_tls_snapshot_and_seen(
    dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """POP3S with the test CA; mail delivered after login is invisible; RETR marks seen, TOP not."""
    user, password = dovecot_user
    dovecot.deliver(user, _message("one"))
    dovecot.deliver(user, _message("two"))
    dovecot.deliver(user, _message("three"))

    def session() -> tuple[dict[str, list[str]], tuple[int, int], list[bytes]]:
        conn = _ssl_login(dovecot, user, password)
        capa = conn.capa()
        dovecot.deliver(user, _message("late"))
        stat = conn.stat()
        subjects = [
            next(line for line in conn.top(n, 0)[1] if line.startswith(b"Subject:"))
            for n in (1, 2, 3)
        ]
        conn.retr(2)
        conn.quit()
        return capa, stat, subjects

    capa, stat, subjects = await asyncio.to_thread(session)
    # After login Dovecot no longer lists USER and SASL.
    assert {"TOP", "UIDL", "RESP-CODES", "PIPELINING"} <= set(capa)
    assert stat[0] == 3
    assert subjects == [b"Subject: one", b"Subject: two", b"Subject: three"]
    flagged = sorted(p.name for p in (dovecot.maildir(user) / "cur").iterdir())
    assert sum(name.endswith(":2,S") for name in flagged) == 1

    def second() -> tuple[int, int]:
        conn = _ssl_login(dovecot, user, password)
        try:
            return conn.stat()
        finally:
            conn.quit()

    assert (await asyncio.to_thread(second))[0] == 4


async def test_stls_dele_and_clear(dovecot: DovecotServer, dovecot_user: tuple[str, str]) -> None:
    """STLS then USER/PASS; DELE applied at QUIT; clear() empties the mailbox and its uids."""
    user, password = dovecot_user
    dovecot.deliver(user, _message("keep"))
    dovecot.deliver(user, _message("delete me"))

    def session() -> list[bytes]:
        conn = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=15)
        conn.stls(dovecot.pki.client_context())
        conn.user(user)
        conn.pass_(password)
        uids = conn.uidl()[1]
        conn.dele(2)
        conn.quit()
        return uids

    uids = await asyncio.to_thread(session)
    assert len(uids) == 2
    remaining = list((dovecot.maildir(user) / "cur").iterdir())
    assert len(remaining) == 1
    assert b"Subject: keep" in remaining[0].read_bytes()

    dovecot.clear(user)
    dovecot.deliver(user, _message("fresh"))

    def after_clear() -> tuple[int, list[bytes]]:
        conn = _ssl_login(dovecot, user, password)
        try:
            return conn.stat()[0], conn.uidl()[1]
        finally:
            conn.quit()

    count, new_uids = await asyncio.to_thread(after_clear)
    assert count == 1
    assert new_uids[0].split()[1] != uids[0].split()[1]  # uidvalidity starts afresh


async def test_wrong_password_then_prompt_login(
    dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """A wrong password gets -ERR [AUTH]; the next good login is not held back by a penalty."""
    user, password = dovecot_user

    def session() -> tuple[str, float]:
        conn = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=15)
        try:
            conn.user(user)
            with pytest.raises(poplib.error_proto) as caught:
                conn.pass_("not-the-password")
        finally:
            conn.close()
        conn = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=15)
        started = time.monotonic()
        try:
            conn.user(user)
            conn.pass_(password)
            return str(caught.value), time.monotonic() - started
        finally:
            conn.quit()

    refused, login_seconds = await asyncio.to_thread(session)
    assert "-ERR [AUTH] Authentication failed." in refused
    assert login_seconds < 1


async def test_plaintext_refused_variant(
    dovecot_factory: DovecotFactory, loopback_aliases: None
) -> None:
    """The 127.0.0.2 variant refuses USER in clear text and accepts it after STLS."""
    server = dovecot_factory(plaintext_refused=True)
    user, password = server.new_user()
    assert server.host == "127.0.0.2"

    def session() -> tuple[str, bytes]:
        conn = poplib.POP3(server.host, server.pop3_port, timeout=15)
        try:
            with pytest.raises(poplib.error_proto) as caught:
                conn.user(user)
            conn.stls(server.pki.client_context())
            conn.user(user)
            return str(caught.value), conn.pass_(password)
        finally:
            conn.quit()

    refused, logged_in = await asyncio.to_thread(session)
    assert refused == repr(server.plaintext_refused_reply.encode())
    assert logged_in.startswith(b"+OK")


async def test_lock_session_in_use(dovecot_factory: DovecotFactory, socket_enabled: None) -> None:
    """With pop3_lock_session a second concurrent login gets [IN-USE] (after Dovecot's ~10 s)."""
    server = dovecot_factory(pop3_lock_session=True)
    user, password = server.new_user()

    def session() -> tuple[str, float]:
        first = poplib.POP3(server.host, server.pop3_port, timeout=30)
        first.user(user)
        first.pass_(password)
        second = poplib.POP3(server.host, server.pop3_port, timeout=30)
        started = time.monotonic()
        try:
            second.user(user)
            with pytest.raises(poplib.error_proto) as caught:
                second.pass_(password)
            return str(caught.value), time.monotonic() - started
        finally:
            second.close()
            first.quit()

    answer, waited = await asyncio.to_thread(session)
    assert IN_USE in answer
    assert waited > 5


async def test_deliver_many_keeps_order(
    dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """Bulk delivery keeps delivery order in Dovecot's message numbers."""
    user, password = dovecot_user
    assert dovecot.deliver_many(user, (_message(f"n{i}") for i in range(25))) == 25

    def session() -> list[bytes]:
        conn = _ssl_login(dovecot, user, password)
        try:
            return [
                next(line for line in conn.top(n, 0)[1] if line.startswith(b"Subject:"))
                for n in range(1, 26)
            ]
        finally:
            conn.quit()

    assert await asyncio.to_thread(session) == [f"Subject: n{i}".encode() for i in range(25)]
