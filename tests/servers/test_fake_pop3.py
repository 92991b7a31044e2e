"""Tests of the fake POP3 server, driven by poplib (in a thread) and by raw asyncio streams."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import poplib
import ssl
from typing import TYPE_CHECKING

import pytest

from tests.servers.fake_pop3 import (
    AUTH_FAILED,
    IN_USE,
    PLAINTEXT_REFUSED,
    FakePOP3Server,
    Fault,
    delay,
    drop,
    drop_mid_response,
    err,
    raw,
)

if TYPE_CHECKING:
    from tests.servers.certs import TestPKI
    from tests.servers.fixtures import FakePOP3Factory

MSG1 = b"From: a@b\r\nSubject: one\r\n\r\nbody one\r\n"
MSG2 = b"From: c@d\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"


class Wire:
    """A minimal raw POP3 client over asyncio streams, for byte-level assertions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, server: FakePOP3Server, context: ssl.SSLContext | None = None
    ) -> tuple[Wire, bytes]:
        reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context)
        wire = cls(reader, writer)
        return wire, await wire.line()

    async def line(self) -> bytes:
        async with asyncio.timeout(5):
            return await self.reader.readline()

    async def multi(self) -> list[bytes]:
        lines = []
        while (line := await self.line()) not in (b".\r\n", b".\n", b""):
            lines.append(line)
        return lines

    async def cmd(self, text: str) -> bytes:
        self.writer.write(text.encode() + b"\r\n")
        return await self.line()

    async def login(self, user: str = "alice", password: str = "secret") -> None:  # noqa: S107
        assert await self.cmd(f"USER {user}") == b"+OK\r\n"
        assert (await self.cmd(f"PASS {password}")).startswith(b"+OK")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


def _poplib_session(server: FakePOP3Server) -> dict[str, object]:
    """A whole poplib session: what a standard client sees."""
    conn = poplib.POP3(server.host, server.port, timeout=5)
    try:
        conn.user("alice")
        conn.pass_("secret")
        out: dict[str, object] = {
            "stat": conn.stat(),
            "list": conn.list()[1],
            "uidl": conn.uidl()[1],
            "uidl2": conn.uidl(2),
            "top": conn.top(2, 1)[1],
            "retr": conn.retr(1)[1],
        }
        conn.dele(1)
        out["stat_after_dele"] = conn.stat()
    finally:
        out["quit"] = conn.quit()
    return out


async def test_poplib_session(fake_pop3: FakePOP3Factory) -> None:
    """STAT/LIST/UIDL/TOP/RETR/DELE as poplib sees them; DELE applied at QUIT; RETR marks seen."""
    server = await fake_pop3(messages=[MSG1, MSG2])
    out = await asyncio.to_thread(_poplib_session, server)
    assert out["stat"] == (2, len(MSG1) + len(MSG2))
    assert out["list"] == [f"1 {len(MSG1)}".encode(), f"2 {len(MSG2)}".encode()]
    assert out["uidl"] == [b"1 uid-1", b"2 uid-2"]
    assert out["uidl2"] == b"+OK 2 uid-2"
    assert out["top"] == [b"From: c@d", b"Subject: two", b"", b"line 1"]
    assert out["retr"] == [b"From: a@b", b"Subject: one", b"", b"body one"]
    assert out["stat_after_dele"] == (1, len(MSG2))
    assert server.mailbox.uids() == ["uid-2"]
    assert server.mailbox.seen == set()  # uid-1 was read, then deleted
    record = server.sessions[0]
    assert record.quit
    assert record.deleted == ["uid-1"]
    assert record.user == "alice"
    assert record.commands == [
        "USER alice",
        "PASS ***",
        "STAT",
        "LIST",
        "UIDL",
        "UIDL 2",
        "TOP 2 1",
        "RETR 1",
        "DELE 1",
        "STAT",
        "QUIT",
    ]
    assert record.bytes_in == sum(len(w) for w in record.writes)
    assert record.bytes_out > len(MSG1) + len(MSG2)
    assert record.closed


async def test_retr_marks_seen_top_does_not(fake_pop3: FakePOP3Factory) -> None:
    """RETR marks a message read, TOP does not."""
    server = await fake_pop3(messages=[MSG1, MSG2])
    wire, _ = await Wire.open(server)
    await wire.login()
    assert await wire.cmd("TOP 1 0") == b"+OK\r\n"
    assert await wire.multi() == [b"From: a@b\r\n", b"Subject: one\r\n", b"\r\n"]
    assert server.mailbox.seen == set()
    assert await wire.cmd("RETR 2") == f"+OK {len(MSG2)} octets\r\n".encode()
    await wire.multi()
    assert server.mailbox.read_flags == {"uid-2"}
    await wire.close()


async def test_snapshot_at_login_and_drop_deletes_nothing(fake_pop3: FakePOP3Factory) -> None:
    """A session never sees mail delivered after its login; a dropped session deletes nothing."""
    server = await fake_pop3(messages=[MSG1])
    first, _ = await Wire.open(server)
    await first.login()
    new_uid = server.mailbox.add(MSG2)
    assert new_uid == "uid-2"
    assert await first.cmd("STAT") == f"+OK 1 {len(MSG1)}\r\n".encode()
    assert await first.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
    await first.close()
    second, _ = await Wire.open(server)
    await second.login()
    assert await second.cmd("STAT") == f"+OK 2 {len(MSG1) + len(MSG2)}\r\n".encode()
    await second.close()
    assert server.mailbox.uids() == ["uid-1", "uid-2"]
    assert server.sessions[0].deleted == []
    assert not server.sessions[0].quit


async def test_deleted_hidden_rset_and_bad_numbers(fake_pop3: FakePOP3Factory) -> None:
    """Deleted messages disappear from the session until RSET; bad numbers get -ERR."""
    server = await fake_pop3(messages=[MSG1, MSG2])
    wire, _ = await Wire.open(server)
    await wire.login()
    await wire.cmd("DELE 1")
    assert await wire.cmd("LIST") == f"+OK 1 messages ({len(MSG2)} octets)\r\n".encode()
    assert await wire.multi() == [f"2 {len(MSG2)}\r\n".encode()]
    assert await wire.cmd("UIDL") == b"+OK\r\n"
    assert await wire.multi() == [b"2 uid-2\r\n"]
    assert await wire.cmd("RETR 1") == b"-ERR message 1 already deleted\r\n"
    assert await wire.cmd("DELE 1") == b"-ERR message 1 already deleted\r\n"
    assert await wire.cmd("UIDL 3") == b"-ERR no such message\r\n"
    assert await wire.cmd("LIST 0") == b"-ERR no such message\r\n"
    assert await wire.cmd("TOP x 1") == b"-ERR Invalid message number.\r\n"
    assert await wire.cmd("RSET") == (
        f"+OK maildrop has 2 messages ({len(MSG1) + len(MSG2)} octets)\r\n".encode()
    )
    assert await wire.cmd("QUIT") == b"+OK Logging out, messages deleted (2 left).\r\n"
    assert await wire.line() == b""
    await wire.close()
    assert server.mailbox.uids() == ["uid-1", "uid-2"]


async def test_dot_stuffing_and_line_ends(fake_pop3: FakePOP3Factory) -> None:
    """Lines starting with a dot are stuffed; bare LF is sent as CRLF and counted so."""
    message = b"Subject: dots\n\n.hidden\n..two\nend"
    server = await fake_pop3(messages=[message])
    wire, _ = await Wire.open(server)
    await wire.login()
    expected = b"Subject: dots\r\n\r\n.hidden\r\n..two\r\nend\r\n"
    assert await wire.cmd("LIST 1") == f"+OK 1 {len(expected)}\r\n".encode()
    assert await wire.cmd("RETR 1") == f"+OK {len(expected)} octets\r\n".encode()
    assert await wire.multi() == [
        b"Subject: dots\r\n",
        b"\r\n",
        b"..hidden\r\n",
        b"...two\r\n",
        b"end\r\n",
    ]
    await wire.close()


async def test_states_and_unknown_commands(fake_pop3: FakePOP3Factory) -> None:
    """Transaction commands before login and login commands after it are refused."""
    server = await fake_pop3(messages=[MSG1])
    wire, greeting = await Wire.open(server)
    assert greeting == b"+OK fake POP3 server ready <1896.697170952@fake.example>\r\n"
    assert await wire.cmd("STAT") == b"-ERR Command not valid in this state.\r\n"
    assert await wire.cmd("XYZZY") == b"-ERR Unknown command.\r\n"
    assert await wire.cmd("PASS secret") == b"-ERR No username given.\r\n"
    assert await wire.cmd("USER alice") == b"+OK\r\n"
    assert await wire.cmd("PASS wrong") == f"{AUTH_FAILED}\r\n".encode()
    await wire.login()
    assert await wire.cmd("USER alice") == b"-ERR Command not valid in this state.\r\n"
    assert await wire.cmd("NOOP") == b"+OK\r\n"
    await wire.close()


async def test_capa(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """Default CAPA, with STLS and LOGIN-DELAY; CAPA also works after login."""
    server = await fake_pop3(stls_context=test_pki.server_context(), login_delay=300)
    wire, _ = await Wire.open(server)
    assert await wire.cmd("CAPA") == b"+OK Capability list follows\r\n"
    expected = [
        b"TOP\r\n",
        b"UIDL\r\n",
        b"USER\r\n",
        b"RESP-CODES\r\n",
        b"PIPELINING\r\n",
        b"SASL PLAIN XOAUTH2\r\n",
        b"STLS\r\n",
        b"LOGIN-DELAY 300\r\n",
    ]
    assert await wire.multi() == expected
    await wire.login()
    assert await wire.cmd("CAPA") == b"+OK Capability list follows\r\n"
    assert await wire.multi() == expected
    await wire.close()


async def test_old_server_without_capa_top_uidl(fake_pop3: FakePOP3Factory) -> None:
    """capa_supported=False: CAPA gets -ERR; capabilities without TOP/UIDL disable them."""
    server = await fake_pop3(messages=[MSG1], capabilities=["USER"], capa_supported=False)
    wire, _ = await Wire.open(server)
    assert (await wire.cmd("CAPA")).startswith(b"-ERR")
    await wire.login()
    assert await wire.cmd("TOP 1 0") == b"-ERR Unknown command.\r\n"
    assert await wire.cmd("UIDL") == b"-ERR Unknown command.\r\n"
    assert await wire.cmd("STAT") == f"+OK 1 {len(MSG1)}\r\n".encode()
    await wire.close()


async def test_utf8_only_before_login_when_advertised(fake_pop3: FakePOP3Factory) -> None:
    """UTF8 (RFC 6856) is accepted in AUTHORIZATION state when advertised, refused after login."""
    server = await fake_pop3(capabilities=["USER", "UTF8", "UIDL"])
    wire, _ = await Wire.open(server)
    assert await wire.cmd("UTF8") == b"+OK UTF8 enabled\r\n"
    await wire.login()
    assert await wire.cmd("UTF8") == b"-ERR Command not valid in this state.\r\n"
    await wire.close()
    assert server.sessions[0].utf8
    plain = await fake_pop3()
    wire, _ = await Wire.open(plain)
    assert await wire.cmd("UTF8") == b"-ERR Unknown command.\r\n"
    await wire.close()


async def test_apop(fake_pop3: FakePOP3Factory) -> None:
    """APOP checks MD5(timestamp + password) against the greeting's timestamp."""
    server = await fake_pop3(greeting="+OK ready <42.17@host>")
    wire, _ = await Wire.open(server)
    bad = hashlib.md5(b"<42.17@host>wrong", usedforsecurity=False).hexdigest()
    assert await wire.cmd(f"APOP alice {bad}") == f"{AUTH_FAILED}\r\n".encode()
    good = hashlib.md5(b"<42.17@host>secret", usedforsecurity=False).hexdigest()
    assert await wire.cmd(f"APOP alice {good}") == b"+OK Logged in.\r\n"
    await wire.close()
    assert server.sessions[0].commands == ["APOP alice ***", "APOP alice ***"]


async def test_auth_plain(fake_pop3: FakePOP3Factory) -> None:
    """AUTH PLAIN with an initial response and in continuation form; both masked in records."""
    server = await fake_pop3()
    token = base64.b64encode(b"\0alice\0secret").decode()
    wire, _ = await Wire.open(server)
    assert await wire.cmd(f"AUTH PLAIN {token}") == b"+OK Logged in.\r\n"
    await wire.close()
    wire, _ = await Wire.open(server)
    assert await wire.cmd("AUTH PLAIN") == b"+ \r\n"
    bad = base64.b64encode(b"\0alice\0nope").decode()
    assert await wire.cmd(bad) == f"{AUTH_FAILED}\r\n".encode()
    assert await wire.cmd("AUTH PLAIN") == b"+ \r\n"
    assert await wire.cmd("*") == b"-ERR Authentication aborted.\r\n"
    assert await wire.cmd("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism.\r\n"
    await wire.close()
    assert server.sessions[0].commands == ["AUTH PLAIN ***"]
    assert server.sessions[1].commands == [
        "AUTH PLAIN",
        "***",
        "AUTH PLAIN",
        "***",
        "AUTH CRAM-MD5",
    ]
    assert all("secret" not in c and "nope" not in c for s in server.sessions for c in s.commands)


async def test_auth_xoauth2(fake_pop3: FakePOP3Factory) -> None:
    """XOAUTH2 succeeds with the right token; a bad one gets Gmail's challenge, then -ERR."""
    server = await fake_pop3(users={"bob": "tok-123"})
    good = base64.b64encode(b"user=bob\x01auth=Bearer tok-123\x01\x01").decode()
    bad = base64.b64encode(b"user=bob\x01auth=Bearer expired\x01\x01").decode()
    wire, _ = await Wire.open(server)
    challenge = await wire.cmd(f"AUTH XOAUTH2 {bad}")
    assert challenge.startswith(b"+ ")
    assert json.loads(base64.b64decode(challenge[2:].strip()))["status"] == "401"
    assert await wire.cmd("") == f"{AUTH_FAILED}\r\n".encode()
    assert await wire.cmd("AUTH XOAUTH2") == b"+ \r\n"
    assert await wire.cmd(good) == b"+OK Logged in.\r\n"
    await wire.close()
    assert server.sessions[0].commands == ["AUTH XOAUTH2 ***", "", "AUTH XOAUTH2", "***"]


async def test_auth_xoauth2_continuation_first(fake_pop3: FakePOP3Factory) -> None:
    """Microsoft mode: AUTH XOAUTH2 always gets `+ `; the payload comes on the next line."""
    server = await fake_pop3(users={"bob": "tok-123"}, xoauth2_continuation_first=True)
    good = base64.b64encode(b"user=bob\x01auth=Bearer tok-123\x01\x01").decode()
    wire, _ = await Wire.open(server)
    assert await wire.cmd(f"AUTH XOAUTH2 {good}") == b"+ \r\n"
    assert await wire.cmd(good) == b"+OK Logged in.\r\n"
    await wire.close()
    assert server.sessions[0].commands == ["AUTH XOAUTH2 ***", "***"]


async def test_pipelined_batch_answered_in_order(fake_pop3: FakePOP3Factory) -> None:
    """Several commands in one write are answered in order and recorded as one chunk."""
    server = await fake_pop3(messages=[MSG1, MSG2])
    wire, _ = await Wire.open(server)
    await wire.login()
    wire.writer.write(b"STAT\r\nUIDL 2\r\nTOP 1 0\r\nLIST 1\r\n")
    assert await wire.line() == f"+OK 2 {len(MSG1) + len(MSG2)}\r\n".encode()
    assert await wire.line() == b"+OK 2 uid-2\r\n"
    assert await wire.line() == b"+OK\r\n"
    assert await wire.multi() == [b"From: a@b\r\n", b"Subject: one\r\n", b"\r\n"]
    assert await wire.line() == f"+OK 1 {len(MSG1)}\r\n".encode()
    await wire.close()
    assert server.sessions[0].writes[-1] == b"STAT\r\nUIDL 2\r\nTOP 1 0\r\nLIST 1\r\n"


async def test_fault_err_nth_and_repeat(fake_pop3: FakePOP3Factory) -> None:
    """An err fault fires on the nth arrival once; a repeating one keeps firing."""
    server = await fake_pop3(messages=[MSG1])
    server.faults.append(Fault("PASS", err("[IN-USE] busy"), nth=2))
    server.faults.append(Fault("STAT", err("-ERR [SYS/TEMP] later"), repeat=True))
    wire, _ = await Wire.open(server)
    await wire.login()
    assert await wire.cmd("STAT") == b"-ERR [SYS/TEMP] later\r\n"
    assert await wire.cmd("STAT") == b"-ERR [SYS/TEMP] later\r\n"
    await wire.close()
    wire, _ = await Wire.open(server)
    await wire.cmd("USER alice")
    assert await wire.cmd("PASS secret") == b"-ERR [IN-USE] busy\r\n"
    await wire.login()  # the PASS fault was consumed
    await wire.close()
    assert [f.command for f in server.faults] == ["STAT"]
    assert server.faults[0].fired == 2


async def test_fault_drop_and_drop_mid_response(fake_pop3: FakePOP3Factory) -> None:
    """drop closes without an answer; drop_mid_response sends a prefix of the answer first."""
    server = await fake_pop3(messages=[MSG1])
    server.faults.append(Fault("UIDL", drop()))
    wire, _ = await Wire.open(server)
    await wire.login()
    assert await wire.cmd("UIDL") == b""
    await wire.close()
    server.faults.append(Fault("RETR", drop_mid_response(after_bytes=20)))
    wire, _ = await Wire.open(server)
    await wire.login()
    wire.writer.write(b"RETR 1\r\n")
    async with asyncio.timeout(5):
        assert await wire.reader.read() == f"+OK {len(MSG1)} octets\r\nFrom: a@b\r\n".encode()[:20]
    await wire.close()
    assert server.mailbox.uids() == ["uid-1"]


async def test_fault_delay_raw_and_greeting(fake_pop3: FakePOP3Factory) -> None:
    """delay answers late; raw replaces the answer; a GREETING err closes the connection."""
    server = await fake_pop3(messages=[MSG1])
    server.faults.append(Fault("GREETING", err("[SYS/TEMP] too many connections")))
    wire, greeting = await Wire.open(server)
    assert greeting == b"-ERR [SYS/TEMP] too many connections\r\n"
    assert await wire.line() == b""
    await wire.close()
    server.faults.append(Fault("NOOP", delay(0.3)))
    server.faults.append(Fault("STAT", raw(b"+OK garbage here\r\n")))
    wire, _ = await Wire.open(server)
    await wire.login()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wire.cmd("NOOP") == b"+OK\r\n"
    assert loop.time() - started >= 0.3
    assert await wire.cmd("STAT") == b"+OK garbage here\r\n"
    assert await wire.cmd("STAT") == f"+OK 1 {len(MSG1)}\r\n".encode()
    await wire.close()


async def test_quit_err_deletes_nothing(fake_pop3: FakePOP3Factory) -> None:
    """A QUIT fault answers -ERR, applies no deletion and closes."""
    server = await fake_pop3(messages=[MSG1])
    server.faults.append(Fault("QUIT", err("[SYS/PERM] disk error")))
    wire, _ = await Wire.open(server)
    await wire.login()
    await wire.cmd("DELE 1")
    assert await wire.cmd("QUIT") == b"-ERR [SYS/PERM] disk error\r\n"
    assert await wire.line() == b""
    await wire.close()
    assert server.mailbox.uids() == ["uid-1"]
    assert server.sessions[0].deleted == []


def _tls_session(server: FakePOP3Server, context: ssl.SSLContext, *, stls: bool) -> tuple[int, int]:
    if stls:
        conn: poplib.POP3 = poplib.POP3(server.host, server.port, timeout=5)
        conn.stls(context)
    else:
        conn = poplib.POP3_SSL(server.host, server.port, timeout=5, context=context)
    try:
        conn.user("alice")
        conn.pass_("secret")
        return conn.stat()
    finally:
        conn.quit()


async def test_implicit_tls(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """Implicit TLS with a certificate the test CA verifies for 127.0.0.1."""
    server = await fake_pop3(messages=[MSG1], implicit_tls=test_pki.server_context())
    stat = await asyncio.to_thread(_tls_session, server, test_pki.client_context(), stls=False)
    assert stat == (1, len(MSG1))
    assert server.sessions[0].tls


async def test_implicit_tls_untrusted_client_fails(
    fake_pop3: FakePOP3Factory, test_pki: TestPKI
) -> None:
    """A client trusting only the system CAs rejects the test certificate."""
    server = await fake_pop3(implicit_tls=test_pki.server_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(server.host, server.port, ssl=ssl.create_default_context())


async def test_stls(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """STLS upgrades the session; STLS is no longer offered once in TLS."""
    server = await fake_pop3(messages=[MSG1], stls_context=test_pki.server_context())
    stat = await asyncio.to_thread(_tls_session, server, test_pki.client_context(), stls=True)
    assert stat == (1, len(MSG1))
    assert server.sessions[0].tls
    assert server.sessions[0].commands[:3] == ["CAPA", "STLS", "USER alice"]
    assert "STLS" not in server.capability_lines(tls=True)


async def test_plaintext_refused_until_tls(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """require_tls_for_plaintext refuses USER and AUTH PLAIN in clear text, not after STLS."""
    server = await fake_pop3(stls_context=test_pki.server_context(), require_tls_for_plaintext=True)
    wire, _ = await Wire.open(server)
    assert await wire.cmd("USER alice") == f"{PLAINTEXT_REFUSED}\r\n".encode()
    plain = base64.b64encode(b"\0alice\0secret").decode()
    assert await wire.cmd(f"AUTH PLAIN {plain}") == f"{PLAINTEXT_REFUSED}\r\n".encode()
    assert await wire.cmd("STLS") == b"+OK Begin TLS negotiation now.\r\n"
    await wire.writer.start_tls(test_pki.client_context(), server_hostname="localhost")
    await wire.login()
    await wire.close()


async def test_lock_sessions(fake_pop3: FakePOP3Factory) -> None:
    """A second concurrent login gets [IN-USE]; the lock goes with the first session or unlock()."""
    server = await fake_pop3(lock_sessions=True)
    first, _ = await Wire.open(server)
    await first.login()
    second, _ = await Wire.open(server)
    await second.cmd("USER alice")
    assert await second.cmd("PASS secret") == f"{IN_USE}\r\n".encode()
    server.unlock()
    await second.login()
    await first.cmd("QUIT")
    assert await first.line() == b""
    await first.close()
    await second.cmd("QUIT")
    await second.close()
    third, _ = await Wire.open(server)
    await third.login()
    await third.close()


async def test_lf_only(fake_pop3: FakePOP3Factory) -> None:
    """lf_only sends every line with a bare LF."""
    server = await fake_pop3(messages=[MSG1], lf_only=True)
    wire, greeting = await Wire.open(server)
    assert greeting.endswith(b">\n")
    await wire.cmd("USER alice")
    await wire.cmd("PASS secret")
    assert await wire.cmd("RETR 1") == f"+OK {len(MSG1)} octets\n".encode()
    assert await wire.multi() == [b"From: a@b\n", b"Subject: one\n", b"\n", b"body one\n"]
    await wire.close()


async def test_mailbox_renumbering(fake_pop3: FakePOP3Factory) -> None:
    """set_uids, reorder and remove change what the next session sees."""
    server = await fake_pop3(messages=[MSG1, MSG2])
    third = server.mailbox.add(b"Subject: 3\r\n\r\n3\r\n", uid="custom")
    server.mailbox.set_uids({"uid-1": "new-1"})
    server.mailbox.reorder(["custom", "uid-2", "new-1"])
    server.mailbox.remove("uid-2")
    assert server.mailbox.uids() == [third, "new-1"]
    assert server.mailbox.get("new-1") == MSG1
    with pytest.raises(ValueError, match="already"):
        server.mailbox.add(MSG1, uid="custom")
    wire, _ = await Wire.open(server)
    await wire.login()
    assert await wire.cmd("UIDL") == b"+OK\r\n"
    assert await wire.multi() == [b"1 custom\r\n", b"2 new-1\r\n"]
    await wire.close()


async def test_stop_closes_open_connections(socket_enabled: None) -> None:
    """stop() ends idle sessions and the listener."""
    server = FakePOP3Server(messages=[MSG1])
    await server.start()
    wire, _ = await Wire.open(server)
    await wire.login()
    await server.stop()
    assert await wire.line() == b""
    await wire.close()
    assert server.sessions[0].closed
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(server.host, server.port)


async def test_stop_cancels_a_delayed_answer(socket_enabled: None) -> None:
    """stop() does not wait for a slow answer to be sent; nothing is left running."""
    server = FakePOP3Server(messages=[MSG1])
    await server.start()
    server.faults.append(Fault("STAT", delay(60)))
    wire, _ = await Wire.open(server)
    await wire.login()
    wire.writer.write(b"STAT\r\n")
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await server.stop()
    assert loop.time() - started < 2
    assert await wire.line() == b""
    await wire.close()
    assert server.sessions[0].commands[-1] == "STAT"
