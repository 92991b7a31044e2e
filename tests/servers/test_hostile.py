"""The hostile server does what its script says, byte for byte, and records what it got."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from tests.servers.hostile import (
    Close,
    Expect,
    HostileServer,
    Pause,
    ReadUntilClosed,
    Send,
    StartTLS,
    login_script,
)

if TYPE_CHECKING:
    from tests.servers.certs import TestPKI


async def talk(server: HostileServer, *lines: bytes) -> bytes:
    """Connect, send `lines`, return everything received until the server closes."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    for line in lines:
        writer.write(line)
    await writer.drain()
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    return data


async def test_replays_and_records(socket_enabled: None) -> None:
    """Sends exactly its bytes, in chunks when told, and records each line."""
    script = [
        Send(b"+OK hi\r\n"),
        Expect(rb"CAPA"),
        Send(b"+OK\r\nTOP\r\n.\r\n", chunk=3, pause=0.001),
        Expect(rb"QUIT"),
        Close(),
    ]
    async with HostileServer(script) as server:
        assert await talk(server, b"CAPA\r\n", b"QUIT\n") == b"+OK hi\r\n+OK\r\nTOP\r\n.\r\n"
    assert server.received == [[b"CAPA", b"QUIT"]]
    assert bytes(server.raw[0]) == b"CAPA\r\nQUIT\n"
    assert server.failures == []


async def test_a_line_that_does_not_match_is_a_failure(socket_enabled: None) -> None:
    """A mismatch is recorded and ends the connection (the rest is not sent)."""
    async with HostileServer([Expect(rb"STAT"), Send(b"never")]) as server:
        assert await talk(server, b"RETR 1\r\n") == b""
    assert server.failures == ["connection 0: b'RETR 1' !~ b'STAT'"]


async def test_client_closing_before_an_expected_line(socket_enabled: None) -> None:
    async with HostileServer([Expect(rb"STAT")]) as server:
        _, writer = await asyncio.open_connection(server.host, server.port)
        writer.close()
        async with asyncio.timeout(5):
            while not server.failures:
                await asyncio.sleep(0.01)
    assert server.failures == ["connection 0: closed, expected b'STAT'"]


async def test_one_script_per_connection(socket_enabled: None) -> None:
    """`scripts` gives each connection its own; the last one repeats."""
    async with HostileServer(scripts=[[Send(b"first\r\n")], [Send(b"again\r\n")]]) as server:
        assert [await talk(server) for _ in range(3)] == [b"first\r\n", *[b"again\r\n"] * 2]
    assert server.connections == 3


async def test_read_until_closed(socket_enabled: None) -> None:
    async with HostileServer([Pause(0.01), Send(b"hi\r\n"), ReadUntilClosed()]) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        assert await reader.readline() == b"hi\r\n"
        writer.write(b"one\r\ntwo\r\n")
        writer.close()
        async with asyncio.timeout(5):
            while len(server.received[0]) < 2:
                await asyncio.sleep(0.01)
    assert server.received[0] == [b"one", b"two"]


async def test_start_tls(socket_enabled: None, test_pki: TestPKI) -> None:
    """StartTLS runs the server side of the handshake; what follows is encrypted."""
    script = [
        Send(b"+OK\r\n"),
        Expect(rb"STLS"),
        Send(b"+OK go\r\n"),
        StartTLS(test_pki.server_context()),
    ]
    script += [Expect(rb"CAPA"), Send(b"+OK secret\r\n")]
    async with HostileServer(script) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        assert await reader.readline() == b"+OK\r\n"
        writer.write(b"STLS\r\n")
        assert await reader.readline() == b"+OK go\r\n"
        await writer.start_tls(test_pki.client_context(), server_hostname="localhost")
        writer.write(b"CAPA\r\n")
        assert await reader.readline() == b"+OK secret\r\n"
        writer.close()
    assert server.failures == []


def test_login_script_is_the_usual_prefix() -> None:
    steps = login_script()
    assert steps[0] == Send(b"+OK hostile\r\n")
    assert [s.pattern for s in steps if isinstance(s, Expect)] == [
        rb"CAPA",
        rb"USER .*",
        rb"PASS .*",
    ]
    with pytest.raises(AttributeError):
        steps[0].data = b"x"  # type: ignore[misc]  # frozen: scripts are values
