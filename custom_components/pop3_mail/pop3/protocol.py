"""The sans-I/O core of the POP3 client, in the style of h11.

`POP3Protocol` never touches a socket, a clock or an event loop. Feed it what
the server sent (`receive_data`), pull answers (`next_event` returns a `Reply`,
a `Challenge` or `NEED_DATA`), and turn commands into bytes (`send`). It knows
what it sent and in which order, so it knows which answers are multi-line and
can match pipelined answers to their commands.

    proto = POP3Protocol()
    proto.receive_data(b"+OK ready\\r\\n")
    proto.next_event()          # Reply(command=Greeting(), ok=True, text="ready")
    sock.send(proto.send(Stat()))
    proto.receive_data(b"+OK 2 320\\r\\n")
    proto.next_event()          # Reply(command=Stat(), ok=True, value=StatResult(2, 320))

The server breaking the protocol raises `POP3ProtocolError`; the connection
ending in the middle of an answer raises `POP3ConnectionError`. Nothing else.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
import re
from typing import Final, Literal, cast

from .errors import (
    POP3AuthError,
    POP3ConnectionError,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3TempError,
)
from .requests import Dele, List, Noop, Request, Result, Retr, Rset, Stat, StatResult, Top, Uidl

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 2**20


class State(StrEnum):
    """The RFC 1939 session state, as far as the answers received so far tell."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"


#: `next_event()` needs more bytes from the server before it can answer.
NEED_DATA: Final = _Sentinel.NEED_DATA
type NeedData = Literal[_Sentinel.NEED_DATA]


# Commands that are not pipelinable requests: negotiation and login.
@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's banner: not sent, but answered first."""


@dataclass(frozen=True, slots=True)
class Capa:
    """CAPA (RFC 2449)."""


@dataclass(frozen=True, slots=True)
class Stls:
    """STLS (RFC 2595)."""


@dataclass(frozen=True, slots=True)
class Utf8:
    """UTF8 (RFC 6856)."""


@dataclass(frozen=True, slots=True)
class User:
    """USER name."""

    name: str


@dataclass(frozen=True, slots=True)
class Pass:
    """PASS password."""

    password: str = ""

    def __repr__(self) -> str:
        return "Pass(password='***')"


@dataclass(frozen=True, slots=True)
class Apop:
    """APOP name digest."""

    name: str
    digest: str


@dataclass(frozen=True, slots=True)
class Auth:
    """AUTH mechanism [initial-response] (RFC 5034); `initial` None sends none."""

    mechanism: str
    initial: bytes | None = None

    def __repr__(self) -> str:
        return f"Auth(mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class AuthReply:
    """The client's answer to a SASL challenge: base64 of `data` (empty: an empty line)."""

    data: bytes = b""

    def __repr__(self) -> str:
        return "AuthReply(data=b'***')"


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT."""


type Command = Request | Greeting | Capa | Stls | Utf8 | User | Pass | Apop | Auth | Quit


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server said it can do in its CAPA answer (RFC 2449).

    When the server does not know CAPA, `raw` is empty and TOP, UIDL and USER
    are assumed (the client tries them and copes with a -ERR).
    """

    top: bool = False
    uidl: bool = False
    user: bool = False
    resp_codes: bool = False
    pipelining: bool = False
    stls: bool = False
    utf8: bool = False
    sasl: tuple[str, ...] = ()
    login_delay: int | None = None
    expire: str | None = None
    implementation: str | None = None
    raw: tuple[str, ...] = ()
    #: LOGIN-DELAY or EXPIRE said "USER": the real value comes with CAPA after login.
    per_user: bool = False

    @classmethod
    def assumed(cls) -> Capabilities:
        """Capabilities of a server that answers -ERR to CAPA: the RFC 1939 basics, tried."""
        return cls(top=True, uidl=True, user=True)


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete answer of the server to `command`.

    `value` is the parsed answer to a +OK: `StatResult`, `int`, `str`,
    `dict[int, int]`, `dict[int, str]`, `bytes` (TOP/RETR: CRLF line ends,
    dot-unstuffed), `Capabilities`, or None.
    """

    command: Command
    ok: bool
    text: str
    code: str | None = None
    value: Result | Capabilities = None

    def error(self) -> POP3ResponseError:
        """The exception that stands for this -ERR answer."""
        return response_error(self.command, self.code, self.text)


@dataclass(frozen=True, slots=True)
class Challenge:
    """A SASL continuation ("+ base64") during AUTH; `data` is decoded."""

    data: bytes


type Event = Reply | Challenge

_LOGIN_COMMANDS: Final = (User, Pass, Apop, Auth)
_TERMINATOR: Final = re.compile(rb"\n\.\r?\n")
_LINE_END: Final = re.compile(rb"\r?\n")
_STATUS: Final = re.compile(rb"(\+OK|-ERR)(?:[ \t]+(.*))?", re.IGNORECASE | re.DOTALL)
_CODE: Final = re.compile(r"\[([^\]\s]+)\]\s*(.*)", re.DOTALL)
# Numbers of at most 20 digits: int() refuses very long ones with a ValueError, not ours.
_TWO_NUMBERS: Final = re.compile(rb"(\d{1,20})[ \t]+(\d{1,20})(?:[ \t].*)?", re.DOTALL)
_NUMBER_AND_UID: Final = re.compile(rb"(\d{1,20})[ \t]+([\x21-\xff]+)(?:[ \t].*)?", re.DOTALL)
# Whole lines of a UIDL or LIST listing, matched in bulk as the chunks arrive: a listing
# of 100,000 lines parsed in one go would hold the event loop for ~100 ms.
_UIDL_LINES: Final = re.compile(
    rb"^(\d{1,20})[ \t]+([\x21-\xff]+)(?:[ \t][^\n]*)?\r?\n", re.MULTILINE
)
_LIST_LINES: Final = re.compile(rb"^(\d{1,20})[ \t]+(\d{1,20})(?:[ \t][^\n]*)?\r?\n", re.MULTILINE)
_TIMESTAMP: Final = re.compile(r"<[^<>\s]*@[^<>\s]*>")
_PLAINTEXT_HINT: Final = re.compile(
    r"plain\s*text|clear\s*text|\btls\b|\bssl\b|secure|encrypt", re.IGNORECASE
)
_UNSAFE: Final = re.compile(r"[\x00\r\n]")


class POP3Protocol:
    """A POP3 client connection without I/O: bytes in, events out; commands in, bytes out."""

    def __init__(self, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        """Start before the greeting, which is the first answer expected."""
        self.max_response_bytes = max_response_bytes
        self.state = State.AUTHORIZATION
        self._pending: deque[Command] = deque([Greeting()])
        self._buf = bytearray()
        self._pos = 0  # start of the answer being parsed (nothing before it is needed)
        self._scan = 0  # where the search for the next line end resumes
        self._body: tuple[int, Reply] | None = None  # multi-line answer: (body start, status)
        # UIDL/LIST listing being received: the lines parsed so far, and where they end.
        self._listing: dict[int, str] | dict[int, int] | None = None
        self._parsed = 0
        self._eof = False
        self._error: POP3ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Answers still expected from the server."""
        return len(self._pending)

    def send(self, command: Command | AuthReply) -> bytes:
        """Return the line to write for `command` and expect its answer."""
        line = encode(command)
        if isinstance(command, AuthReply):
            if not self._pending or not isinstance(self._pending[0], Auth):
                raise ValueError("AuthReply is only an answer to a challenge during AUTH")
        else:
            self._pending.append(command)
        return line

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the server; `b""` means the server closed the connection."""
        if not data:
            self._eof = True
            return
        if self._pos:
            # Drop what is parsed here, not per answer: keeps long pipelined batches linear.
            del self._buf[: self._pos]
            self._scan -= self._pos
            if self._body is not None:
                self._body = (self._body[0] - self._pos, self._body[1])
            self._parsed = max(0, self._parsed - self._pos)
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """Return the next complete answer, or NEED_DATA."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except POP3ProtocolError as err:
            self._error = err
            raise

    def _next_event(self) -> Event | NeedData:
        if not self._pending:
            if self._pos < len(self._buf):
                raise POP3ProtocolError(
                    f"The server sent data nobody asked for: {_snippet(self._buf[self._pos :])}"
                )
            return self._need_data(expecting=False)
        if self._body is not None:
            return self._multiline(*self._body)
        command = self._pending[0]
        end = self._buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(self._buf)
            self._check_size(len(self._buf) - self._pos)
            return self._need_data(expecting=True)
        self._check_size(end + 1 - self._pos)
        line = bytes(self._buf[self._pos : end]).removesuffix(b"\r")
        self._scan = end + 1
        if isinstance(command, Auth) and line[:1] == b"+" and line[:3].upper() != b"+OK":
            self._pos = end + 1
            return Challenge(_decode_challenge(line))
        reply, rest = _status(command, line)
        if reply.ok and _is_multiline(command):
            self._body = (end + 1, reply)
            self._scan = end  # the status line's LF may begin the terminator
            return self._multiline(*self._body)
        self._pos = end + 1
        return self._finish(_with_value(reply, rest))

    def _multiline(self, body_start: int, reply: Reply) -> Event | NeedData:
        start = self._pos
        command = reply.command
        listing = command if isinstance(command, (List, Uidl)) and command.msg is None else None
        if listing is not None and self._listing is None:
            self._listing, self._parsed = {}, body_start
        match = _TERMINATOR.search(self._buf, self._scan)
        if match is None:
            # A terminator could begin in the last 3 bytes and end in the next chunk.
            self._scan = max(self._scan, len(self._buf) - 3)
            self._check_size(len(self._buf) - start)
            if listing is not None:
                self._parse_listing(listing, self._buf.rfind(b"\n") + 1)
            return self._need_data(expecting=True)
        self._check_size(match.end() - start)
        if listing is not None:
            self._parse_listing(listing, match.start() + 1)
            value, self._listing = self._listing, None
            self._pos = self._scan = match.end()
            self._body = None
            return self._finish(replace(reply, value=value))
        body = bytes(self._buf[body_start : match.start() + 1])
        self._pos = self._scan = match.end()
        self._body = None
        return self._finish(_with_body(reply, _unstuff(body)))

    def _parse_listing(self, command: List | Uidl, end: int) -> None:
        """Add the complete listing lines between `_parsed` and `end` to `_listing`."""
        start, listing = self._parsed, self._listing
        if end <= start or listing is None:
            return
        pattern = _UIDL_LINES if isinstance(command, Uidl) else _LIST_LINES
        pairs = pattern.findall(self._buf, start, end)
        if len(pairs) != self._buf.count(b"\n", start, end):
            bad = next(
                line
                for line in bytes(self._buf[start:end]).split(b"\n")[:-1]
                if pattern.fullmatch(line + b"\n") is None
            )
            raise POP3ProtocolError(f"Malformed line in answer to {verb(command)}: {_snippet(bad)}")
        if isinstance(command, Uidl):
            uids = cast("dict[int, str]", listing)
            for number, uid in pairs:
                uids[int(number)] = uid.decode("latin-1")
        else:
            sizes = cast("dict[int, int]", listing)
            for number, size in pairs:
                sizes[int(number)] = int(size)
        self._parsed = end

    def _finish(self, reply: Reply) -> Reply:
        self._pending.popleft()
        if reply.ok:
            if isinstance(reply.command, (Pass, Apop, Auth)):
                self.state = State.TRANSACTION
            elif isinstance(reply.command, Quit):
                self.state = State.UPDATE
            elif isinstance(reply.command, Stls) and self._pos < len(self._buf):
                # Bytes sent before TLS starts would later pass for protected ones.
                raise POP3ProtocolError("The server sent data after agreeing to start TLS")
        return reply

    def _check_size(self, size: int) -> None:
        if size > self.max_response_bytes:
            raise POP3ProtocolError(
                f"An answer of the server is larger than {self.max_response_bytes} bytes"
            )

    def _need_data(self, *, expecting: bool) -> NeedData:
        if self._eof:
            what = "in the middle of an answer" if expecting else ""
            raise POP3ConnectionError(f"The server closed the connection {what}".rstrip())
        return NEED_DATA


def _unstuff(body: bytes) -> bytes:
    """CRLF line ends, and one leading dot less on every line that starts with one."""
    # Plain bytes methods, not regular expressions: ten times faster on big messages.
    if body.count(b"\n") != body.count(b"\r\n"):
        body = _LINE_END.sub(b"\r\n", body)  # a server sending bare LF: rare, slower path
    body = body.replace(b"\n.", b"\n")
    return body.removeprefix(b".")


def _snippet(data: bytes | bytearray) -> str:
    return repr(bytes(data[:60]))


def _decode_challenge(line: bytes) -> bytes:
    payload = line[1:].strip(b" ")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as err:
        raise POP3ProtocolError(f"Invalid SASL challenge: {_snippet(line)}") from err


def _is_multiline(command: Command) -> bool:
    if isinstance(command, (List, Uidl)):
        return command.msg is None
    return isinstance(command, (Capa, Top, Retr))


def _status(command: Command, line: bytes) -> tuple[Reply, bytes]:
    """The status of an answer's first line, and the bytes after it."""
    match = _STATUS.fullmatch(line)
    if match is None:
        raise POP3ProtocolError(f"Expected +OK or -ERR, got {_snippet(line)}")
    rest = match[2] or b""
    text = rest.decode("utf-8", "replace").strip()
    code = None
    if coded := _CODE.fullmatch(text):
        code, text = coded[1].upper(), coded[2]
    return Reply(command, match[1].upper() == b"+OK", text, code), rest


def _with_value(reply: Reply, rest: bytes) -> Reply:
    """Parse what a one-line +OK answer carries (STAT, LIST n, UIDL n)."""
    command = reply.command
    if not reply.ok or not isinstance(command, (Stat, List, Uidl)):
        return reply
    pattern = _NUMBER_AND_UID if isinstance(command, Uidl) else _TWO_NUMBERS
    match = pattern.fullmatch(rest)
    if match is None or (not isinstance(command, Stat) and int(match[1]) != command.msg):
        raise POP3ProtocolError(f"Malformed answer to {verb(command)}: {_snippet(rest)}")
    value: Result
    if isinstance(command, Stat):
        value = StatResult(int(match[1]), int(match[2]))
    elif isinstance(command, List):
        value = int(match[2])
    else:
        value = match[2].decode("latin-1")
    return replace(reply, value=value)


def _with_body(reply: Reply, data: bytes) -> Reply:
    """Parse a multi-line +OK answer (CRLF line ends, dot-unstuffed)."""
    command = reply.command
    value: Result | Capabilities
    if isinstance(command, Capa):
        value = parse_capabilities(data.decode("utf-8", "replace").split("\r\n")[:-1])
    else:
        value = data
    return replace(reply, value=value)


def parse_capabilities(lines: list[str]) -> Capabilities:
    """Build `Capabilities` from the lines of a CAPA answer; unknown ones are kept in `raw`."""
    flags: dict[str, bool] = {}
    sasl: tuple[str, ...] = ()
    login_delay: int | None = None
    expire: str | None = None
    implementation: str | None = None
    per_user = False
    for line in lines:
        name, _, arg = line.strip().partition(" ")
        name, words = name.upper(), arg.split()
        if name in {"TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "STLS", "UTF8"}:
            flags[name] = True
        elif name == "SASL":
            sasl = tuple(word.upper() for word in words)
        elif name == "LOGIN-DELAY" and words and words[0].isascii() and words[0].isdigit():
            # Longer than 12 digits (30,000 years) is "never"; int() of 5,000 digits would raise.
            login_delay = int(words[0]) if len(words[0]) <= 12 else 10**12
            per_user |= words[1:2] == ["USER"]
        elif name == "EXPIRE" and words:
            expire = words[0]
            per_user |= words[1:2] == ["USER"]
        elif name == "IMPLEMENTATION":
            implementation = arg.strip() or None
    return Capabilities(
        top=flags.get("TOP", False),
        uidl=flags.get("UIDL", False),
        user=flags.get("USER", False),
        resp_codes=flags.get("RESP-CODES", False),
        pipelining=flags.get("PIPELINING", False),
        stls=flags.get("STLS", False),
        utf8=flags.get("UTF8", False),
        sasl=sasl,
        login_delay=login_delay,
        expire=expire,
        implementation=implementation,
        raw=tuple(line.strip() for line in lines),
        per_user=per_user,
    )


def apop_timestamp(greeting: str) -> str | None:
    """The `<...@...>` timestamp of an RFC 1939 greeting, which APOP needs; None without one."""
    match = _TIMESTAMP.search(greeting)
    return match[0] if match else None


def response_error(command: Command | None, code: str | None, text: str) -> POP3ResponseError:
    """The exception class for a -ERR answer: by response code, else by the command answered."""
    word = None if command is None or isinstance(command, Greeting) else verb(command)
    by_code: dict[str, type[POP3ResponseError]] = {
        "IN-USE": POP3InUseError,
        "LOGIN-DELAY": POP3LoginDelayError,
        "SYS/TEMP": POP3TempError,
        "SYS/PERM": POP3PermError,
    }
    if code in by_code:
        return by_code[code](text, code, word)
    if isinstance(command, _LOGIN_COMMANDS) or code == "AUTH":
        if isinstance(command, _LOGIN_COMMANDS) and _PLAINTEXT_HINT.search(text):
            return POP3PlaintextRefusedError(text, code, word)
        return POP3AuthError(text, code, word)
    return POP3ResponseError(text, code, word)


def verb(command: Command | AuthReply) -> str:
    """The command word of `command` ("RETR"), for messages; never its arguments."""
    return _VERBS[type(command)]


_VERBS: Final[dict[type, str]] = {
    Stat: "STAT",
    List: "LIST",
    Uidl: "UIDL",
    Top: "TOP",
    Retr: "RETR",
    Dele: "DELE",
    Noop: "NOOP",
    Rset: "RSET",
    Capa: "CAPA",
    Stls: "STLS",
    Utf8: "UTF8",
    User: "USER",
    Pass: "PASS",
    Apop: "APOP",
    Auth: "AUTH",
    Quit: "QUIT",
    Greeting: "greeting",
    AuthReply: "AUTH",
}


def encode(command: Command | AuthReply) -> bytes:
    """The command line for `command`, CRLF included (no state involved)."""
    match command:
        case Greeting():
            raise ValueError("The greeting is not sent")
        case AuthReply(data):
            return base64.b64encode(data) + b"\r\n"
        case Auth(mechanism, initial):
            words = [mechanism] if initial is None else [mechanism, _initial_response(initial)]
        case User(name):
            words = [name]
        case Pass(password):
            words = [password]
        case Apop(name, digest):
            words = [name, digest]
        case Top(msg, lines):
            words = [_number(msg), _number(lines, minimum=0)]
        case Retr(msg) | Dele(msg):
            words = [_number(msg)]
        case List(msg) | Uidl(msg):
            words = [] if msg is None else [_number(msg)]
        case _:
            words = []
    if any(_UNSAFE.search(word) for word in words):
        raise ValueError(f"{verb(command)} arguments cannot hold CR, LF or NUL")
    return " ".join([verb(command), *words]).encode() + b"\r\n"


def _initial_response(data: bytes) -> str:
    # RFC 5034: an empty initial response is sent as "=".
    return base64.b64encode(data).decode() or "="


def _number(value: int, *, minimum: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected an integer >= {minimum}, got {value!r}")
    return str(value)
