"""What a hostile server cannot do to the client, each shown with byte-exact scripts (issue 9).

Only names that existed before the hardening are used here, so that each test
can be run against the old client and seen to fail there.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING, Any

import pytest

from custom_components.pop3_mail.pop3 import (
    POP3AuthError,
    POP3ConnectionError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3Session,
    POP3TimeoutError,
    Security,
    Top,
    client as client_module,
    connect,
)
from tests.servers.fake_pop3 import Fault, delay
from tests.servers.hostile import (
    Expect,
    HostileServer,
    ReadUntilClosed,
    Send,
    Stall,
    StartTLS,
    Step,
    login_script,
)

if TYPE_CHECKING:
    from tests.servers.certs import TestPKI
    from tests.servers.fixtures import FakePOP3Factory

GREETING = b"+OK hostile\r\n"
CAPA_STLS = b"+OK\r\nSTLS\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
STLS_OK = b"+OK Begin TLS\r\n"
# What the attacker wants taken as protected answers: CAPA, USER, PASS, STAT.
FORGED = b"+OK\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n+OK 1 120\r\n"


def session_to(server: HostileServer, **kwargs: Any) -> POP3Session:
    options: dict[str, Any] = {
        "security": Security.NONE,
        "username": "alice",
        "password": "hunter22",
        "command_timeout": 2.0,
    }
    return connect(server.host, server.port, **(options | kwargs))


def after_tls(context: ssl.SSLContext) -> list[Step]:
    """What the server does if the client goes on: TLS, then an honest session."""
    return [
        StartTLS(context),
        Expect(rb"CAPA"),
        Send(b"+OK\r\nUSER\r\n.\r\n"),
        Expect(rb"USER alice"),
        Send(b"+OK\r\n"),
        Expect(rb"PASS .*"),
        Send(b"+OK\r\n"),
        Expect(rb"STAT"),
        Send(b"+OK 0 0\r\n"),
        ReadUntilClosed(),
    ]


async def test_starttls_injection_at_a_64k_boundary(
    socket_enabled: None, test_pki: TestPKI
) -> None:
    """Greeting, CAPA and the STLS +OK end exactly at 64 KiB, plaintext follows: refused.

    The client reads 64 KiB at a time, so the plaintext stays in the StreamReader
    while the parser's buffer is empty: the old guard looked only at the parser.
    """
    pad_line = b"X-PAD " + b"p" * 400 + b"\r\n"
    head = GREETING + b"+OK\r\n"
    tail = b"STLS\r\nUSER\r\n.\r\n" + STLS_OK
    pad = 65536 - len(head) - len(tail)
    filler = pad_line * (pad // len(pad_line))
    filler += b"X-" + b"q" * (pad - len(filler) - 4) + b"\r\n"
    prefix = head + filler + tail
    assert len(prefix) == 65536
    script = [
        Send(prefix + FORGED),
        Expect(rb"CAPA"),
        Expect(rb"STLS"),
        *after_tls(test_pki.server_context()),
    ]
    async with HostileServer(script) as server:
        with pytest.raises(POP3ProtocolError):
            async with session_to(
                server, security=Security.STARTTLS, ssl_context=test_pki.client_context()
            ) as session:
                await session.stat()
    assert b"STAT" not in server.received[0]


async def test_starttls_plaintext_waiting_in_the_stream_reader(
    socket_enabled: None, test_pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polite turns, but plaintext right behind the STLS +OK, read in a later chunk: refused."""
    # Reads that end exactly after the +OK line leave the plaintext in the StreamReader.
    monkeypatch.setattr(client_module, "_READ_SIZE", len(STLS_OK))
    script = [
        Send(GREETING),
        Expect(rb"CAPA"),
        Send(CAPA_STLS),
        Expect(rb"STLS"),
        Send(STLS_OK + FORGED),
        *after_tls(test_pki.server_context()),
    ]
    async with HostileServer(script) as server:
        with pytest.raises(POP3ProtocolError, match="TLS"):
            async with session_to(
                server, security=Security.STARTTLS, ssl_context=test_pki.client_context()
            ) as session:
                await session.stat()
    assert b"STAT" not in server.received[0]


async def test_bytes_before_a_command_are_refused(socket_enabled: None) -> None:
    """An answer that arrives before its command was sent would be taken as the answer."""
    script = [Send(GREETING + b"+OK\r\nUSER\r\n.\r\n"), Expect(rb"CAPA"), ReadUntilClosed()]
    async with HostileServer(script) as server:
        with pytest.raises(POP3ProtocolError, match="nobody asked"):
            async with session_to(server):
                pass
    assert server.received[0] in ([], [b"QUIT"])  # CAPA was never sent


@pytest.mark.parametrize("late", [False, True], ids=["same-chunk", "later"])
async def test_bytes_after_a_complete_answer_are_refused(socket_enabled: None, late: bool) -> None:
    """A second answer to STAT (at once or a moment later) is not taken for UIDL's."""
    extra = b"+OK 1 forged-uid\r\n"
    steps: list[Step] = [Send(b"+OK 1 100\r\n" + (b"" if late else extra))]
    if late:
        steps.append(Send(extra))
    script = [*login_script(), Expect(rb"STAT"), *steps, ReadUntilClosed()]

    async def stat_then_uidl(server: HostileServer) -> None:
        async with session_to(server) as session:
            assert await session.stat() == (1, 100)
            await asyncio.sleep(0.1)  # the late bytes arrive before the next command
            await session.uidl_one(1)

    async with HostileServer(script) as server:
        with pytest.raises(POP3ProtocolError, match="nobody asked"):
            await stat_then_uidl(server)
    assert b"UIDL 1" not in server.received[0]


def answer_to(command: bytes, answer: bytes) -> list[Step]:
    return [*login_script(), Expect(command), Send(answer), ReadUntilClosed()]


BAD_ANSWERS = {
    "STAT count 2^64": (b"STAT", b"+OK 18446744073709551616 10\r\n"),
    "STAT size 2^64": (b"STAT", b"+OK 1 18446744073709551616\r\n"),
    "LIST number 0": (b"LIST", b"+OK\r\n0 120\r\n.\r\n"),
    "LIST duplicate": (b"LIST", b"+OK\r\n1 120\r\n2 5\r\n1 99\r\n.\r\n"),
    "LIST size 2^64": (b"LIST", b"+OK\r\n1 18446744073709551616\r\n.\r\n"),
    "UIDL number 0": (b"UIDL", b"+OK\r\n0 abc\r\n.\r\n"),
    "UIDL duplicate": (b"UIDL", b"+OK\r\n1 abc\r\n1 def\r\n.\r\n"),
    "UIDL 71 chars": (b"UIDL", b"+OK\r\n1 " + b"u" * 71 + b"\r\n.\r\n"),
    "UIDL 8-bit": (b"UIDL", b"+OK\r\n1 caf\xc3\xa9\r\n.\r\n"),
    "UIDL n 71 chars": (b"UIDL 1", b"+OK 1 " + b"u" * 71 + b"\r\n"),
    "LIST line 600": (b"LIST", b"+OK\r\n1 120 " + b"x" * 600 + b"\r\n.\r\n"),
    "status line 9 KiB": (b"STAT", b"-ERR " + b"x" * 9000 + b"\r\n"),
}


@pytest.mark.parametrize(("command", "answer"), BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
async def test_numbers_ids_and_lines_outside_the_rfcs(
    socket_enabled: None, command: bytes, answer: bytes
) -> None:
    """Out-of-range numbers, message 0, duplicates, bad UIDs, long lines: protocol errors."""

    async def ask(server: HostileServer) -> object:
        async with session_to(server) as session:
            match command:
                case b"STAT":
                    return await session.stat()
                case b"LIST":
                    return await session.list()
                case b"UIDL":
                    return await session.uidl()
                case _:
                    return await session.uidl_one(1)

    async with HostileServer(answer_to(command, answer)) as server:
        with pytest.raises(POP3ProtocolError):
            await ask(server)


async def test_numbers_and_ids_at_the_limits_are_fine(socket_enabled: None) -> None:
    """2^64-1 and a 70-character UID of every printable character are accepted."""
    uid = bytes(range(0x21, 0x7F))[:70]
    script = [
        *login_script(),
        Expect(rb"STAT"),
        Send(b"+OK 18446744073709551615 18446744073709551615\r\n"),
        Expect(rb"UIDL"),
        Send(b"+OK\r\n1 " + uid + b"\r\n2 x\r\n.\r\n"),
        Expect(rb"QUIT"),
        Send(b"+OK\r\n"),
    ]
    async with HostileServer(script) as server, session_to(server) as session:
        assert await session.stat() == (2**64 - 1, 2**64 - 1)
        assert await session.uidl() == {1: uid.decode(), 2: "x"}
    assert server.failures == []


async def test_error_text_is_bounded_and_never_shows_the_password(socket_enabled: None) -> None:
    """A 20 KB -ERR echoing the password: cut, and the password replaced."""
    script = [
        Send(GREETING),
        Expect(rb"CAPA"),
        Send(b"+OK\r\nUSER\r\n.\r\n"),
        Expect(rb"USER alice"),
        Send(b"+OK\r\n"),
        Expect(rb"PASS hunter22"),
        Send(b"-ERR [AUTH] wrong password hunter22 " + b"z" * 7000 + b"\r\n"),
        ReadUntilClosed(),
    ]
    async with HostileServer(script) as server:
        with pytest.raises(POP3AuthError) as refused:
            async with session_to(server):
                pass
    assert "hunter22" not in str(refused.value)
    assert refused.value.text.startswith("wrong password *** zzz")
    assert len(refused.value.text) <= 513
    assert len(str(refused.value)) < 600


async def loop_stall_while(coro: Any) -> tuple[Any, float, float]:
    """Run `coro`; return its result, the longest hold of the loop, and the seconds it took.

    The hold is the loop thread's CPU time between two 1 ms ticks: what our code
    kept the loop busy for. Wall-clock gaps would also count the moments the OS
    gave the core to another process (CI shares 2 cores; loads of 10 were seen).
    """
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        last = time.thread_time()
        while not done:
            await asyncio.sleep(0.001)
            now = time.thread_time()
            worst = max(worst, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.005)
    started = time.perf_counter()
    try:
        result = await coro
    finally:
        done = True
        await ticker
    return result, worst, time.perf_counter() - started


async def top_of(body: bytes) -> tuple[bytes, float, float]:
    """TOP answered with `body` then the terminator; the value, the worst stall, the seconds."""
    script = [*login_script(), Expect(rb"TOP 1 0"), Send(b"+OK\r\n" + body + b".\r\n")]
    script += [Expect(rb"QUIT"), Send(b"+OK\r\n")]
    async with HostileServer(script) as server, session_to(server) as session:
        return await loop_stall_while(session.top(1, 0))


async def test_a_big_bare_lf_answer_is_linear_and_never_holds_the_loop(
    socket_enabled: None,
) -> None:
    """N and 4N bytes of bare LF: value right, time about 4x, no stall of 50 ms.

    Margin: each 64 KiB chunk costs about 1 ms of CPU to parse here, and the
    StreamReader hands over at most ~256 KiB before the loop runs again; the
    final join of the 8 MB value is a few ms. 50 ms is ten times that. The old
    parser held the loop for the whole answer in one go (24 s for 60 MB).
    """
    small, large = 2**20, 4 * 2**20
    value, stall_small, seconds_small = await top_of(b"\n" * small)
    assert value == b"\r\n" * small
    value, stall_large, seconds_large = await top_of(b"\n" * large)
    assert value == b"\r\n" * large
    assert max(stall_small, stall_large) < 0.05
    # Linear: 4x the bytes take about 4x the time (8x allows for noise; quadratic is 16x).
    assert seconds_large < 8 * seconds_small + 0.2


async def test_each_answer_restarts_the_deadline(fake_pop3: FakePOP3Factory) -> None:
    """No PIPELINING, each answer 30 ms late, 20 commands: 0.6 s in all, 0.25 s each is fine."""
    caps = ["TOP", "UIDL", "USER"]
    server = await fake_pop3(messages=[b"Subject: x\r\n\r\nhi\r\n"] * 20, capabilities=caps)
    server.faults.append(Fault("TOP", delay(0.03), repeat=True))
    async with connect(
        server.host,
        server.port,
        security=Security.NONE,
        username="alice",
        password="secret",
        command_timeout=0.25,
    ) as session:
        results = await session.pipeline([Top(n, 0) for n in range(1, 21)])
    assert results == [b"Subject: x\r\n\r\n"] * 20


async def test_waiting_for_the_session_is_inside_the_deadline(fake_pop3: FakePOP3Factory) -> None:
    """A caller that waits for a busy session gives up after the deadline; the busy one goes on."""
    server = await fake_pop3(
        messages=[b"Subject: x\r\n\r\nhi\r\n"] * 5, capabilities=["TOP", "USER"]
    )
    server.faults.append(Fault("TOP", delay(0.1), repeat=True))
    async with connect(
        server.host,
        server.port,
        security=Security.NONE,
        username="alice",
        password="secret",
        command_timeout=0.2,
    ) as session:
        busy = asyncio.create_task(session.pipeline([Top(n, 0) for n in range(1, 6)]))
        await asyncio.sleep(0.01)
        with pytest.raises(POP3TimeoutError):
            await session.noop()
        assert len(await busy) == 5
        assert await session.stat() == (5, 5 * len(b"Subject: x\r\n\r\nhi\r\n"))


async def test_a_tls_peer_that_never_says_goodbye_is_aborted(
    socket_enabled: None, test_pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait_closed() timing out aborts the TLS transport instead of leaving the socket open."""
    monkeypatch.setattr(client_module, "QUIT_TIMEOUT", 0.2)
    script = [*login_script(), Expect(rb"QUIT"), Send(b"+OK bye\r\n"), Stall()]
    async with HostileServer(script, implicit_tls=test_pki.server_context()) as server:
        session = session_to(server, security=Security.SSL, ssl_context=test_pki.client_context())
        async with session:
            raw_socket = session._writer.transport.get_extra_info("socket")
        await asyncio.sleep(0.05)  # an aborted transport closes its socket on the next turn
        assert raw_socket.fileno() == -1


def tls11_server_context(pki: TestPKI) -> ssl.SSLContext:
    context = pki.server_context()
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")  # the AES128-SHA of an EC key
    return context


def permissive_client_context(pki: TestPKI) -> ssl.SSLContext:
    """A caller's context that would take anything, down to the oldest TLS OpenSSL has."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca_cert)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


# Offering TLS 1.1 is the point of this server; Python warns that it is old.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_below_1_2_is_refused_even_with_a_permissive_context(
    socket_enabled: None, test_pki: TestPKI
) -> None:
    """A server offering only TLS 1.1 with AES128-SHA: refused, whatever context is passed."""
    server_context = tls11_server_context(test_pki)
    async with HostileServer(
        [Send(GREETING), ReadUntilClosed()], implicit_tls=server_context
    ) as server:
        # The server does work with a context that allows TLS 1.1: the refusal is the client's.
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=permissive_client_context(test_pki)
        )
        assert await reader.readline() == GREETING
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
        for context in (permissive_client_context(test_pki), None):
            # The server answers our TLS 1.2 hello with an alert or a reset, as it goes.
            with pytest.raises(POP3ConnectionError):
                async with session_to(
                    server, security=Security.SSL, ssl_context=context, verify_ssl=False
                ):
                    pass
    # Only the probe above got through the handshake to the server's script.
    assert server.connections == 1


def test_a_refused_answer_is_a_response_error_not_a_protocol_error() -> None:
    """The errors above are protocol errors; a plain -ERR stays a response error."""
    assert not issubclass(POP3ResponseError, POP3ProtocolError)
