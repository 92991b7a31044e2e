"""What the protocol speaks in: the commands the client sends and the answers it gets.

The pipelinable commands are in `requests`; here are the ones that negotiate
and log in, the server's answers (`Reply`, `Challenge`), `Capabilities`, and
the `NEED_DATA` sentinel. All are plain frozen values, as h11's events are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import re
from typing import Final, Literal

from .errors import (
    POP3AuthError,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ResponseError,
    POP3TempError,
)
from .requests import Dele, Noop, Request, Result, Retr, Rset, Sizes, Stat, Top, Uidl


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
    # The digest can be attacked offline for the password: never in a repr or a log.
    digest: str

    def __repr__(self) -> str:
        return f"Apop(name={self.name!r}, digest='***')"


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


type Command = Request[object] | Greeting | Capa | Stls | Utf8 | User | Pass | Apop | Auth | Quit

LOGIN_COMMANDS: Final = (User, Pass, Apop, Auth)


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
    dot-unstuffed), `Capabilities`, or None. `text` is the rest of the status
    line, cut to a bounded length, with any secret the client sent replaced
    by ``***``.
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


_PLAINTEXT_HINT: Final = re.compile(
    r"plain\s*text|clear\s*text|\btls\b|\bssl\b|secure|encrypt", re.IGNORECASE
)
_BY_CODE: Final[dict[str, type[POP3ResponseError]]] = {
    "IN-USE": POP3InUseError,
    "LOGIN-DELAY": POP3LoginDelayError,
    "SYS/TEMP": POP3TempError,
    "SYS/PERM": POP3PermError,
}


def response_error(command: Command | None, code: str | None, text: str) -> POP3ResponseError:
    """The exception class for a -ERR answer: by response code, else by the command answered."""
    word = None if command is None or isinstance(command, Greeting) else verb(command)
    if code in _BY_CODE:
        return _BY_CODE[code](text, code, word)
    if isinstance(command, LOGIN_COMMANDS) or code == "AUTH":
        if isinstance(command, LOGIN_COMMANDS) and _PLAINTEXT_HINT.search(text):
            return POP3PlaintextRefusedError(text, code, word)
        return POP3AuthError(text, code, word)
    return POP3ResponseError(text, code, word)


def verb(command: Command | AuthReply) -> str:
    """The command word of `command` ("RETR"), for messages; never its arguments."""
    return _VERBS[type(command)]


_VERBS: Final[dict[type, str]] = {
    Stat: "STAT",
    Sizes: "LIST",
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
