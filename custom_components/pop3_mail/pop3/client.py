"""The asyncio transport: connect, negotiate TLS, log in, and run commands with deadlines.

All parsing is in `protocol.POP3Protocol`; this module moves bytes between it
and a socket, keeps the clock (a deadline for each answer, so each answer of a
pipelined batch restarts it, and one for the whole session) and turns OS, TLS
and timeout failures into the client's errors.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
import ssl
import time
from typing import TYPE_CHECKING, Final, Self

from .errors import (
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3LocalProtocolError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3STLSUnavailableError,
    POP3TimeoutError,
    POP3TLSError,
)
from .events import (
    NEED_DATA,
    Apop,
    Auth,
    AuthReply,
    Capa,
    Capabilities,
    Command,
    Event,
    Greeting,
    Pass,
    Quit,
    Reply,
    Stls,
    User,
    Utf8,
    verb,
)
from .protocol import DEFAULT_MAX_RESPONSE_BYTES, POP3Protocol
from .readers import apop_timestamp
from .requests import Dele, Noop, Request, Result, Retr, Rset, Sizes, Stat, StatResult, Top, Uidl
from .sasl import (
    apop_digest,
    choose_login,
    fits_initial_response,
    plain_payload,
    xoauth2_error_status,
    xoauth2_payload,
)
from .tls import default_ssl_context, tighten
from .writers import encode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

#: Most commands unanswered at once when pipelining; small enough that neither side's
#: socket buffer can fill up while the other is still writing.
PIPELINE_WINDOW: Final = 200
#: Deadline for the goodbye after a failure.
QUIT_TIMEOUT: Final = 2.0
_READ_SIZE: Final = 2**16
_MAX_CHALLENGES: Final = 4
#: The usual ports: POP3S (RFC 8314), and POP3 for clear text or STLS (RFC 1939).
PORT_SSL: Final = 995
PORT_PLAIN: Final = 110


class Security(StrEnum):
    """How the connection is protected; the values are the config entry's `security`."""

    SSL = "ssl"  # TLS from the first byte (port 995)
    STARTTLS = "starttls"  # STLS before login (port 110); never falls back to clear text
    NONE = "none"  # clear text: the caller allows a password on the wire


@dataclass(frozen=True, slots=True)
class SessionStats:
    """What one session cost: bytes each way, commands sent, waits for the server, seconds."""

    bytes_in: int = 0
    bytes_out: int = 0
    commands: int = 0
    round_trips: int = 0
    duration: float = 0.0


def connect(
    host: str,
    port: int | None = None,
    *,
    security: Security = Security.SSL,
    username: str,
    password: str = "",
    ssl_context: ssl.SSLContext | None = None,
    verify_ssl: bool = True,
    oauth2_token: str | None = None,
    command_timeout: float = 30.0,
    session_timeout: float = 300.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> POP3Session:
    """A session to use with `async with`: it connects, negotiates and says goodbye.

    `port` defaults to 995 for `Security.SSL`, else 110. `ssl_context` None
    uses `default_ssl_context(verify=verify_ssl)`; a context given is raised to
    TLS 1.2 at least (`tls.tighten`), nothing else of it is changed.
    `command_timeout` bounds the wait for each answer (each answer of a
    pipelined batch starts it again), `session_timeout` the whole session.
    `password` and `oauth2_token` are replaced by ``***`` in server texts.

    On a normal exit QUIT is sent (the server then deletes what DELE marked; a
    -ERR raises). On exit by an exception QUIT is sent only if no DELE was, so
    that nothing is deleted.
    """
    if ssl_context is None and security is not Security.NONE:
        ssl_context = default_ssl_context(verify=verify_ssl)
    elif ssl_context is not None:
        ssl_context = tighten(ssl_context)
    protocol = POP3Protocol(max_response_bytes=max_response_bytes)
    for secret in (password, oauth2_token):
        if secret:
            protocol.add_secret(secret)
    return POP3Session(
        _Settings(
            host=host,
            port=port if port is not None else PORT_SSL if security is Security.SSL else PORT_PLAIN,
            security=security,
            username=username,
            password=password,
            ssl_context=ssl_context,
            oauth2_token=oauth2_token,
            command_timeout=command_timeout,
            session_timeout=session_timeout,
        ),
        protocol,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Settings:
    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    ssl_context: ssl.SSLContext | None
    oauth2_token: str | None = field(repr=False)
    command_timeout: float
    session_timeout: float


class POP3Session:
    """A POP3 session; `async with connect(...) as session` opens and logs it in.

    Each method's docstring names the command it sends.
    """

    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter

    def __init__(self, settings: _Settings, protocol: POP3Protocol) -> None:
        """Prepare a session; nothing happens before `async with`."""
        self._settings = settings
        self._protocol = protocol
        self._deadline = 0.0
        self._started = 0.0
        self._ended: float | None = None
        self._lock = asyncio.Lock()
        self._timeout: asyncio.Timeout | None = None
        self._broken = False
        self._dele_sent = False
        self._tls = False
        self._counts = {"bytes_in": 0, "bytes_out": 0, "commands": 0, "round_trips": 0}
        self.capabilities = Capabilities()
        self.greeting = ""

    async def __aenter__(self) -> Self:
        """Connect, negotiate TLS, read CAPA and log in."""
        if self._started:
            raise RuntimeError("A POP3Session is entered only once")
        self._started = time.monotonic()
        self._deadline = asyncio.get_running_loop().time() + self._settings.session_timeout
        await self._open()
        try:
            await self._negotiate()
        except BaseException:
            await self._abort()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """QUIT on success; on an exception, QUIT only if no DELE was sent. Then close.

        A normal exit from a session that failed earlier (the caller caught the
        error) closes like an exception would, and raises if DELEs are lost.
        """
        if exc is None and not self._broken:
            await self._quit()
            return
        await self._abort()
        if exc is None and self._dele_sent:
            raise POP3ConnectionError(
                "The session failed before QUIT: no message marked for deletion was deleted"
            )

    @property
    def stats(self) -> SessionStats:
        """Figures of this session so far (frozen once it is closed)."""
        end = self._ended if self._ended is not None else time.monotonic()
        return SessionStats(**self._counts, duration=end - self._started)

    @property
    def max_response_bytes(self) -> int:
        """The most octets one answer may take; a larger one is a `POP3ProtocolError`.

        Settable between commands: a caller that holds many answers at once can cap
        them tighter than a single whole message (`connect(max_response_bytes=...)`).
        """
        return self._protocol.max_response_bytes

    @max_response_bytes.setter
    def max_response_bytes(self, value: int) -> None:
        self._protocol.max_response_bytes = value

    @property
    def tls(self) -> bool:
        """Whether the connection is protected by TLS."""
        return self._tls

    async def request[T](self, request: Request[T]) -> T:
        """Send one request and return its typed result; a -ERR answer raises."""
        (reply,) = await self._exchange(verb(request), [request], 1)
        if not reply.ok:
            raise reply.error()
        return request.result(reply.value)

    async def stat(self) -> StatResult:
        """STAT: message count and total size in octets."""
        return await self.request(Stat())

    async def list(self) -> dict[int, int]:
        """LIST: message number -> size in octets."""
        return await self.request(Sizes())

    async def list_one(self, msg: int) -> int:
        """LIST msg: the size of one message in octets."""
        return await self.request(Sizes(msg))

    async def uidl(self) -> dict[int, str]:
        """UIDL: message number -> unique id, in server order."""
        return await self.request(Uidl())

    async def uidl_one(self, msg: int) -> str:
        """UIDL msg: the unique id of one message."""
        return await self.request(Uidl(msg))

    async def top(self, msg: int, lines: int) -> bytes:
        """TOP msg lines: the headers and `lines` body lines (CRLF, dot-unstuffed)."""
        return await self.request(Top(msg, lines))

    async def retr(self, msg: int) -> bytes:
        """RETR msg: the whole message (CRLF, dot-unstuffed). Many servers mark it read."""
        return await self.request(Retr(msg))

    async def dele(self, msg: int) -> None:
        """DELE msg: mark for deletion; the server deletes at a successful QUIT."""
        await self.request(Dele(msg))

    async def rset(self) -> None:
        """RSET: unmark every message marked for deletion."""
        await self.request(Rset())

    async def noop(self) -> None:
        """NOOP: keep the connection alive."""
        await self.request(Noop())

    async def pipeline(
        self, requests: Sequence[Request]
    ) -> builtins.list[Result | POP3ResponseError]:
        """Send `requests`, return their results in order; a -ERR becomes its error, not raised.

        With PIPELINING the batch is written at once (in windows of
        `PIPELINE_WINDOW` commands); without it one command per round trip.
        Each answer has `command_timeout` seconds to arrive.
        """
        window = PIPELINE_WINDOW if self.capabilities.pipelining else 1
        what = verb(requests[0]) if len(requests) == 1 else f"{len(requests)} pipelined commands"
        replies = await self._exchange(what, requests, window)
        results: builtins.list[Result | POP3ResponseError] = []
        for reply in replies:
            if not reply.ok:
                results.append(reply.error())
            elif isinstance(reply.value, Capabilities):  # pragma: no cover - never a request's
                raise POP3ProtocolError("A capability list answered a request")
            else:
                results.append(reply.value)
        return results

    # --- opening and negotiation -----------------------------------------------------

    async def _open(self) -> None:
        """Open the TCP (or TLS) connection, nothing read yet."""
        host, port = self._settings.host, self._settings.port
        implicit = self._settings.ssl_context if self._settings.security is Security.SSL else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(
                min(loop.time() + self._settings.command_timeout, self._deadline)
            ):
                self._reader, self._writer = await asyncio.open_connection(host, port, ssl=implicit)
        except TimeoutError as err:
            raise POP3TimeoutError(f"Timed out connecting to {host}:{port}") from err
        except (ssl.SSLError, ssl.CertificateError) as err:
            raise POP3TLSError(f"TLS with {host}:{port} failed: {err}") from err
        except OSError as err:
            raise POP3ConnectionError(f"Cannot connect to {host}:{port}: {err}") from err
        except UnicodeError as err:  # the IDNA codec refuses the name (empty or long label)
            raise POP3ConnectionError(f"{host!r} is not a valid host name") from err
        self._tls = implicit is not None

    async def _negotiate(self) -> None:
        """Greeting, CAPA, STLS, UTF8, login, and CAPA again when its values are per user."""
        settings = self._settings
        greeting = await self._expect(Greeting())
        self.greeting = greeting.text
        self.capabilities = await self._capa()
        if settings.security is Security.STARTTLS:
            if not self.capabilities.stls:
                raise POP3STLSUnavailableError("The server does not offer STLS (STARTTLS)")
            if settings.ssl_context is None:  # pragma: no cover - connect() always gives one
                raise POP3LocalProtocolError("STARTTLS needs an SSL context")
            reply = await self._send(Stls())
            if not reply.ok:
                raise POP3STLSUnavailableError(f"The server refused STLS: {reply.text}")
            await self._start_tls(settings.host, settings.ssl_context)
            # What was said before TLS could have been forged: ask again.
            self.capabilities = await self._capa()
        if self.capabilities.utf8:
            await self._send(Utf8())  # a -ERR only means we stay in ASCII
        await self._login()
        if self.capabilities.per_user:
            reply = await self._send(Capa())
            # A refusal now must not forget PIPELINING or LOGIN-DELAY.
            if reply.ok and isinstance(reply.value, Capabilities):
                self.capabilities = reply.value

    async def _login(self) -> None:
        try:
            await self._login_once()
        except POP3PlaintextRefusedError as err:
            if self._tls:
                # Over TLS, text such as "(use SSL)" cannot mean our connection is in the
                # clear: it is a rejected login, which must start reauthentication.
                raise POP3AuthError(err.text, err.code, err.command) from err
            raise
        except POP3LocalProtocolError as err:
            # CR, LF or NUL in the username or password: no server could accept it.
            raise POP3AuthError(str(err)) from err

    async def _login_once(self) -> None:
        username, password = self._settings.username, self._settings.password
        oauth2_token = self._settings.oauth2_token
        allow_cleartext = self._settings.security is Security.NONE
        timestamp = apop_timestamp(self.greeting)
        method = choose_login(
            self.capabilities,
            tls=self._tls,
            timestamp=timestamp,
            oauth2=oauth2_token is not None,
            allow_cleartext=allow_cleartext,
        )
        if method == "apop" and timestamp is not None:
            try:
                await self._expect(Apop(username, apop_digest(timestamp, password)))
            except POP3AuthError as err:
                # Servers such as qpopper put a timestamp in every greeting but refuse APOP
                # to users without an APOP secret. With clear text allowed, USER/PASS or
                # PLAIN may still work (RFC 1939 allows another try in AUTHORIZATION).
                if type(err) is not POP3AuthError or not allow_cleartext:
                    raise
                method = choose_login(
                    self.capabilities, tls=False, timestamp=None, oauth2=False, allow_cleartext=True
                )
                try:
                    await self._login_with(method, username, password, None)
                except POP3ConnectionError:
                    raise err from None  # the server hung up after the refusal: that was the answer
            return
        await self._login_with(method, username, password, oauth2_token)

    async def _login_with(
        self, method: str, username: str, password: str, oauth2_token: str | None
    ) -> None:
        if method == "user":
            await self._expect(User(username))
            await self._expect(Pass(password))
        elif oauth2_token is not None:
            await self._sasl("XOAUTH2", xoauth2_payload(username, oauth2_token))
        else:
            await self._sasl("PLAIN", plain_payload(username, password))

    async def _capa(self) -> Capabilities:
        reply = await self._send(Capa())
        if not reply.ok or not isinstance(reply.value, Capabilities):
            return Capabilities.assumed()
        return reply.value

    async def _start_tls(self, host: str, context: ssl.SSLContext) -> None:
        async def handshake() -> None:
            # The +OK to STLS must be the last byte before the handshake. Bytes after it,
            # in the parser (checked there) or still in the StreamReader, are an attack
            # (CVE-2011-0411): after TLS they would pass for protected answers.
            if _unread(self._reader):
                raise POP3ProtocolError("The server sent data after agreeing to start TLS")
            try:
                # No await between the check above and the transport pausing its reads.
                await self._writer.start_tls(context, server_hostname=host)
            except (ssl.SSLError, ssl.CertificateError) as err:
                raise POP3TLSError(f"TLS with {host} failed: {err}") from err
            self._protocol.tls_started()

        await self._guarded("STLS", handshake)
        self._tls = True

    async def _sasl(self, mechanism: str, payload: bytes) -> None:
        """AUTH `mechanism`, with `payload` as initial response, or after a `+ ` continuation.

        The initial response is used when the line stays within RFC 5034's 255
        octets; else AUTH goes alone and the payload answers the server's empty
        challenge (what Microsoft's servers always ask for). A server answering an
        initial response with an empty challenge gets the payload again. A
        non-empty challenge to XOAUTH2 is the server's JSON error: answered with an
        empty line, as the mechanism requires, and its status is kept for the error.
        """
        initial = payload if fits_initial_response(mechanism, payload) else None
        owed = True  # the payload is still owed as a continuation answer
        status: str | None = None

        async def exchange() -> Reply:
            nonlocal owed, status
            await self._take_unsolicited()
            await self._write(self._protocol.send(Auth(mechanism, initial)), commands=1)
            for _ in range(_MAX_CHALLENGES):
                event = await self._next_event()
                if isinstance(event, Reply):
                    return event
                data = b""
                if not event.data and owed:
                    data, owed = payload, False
                elif event.data and mechanism == "XOAUTH2":
                    status = xoauth2_error_status(event.data, self._settings.oauth2_token)
                await self._write(self._protocol.send(AuthReply(data)), commands=0)
            raise POP3ProtocolError("The server kept sending SASL challenges")

        reply = await self._guarded("AUTH", exchange)
        if not reply.ok:
            error = reply.error()
            if isinstance(error, POP3AuthError) and status is not None:
                raise POP3AuthError(error.text, error.code, error.command, status=status)
            raise error

    # --- the transport loop ------------------------------------------------------------

    async def _expect(self, command: Command) -> Reply:
        """Send `command` and raise its -ERR answer."""
        reply = await self._send(command)
        if not reply.ok:
            raise reply.error()
        return reply

    async def _send(self, command: Command) -> Reply:
        (reply,) = await self._exchange(verb(command), [command], 1)
        return reply

    async def _exchange(
        self, what: str, commands: Sequence[Command], window: int
    ) -> builtins.list[Reply]:
        """Send `commands`, at most `window` unanswered at a time, and read their replies."""

        async def run() -> builtins.list[Reply]:
            todo, replies = deque(commands), builtins.list[Reply]()
            while todo or len(replies) < len(commands):
                unanswered = len(commands) - len(todo) - len(replies)
                if todo and unanswered <= window // 2:
                    batch = [todo.popleft() for _ in range(min(len(todo), window - unanswered))]
                    self._dele_sent |= any(isinstance(c, Dele) for c in batch)
                    sent = [c for c in batch if not isinstance(c, Greeting)]  # already expected
                    if sent:
                        await self._take_unsolicited()
                        data = b"".join(self._protocol.send(c) for c in sent)
                        await self._write(data, commands=len(sent))
                event = await self._next_event()
                # The core gives challenges only to AUTH, which never comes this way.
                if not isinstance(event, Reply):  # pragma: no cover
                    raise POP3ProtocolError("A SASL challenge outside AUTH")
                replies.append(event)
            return replies

        return await self._guarded(what, run)

    async def _guarded[T](self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one exchange under the deadlines; any failure leaves the session unusable.

        Waiting for the session's lock counts against the first answer's deadline;
        each answer received starts the next one's (`_answered`), never past the
        session's deadline.
        """
        if self._broken:
            raise POP3ConnectionError("The connection is closed, or unusable after a failure")
        timeout = asyncio.timeout_at(self._next_deadline())
        locked = False
        try:
            async with timeout, self._lock:
                locked = True
                # The wait for the lock had its own deadline; the first answer gets a full one.
                timeout.reschedule(self._next_deadline())
                self._timeout = timeout
                try:
                    return await operation()
                finally:
                    self._timeout = None
        except POP3Error:
            self._broken = True
            raise
        except TimeoutError as err:
            if locked:
                self._broken = True
            if timeout.when() == self._deadline:
                self._broken = True
                raise POP3TimeoutError("The POP3 session ran past its deadline") from err
            if not locked:
                # Another exchange holds the session: it goes on, this caller gives up.
                raise POP3TimeoutError(
                    f"{what} waited over {self._settings.command_timeout:g} s for the session"
                ) from err
            raise POP3TimeoutError(
                f"No answer to {what} within {self._settings.command_timeout:g} s"
            ) from err
        except (ssl.SSLError, OSError) as err:
            self._broken = True
            raise POP3ConnectionError(f"Connection lost during {what}: {err}") from err
        except BaseException:
            self._broken |= locked  # a caller cancelled while waiting broke nothing
            raise

    def _next_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        return min(loop.time() + self._settings.command_timeout, self._deadline)

    def _answered(self) -> None:
        """An answer arrived: the next one gets a full `command_timeout` again."""
        if self._timeout is not None:
            self._timeout.reschedule(self._next_deadline())

    async def _write(self, data: bytes, *, commands: int) -> None:
        self._writer.write(data)
        self._counts["bytes_out"] += len(data)
        self._counts["commands"] += commands
        self._counts["round_trips"] += 1
        await self._writer.drain()

    async def _take_unsolicited(self) -> None:
        """Hand the parser what the server sent before we spoke, so it is refused, not used."""
        if not self._protocol.pending and (size := _unread(self._reader)):
            data = await self._reader.read(size)
            self._counts["bytes_in"] += len(data)
            self._protocol.receive_data(data)

    async def _next_event(self) -> Event:
        while (event := self._protocol.next_event()) is NEED_DATA:
            data = await self._reader.read(_READ_SIZE)
            self._counts["bytes_in"] += len(data)
            self._protocol.receive_data(data)
        self._answered()
        return event

    # --- goodbye -------------------------------------------------------------------------

    async def _quit(self) -> None:
        """Normal exit: QUIT, so the server applies DELEs; a -ERR raises."""
        try:
            await self._expect(Quit())
        finally:
            await self._close()

    async def _abort(self) -> None:
        """Exit by exception: QUIT only if no DELE was sent (so nothing is deleted), then close."""
        try:
            await self._say_goodbye()
        finally:
            # Also when cancelled while waiting for the QUIT answer: never leak the socket.
            await self._close()

    async def _say_goodbye(self) -> None:
        with contextlib.suppress(POP3Error, OSError, TimeoutError):
            if not self._dele_sent and not self._reader.at_eof() and not self._writer.is_closing():
                if self._broken:
                    # Answers may still be on their way or the stream is garbled: say goodbye
                    # without waiting for an answer.
                    quit_line = encode(Quit())
                    self._writer.write(quit_line)
                    self._counts["bytes_out"] += len(quit_line)
                    self._counts["commands"] += 1
                else:
                    self._deadline = min(
                        self._deadline, asyncio.get_running_loop().time() + QUIT_TIMEOUT
                    )
                    await self._send(Quit())

    async def _close(self) -> None:
        self._ended = time.monotonic()
        self._broken = True
        self._writer.close()
        try:
            async with asyncio.timeout(QUIT_TIMEOUT):
                await self._writer.wait_closed()
        except TimeoutError:
            # A peer that never finishes the TLS goodbye must not keep the socket open.
            self._writer.transport.abort()
        except OSError:
            pass


def _unread(reader: asyncio.StreamReader) -> int:
    """Bytes the StreamReader holds that nobody read yet.

    StreamReader has no public way to ask; its buffer is where bytes received
    before a command (or before the TLS handshake) wait to be mistaken for answers.
    """
    return len(reader._buffer)  # type: ignore[attr-defined]  # noqa: SLF001
