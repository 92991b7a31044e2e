"""The sans-I/O core of the POP3 client, in the style of h11: the state machine.

`POP3Protocol` never touches a socket, a clock or an event loop. Feed it what
the server sent (`receive_data`), pull answers (`next_event` returns a `Reply`,
a `Challenge` or `NEED_DATA`), and turn commands into bytes (`send`). It knows
what it sent and in which order, so it knows which answers are multi-line and
can match pipelined answers to their commands.

    proto = POP3Protocol()
    proto.receive_data(b"+OK ready\\r\\n")
    proto.next_event()          # Reply(command=Greeting(), ok=True, text="ready")
    sock.send(proto.send(Stat()))  # POP3LocalProtocolError: not logged in yet

The state it tracks is enforced where bytes are produced: `send()` refuses a
command the session's state does not allow (`POP3LocalProtocolError`), and
`receive_data()` refuses bytes that arrive out of turn. The server breaking
the protocol raises `POP3ProtocolError`; the connection ending in the middle
of an answer raises `POP3ConnectionError`. Nothing else.

Parsing is incremental and linear: each chunk is looked at once, a message
body is normalised and unstuffed line by line as it arrives, and what is
parsed is dropped from the buffer. Events, readers and writers are in their
own modules; the names they had here are still importable from it.
"""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import replace
from enum import StrEnum
import io
from typing import Final, NoReturn

from .errors import (
    POP3AnswerTooLargeError,
    POP3ConnectionError,
    POP3LocalProtocolError,
    POP3ProtocolError,
)
from .events import (
    NEED_DATA,
    Apop,
    Auth,
    AuthReply,
    Capa,
    Capabilities,
    Challenge,
    Command,
    Event,
    Greeting,
    NeedData,
    Pass,
    Quit,
    Reply,
    Stls,
    User,
    Utf8,
    response_error,
    verb,
)
from .readers import (
    MAX_STATUS_LINE,
    apop_timestamp,
    body_lines,
    capabilities_body,
    decode_challenge,
    find_terminator,
    one_line_value,
    parse_capabilities,
    parse_listing,
    snippet,
    status,
)
from .requests import Request, Retr, Sizes, Top, Uidl
from .writers import encode

__all__ = [
    "DEFAULT_MAX_LISTING",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "NEED_DATA",
    "Apop",
    "Auth",
    "AuthReply",
    "Capa",
    "Capabilities",
    "Challenge",
    "Command",
    "Event",
    "Greeting",
    "NeedData",
    "POP3Protocol",
    "Pass",
    "Quit",
    "Reply",
    "State",
    "Stls",
    "User",
    "Utf8",
    "apop_timestamp",
    "encode",
    "parse_capabilities",
    "response_error",
    "verb",
]

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 2**20
#: Shortest secret redacted from server texts.
MIN_SECRET: Final = 4
#: Most messages one LIST or UIDL answer may name: bounds the memory of the parsed
#: listing (about 200 bytes a message), far above any real POP3 maildrop.
DEFAULT_MAX_LISTING: Final = 500_000


class State(StrEnum):
    """The RFC 1939 session state, as far as the answers received so far tell.

    `STARTING_TLS` is between the server's +OK to STLS and `tls_started()`:
    nothing may be sent, and any byte received is an attack (it would later pass
    for a protected one).
    """

    AUTHORIZATION = "AUTHORIZATION"
    STARTING_TLS = "STARTING_TLS"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


_AUTHORIZATION_ONLY: Final = (Stls, Utf8, User, Pass, Apop, Auth)
_ANY_TIME: Final = (Capa, Quit)


class POP3Protocol:
    """A POP3 client connection without I/O: bytes in, events out; commands in, bytes out."""

    def __init__(
        self,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_listing: int = DEFAULT_MAX_LISTING,
    ) -> None:
        """Start before the greeting, which is the first answer expected."""
        self.max_response_bytes = max_response_bytes
        self.max_listing = max_listing
        self.state = State.AUTHORIZATION
        self._pending: deque[Command] = deque([Greeting()])
        self._buf = bytearray()
        self._pos = 0  # first byte not parsed yet (nothing before it is needed)
        self._scan = 0  # where the search for the next line end resumes
        self._status: Reply | None = None  # multi-line answer being received: its status
        # Its body so far (CRLF, unstuffed). BytesIO grows by realloc and hands its buffer
        # over without a copy at the end: a join of 100 MB would hold the loop ~80 ms.
        self._body = io.BytesIO()
        self._listing: dict[int, int] | dict[int, str] = {}
        self._answer_bytes = 0  # bytes of the current answer already parsed and dropped
        self._challenged = False
        self._quit_sent = False
        self._secrets: tuple[str, ...] = ()
        self._eof = False
        self._error: POP3ProtocolError | POP3ConnectionError | None = None

    @property
    def pending(self) -> int:
        """Answers still expected from the server."""
        return len(self._pending)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed."""
        return len(self._buf) - self._pos

    @property
    def held_bytes(self) -> int:
        """Bytes the core holds now: input not yet parsed, and the body being received."""
        return len(self._buf) + self._body.tell()

    def add_secret(self, secret: str) -> None:
        """Never show `secret` (or its base64) in an answer's text: servers echo it back.

        Secrets shorter than `MIN_SECRET` characters are left alone: replacing
        every "x" in a server's sentence would hide the server's words, not a secret.
        """
        if len(secret) >= MIN_SECRET:
            encoded = base64.b64encode(secret.encode()).decode()
            self._secrets = (*self._secrets, secret, encoded)

    def send(self, command: Command | AuthReply) -> bytes:
        """Return the line to write for `command` and expect its answer.

        Raises `POP3LocalProtocolError` when the session's state does not allow
        `command` (STAT before login, anything after QUIT or during STLS), and
        `POP3ProtocolError` when the server already sent bytes nobody asked for.
        """
        self._check_allowed(command)
        if not self._pending and self.buffered:
            # Sent before we spoke: these bytes would be taken as the answer to `command`.
            self._fail(
                POP3ProtocolError(
                    f"The server sent data nobody asked for: {snippet(self._buf[self._pos :])}"
                )
            )
        line = encode(command)
        if isinstance(command, Pass):
            self.add_secret(command.password)
        elif isinstance(command, Auth) and command.initial:
            self._secrets = (*self._secrets, base64.b64encode(command.initial).decode())
        if isinstance(command, AuthReply):
            self._challenged = False
            if command.data:
                self._secrets = (*self._secrets, base64.b64encode(command.data).decode())
        else:
            self._pending.append(command)
            self._quit_sent |= isinstance(command, Quit)
        return line

    def _check_allowed(self, command: Command | AuthReply) -> None:
        if self._quit_sent:
            raise POP3LocalProtocolError(f"{verb(command)} after QUIT")
        if self.state is State.STARTING_TLS:
            raise POP3LocalProtocolError(f"{verb(command)} before the TLS handshake is done")
        if self._pending and isinstance(self._pending[0], Greeting):
            raise POP3LocalProtocolError(f"{verb(command)} before the server's greeting")
        if isinstance(command, AuthReply):
            if not self._challenged:
                raise POP3LocalProtocolError(
                    "AuthReply is only an answer to a challenge during AUTH"
                )
            return
        if self._pending and isinstance(self._pending[-1], Auth):  # nothing is sent after AUTH
            raise POP3LocalProtocolError(f"{verb(command)} in the middle of AUTH")
        if isinstance(command, _ANY_TIME):
            return
        if self.state is State.AUTHORIZATION:
            if not isinstance(command, _AUTHORIZATION_ONLY):
                raise POP3LocalProtocolError(f"{verb(command)} before login")
        elif not isinstance(command, Request):
            raise POP3LocalProtocolError(f"{verb(command)} after login")

    def tls_started(self) -> None:
        """The transport finished the TLS handshake that STLS agreed to."""
        if self.state is not State.STARTING_TLS:
            raise POP3LocalProtocolError("No STLS was agreed to")
        self.state = State.AUTHORIZATION

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the server; `b""` means the server closed the connection."""
        if not data:
            self._eof = True
            return
        if self.state is State.STARTING_TLS:
            self._fail(POP3ProtocolError("The server sent data after agreeing to start TLS"))
        if self._pos:
            # Drop what is parsed here, not per answer: keeps long pipelined batches linear.
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """Return the next complete answer, or NEED_DATA."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except (POP3ProtocolError, POP3ConnectionError) as err:
            self._fail(err)

    def _fail(self, err: POP3ProtocolError | POP3ConnectionError) -> NoReturn:
        # Once broken, always broken: a parser that resynchronised could be fed forged answers.
        self._error = err
        raise err

    def _next_event(self) -> Event | NeedData:
        if not self._pending:
            if self.buffered:
                raise POP3ProtocolError(
                    f"The server sent data nobody asked for: {snippet(self._buf[self._pos :])}"
                )
            return self._need_data(expecting=False)
        if self._status is not None:
            return self._multiline(self._status)
        command = self._pending[0]
        end = self._buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(self._buf)
            self._check_line(len(self._buf) - self._pos)
            return self._need_data(expecting=True)
        self._check_line(end - self._pos)
        line = bytes(self._buf[self._pos : end]).removesuffix(b"\r")
        self._scan = self._pos = end + 1
        if isinstance(command, Auth) and line[:1] == b"+" and line[:3].upper() != b"+OK":
            self._challenged = True
            return Challenge(decode_challenge(line))
        reply, rest = status(command, line, self._secrets)
        if reply.ok and _is_multiline(command):
            self._status, self._answer_bytes = reply, len(line) + 2
            self._body, self._listing = io.BytesIO(), {}
            return self._multiline(reply)
        if reply.ok:
            reply = replace(reply, value=one_line_value(command, rest))
        return self._finish(reply)

    def _check_line(self, size: int) -> None:
        self._check_size(size)
        if size > MAX_STATUS_LINE:
            raise POP3ProtocolError(f"A status line is longer than {MAX_STATUS_LINE} octets")

    def _multiline(self, reply: Reply) -> Event | NeedData:
        """Take the whole lines received so far into the body; finish at the terminator."""
        command = reply.command
        last = self._buf.rfind(b"\n", self._scan)
        end = last + 1 if last >= 0 else self._pos
        self._scan = len(self._buf)
        terminator = find_terminator(self._buf, self._pos, end)
        lines_end = terminator if terminator >= 0 else end
        self._check_size(self._answer_bytes + (lines_end - self._pos))
        if isinstance(command, (Sizes, Uidl)):
            parse_listing(
                command,
                self._buf,
                self._pos,
                lines_end,
                into=self._listing,
                max_entries=self.max_listing,
            )
        else:
            self._body.write(body_lines(self._buf[self._pos : lines_end]))
        self._answer_bytes += lines_end - self._pos
        self._pos = lines_end
        if terminator < 0:
            # An unfinished line is held until its end arrives, within the answer's cap.
            self._check_size(self._answer_bytes + self.buffered)
            return self._need_data(expecting=True)
        self._pos = self._scan = self._buf.index(b"\n", terminator) + 1
        self._status = None
        if isinstance(command, (Sizes, Uidl)):
            value, self._listing = self._listing, {}
            return self._finish(replace(reply, value=value))
        body, self._body = self._body.getvalue(), io.BytesIO()
        if isinstance(command, Capa):
            return self._finish(replace(reply, value=capabilities_body(body)))
        return self._finish(replace(reply, value=body))

    def _finish(self, reply: Reply) -> Reply:
        self._pending.popleft()
        if reply.ok:
            if isinstance(reply.command, (Pass, Apop, Auth)):
                self.state = State.TRANSACTION
            elif isinstance(reply.command, Quit):
                self.state = State.UPDATE
            elif isinstance(reply.command, Stls):
                if self.buffered:
                    # Bytes sent before TLS starts would later pass for protected ones.
                    raise POP3ProtocolError("The server sent data after agreeing to start TLS")
                self.state = State.STARTING_TLS
        return reply

    def _check_size(self, size: int) -> None:
        if size > self.max_response_bytes:
            raise POP3AnswerTooLargeError(
                f"An answer of the server is larger than {self.max_response_bytes} bytes"
            )

    def _need_data(self, *, expecting: bool) -> NeedData:
        if self._eof:
            what = "in the middle of an answer" if expecting else ""
            raise POP3ConnectionError(f"The server closed the connection {what}".rstrip())
        return NEED_DATA


def _is_multiline(command: Command) -> bool:
    if isinstance(command, (Sizes, Uidl)):
        return command.msg is None
    return isinstance(command, (Capa, Top, Retr))
