"""An asyncio fake POP3 server (RFC 1939, 2449, 2595, 5034) for tests.

It speaks real POP3 on 127.0.0.1 (port 0), keeps a scriptable maildrop, records
every session, and injects faults on demand. Use it through the `fake_pop3`
fixture (tests/servers/fixtures.py), which starts it and stops it at teardown:

    from tests.servers.fake_pop3 import Fault, delay, drop, drop_mid_response, err, raw

    async def test_something(fake_pop3) -> None:
        server = await fake_pop3(
            users={"alice": "secret"},
            messages=[b"From: a@b\\r\\nSubject: x\\r\\n\\r\\nbody\\r\\n"],
        )
        # connect to server.host, server.port as alice/secret ...
        server.mailbox.add(b"Subject: later\\r\\n\\r\\nhi\\r\\n")   # -> "uid-2"
        server.faults.append(Fault("UIDL", err("[SYS/TEMP] try later")))
        ...
        assert server.sessions[0].commands == ["CAPA", "USER alice", "PASS ***", ...]

Constructor options (all keyword-only except `users` and `messages`):

- `users`: name -> password; checked by USER/PASS, APOP, AUTH PLAIN and
  AUTH XOAUTH2 (the token is the password). Default `{"alice": "secret"}`.
  AUTH takes an initial response or a `+ ` continuation (`*` cancels). A bad
  XOAUTH2 token gets Gmail's `+ <base64 JSON error>` challenge; the client must
  send an empty line, then gets `AUTH_FAILED`. Every failed login answers
  `AUTH_FAILED` (`-ERR [AUTH] Authentication failed.`).
- `messages`: the initial maildrop; uids are "uid-1", "uid-2", ...
- `capabilities`: None gives the default set `TOP UIDL USER RESP-CODES
  PIPELINING "SASL PLAIN XOAUTH2"` (+ `STLS` when `stls_context` is given and the
  session is not yet in TLS, + `LOGIN-DELAY n` when `login_delay` is given). A
  list of CAPA lines replaces it verbatim, and also decides what the server
  does: without `TOP`/`UIDL`/`USER` in it those commands answer -ERR, and AUTH
  accepts only the mechanisms of its `SASL` line.
- `capa_supported=False`: CAPA answers -ERR (an old server); commands still
  follow `capabilities`.
- `implicit_tls`: an `ssl.SSLContext`; TLS from the first byte (995-style).
- `stls_context`: an `ssl.SSLContext`; STLS is offered and works.
- `greeting`: the banner; its `<...>` part is the APOP timestamp (MD5 over it,
  brackets included, + password).
- `login_delay`: seconds to advertise as `LOGIN-DELAY` (advertised only).
- `require_tls_for_plaintext=True`: USER, PASS and AUTH PLAIN on a clear
  connection answer `PLAINTEXT_REFUSED` (Dovecot's wording).
- `lock_sessions=True`: a login while another session holds the maildrop
  answers `IN_USE`; `server.unlock()` frees a held lock.
- `lf_only=True`: every line the server sends ends in a bare LF.
- `xoauth2_continuation_first=True`: act like Microsoft's servers. AUTH XOAUTH2
  always answers `+ ` and takes the payload from the next line; an initial
  response on the AUTH line is ignored (recorded, masked). The JSON error
  challenge of a bad token comes as in the default (Gmail) mode.

Maildrop (`server.mailbox`, one for all users): `add(raw, uid=None) -> uid`,
`remove(uid)`, `set_uids({old: new})`, `reorder([uid, ...])`, `uids()`,
`get(uid)`, `seen` (alias `read_flags`: the set of uids RETR marked read; TOP
does not mark). A session works on a snapshot taken at login: mail added after
a login is invisible to that session, like Dovecot. DELE only marks; deletions
are applied at QUIT (UPDATE state) and a dropped connection deletes nothing.
Sizes are those of the message with CRLF line ends; output is dot-stuffed.

Faults: `server.faults.append(Fault(command, action, nth=1, repeat=False))`.
`command` is a POP3 command word ("PASS", "UIDL", "TOP", "QUIT", ...) or
"GREETING" for the banner. The fault counts the arrivals of `command` from the
moment it is in the list (over all sessions) and fires on the `nth`; it is then
removed, unless `repeat=True`, in which case it fires on the nth and every
later arrival. Actions:

- `err("[IN-USE] text")`: answer this -ERR line instead (the "-ERR " prefix is
  added when missing); the command has no effect. On QUIT or GREETING the
  server closes the connection after the line.
- `drop()`: close the connection without answering.
- `drop_mid_response(after_bytes=n)`: run the command, send only the first n
  bytes of its answer, then close.
- `delay(seconds)`: answer normally, but `seconds` late.
- `raw(b"...")`: send these bytes instead of the answer; the command has no
  effect and the session goes on.

Records: `server.sessions` holds one `SessionRecord` per connection, in order,
with `commands` (lines as received; the PASS argument, the APOP digest, an AUTH
initial response and SASL continuation lines are masked as "***", an empty
continuation line stays ""), `bytes_in`,
`bytes_out`, `writes` (each chunk as read from the socket: a pipelined batch
shows as one chunk), `quit` (QUIT received), `deleted` (uids deleted at QUIT),
`user` (after login), `tls` (the session is/was in TLS), `utf8` (UTF8 accepted),
`closed`.

Other commands: CAPA, STLS, USER, PASS, APOP, AUTH (no argument: lists the
mechanisms) and UTF8 (RFC 6856: AUTHORIZATION state only, when `UTF8` is in
`capabilities`) before login; STAT, LIST [n], UIDL [n], TOP n k, RETR n, DELE n,
RSET, NOOP, CAPA, QUIT after it. Anything else, or in the wrong state, gets -ERR.
Dovecot differs in one visible way: it leaves USER and SASL out of CAPA after
login; this server keeps the same list.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable
import contextlib
from dataclasses import dataclass, field
import functools
import hashlib
import json
import re
import ssl
from typing import Literal

DEFAULT_GREETING = "+OK fake POP3 server ready <1896.697170952@fake.example>"
PLAINTEXT_REFUSED = (
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
)
IN_USE = "-ERR [IN-USE] Mailbox is locked by another POP3 session."
AUTH_FAILED = "-ERR [AUTH] Authentication failed."
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}

_MAX_LINE = 65536
_CRLF = b"\r\n"


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What a fault does; build one with `err`, `drop`, `drop_mid_response`, `delay`, `raw`."""

    kind: Literal["err", "drop", "drop_mid_response", "delay", "raw"]
    line: str = ""
    after_bytes: int = 0
    seconds: float = 0.0
    data: bytes = b""


def err(text: str) -> FaultAction:
    """Answer `-ERR text` instead of the real answer (e.g. `err("[SYS/TEMP] busy")`)."""
    return FaultAction("err", line=text if text.startswith("-ERR") else f"-ERR {text}")


def drop() -> FaultAction:
    """Close the connection without answering."""
    return FaultAction("drop")


def drop_mid_response(after_bytes: int = 1) -> FaultAction:
    """Send the first `after_bytes` bytes of the real answer, then close."""
    return FaultAction("drop_mid_response", after_bytes=after_bytes)


def delay(seconds: float) -> FaultAction:
    """Send the real answer `seconds` late."""
    return FaultAction("delay", seconds=seconds)


def raw(data: bytes) -> FaultAction:
    """Send `data` instead of the answer (protocol violations)."""
    return FaultAction("raw", data=data)


@dataclass(slots=True)
class Fault:
    """Fire `action` on the `nth` arrival of `command` (every arrival from the nth if `repeat`)."""

    command: str
    action: FaultAction
    nth: int = 1
    repeat: bool = False
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        """Reject a fault that could never fire."""
        if self.nth < 1:
            raise ValueError("nth counts from 1")


# --- maildrop -----------------------------------------------------------------------------


class _Message:
    """A message in the maildrop; identity survives uid renames."""

    __slots__ = ("data", "raw", "uid")

    def __init__(self, uid: str, raw: bytes) -> None:
        self.uid = uid
        self.raw = raw
        self.data = _crlf(raw)  # as transmitted and counted by POP3


class Mailbox:
    """The maildrop shared by every session of the server."""

    def __init__(self) -> None:
        """Start empty."""
        self._messages: list[_Message] = []
        self._by_uid: dict[str, _Message] = {}
        self._next = 1
        self.seen: set[str] = set()

    @property
    def read_flags(self) -> set[str]:
        """Uids marked read (by RETR); the same set as `seen`."""
        return self.seen

    def add(self, raw: bytes, uid: str | None = None) -> str:
        """Deliver a message; return its uid ("uid-N" unless given)."""
        if uid is None:
            uid = f"uid-{self._next}"
            while uid in self._by_uid:
                self._next += 1
                uid = f"uid-{self._next}"
            self._next += 1
        elif uid in self._by_uid:
            raise ValueError(f"uid {uid!r} already in the mailbox")
        message = _Message(uid, bytes(raw))
        self._messages.append(message)
        self._by_uid[uid] = message
        return uid

    def remove(self, uid: str) -> None:
        """Delete a message behind every session's back."""
        self._expunge([self._by_uid[uid]])

    def set_uids(self, mapping: dict[str, str]) -> None:
        """Rename uids (the server renumbered its ids)."""
        messages = [self._by_uid[old] for old in mapping]
        renamed = {message.uid: message for message in self._messages}
        seen = set(self.seen)
        for message in messages:
            new = mapping[message.uid]
            del renamed[message.uid]
            if message.uid in self.seen:
                seen.discard(message.uid)
                seen.add(new)
            message.uid = new
        for message in messages:
            if message.uid in renamed:
                raise ValueError(f"set_uids would duplicate uid {message.uid!r}")
            renamed[message.uid] = message
        self._by_uid = renamed
        self.seen = seen

    def reorder(self, uids: Iterable[str]) -> None:
        """Put the messages in this order (Courier-style reordering); a permutation of uids()."""
        order = list(uids)
        if len(order) != len(self._messages) or set(order) != self._by_uid.keys():
            raise ValueError("reorder needs every uid exactly once")
        self._messages = [self._by_uid[uid] for uid in order]

    def uids(self) -> list[str]:
        """The uids in maildrop order."""
        return [message.uid for message in self._messages]

    def get(self, uid: str) -> bytes:
        """The raw message as delivered."""
        return self._by_uid[uid].raw

    def __len__(self) -> int:
        """Number of messages."""
        return len(self._messages)

    def _snapshot(self) -> list[_Message]:
        return list(self._messages)

    def _expunge(self, messages: Iterable[_Message]) -> list[str]:
        """Remove these messages if still present; return the uids removed."""
        gone = {id(message) for message in messages if self._by_uid.get(message.uid) is message}
        deleted = [m.uid for m in self._messages if id(m) in gone]
        self._messages = [m for m in self._messages if id(m) not in gone]
        for uid in deleted:
            del self._by_uid[uid]
            self.seen.discard(uid)
        return deleted


# --- records ------------------------------------------------------------------------------


@dataclass(slots=True)
class SessionRecord:
    """What happened on one connection."""

    commands: list[str] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    writes: list[bytes] = field(default_factory=list)
    quit: bool = False
    deleted: list[str] = field(default_factory=list)
    user: str | None = None
    tls: bool = False
    utf8: bool = False
    closed: bool = False


# --- wire helpers -------------------------------------------------------------------------


def _crlf(raw: bytes) -> bytes:
    """The message with CRLF line ends and a final CRLF: what POP3 transmits and counts."""
    data = re.sub(rb"\r?\n", _CRLF, raw)
    if data and not data.endswith(_CRLF):
        data += _CRLF
    return data


def _multiline(first: str, body: bytes) -> bytes:
    """A +OK line, the dot-stuffed CRLF body and the terminating dot."""
    return first.encode() + _CRLF + re.sub(rb"(?m)^\.", b"..", body) + b"." + _CRLF


def _top(data: bytes, lines: int) -> bytes:
    """Headers, the blank line and the first `lines` body lines of a CRLF message."""
    all_lines = data.split(_CRLF)[:-1]
    try:
        blank = all_lines.index(b"")
    except ValueError:
        return data
    kept = all_lines[: blank + 1 + lines]
    return _CRLF.join(kept) + _CRLF


def _mask(line: str) -> str:
    """The command line as recorded: passwords, digests and SASL responses hidden."""
    word, _, rest = line.partition(" ")
    upper = word.upper()
    if upper == "PASS":
        return f"{word} ***"
    if upper == "APOP":
        user = rest.split(" ", 1)[0]
        return f"{word} {user} ***"
    if upper == "AUTH":
        parts = rest.split(" ", 1)
        if len(parts) == 2:
            return f"{word} {parts[0]} ***"
    return line


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# --- server -------------------------------------------------------------------------------


class FakePOP3Server:
    """A scriptable POP3 server on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        messages: Iterable[bytes] = (),
        *,
        capabilities: list[str] | None = None,
        capa_supported: bool = True,
        implicit_tls: ssl.SSLContext | None = None,
        stls_context: ssl.SSLContext | None = None,
        greeting: str = DEFAULT_GREETING,
        login_delay: int | None = None,
        require_tls_for_plaintext: bool = False,
        lock_sessions: bool = False,
        lf_only: bool = False,
        xoauth2_continuation_first: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        """Configure; nothing listens before `start()`."""
        self.users = {"alice": "secret"} if users is None else dict(users)
        self.mailbox = Mailbox()
        for message in messages:
            self.mailbox.add(message)
        self.capabilities = None if capabilities is None else list(capabilities)
        self.capa_supported = capa_supported
        self.implicit_tls = implicit_tls
        self.stls_context = stls_context
        self.greeting = greeting
        self.login_delay = login_delay
        self.require_tls_for_plaintext = require_tls_for_plaintext
        self.lock_sessions = lock_sessions
        self.lf_only = lf_only
        self.xoauth2_continuation_first = xoauth2_continuation_first
        self.host = host
        self.port = 0
        self.faults: list[Fault] = []
        self.sessions: list[SessionRecord] = []
        self._server: asyncio.Server | None = None
        self._closing = False
        self._lock_owner: _Session | None = None
        self._live: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on `host`, a free port (see `port`)."""
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.implicit_tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every open connection; wait until all are gone."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        for session in list(self._live):
            session.abort()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakePOP3Server:
        """Start; for use outside the fixture."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop."""
        await self.stop()

    def unlock(self) -> None:
        """Release the maildrop lock held by a session (lock_sessions=True)."""
        self._lock_owner = None

    def capability_lines(self, *, tls: bool) -> list[str]:
        """The CAPA lines for a session (in TLS or not)."""
        if self.capabilities is not None:
            return list(self.capabilities)
        lines = ["TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "SASL PLAIN XOAUTH2"]
        if self.stls_context is not None and not tls:
            lines.append("STLS")
        if self.login_delay is not None:
            lines.append(f"LOGIN-DELAY {self.login_delay}")
        return lines

    def _fault_for(self, command: str) -> FaultAction | None:
        """Count this arrival for each matching fault; return the first firing action."""
        chosen: FaultAction | None = None
        for fault in list(self.faults):
            if fault.command.upper() != command:
                continue
            fault.seen += 1
            fires = fault.seen == fault.nth or (fault.repeat and fault.seen > fault.nth)
            if fires and chosen is None:
                chosen = fault.action
                fault.fired += 1
                if not fault.repeat:
                    self.faults.remove(fault)
        return chosen

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        record = SessionRecord(tls=self.implicit_tls is not None)
        self.sessions.append(record)
        session = _Session(self, reader, writer, record)
        if self._closing:
            session.abort()
            record.closed = True
            return
        self._tasks.add(task)
        self._live.add(session)
        try:
            await session.run()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client went away; the record shows how far it got
        finally:
            if self._lock_owner is session:
                self._lock_owner = None
            try:
                await session.close()
            finally:
                self._live.discard(session)
                self._tasks.discard(task)


class _SessionClosedError(Exception):
    """End the session now (QUIT, drop, fatal error)."""


class _Session:
    """One POP3 connection: AUTHORIZATION -> TRANSACTION -> UPDATE."""

    def __init__(
        self,
        server: FakePOP3Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: SessionRecord,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.record = record
        self.buffer = bytearray()
        self.user: str | None = None
        self.snapshot: list[_Message] | None = None
        self.deleted: set[int] = set()

    # - transport -

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.record.closed = True
        if self.writer.transport.is_closing():
            self.writer.transport.abort()
            return
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        self.writer.transport.abort()

    async def read_line(self) -> str | None:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > _MAX_LINE:
                await self.send(b"-ERR line too long" + _CRLF)
                return None
            chunk = await self.reader.read(_MAX_LINE)
            if not chunk:
                return None
            self.record.writes.append(chunk)
            self.record.bytes_in += len(chunk)
            self.buffer += chunk
        line = bytes(self.buffer[:end]).rstrip(b"\r")
        del self.buffer[: end + 1]
        return line.decode("utf-8", errors="replace")

    async def send(self, data: bytes) -> None:
        if self.server.lf_only:
            data = data.replace(_CRLF, b"\n")
        self.writer.write(data)
        self.record.bytes_out += len(data)
        await self.writer.drain()

    # - main loop -

    async def run(self) -> None:
        try:
            await self.respond("GREETING", self.greet)
            while (line := await self.read_line()) is not None:
                self.record.commands.append(_mask(line))
                word, _, arg = line.partition(" ")
                command = word.upper()
                await self.respond(command, functools.partial(self.execute, command, arg))
        except _SessionClosedError:
            return

    async def respond(self, command: str, run: _Handler) -> None:
        """Answer one command (or the greeting), applying a fault if one fires."""
        action = self.server._fault_for(command)
        if action is not None:
            match action.kind:
                case "err":
                    await self.send(action.line.encode() + _CRLF)
                    if command in ("QUIT", "GREETING"):
                        self.record.quit = self.record.quit or command == "QUIT"
                        raise _SessionClosedError
                    return
                case "drop":
                    raise _SessionClosedError
                case "raw":
                    await self.send(action.data)
                    return
                case "delay":
                    await asyncio.sleep(action.seconds)
                case "drop_mid_response":
                    reply = await run()
                    data = reply.data.replace(_CRLF, b"\n") if self.server.lf_only else reply.data
                    self.writer.write(data[: action.after_bytes])
                    self.record.bytes_out += min(len(data), action.after_bytes)
                    await self.writer.drain()
                    raise _SessionClosedError
        reply = await run()
        await self.send(reply.data)
        await reply.after()

    async def greet(self) -> _Reply:
        return _Reply(self.server.greeting.encode() + _CRLF)

    # - commands -

    async def execute(self, command: str, arg: str) -> _Reply:
        if self.snapshot is None:
            handler = _AUTH_COMMANDS.get(command)
        else:
            handler = _TRANSACTION_COMMANDS.get(command)
        if handler is None:
            if command in _AUTH_COMMANDS or command in _TRANSACTION_COMMANDS:
                return _line("-ERR Command not valid in this state.")
            return _line("-ERR Unknown command.")
        return await handler(self, arg)

    @property
    def caps(self) -> list[str]:
        return self.server.capability_lines(tls=self.record.tls)

    def has_cap(self, name: str) -> bool:
        return any(line.split(" ", 1)[0].upper() == name for line in self.caps)

    def sasl_mechanisms(self) -> list[str]:
        for line in self.caps:
            parts = line.split()
            if parts and parts[0].upper() == "SASL":
                return [mech.upper() for mech in parts[1:]]
        return []

    def plaintext_refused(self) -> bool:
        return self.server.require_tls_for_plaintext and not self.record.tls

    async def cmd_capa(self, _arg: str) -> _Reply:
        if not self.server.capa_supported:
            return _line("-ERR Unknown command.")
        body = "".join(f"{line}\r\n" for line in self.caps).encode()
        return _Reply(_multiline("+OK Capability list follows", body))

    async def cmd_noop(self, _arg: str) -> _Reply:
        return _line("+OK")

    async def cmd_quit(self, _arg: str) -> _Reply:
        self.record.quit = True
        if self.snapshot is None:
            return _Reply(b"+OK Logging out." + _CRLF, self.end)
        gone = [self.snapshot[i] for i in sorted(self.deleted)]
        self.record.deleted = self.server.mailbox._expunge(gone)
        left = len(self.server.mailbox)
        return _Reply(
            f"+OK Logging out, messages deleted ({left} left).".encode() + _CRLF, self.end
        )

    async def end(self) -> None:
        raise _SessionClosedError

    async def cmd_stls(self, _arg: str) -> _Reply:
        context = self.server.stls_context
        if context is None or self.record.tls:
            return _line("-ERR STLS not available.")
        # Bytes pipelined after STLS arrived in clear text: drop them (RFC 2595 injection defence).
        self.buffer.clear()
        return _Reply(b"+OK Begin TLS negotiation now." + _CRLF, self.start_tls)

    async def start_tls(self) -> None:
        assert self.server.stls_context is not None
        try:
            await self.writer.start_tls(self.server.stls_context)
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            raise _SessionClosedError from exc
        self.record.tls = True
        self.buffer.clear()

    async def cmd_utf8(self, _arg: str) -> _Reply:
        # RFC 6856: only in AUTHORIZATION state, and only when advertised.
        if not self.has_cap("UTF8"):
            return _line("-ERR Unknown command.")
        self.record.utf8 = True
        return _line("+OK UTF8 enabled")

    async def cmd_user(self, arg: str) -> _Reply:
        if not self.has_cap("USER"):
            return _line("-ERR Unknown command.")
        if self.plaintext_refused():
            return _line(PLAINTEXT_REFUSED)
        if not arg:
            return _line("-ERR No username given.")
        self.user = arg
        return _line("+OK")

    async def cmd_pass(self, arg: str) -> _Reply:
        if not self.has_cap("USER"):
            return _line("-ERR Unknown command.")
        if self.plaintext_refused():
            return _line(PLAINTEXT_REFUSED)
        user, self.user = self.user, None
        if user is None:
            return _line("-ERR No username given.")
        if self.server.users.get(user) != arg:
            return _line(AUTH_FAILED)
        return self.login(user)

    async def cmd_apop(self, arg: str) -> _Reply:
        match = re.search(r"<[^>]*>", self.server.greeting)
        parts = arg.split(" ")
        if match is None:
            return _line("-ERR APOP not available.")
        if len(parts) != 2:
            return _line("-ERR Invalid arguments.")
        user, digest = parts
        password = self.server.users.get(user)
        expected = hashlib.md5(
            (match.group(0) + (password or "")).encode(), usedforsecurity=False
        ).hexdigest()
        if password is None or digest.lower() != expected:
            return _line(AUTH_FAILED)
        return self.login(user)

    async def cmd_auth(self, arg: str) -> _Reply:
        mechanisms = self.sasl_mechanisms()
        if not arg:
            body = "".join(f"{mech}\r\n" for mech in mechanisms).encode()
            return _Reply(_multiline("+OK", body))
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if mech not in mechanisms:
            return _line("-ERR Unsupported authentication mechanism.")
        if mech == "PLAIN" and self.plaintext_refused():
            return _line(PLAINTEXT_REFUSED)
        if mech == "XOAUTH2" and self.server.xoauth2_continuation_first:
            initial = ""  # Microsoft asks for the payload after "+ " whatever came with AUTH
        if not initial:
            await self.send(b"+ " + _CRLF)
            line = await self.read_line()
            if line is None:
                raise _SessionClosedError
            self.record.commands.append("***" if line else "")
            if line == "*":
                return _line("-ERR Authentication aborted.")
            initial = line
        payload = b"" if initial == "=" else _b64decode(initial)
        if payload is None:
            return _line("-ERR Invalid base64 data in continued response.")
        if mech == "PLAIN":
            return self.auth_plain(payload)
        return await self.auth_xoauth2(payload)

    def auth_plain(self, payload: bytes) -> _Reply:
        parts = payload.split(b"\0")
        if len(parts) != 3:
            return _line(AUTH_FAILED)
        user, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
        if self.server.users.get(user) != password:
            return _line(AUTH_FAILED)
        return self.login(user)

    async def auth_xoauth2(self, payload: bytes) -> _Reply:
        fields = dict(
            item.split("=", 1)
            for item in payload.decode(errors="replace").split("\x01")
            if "=" in item
        )
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if user in self.server.users and self.server.users[user] == token:
            return self.login(user)
        # Gmail's way: a challenge carrying a JSON error, which the client must answer with an
        # empty line before the final -ERR.
        challenge = base64.b64encode(json.dumps(XOAUTH2_ERROR).encode())
        await self.send(b"+ " + challenge + _CRLF)
        line = await self.read_line()
        if line is None:
            raise _SessionClosedError
        self.record.commands.append("***" if line else "")
        return _line(AUTH_FAILED)

    def login(self, user: str) -> _Reply:
        if self.server.lock_sessions:
            if self.server._lock_owner is not None and self.server._lock_owner is not self:
                return _line(IN_USE)
            self.server._lock_owner = self
        self.record.user = user
        self.snapshot = self.server.mailbox._snapshot()
        return _line("+OK Logged in.")

    # transaction state

    def visible(self) -> list[tuple[int, _Message]]:
        assert self.snapshot is not None
        return [(i + 1, m) for i, m in enumerate(self.snapshot) if i not in self.deleted]

    def message(self, arg: str) -> tuple[int, _Message] | str:
        """The message numbered `arg`, or the -ERR line to answer."""
        assert self.snapshot is not None
        if not arg.isdigit():
            return "-ERR Invalid message number."
        number = int(arg)
        if not 1 <= number <= len(self.snapshot):
            return "-ERR no such message"
        if number - 1 in self.deleted:
            return f"-ERR message {number} already deleted"
        return number, self.snapshot[number - 1]

    async def cmd_stat(self, _arg: str) -> _Reply:
        visible = self.visible()
        size = sum(len(m.data) for _, m in visible)
        return _line(f"+OK {len(visible)} {size}")

    async def cmd_list(self, arg: str) -> _Reply:
        if arg:
            found = self.message(arg)
            if isinstance(found, str):
                return _line(found)
            number, message = found
            return _line(f"+OK {number} {len(message.data)}")
        visible = self.visible()
        size = sum(len(m.data) for _, m in visible)
        body = "".join(f"{n} {len(m.data)}\r\n" for n, m in visible).encode()
        return _Reply(_multiline(f"+OK {len(visible)} messages ({size} octets)", body))

    async def cmd_uidl(self, arg: str) -> _Reply:
        if not self.has_cap("UIDL"):
            return _line("-ERR Unknown command.")
        assert self.snapshot is not None
        if arg:
            found = self.message(arg)
            if isinstance(found, str):
                return _line(found)
            number, message = found
            return _line(f"+OK {number} {message.uid}")
        body = "".join(f"{n} {m.uid}\r\n" for n, m in self.visible()).encode()
        return _Reply(_multiline("+OK", body))

    async def cmd_top(self, arg: str) -> _Reply:
        if not self.has_cap("TOP"):
            return _line("-ERR Unknown command.")
        number, _, lines = arg.partition(" ")
        if not lines.isdigit():
            return _line("-ERR Invalid arguments.")
        found = self.message(number)
        if isinstance(found, str):
            return _line(found)
        return _Reply(_multiline("+OK", _top(found[1].data, int(lines))))

    async def cmd_retr(self, arg: str) -> _Reply:
        found = self.message(arg)
        if isinstance(found, str):
            return _line(found)
        data = found[1].data
        self.server.mailbox.seen.add(found[1].uid)
        return _Reply(_multiline(f"+OK {len(data)} octets", data))

    async def cmd_dele(self, arg: str) -> _Reply:
        found = self.message(arg)
        if isinstance(found, str):
            return _line(found)
        self.deleted.add(found[0] - 1)
        return _line(f"+OK message {found[0]} deleted")

    async def cmd_rset(self, _arg: str) -> _Reply:
        self.deleted.clear()
        visible = self.visible()
        size = sum(len(m.data) for _, m in visible)
        return _line(f"+OK maildrop has {len(visible)} messages ({size} octets)")


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class _Reply:
    """Bytes to send, and what to do once they are sent (close, start TLS)."""

    data: bytes
    after: _After = _nothing


def _line(text: str) -> _Reply:
    return _Reply(text.encode() + _CRLF)


type _After = Callable[[], Awaitable[None]]
type _Handler = Callable[[], Awaitable[_Reply]]
type _Command = Callable[[_Session, str], Awaitable[_Reply]]

_COMMON: dict[str, _Command] = {
    "CAPA": _Session.cmd_capa,
    "QUIT": _Session.cmd_quit,
    "NOOP": _Session.cmd_noop,
}
_AUTH_COMMANDS: dict[str, _Command] = {
    **_COMMON,
    "STLS": _Session.cmd_stls,
    "USER": _Session.cmd_user,
    "PASS": _Session.cmd_pass,
    "APOP": _Session.cmd_apop,
    "AUTH": _Session.cmd_auth,
    "UTF8": _Session.cmd_utf8,
}
_AUTH_COMMANDS.pop("NOOP")
_TRANSACTION_COMMANDS: dict[str, _Command] = {
    **_COMMON,
    "STAT": _Session.cmd_stat,
    "LIST": _Session.cmd_list,
    "UIDL": _Session.cmd_uidl,
    "TOP": _Session.cmd_top,
    "RETR": _Session.cmd_retr,
    "DELE": _Session.cmd_dele,
    "RSET": _Session.cmd_rset,
}
