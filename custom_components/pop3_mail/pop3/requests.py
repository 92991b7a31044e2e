"""The commands a caller can pipeline, as plain values.

Each request names one POP3 command. `POP3Session.pipeline()` answers a list of
requests with a list of results in the same order: the parsed value, or a
`POP3ResponseError` for a -ERR answer.

| request            | result                      |
|--------------------|-----------------------------|
| `Stat()`           | `StatResult(count, size)`   |
| `List(n)`          | `int` (octets)              |
| `List()`           | `dict[int, int]`            |
| `Uidl(n)`          | `str`                       |
| `Uidl()`           | `dict[int, str]`            |
| `Top(n, lines)`    | `bytes`                     |
| `Retr(n)`          | `bytes`                     |
| `Dele(n)`, `Noop()`, `Rset()` | `None`           |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class StatResult(NamedTuple):
    """Answer to STAT: messages in the maildrop and their total size in octets."""

    count: int  # type: ignore[assignment]  # shadows tuple.count on purpose: the POP3 name
    size: int


@dataclass(frozen=True, slots=True)
class Stat:
    """STAT."""


@dataclass(frozen=True, slots=True)
class List:
    """LIST, or LIST n when `msg` is given."""

    msg: int | None = None


@dataclass(frozen=True, slots=True)
class Uidl:
    """UIDL, or UIDL n when `msg` is given."""

    msg: int | None = None


@dataclass(frozen=True, slots=True)
class Top:
    """TOP n lines: the headers and the first `lines` lines of the body."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Retr:
    """RETR n: the whole message."""

    msg: int


@dataclass(frozen=True, slots=True)
class Dele:
    """DELE n: mark for deletion (done by the server at QUIT)."""

    msg: int


@dataclass(frozen=True, slots=True)
class Noop:
    """NOOP."""


@dataclass(frozen=True, slots=True)
class Rset:
    """RSET: unmark every message marked for deletion."""


type Request = Stat | List | Uidl | Top | Retr | Dele | Noop | Rset
type Result = StatResult | int | str | bytes | dict[int, int] | dict[int, str] | None
