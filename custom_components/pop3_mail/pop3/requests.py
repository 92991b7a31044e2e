"""The commands a caller can pipeline, as plain values with a typed result.

Each request names one POP3 command and is a `Request[T]`, where `T` is what
its +OK answer parses to. `POP3Session.request()` returns that `T`;
`POP3Session.pipeline()` answers a list of requests with a list of results in
the same order: the parsed value, or a `POP3ResponseError` for a -ERR answer.

| request            | result                      |
|--------------------|-----------------------------|
| `Stat()`           | `StatResult(count, size)`   |
| `Sizes(n)`         | `int` (octets)              |
| `Sizes()`          | `dict[int, int]`            |
| `Uidl(n)`          | `str`                       |
| `Uidl()`           | `dict[int, str]`            |
| `Top(n, lines)`    | `bytes`                     |
| `Retr(n)`          | `bytes`                     |
| `Dele(n)`, `Noop()`, `Rset()` | `None`           |

`Sizes` is the LIST command; `List` is kept as an alias of it for old callers
(the name shadows the built-in `list`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, cast, overload


class StatResult(NamedTuple):
    """Answer to STAT: messages in the maildrop and their total size in octets."""

    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the POP3 name
    size: int


type Result = StatResult | int | str | bytes | dict[int, int] | dict[int, str] | None


class Request[T = Result]:
    """A pipelinable command whose +OK answer parses to a `T`."""

    __slots__ = ()

    def result(self, value: object) -> T:
        """`value`, as the type this request's answer has.

        The one cast of the client: the protocol builds each answer's value by
        the type of the request it answers (see `readers`), so it is a `T`.
        """
        return cast("T", value)


@dataclass(frozen=True, slots=True)
class Stat(Request[StatResult]):
    """STAT."""


@dataclass(frozen=True, slots=True, init=False)
class Sizes[T: int | dict[int, int] = int | dict[int, int]](Request[T]):
    """LIST (every message's size), or LIST n when `msg` is given."""

    msg: int | None

    @overload
    def __init__(self: Sizes[dict[int, int]], msg: None = None) -> None: ...
    @overload
    def __init__(self: Sizes[int], msg: int) -> None: ...
    def __init__(self, msg: int | None = None) -> None:
        """LIST without `msg`, LIST msg with it."""
        object.__setattr__(self, "msg", msg)


#: The old name of `Sizes`, kept for existing callers; it shadows the built-in `list`.
List = Sizes


@dataclass(frozen=True, slots=True, init=False)
class Uidl[T: str | dict[int, str] = str | dict[int, str]](Request[T]):
    """UIDL, or UIDL n when `msg` is given."""

    msg: int | None

    @overload
    def __init__(self: Uidl[dict[int, str]], msg: None = None) -> None: ...
    @overload
    def __init__(self: Uidl[str], msg: int) -> None: ...
    def __init__(self, msg: int | None = None) -> None:
        """UIDL without `msg`, UIDL msg with it."""
        object.__setattr__(self, "msg", msg)


@dataclass(frozen=True, slots=True)
class Top(Request[bytes]):
    """TOP n lines: the headers and the first `lines` lines of the body."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Retr(Request[bytes]):
    """RETR n: the whole message."""

    msg: int


@dataclass(frozen=True, slots=True)
class Dele(Request[None]):
    """DELE n: mark for deletion (done by the server at QUIT)."""

    msg: int


@dataclass(frozen=True, slots=True)
class Noop(Request[None]):
    """NOOP."""


@dataclass(frozen=True, slots=True)
class Rset(Request[None]):
    """RSET: unmark every message marked for deletion."""
