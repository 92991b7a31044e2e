"""The asyncio client against the fake POP3 server: negotiation, auth, faults, deadlines."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.pop3_mail.pop3 import (
    Capabilities,
    Dele,
    List,
    Noop,
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3Session,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
    Retr,
    Rset,
    Security,
    Stat,
    StatResult,
    Top,
    Uidl,
    connect,
)
from custom_components.pop3_mail.pop3.client import PIPELINE_WINDOW
from custom_components.pop3_mail.pop3.sasl import choose_login
from tests.servers.fake_pop3 import (
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

MESSAGES = [
    b"From: a@example.com\r\nSubject: one\r\n\r\nfirst body\r\n",
    b"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\nline 2\r\n",
    b"From: c@example.com\r\nSubject: three\r\n\r\nthird\r\n",
]
NO_TIMESTAMP = "+OK POP3 ready"
PLAIN_CAPS = ["TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "SASL PLAIN"]


def session_to(server: FakePOP3Server, **kwargs: Any) -> POP3Session:
    """A clear-text session to the fake server as alice (options overridable)."""
    options: dict[str, Any] = {
        "security": Security.NONE,
        "username": "alice",
        "password": "secret",
        "command_timeout": 5.0,
    }
    return connect(server.host, server.port, **(options | kwargs))


async def wait_closed(server: FakePOP3Server, index: int = -1) -> None:
    """Wait until the server has finished with a session (it records on its own schedule)."""
    async with asyncio.timeout(5):
        while not server.sessions or not server.sessions[index].closed:
            await asyncio.sleep(0.01)


async def test_a_whole_session(fake_pop3: FakePOP3Factory) -> None:
    """Every command once; values as the server has them; QUIT applies DELE."""
    server = await fake_pop3(messages=MESSAGES)
    async with session_to(server) as session:
        assert session.greeting == "fake POP3 server ready <1896.697170952@fake.example>"
        assert session.capabilities.pipelining
        assert not session.tls
        count, size = await session.stat()
        sizes = await session.list()
        assert (count, size) == (3, sum(sizes.values()))
        assert await session.list_one(2) == sizes[2]
        assert await session.uidl() == {1: "uid-1", 2: "uid-2", 3: "uid-3"}
        assert await session.uidl_one(3) == "uid-3"
        assert await session.top(1, 0) == b"From: a@example.com\r\nSubject: one\r\n\r\n"
        assert await session.retr(2) == MESSAGES[1]
        await session.noop()
        await session.dele(1)
        await session.rset()
        await session.dele(3)
        with pytest.raises(POP3ResponseError, match="no such message") as caught:
            await session.retr(9)
        assert type(caught.value) is POP3ResponseError
    await wait_closed(server)
    record = server.sessions[0]
    assert record.commands == [
        "CAPA",
        "APOP alice ***",
        "STAT",
        "LIST",
        "LIST 2",
        "UIDL",
        "UIDL 3",
        "TOP 1 0",
        "RETR 2",
        "NOOP",
        "DELE 1",
        "RSET",
        "DELE 3",
        "RETR 9",
        "QUIT",
    ]
    assert record.deleted == ["uid-3"]
    assert server.mailbox.uids() == ["uid-1", "uid-2"]
    stats = session.stats
    assert (stats.bytes_in, stats.bytes_out) == (record.bytes_out, record.bytes_in)
    assert stats.commands == len(record.commands)
    assert stats.round_trips == len(record.commands)
    assert 0 < stats.duration < 5
    assert session.stats == stats  # frozen once closed


async def test_pipelining_writes_the_batch_at_once(fake_pop3: FakePOP3Factory) -> None:
    """With PIPELINING the batch is one write; a -ERR comes back as a value."""
    server = await fake_pop3(messages=MESSAGES)
    async with session_to(server) as session:
        results = await session.pipeline([Stat(), Uidl(2), Top(2, 0), Uidl(7), List(1)])
        assert session.stats.round_trips == 3  # CAPA, APOP, the batch
    assert results[:3] == [
        StatResult(3, sum(len(m) for m in MESSAGES)),
        "uid-2",
        b"From: b@example.com\r\nSubject: two\r\n\r\n",
    ]
    assert isinstance(results[3], POP3ResponseError)
    assert str(results[3]) == "The server refused to UIDL: no such message"
    assert results[4] == len(MESSAGES[0])
    await wait_closed(server)
    assert b"STAT\r\nUIDL 2\r\nTOP 2 0\r\nUIDL 7\r\nLIST 1\r\n" in server.sessions[0].writes


async def test_without_pipelining_one_by_one_same_results(fake_pop3: FakePOP3Factory) -> None:
    """Without PIPELINING each command waits for its answer; the results do not change."""
    batch = [Stat(), Uidl(2), Top(2, 0), Uidl(7), List(1), Dele(1), Rset(), Noop(), Retr(3)]
    results = []
    for caps in (PLAIN_CAPS, [c for c in PLAIN_CAPS if c != "PIPELINING"]):
        server = await fake_pop3(messages=MESSAGES, capabilities=caps)
        async with session_to(server) as session:
            results.append([str(r) for r in await session.pipeline(batch)])
        await wait_closed(server)
        writes = server.sessions[0].writes
    assert results[0] == results[1]
    assert [w for w in writes if w.startswith((b"STAT", b"UIDL", b"TOP", b"LIST"))] == [
        b"STAT\r\n",
        b"UIDL 2\r\n",
        b"TOP 2 0\r\n",
        b"UIDL 7\r\n",
        b"LIST 1\r\n",
    ]


async def test_pipelining_a_batch_larger_than_the_window(fake_pop3: FakePOP3Factory) -> None:
    """Thousands of commands do not deadlock the socket buffers and stay in order."""
    server = await fake_pop3(messages=[b"Subject: %d\r\n\r\n" % i + b"x" * 500 for i in range(50)])
    batch = [Top(i % 50 + 1, 0) for i in range(PIPELINE_WINDOW * 5 + 7)]
    async with session_to(server) as session:
        results = await session.pipeline(batch)
        assert session.stats.round_trips < len(batch) // 50
    assert results == [b"Subject: %d\r\n\r\n" % (i % 50) for i in range(len(batch))]


async def test_apop_when_the_greeting_has_a_timestamp(fake_pop3: FakePOP3Factory) -> None:
    """Without TLS APOP is preferred: the password never crosses the wire; a bad one fails.

    A refused APOP is tried once more the plain way (clear text is allowed here), which
    refuses a wrong password too.
    """
    server = await fake_pop3()
    async with session_to(server):
        pass
    with pytest.raises(POP3AuthError, match=r"refused to AUTH: \[AUTH\] Authentication failed"):
        async with session_to(server, password="wrong"):
            pass
    await wait_closed(server)
    assert [s.commands for s in server.sessions] == [
        ["CAPA", "APOP alice ***", "QUIT"],
        ["CAPA", "APOP alice ***", "AUTH PLAIN ***", "QUIT"],
    ]


async def test_apop_refused_to_a_user_without_an_apop_secret(fake_pop3: FakePOP3Factory) -> None:
    """qpopper-style: a timestamp in every greeting, APOP refused, USER/PASS accepted."""
    server = await fake_pop3(capabilities=["USER", "TOP", "UIDL"])
    server.faults.append(Fault("APOP", err("[AUTH] no APOP secret for this user")))
    async with session_to(server):
        pass
    await wait_closed(server)
    assert server.sessions[0].commands == [
        "CAPA",
        "APOP alice ***",
        "USER alice",
        "PASS ***",
        "QUIT",
    ]


async def test_apop_refused_then_hung_up_reports_the_refusal(fake_pop3: FakePOP3Factory) -> None:
    """A server that closes after refusing APOP: the refusal is the answer, not a lost line."""
    server = await fake_pop3(capabilities=["USER", "TOP", "UIDL"])
    server.faults.append(Fault("APOP", err("[AUTH] Authentication failed.")))
    server.faults.append(Fault("USER", drop()))
    with pytest.raises(POP3AuthError, match="refused to APOP"):
        async with session_to(server):
            pass


async def test_apop_busy_is_final(fake_pop3: FakePOP3Factory) -> None:
    """Only a refused login falls back: [IN-USE] and the like are answers for later."""
    server = await fake_pop3()
    server.faults.append(Fault("APOP", err("[IN-USE] locked")))
    with pytest.raises(POP3InUseError):
        async with session_to(server):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "APOP alice ***", "QUIT"]


async def test_user_pass_in_clear_only_with_security_none(fake_pop3: FakePOP3Factory) -> None:
    """No timestamp, no SASL PLAIN: USER/PASS, which security NONE explicitly allows."""
    server = await fake_pop3(greeting=NO_TIMESTAMP, capabilities=["USER", "TOP", "UIDL"])
    async with session_to(server) as session:
        assert await session.stat() == StatResult(0, 0)
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "USER alice", "PASS ***", "STAT", "QUIT"]


async def test_sasl_plain_and_its_continuation_form(fake_pop3: FakePOP3Factory) -> None:
    """PLAIN with an initial response; a line over 255 octets uses the continuation."""
    long_name = "a" * 200
    server = await fake_pop3(
        users={"alice": "secret", long_name: "secret"},
        greeting=NO_TIMESTAMP,
        capabilities=PLAIN_CAPS,
    )
    async with session_to(server):
        pass
    async with session_to(server, username=long_name):
        pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "AUTH PLAIN ***", "QUIT"]
    assert server.sessions[1].commands == ["CAPA", "AUTH PLAIN", "***", "QUIT"]
    with pytest.raises(POP3AuthError, match="AUTH"):
        async with session_to(server, password="wrong"):
            pass


async def test_xoauth2_initial_response_and_gmail_failure_flow(
    fake_pop3: FakePOP3Factory,
) -> None:
    """A short token goes as initial response; a refused one's JSON challenge gets an empty
    line, then -ERR, and the error carries the JSON status, never the token."""
    server = await fake_pop3(users={"alice": "ya29.token"})
    async with session_to(server, oauth2_token="ya29.token"):
        pass
    with pytest.raises(POP3AuthError) as refused:
        async with session_to(server, oauth2_token="expired-token"):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "AUTH XOAUTH2 ***", "QUIT"]
    assert server.sessions[1].commands == ["CAPA", "AUTH XOAUTH2 ***", "", "QUIT"]
    assert refused.value.status == "401"
    assert "XOAUTH2 status 401" in str(refused.value)
    assert "expired-token" not in str(refused.value)


async def test_xoauth2_token_over_255_octets_goes_after_the_continuation(
    fake_pop3: FakePOP3Factory,
) -> None:
    """RFC 5034: an AUTH line with its initial response stays within 255 octets."""
    token = "t" * 300  # Microsoft's tokens are over 1,000 characters
    server = await fake_pop3(users={"alice": token})
    async with session_to(server, oauth2_token=token):
        pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "AUTH XOAUTH2", "***", "QUIT"]
    assert server.sessions[0].writes[1] == b"AUTH XOAUTH2\r\n"


async def test_xoauth2_microsoft_asks_for_the_payload_after_a_continuation(
    fake_pop3: FakePOP3Factory,
) -> None:
    """A server that answers AUTH XOAUTH2 with `+ ` gets the payload then, and logs in."""
    server = await fake_pop3(users={"alice": "short.token"}, xoauth2_continuation_first=True)
    async with session_to(server, oauth2_token="short.token") as session:
        assert await session.stat() == (0, 0)
    with pytest.raises(POP3AuthError) as refused:
        async with session_to(server, oauth2_token="revoked.token"):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "AUTH XOAUTH2 ***", "***", "STAT", "QUIT"]
    # The payload once, then the empty answer to the JSON error challenge.
    assert server.sessions[1].commands == ["CAPA", "AUTH XOAUTH2 ***", "***", "", "QUIT"]
    assert refused.value.status == "401"


async def test_endless_sasl_challenges_are_a_protocol_error(fake_pop3: FakePOP3Factory) -> None:
    """A server that never stops challenging does not keep the client forever."""
    server = await fake_pop3()
    server.faults.append(Fault("AUTH", raw(b"+ \r\n" * 10)))
    with pytest.raises(POP3ProtocolError, match="kept sending SASL challenges"):
        async with session_to(server, oauth2_token="token"):
            pass


@pytest.mark.parametrize(
    ("command", "line", "expected"),
    [
        ("PASS", "[IN-USE] Mailbox is locked by another POP3 session.", POP3InUseError),
        ("PASS", "[LOGIN-DELAY] Wait 5 minutes.", POP3LoginDelayError),
        ("PASS", "[SYS/TEMP] Try again later.", POP3TempError),
        ("PASS", "[SYS/PERM] Mailbox is gone.", POP3PermError),
        ("PASS", "[AUTH] Authentication failed.", POP3AuthError),
        ("PASS", "Invalid login", POP3AuthError),
        ("USER", "[AUTH] Plaintext authentication disallowed", POP3PlaintextRefusedError),
        ("GREETING", "[SYS/TEMP] Too many connections.", POP3TempError),
        ("GREETING", "[IN-USE] Busy.", POP3InUseError),
    ],
)
async def test_login_faults_raise_their_class(
    fake_pop3: FakePOP3Factory, command: str, line: str, expected: type[POP3ResponseError]
) -> None:
    """Response codes decide the error class, also during login; nothing else is sent."""
    server = await fake_pop3(greeting=NO_TIMESTAMP, capabilities=["USER", "RESP-CODES"])
    server.faults.append(Fault(command, err(line)))
    with pytest.raises(expected) as caught:
        async with session_to(server):
            pytest.fail("logged in despite the fault")
    assert type(caught.value) is expected
    await wait_closed(server)
    sent = server.sessions[0].commands
    assert "STAT" not in sent
    if command != "GREETING":
        assert sent[-1] == "QUIT"


async def test_plaintext_refused_is_not_a_wrong_password(fake_pop3: FakePOP3Factory) -> None:
    """Dovecot's wording for USER in clear text: a distinct error, not POP3AuthError."""
    server = await fake_pop3(greeting=NO_TIMESTAMP, require_tls_for_plaintext=True)
    with pytest.raises(POP3PlaintextRefusedError) as caught:
        async with session_to(server):
            pass
    assert caught.value.code == "AUTH"


async def test_in_use_with_a_locked_maildrop(fake_pop3: FakePOP3Factory) -> None:
    """A second session while the first holds the lock gets [IN-USE]."""
    server = await fake_pop3(lock_sessions=True)
    async with session_to(server):
        with pytest.raises(POP3InUseError, match="locked"):
            async with session_to(server):
                pass


async def test_capa_unknown_to_an_old_server(fake_pop3: FakePOP3Factory) -> None:
    """-ERR to CAPA: assume the RFC 1939 basics and try them."""
    server = await fake_pop3(messages=MESSAGES, capa_supported=False, greeting=NO_TIMESTAMP)
    async with session_to(server) as session:
        assert session.capabilities == Capabilities.assumed()
        assert await session.uidl_one(1) == "uid-1"
        assert await session.top(3, 0) == b"From: c@example.com\r\nSubject: three\r\n\r\n"
    await wait_closed(server)
    assert server.sessions[0].commands[:3] == ["CAPA", "USER alice", "PASS ***"]


async def test_utf8_and_per_user_capabilities(fake_pop3: FakePOP3Factory) -> None:
    """UTF8 is asked for before login (a -ERR is fine); LOGIN-DELAY n USER re-reads CAPA."""
    caps = ["USER", "UTF8", "LOGIN-DELAY 900 USER"]
    server = await fake_pop3(greeting=NO_TIMESTAMP, capabilities=caps)
    async with session_to(server) as session:
        assert session.capabilities.login_delay == 900
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "UTF8", "USER alice", "PASS ***", "CAPA", "QUIT"]


async def test_bare_lf_server(fake_pop3: FakePOP3Factory) -> None:
    """A server ending lines with LF alone still gives CRLF messages."""
    server = await fake_pop3(messages=MESSAGES, lf_only=True)
    async with session_to(server) as session:
        assert await session.retr(2) == MESSAGES[1]
        assert await session.uidl() == {1: "uid-1", 2: "uid-2", 3: "uid-3"}


async def test_long_lines_byte_exact(fake_pop3: FakePOP3Factory) -> None:
    """5,000-byte content lines (poplib's limit is 2,048) through TOP and RETR."""
    message = b"Subject: long\r\nX-Long: " + b"h" * 5000 + b"\r\n\r\n" + b"b" * 5000 + b"\r\n"
    server = await fake_pop3(messages=[message])
    async with session_to(server) as session:
        assert await session.retr(1) == message
        assert await session.top(1, 1) == message


async def test_max_response_bytes_fails_cleanly(fake_pop3: FakePOP3Factory) -> None:
    """A message over the cap raises POP3ProtocolError and the session is over."""
    server = await fake_pop3(messages=[b"Subject: big\r\n\r\n" + b"z" * 10_000 + b"\r\n"])
    async with session_to(server, max_response_bytes=4096) as session:
        with pytest.raises(POP3ProtocolError, match="larger than 4096 bytes"):
            await session.retr(1)
        with pytest.raises(POP3ConnectionError, match="unusable"):
            await session.noop()
        with pytest.raises(POP3ConnectionError):
            await session.pipeline([Stat()])


async def test_drop_mid_multiline_answer(fake_pop3: FakePOP3Factory) -> None:
    """A connection lost in the middle of RETR is a POP3ConnectionError; nothing deleted."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("RETR", drop_mid_response(after_bytes=30)))

    async def delete_then_fetch() -> None:
        async with session_to(server) as session:
            await session.dele(1)
            await session.retr(2)

    with pytest.raises(POP3ConnectionError, match="middle of an answer"):
        await delete_then_fetch()
    await wait_closed(server)
    assert server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]


async def test_dropped_without_answer(fake_pop3: FakePOP3Factory) -> None:
    """The server closing instead of answering is a lost connection."""
    server = await fake_pop3()
    server.faults.append(Fault("STAT", drop()))
    async with session_to(server) as session:
        with pytest.raises(POP3ConnectionError, match="closed the connection"):
            await session.stat()
        # The context still exits normally: QUIT is refused because the session is broken.
        with pytest.raises(POP3ConnectionError):
            await session.noop()


async def test_caught_failure_after_dele_is_reported_at_exit(fake_pop3: FakePOP3Factory) -> None:
    """A caller that swallowed a failure still learns at exit that DELEs were not applied."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("STAT", drop()))

    async def swallow_failure() -> None:
        async with session_to(server) as session:
            await session.dele(1)
            with pytest.raises(POP3ConnectionError):
                await session.stat()

    with pytest.raises(POP3ConnectionError, match="no message marked for deletion was deleted"):
        await swallow_failure()
    await wait_closed(server)
    assert server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]


async def test_command_deadline_then_only_quit(fake_pop3: FakePOP3Factory) -> None:
    """A slow answer runs past the command deadline; afterwards only QUIT is sent."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("UIDL", delay(0.6)))

    async def slow_uidl() -> None:
        async with session_to(server, command_timeout=0.2) as session:
            await session.stat()
            with pytest.raises(POP3TimeoutError, match=r"No answer to UIDL within 0.2 s"):
                await session.uidl()
            await session.retr(1)

    with pytest.raises(POP3ConnectionError, match="unusable after a failure"):
        await slow_uidl()
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "APOP alice ***", "STAT", "UIDL", "QUIT"]


async def test_session_deadline(fake_pop3: FakePOP3Factory) -> None:
    """The whole session has a deadline, however generous the command deadline."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("NOOP", delay(0.2), repeat=True))

    async def many_noops() -> None:
        async with session_to(server, command_timeout=10, session_timeout=0.5) as session:
            for _ in range(10):
                await session.noop()

    with pytest.raises(POP3TimeoutError, match="session ran past its deadline"):
        await many_noops()


async def test_greeting_deadline(fake_pop3: FakePOP3Factory) -> None:
    """A server that accepts but never greets times out."""
    server = await fake_pop3()
    server.faults.append(Fault("GREETING", delay(1)))
    with pytest.raises(POP3TimeoutError, match=r"No answer to greeting within 0\.2 s"):
        async with session_to(server, command_timeout=0.2):
            pass


async def test_failure_after_dele_sends_no_quit(fake_pop3: FakePOP3Factory) -> None:
    """After DELE, an exception closes without QUIT, so the server deletes nothing."""
    server = await fake_pop3(messages=MESSAGES)

    class CallerError(Exception):
        pass

    async def delete_then_fail() -> None:
        async with session_to(server) as session:
            await session.pipeline([Dele(1), Dele(2)])
            raise CallerError

    with pytest.raises(CallerError):
        await delete_then_fail()
    await wait_closed(server)
    record = server.sessions[0]
    assert record.commands == ["CAPA", "APOP alice ***", "DELE 1", "DELE 2"]
    assert not record.quit
    assert server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]


async def test_exception_without_dele_says_goodbye(fake_pop3: FakePOP3Factory) -> None:
    """An exception in the caller's code still ends with a polite QUIT when nothing was deleted."""
    server = await fake_pop3(messages=MESSAGES)

    async def fail() -> None:
        async with session_to(server) as session:
            await session.stat()
            raise KeyError("caller bug")

    with pytest.raises(KeyError):
        await fail()
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "APOP alice ***", "STAT", "QUIT"]
    assert server.sessions[0].quit


async def test_quit_refused_raises(fake_pop3: FakePOP3Factory) -> None:
    """A -ERR to QUIT means the deletions may not have happened: the caller must know."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("QUIT", err("[SYS/TEMP] could not delete")))
    with pytest.raises(POP3TempError, match="could not delete"):
        async with session_to(server) as session:
            await session.dele(1)


async def test_protocol_violation_then_only_quit(fake_pop3: FakePOP3Factory) -> None:
    """Garbage instead of an answer: POP3ProtocolError, then QUIT alone."""
    server = await fake_pop3()
    server.faults.append(Fault("STAT", raw(b"HTTP/1.1 400 Bad Request\r\n")))
    with pytest.raises(POP3ProtocolError, match="HTTP"):
        async with session_to(server) as session:
            await session.stat()
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "APOP alice ***", "STAT", "QUIT"]


async def test_cancellation_closes_everything(fake_pop3: FakePOP3Factory) -> None:
    """Cancelling mid-command leaves no task behind and the socket closed."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("RETR", delay(0.5)))
    started = asyncio.Event()

    async def fetch() -> bytes:
        async with session_to(server) as session:
            started.set()
            return await session.retr(1)

    task = asyncio.create_task(fetch())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "APOP alice ***", "RETR 1", "QUIT"]


async def test_concurrent_callers_are_serialised(fake_pop3: FakePOP3Factory) -> None:
    """Two tasks sharing a session each get their own answer."""
    server = await fake_pop3(messages=MESSAGES, capabilities=PLAIN_CAPS)
    async with session_to(server) as session:
        stat, uids, top = await asyncio.gather(session.stat(), session.uidl(), session.top(1, 0))
    assert stat.count == 3
    assert uids == {1: "uid-1", 2: "uid-2", 3: "uid-3"}
    assert top.startswith(b"From: a@example.com")


async def test_cannot_connect(socket_enabled: None) -> None:
    """Nothing listening: POP3ConnectionError with the address."""
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(POP3ConnectionError, match=f"127.0.0.1:{port}"):
        async with connect("127.0.0.1", port, security=Security.NONE, username="a"):
            pass


async def serve_raw(handler: Any) -> asyncio.Server:
    """A bare TCP server on 127.0.0.1 for misbehaviour the fake server has no fault for."""
    return await asyncio.start_server(handler, "127.0.0.1", 0)


async def test_tls_handshake_that_never_completes(socket_enabled: None) -> None:
    """A peer that accepts and says nothing stalls the handshake: the connect deadline fires."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await serve_raw(silent)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(POP3TimeoutError, match=f"connecting to 127.0.0.1:{port}"):
            async with connect(
                "127.0.0.1", port, username="a", verify_ssl=False, command_timeout=0.2
            ):
                pass
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_connection_reset(socket_enabled: None) -> None:
    """A reset (RST) mid-session is a POP3ConnectionError naming the command."""

    async def reset_after_capa(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK hi\r\n")
        await reader.readline()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await serve_raw(reset_after_capa)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(POP3ConnectionError, match="Connection lost during CAPA"):
            async with connect("127.0.0.1", port, security=Security.NONE, username="a"):
                pass
    finally:
        server.close()
        await server.wait_closed()


async def test_session_is_entered_once(fake_pop3: FakePOP3Factory) -> None:
    """A session object is one connection; reusing it is a bug."""
    server = await fake_pop3()
    session = session_to(server)
    async with session:
        pass
    with pytest.raises(RuntimeError, match="once"):
        async with session:
            pass


# --- TLS -------------------------------------------------------------------------------------


async def test_implicit_tls_with_the_test_ca(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """995-style TLS, certificate and host name verified; over TLS SASL PLAIN is used."""
    server = await fake_pop3(messages=MESSAGES, implicit_tls=test_pki.server_context())
    async with session_to(
        server, security=Security.SSL, ssl_context=test_pki.client_context()
    ) as session:
        assert session.tls
        assert await session.retr(1) == MESSAGES[0]
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "AUTH PLAIN ***", "RETR 1", "QUIT"]


async def test_implicit_tls_untrusted_certificate(
    fake_pop3: FakePOP3Factory, test_pki: TestPKI
) -> None:
    """The default context does not trust the test CA: POP3TLSError, unless verify_ssl=False."""
    server = await fake_pop3(implicit_tls=test_pki.server_context())
    with pytest.raises(POP3TLSError, match="certificate verify failed"):
        async with session_to(server, security=Security.SSL):
            pass
    async with session_to(server, security=Security.SSL, verify_ssl=False) as session:
        assert session.tls


async def test_implicit_tls_against_a_clear_text_server(fake_pop3: FakePOP3Factory) -> None:
    """TLS to a server that speaks clear text fails the handshake, as a TLS error."""
    server = await fake_pop3()
    with pytest.raises(POP3TLSError):
        async with session_to(server, security=Security.SSL, verify_ssl=False):
            pass


async def test_stls(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """STLS before login, CAPA read again inside TLS, the password only inside TLS."""
    server = await fake_pop3(stls_context=test_pki.server_context())
    async with session_to(
        server, security=Security.STARTTLS, ssl_context=test_pki.client_context()
    ) as session:
        assert session.tls
        assert not session.capabilities.stls  # the CAPA read inside TLS
    await wait_closed(server)
    record = server.sessions[0]
    assert record.tls
    assert record.commands == ["CAPA", "STLS", "CAPA", "AUTH PLAIN ***", "QUIT"]


async def test_stls_untrusted_certificate(fake_pop3: FakePOP3Factory, test_pki: TestPKI) -> None:
    """A certificate the client does not trust stops STLS before any credential is sent."""
    server = await fake_pop3(stls_context=test_pki.server_context())
    with pytest.raises(POP3TLSError):
        async with session_to(server, security=Security.STARTTLS):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "STLS"]


async def test_stls_not_offered_never_falls_back(fake_pop3: FakePOP3Factory) -> None:
    """STARTTLS asked, STLS not offered: an error, and no credential in clear text."""
    server = await fake_pop3(greeting=NO_TIMESTAMP)
    with pytest.raises(POP3STLSUnavailableError):
        async with session_to(server, security=Security.STARTTLS):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "QUIT"]


async def test_stls_refused_never_falls_back(fake_pop3: FakePOP3Factory) -> None:
    """STLS offered but refused: the same error, still no credential."""
    server = await fake_pop3(capabilities=["USER", "STLS"])
    with pytest.raises(POP3STLSUnavailableError, match="refused STLS"):
        async with session_to(server, security=Security.STARTTLS):
            pass
    await wait_closed(server)
    assert server.sessions[0].commands == ["CAPA", "STLS", "QUIT"]


def test_no_secret_in_clear_unless_allowed() -> None:
    """The login decision itself refuses clear text when the caller did not allow it."""
    caps = Capabilities(user=True, sasl=("PLAIN", "XOAUTH2"))
    decide = choose_login
    assert decide(caps, tls=True, timestamp="<a@b>", oauth2=False, allow_cleartext=False) == "plain"
    bare = Capabilities()
    assert decide(bare, tls=True, timestamp=None, oauth2=False, allow_cleartext=False) == "user"
    assert decide(caps, tls=True, timestamp=None, oauth2=True, allow_cleartext=False) == "xoauth2"
    assert decide(caps, tls=False, timestamp="<a@b>", oauth2=False, allow_cleartext=False) == "apop"
    assert decide(caps, tls=False, timestamp=None, oauth2=False, allow_cleartext=True) == "plain"
    for oauth2 in (False, True):
        with pytest.raises(POP3Error, match="without TLS"):
            decide(caps, tls=False, timestamp=None, oauth2=oauth2, allow_cleartext=False)


# -- hardening found in review -------------------------------------------------------------


async def test_invalid_host_name_is_a_connection_error(
    socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name the IDNA codec refuses (an empty label) fails like an unreachable host."""

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        # What the real resolver does first; the test plugin forbids name lookups.
        host.encode("idna")
        raise AssertionError("not reached")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(POP3ConnectionError, match="not a valid host name"):
        async with connect(
            "mail..example.com", 110, security=Security.NONE, username="a", password="b"
        ):
            pass


@pytest.mark.parametrize("password", ["sec\r\nDELE 1", "nul\0byte"])
async def test_line_breaks_in_credentials_are_a_rejected_login(
    fake_pop3: FakePOP3Factory, password: str
) -> None:
    """CR, LF or NUL can never reach the wire; the caller sees bad credentials (so: reauth)."""
    server = await fake_pop3(greeting=NO_TIMESTAMP, capabilities=["USER", "TOP", "UIDL"])
    with pytest.raises(POP3AuthError, match="CR, LF or NUL"):
        async with session_to(server, password=password):
            pass
    await wait_closed(server)
    assert all("DELE" not in command for command in server.sessions[0].commands)


async def test_plaintext_wording_over_tls_is_a_rejected_login(
    fake_pop3: FakePOP3Factory, test_pki: TestPKI
) -> None:
    """ "-ERR ... (use SSL)" on a TLS session cannot mean clear text: bad credentials."""
    server = await fake_pop3(implicit_tls=test_pki.server_context())
    server.faults.append(Fault("AUTH", err("[AUTH] Invalid login (use SSL)")))
    with pytest.raises(POP3AuthError) as caught:
        async with session_to(server, security=Security.SSL, ssl_context=test_pki.client_context()):
            pass
    assert not isinstance(caught.value, POP3PlaintextRefusedError)
    assert caught.value.code == "AUTH"


async def test_refused_capa_after_login_keeps_the_capabilities(
    fake_pop3: FakePOP3Factory,
) -> None:
    """Per-user capabilities asked again after login: a -ERR keeps what the server said."""
    caps = ["USER", "PIPELINING", "LOGIN-DELAY 900 USER"]
    server = await fake_pop3(greeting=NO_TIMESTAMP, capabilities=caps)
    server.faults.append(Fault("CAPA", err("not now"), nth=2))
    async with session_to(server) as session:
        assert session.capabilities.login_delay == 900
        assert session.capabilities.pipelining


async def test_cancelled_while_waiting_for_quit_closes_the_socket(
    fake_pop3: FakePOP3Factory,
) -> None:
    """The caller failed, QUIT is slow, and the task is cancelled: the socket still closes."""
    server = await fake_pop3(messages=MESSAGES)
    server.faults.append(Fault("QUIT", delay(30)))
    entered = asyncio.Event()
    sessions: list[POP3Session] = []

    async def fail() -> None:
        async with session_to(server) as session:
            sessions.append(session)
            await session.stat()
            entered.set()
            raise KeyError("caller bug")

    task = asyncio.create_task(fail())
    await entered.wait()
    async with asyncio.timeout(5):
        while "QUIT" not in server.sessions[0].commands:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The server still sits on its slow QUIT answer; our side has closed.
    assert sessions[0]._writer.is_closing()
