"""A hostile server: replays a byte-exact script on 127.0.0.1 and records what the client sent.

The fake POP3 server (fake_pop3.py) behaves like a server; this one behaves
like an attacker. It does exactly what its script says, byte for byte, when
the script says it, and nothing else: answers out of turn, answers split at
chosen offsets, plaintext injected before a TLS handshake, numbers and ids
outside the RFCs, slow or endless answers. Use it for every guarantee that
must hold whatever the server sends (protocol, sync and Home Assistant tests).

    from tests.servers.hostile import Close, Expect, HostileServer, Pause, Send, StartTLS

    async def test_something(socket_enabled: None) -> None:
        script = [
            Send(b"+OK ready\\r\\n"),
            Expect(rb"CAPA"),                       # a regex the next line must fullmatch
            Send(b"+OK\\r\\nUSER\\r\\n.\\r\\n"),
            Expect(rb"USER \\S+"),
            Send(b"+OK\\r\\n"),
            Expect(rb"PASS .*"),
            Send(b"+OK\\r\\n"),
            Expect(rb"STAT"),
            Send(b"+OK 1 18446744073709551616\\r\\n"),  # 2^64: one too many
            Close(),
        ]
        async with HostileServer(script) as server:
            with pytest.raises(POP3ProtocolError):
                async with connect(server.host, server.port, security=Security.NONE, ...):
                    ...
        assert server.received[0] == [b"CAPA", b"USER alice", b"PASS secret", b"STAT"]
        assert server.failures == []            # every Expect matched

Steps (all frozen dataclasses):

- `Send(data, chunk=None, pause=0.0)`: write `data`; with `chunk`, in pieces of
  that many bytes with `pause` seconds between them (and a drain after each).
- `Expect(pattern)`: read one line (CRLF or LF stripped) and require
  `re.fullmatch(pattern, line)`. A line that does not match, or the client
  closing first, is recorded in `failures` and ends the connection.
- `StartTLS(context)`: server side of a TLS handshake on the connection (after
  STLS's +OK, or for implicit TLS as the first step).
- `Pause(seconds)`: wait.
- `ReadUntilClosed()`: record lines until the client closes (no answers).
- `Stall()`: stop reading and wait until stopped: the client's bytes pile up
  unread, and a TLS client's close_notify is never answered.
- `Close()`: close the connection. The script ending closes it too.

`HostileServer(script)` runs the same script for every connection; pass
`scripts=[...]` instead to give each successive connection its own. Records:
`received` (one list of lines per connection, in order), `raw` (every byte
received per connection, before any line splitting), `failures` (mismatched
expectations, as text), `connections` (how many were accepted).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import re
import ssl
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class Send:
    """Write `data` (in `chunk`-byte pieces `pause` seconds apart, when `chunk` is set)."""

    data: bytes
    chunk: int | None = None
    pause: float = 0.0


@dataclass(frozen=True, slots=True)
class Expect:
    """Read one line; it must fullmatch the regular expression `pattern` (bytes)."""

    pattern: bytes


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Run the server side of a TLS handshake with `context`."""

    context: ssl.SSLContext


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class ReadUntilClosed:
    """Record the client's lines until it closes the connection."""


@dataclass(frozen=True, slots=True)
class Stall:
    """Stop reading (a TLS goodbye is never answered) and wait until the server stops."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection."""


type Step = Send | Expect | StartTLS | Pause | ReadUntilClosed | Stall | Close


class HostileServer:
    """A byte-exact scripted server on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        scripts: Sequence[Sequence[Step]] | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        """Configure; nothing listens before `start()` (or `async with`)."""
        self.scripts = [list(s) for s in scripts] if scripts is not None else None
        self.script = list(script)
        self.implicit_tls = implicit_tls
        self.host = "127.0.0.1"
        self.port = 0
        self.received: list[list[bytes]] = []
        self.raw: list[bytearray] = []
        self.failures: list[str] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1, a free port (see `port`)."""
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.implicit_tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        """Start listening."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        index = self.connections
        self.connections += 1
        self.received.append([])
        self.raw.append(bytearray())
        script = self.script
        if self.scripts is not None:
            script = self.scripts[min(index, len(self.scripts) - 1)]
        try:
            await self._run(script, index, reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as err:
            self.failures.append(f"connection {index}: {type(err).__name__}: {err}")
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _run(
        self,
        script: Sequence[Step],
        index: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        for step in script:
            match step:
                case Send(data, chunk, pause):
                    size = chunk or len(data) or 1
                    for start in range(0, len(data), size):
                        writer.write(data[start : start + size])
                        await writer.drain()
                        if pause and start + size < len(data):
                            await asyncio.sleep(pause)
                case Expect(pattern):
                    line = await self._read_line(index, reader)
                    if line is None:
                        self.failures.append(f"connection {index}: closed, expected {pattern!r}")
                        return
                    if re.fullmatch(pattern, line, re.DOTALL) is None:
                        self.failures.append(f"connection {index}: {line!r} !~ {pattern!r}")
                        return
                case StartTLS(context):
                    await writer.start_tls(context)
                case Pause(seconds):
                    await asyncio.sleep(seconds)
                case ReadUntilClosed():
                    while await self._read_line(index, reader) is not None:
                        pass
                case Stall():
                    writer.transport.pause_reading()
                    await asyncio.Event().wait()
                case Close():
                    return

    async def _read_line(self, index: int, reader: asyncio.StreamReader) -> bytes | None:
        with contextlib.suppress(ValueError):  # a line longer than the reader's limit
            data = await reader.readline()
            self.raw[index] += data
            if not data.endswith(b"\n"):
                return None
            line = data.removesuffix(b"\n").removesuffix(b"\r")
            self.received[index].append(line)
            return line
        return None


def login_script(*, greeting: bytes = b"+OK hostile\r\n", capa: bytes | None = None) -> list[Step]:
    """The steps up to a logged-in session by USER/PASS: the usual prefix of a hostile script."""
    capa = capa if capa is not None else b"+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
    return [
        Send(greeting),
        Expect(rb"CAPA"),
        Send(capa),
        Expect(rb"USER .*"),
        Send(b"+OK\r\n"),
        Expect(rb"PASS .*"),
        Send(b"+OK logged in\r\n"),
    ]
