"""The check planner: what to ask the server, and what is new.

A sans-I/O state machine in the h11 manner. The caller owns the POP3 session and
drives the planner with a short loop::

    checker = MailboxCheck(state.known_uids, state.size, top_lines=..., newest_known=...)
    requests = checker.first_requests()           # e.g. [Stat(), Uidl(n)]
    while requests:
        results = await session.pipeline(requests)
        requests = checker.feed(results)          # the next batch, or [] when done
    outcome = checker.outcome()                   # CheckOutcome

Public names:

- `MailboxCheck(known_uids, known_size, *, top_lines, newest_known, batch_size)`:
  one check of one mailbox. `known_uids` is None for the very first check (the
  baseline: nothing is new). `first_requests()`, `feed(results)`, `done`,
  `expects_full_list` (the pending round is the full UIDL list, the one costly
  `feed`), `outcome()`.
- `CheckOutcome`: what the check found (frozen).
- `NewMessage(uid, number, size, raw_top)`: a message whose headers were fetched.
- `default_batch_size(top_lines)`: messages fetched per round.

Only STAT, LIST, UIDL and TOP are ever requested: checking is read-only.

Bounds (the server is hostile until proven otherwise):

- Nothing is built from a count the server merely claims: numbers still to ask
  about are ranges, and lists grow only with answers actually received.
- A STAT count above `MAX_MESSAGES` (1,000,000) or a size above
  `MAX_MAILBOX_BYTES` (2^63 - 1, what a JSON save can hold) is a
  `POP3ProtocolError`: the check fails and the caller backs off. A million is
  where the full UIDL list reaches the per-answer cap of the client (70-octet
  uids) and ~100 MB of Python objects; no mailbox a home automation polls is
  larger, and a server claiming more is broken or hostile.
- Memory budget: one check holds at most `CHECK_BUDGET` (128 MiB) of fetched
  TOP answers, counted with `_MESSAGE_OVERHEAD` bytes of bookkeeping per
  message. Each TOP answer is at most `answer_limit` bytes (`CHECK_ANSWER_LIMIT`,
  4 MiB; the caller caps the session's answers at `MailboxCheck.answer_limit` for
  each round of TOPs, and a larger answer that reaches the planner anyway is a
  `POP3ProtocolError`), so a round asks for at most (budget - held) / answer_limit
  TOPs and the worst case of every round is inside the budget before it is sent.
  The full UIDL list is not part of the budget: it keeps the client's own cap
  (64 MiB) and `MAX_MESSAGES`. A message whose TOP answer is larger than 4 MiB
  (headers, plus `top_lines` body lines) fails every check until it is gone:
  mail servers cut headers far below that and split long lines, but a check that
  skips such a message needs the client to discard one oversize answer and go on.
  When no further TOP fits, the check stops fetching and finishes with what it
  has: the new messages fetched so far, a prefix in arrival order, are the
  outcome, and `deferred` says how many were left for the next check (the state
  records only the prefix as known, so the next check finds the rest as new).
  One answer larger than the budget cannot exist: the per-answer cap is below it.

Progress kept: `partial_outcome()` of a check that failed in a later round (a
timeout, a dropped connection) is the outcome of the rounds that completed,
covering a prefix of the new messages in arrival order, or None when nothing can
be kept. Applying and announcing it loses nothing: the messages left out are not
recorded as known, so the next check finds them.

A mailbox that looks empty: a server rebuilding its index may answer
``+OK 0 0`` once and come back with the same mail. The caller keeps the uids it
knew as `vanished` tombstones (see `sync/state.py`) and passes them here: the
check then asks for the full UIDL list, and a uid that comes back is not new.

How a check goes (n known uids, the last one `last`):

1. STAT, and ``UIDL n`` when n > 0 (the full ``UIDL`` on the first check ever).
2. count == n, size unchanged and ``UIDL n`` == last: unchanged, done; the full
   UIDL list is never downloaded.
3. count > n and ``UIDL n`` == last: k = count - n messages were appended.
   ``UIDL i``, ``LIST i`` and ``TOP i`` for each, in batches. If one of them turns
   out to carry a known uid, or the sizes do not add up to the STAT size (mail
   was also removed or reordered), fall back to 4; TOPs already fetched are kept.
4. Anything else (fewer messages, a different uid at n, ``UIDL n`` refused, a
   server without ``UIDL n``): the full UIDL list and a set difference. New uids
   are reported in server order, so mail a Courier-style server inserts in the
   middle is found too. Sizes come from ``LIST i`` of the new messages only,
   fetched with their TOPs, instead of the full LIST.
5. Every known uid gone while the server is not empty: when the mailbox may hold the
   same mail under new ids (as many messages of the same total size, or more), the
   server renumbered its ids: the check re-baselines (`rebaselined=True`) and
   announces nothing. With fewer messages, or as many of another size, the known
   mail was deleted and everything there now is new (see `_looks_renumbered`).

Steps 2 and 3 trust (count, uid at n, total size) as every POP3 client must
without the full list: a message replaced below n by one of exactly the same
size goes unseen until the next full list. After step 2 `uids` is the known
list, so a reordering that keeps the last message in place is not reflected.

The newest message (last in server order) feeds the `last_message` sensor: when
its uid is not `newest_known` (the uid whose headers the caller already has) and
it is not new anyway, it is fetched with ``TOP n 0`` and returned as `newest`.

A broken server may list one uid twice: `uids` keeps the list as the server sent
it, and a uid is announced once, at its first position.

Errors: a -ERR to STAT, or to the full UIDL list (nothing identifies messages
without it), is raised. A -ERR to ``UIDL n`` or ``UIDL i`` means the server
cannot be trusted to answer by number: fall back to the full list. A -ERR to
``TOP i`` still announces the message, with empty `raw_top` (announcing it later
would need a TOP that may never work); a -ERR to ``LIST i`` gives size 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from itertools import compress, filterfalse
from typing import TYPE_CHECKING, Final, cast

from custom_components.pop3_mail.pop3.errors import (
    POP3AnswerTooLargeError,
    POP3ProtocolError,
    POP3ResponseError,
)
from custom_components.pop3_mail.pop3.requests import (
    List,
    Request,
    Result,
    Stat,
    StatResult,
    Top,
    Uidl,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

#: The most messages whose headers one round asks for.
MAX_BATCH: Final = 200
#: Roughly how many lines of TOP answers one round may hold.
_LINES_PER_ROUND: Final = 40_000
#: Lines of headers assumed per message when sizing a batch.
_HEADER_LINES: Final = 60

type CheckResult = Result | POP3ResponseError

#: The most messages a maildrop may hold; a STAT count above it is a protocol error.
MAX_MESSAGES: Final = 1_000_000
#: The largest total size a STAT may report: what a JSON save (64-bit integers) can hold.
MAX_MAILBOX_BYTES: Final = 2**63 - 1
#: The most bytes of fetched answers one check holds (see the module docstring).
CHECK_BUDGET: Final = 128 * 2**20
#: The per-answer cap a check session is opened with: far above any real header block.
CHECK_ANSWER_LIMIT: Final = 4 * 2**20
#: Bytes charged per fetched message for its bookkeeping (uid, size, dict entries).
_MESSAGE_OVERHEAD: Final = 512


#: Uids per C-level set operation in a full-list check (about 1 ms each).
_SLICE: Final = 10_000


def _slices(uids: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """`uids` in consecutive slices of `_SLICE`."""
    for start in range(0, len(uids), _SLICE):
        yield uids[start : start + _SLICE]


def default_batch_size(top_lines: int) -> int:
    """Messages fetched per round: 200 for headers only, fewer when body lines are asked for."""
    return max(8, min(MAX_BATCH, _LINES_PER_ROUND // (top_lines + _HEADER_LINES)))


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message whose headers (and `top_lines` body lines) were fetched during the check.

    `number` is its message number in this session; `raw_top` is the TOP answer
    (CRLF line ends, dot-unstuffed), or b"" when the server refused the TOP.
    """

    uid: str
    number: int
    size: int
    raw_top: bytes


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check found.

    - `count`, `size`: the STAT answer.
    - `uids`: every uid on the server, in server order (as sent, duplicates included).
    - `new`: messages not known before, in arrival (server) order; empty on the
      first check and on a re-baseline.
    - `removed`: known uids no longer on the server.
    - `rebaselined`: every known uid vanished at once and the server is not empty.
    - `full_list`: the full UIDL list was downloaded.
    - `newest`: the last message in server order, when its headers were fetched
      in this check (it is new, or its uid is not the caller's `newest_known`);
      None when the mailbox is empty or the caller already has its headers.
      In a partial outcome: the last message it covers, when fetched.
    - `deferred`: new messages seen but left for the next check (the budget ran
      out, or a later round failed); 0 for a complete check. A partial outcome's
      `uids`, `count` and `size` describe only what it covers.
    """

    count: int
    size: int
    uids: tuple[str, ...]
    new: tuple[NewMessage, ...]
    removed: frozenset[str]
    rebaselined: bool
    full_list: bool
    newest: NewMessage | None
    deferred: int = 0


class _Phase(Enum):
    START = auto()
    FIRST = auto()
    APPENDED = auto()
    FULL_LIST = auto()
    FETCH = auto()
    DONE = auto()


@dataclass(slots=True)
class _Fetched:
    """Answers gathered for one message number."""

    uid: str | None = None
    size: int | None = None
    raw_top: bytes | None = None


def _complete(entry: _Fetched) -> bool:
    return entry.raw_top is not None and entry.size is not None


def _cost(entry: _Fetched) -> int:
    """Bytes an entry counts against the budget."""
    return 0 if entry.raw_top is None else len(entry.raw_top) + _MESSAGE_OVERHEAD


class MailboxCheck:
    """One read-only check of a mailbox, as a sans-I/O state machine (see the module docstring)."""

    def __init__(
        self,
        known_uids: Sequence[str] | None,
        known_size: int = 0,
        *,
        top_lines: int = 0,
        newest_known: str | None = None,
        batch_size: int | None = None,
        vanished: Sequence[str] | None = None,
        vanished_size: int = 0,
        budget: int | None = None,
        answer_limit: int | None = None,
    ) -> None:
        """Plan a check.

        `known_uids` (server order) and `known_size` describe the mailbox after the
        previous check; None for the first check ever (baseline). `top_lines` is the
        number of body lines fetched with each new message's headers. `newest_known`
        is the uid of the message whose headers the caller already shows as the
        newest (`last_message`). `vanished` (server order) and `vanished_size` are
        the uids of a mailbox that last looked empty (tombstones); a uid among them
        that comes back is not new. `budget` and `answer_limit` bound the bytes of
        fetched answers held at once and of one answer (`CHECK_BUDGET` and
        `CHECK_ANSWER_LIMIT` when None).
        """
        budget = CHECK_BUDGET if budget is None else budget
        answer_limit = CHECK_ANSWER_LIMIT if answer_limit is None else answer_limit
        if top_lines < 0:
            raise ValueError("top_lines must be >= 0")
        if answer_limit <= 0 or answer_limit + _MESSAGE_OVERHEAD > budget:
            # At least one message fits every check: a check always makes progress.
            raise ValueError("answer_limit must be > 0 and leave room for one message in budget")
        self._baseline = known_uids is None
        self._known: tuple[str, ...] = () if known_uids is None else tuple(known_uids)
        self._known_size = known_size
        self._top_lines = top_lines
        self._newest_known = newest_known
        self._vanished: tuple[str, ...] = tuple(vanished or ())
        self._vanished_size = vanished_size
        self._budget = budget
        self._answer_limit = answer_limit
        # Bytes of fetched answers held now, bookkeeping included.
        self._held = 0
        self._deferred = 0
        self._batch = batch_size if batch_size is not None else default_batch_size(top_lines)
        if self._batch < 1:
            raise ValueError("batch_size must be >= 1")
        self._phase = _Phase.START
        self._pending: list[Request] = []
        self._count = 0
        self._size = 0
        # Answers by message number; they survive a fallback from APPENDED to FULL_LIST.
        self._fetched: dict[int, _Fetched] = {}
        # Message numbers still to ask about, in the current phase: a range until the
        # server has sent the list, so a claimed count never allocates anything.
        self._todo: Sequence[int] = ()
        # The server's list as far as this check knows it: uids[i] is message numbers[i].
        self._uids: tuple[str, ...] = ()
        self._numbers: Sequence[int] = ()
        # Positions (into `_uids`) of the messages to announce, in server order.
        self._new: list[int] = []
        self._new_numbers: frozenset[int] = frozenset()
        self._removed: frozenset[str] = frozenset()
        self._fetch_newest = False
        self._full_list = False
        self._rebaselined = False
        self._outcome: CheckOutcome | None = None

    # -- driving -----------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once `outcome()` is available."""
        return self._phase is _Phase.DONE

    def first_requests(self) -> list[Request]:
        """The first round: STAT, and UIDL n for the last known message (full UIDL at baseline)."""
        if self._phase is not _Phase.START:
            raise RuntimeError("first_requests() was already called")
        self._phase = _Phase.FIRST
        requests: list[Request] = [Stat()]
        if self._baseline:
            # A baseline always needs every uid: ask for the list in the first round.
            self._full_list = True
            requests.append(Uidl())
        elif self._known:
            requests.append(Uidl(len(self._known)))
        return self._send(requests)

    def feed(self, results: Sequence[CheckResult]) -> list[Request]:
        """Take the answers to the last requests (same order); return the next round, or []."""
        if self._phase in (_Phase.START, _Phase.DONE):
            raise RuntimeError(f"feed() called in phase {self._phase.name}")
        if len(results) != len(self._pending):
            raise ValueError(f"expected {len(self._pending)} results, got {len(results)}")
        pending, self._pending = self._pending, []
        match self._phase:
            case _Phase.FIRST:
                return self._send(self._after_first(results))
            case _Phase.APPENDED:
                return self._send(self._after_appended(pending, results))
            case _Phase.FULL_LIST:
                return self._send(self._after_full_list(results[0]))
            case _:
                self._record(pending, results)
                return self._send(self._next_fetch())

    @property
    def answer_limit(self) -> int | None:
        """The per-answer cap the pending round needs, or None for the session's own.

        A round of TOPs is sized so that each answer at `answer_limit` still fits the
        budget: the caller must cap the session's answers at it for that round (listings
        keep the client's larger cap, bounded by `MAX_MESSAGES`).
        """
        if any(isinstance(request, Top) for request in self._pending):
            return self._answer_limit
        return None

    @property
    def expects_full_list(self) -> bool:
        """True when the pending round is the full UIDL list.

        Feeding a full list costs a few set operations over every uid (about 10 ms
        for 100,000 uids on a desktop CPU); a caller holding very large mailboxes may
        run that one `feed()` in an executor.
        """
        return self._phase is _Phase.FULL_LIST or (self._full_list and self._phase is _Phase.FIRST)

    def outcome(self) -> CheckOutcome:
        """The result of the finished check."""
        if self._outcome is None:
            raise RuntimeError("the check is not finished")
        return self._outcome

    # -- rounds --------------------------------------------------------------

    def _after_first(self, results: Sequence[CheckResult]) -> list[Request]:
        stat = results[0]
        if isinstance(stat, POP3ResponseError):
            raise stat
        if not isinstance(stat, StatResult):
            raise TypeError(f"STAT answered with {type(stat).__name__}")
        if not 0 <= stat.count <= MAX_MESSAGES or not 0 <= stat.size <= MAX_MAILBOX_BYTES:
            raise POP3ProtocolError(
                f"STAT claims {stat.count} messages of {stat.size} octets: more than "
                f"{MAX_MESSAGES} messages or {MAX_MAILBOX_BYTES} octets is not a real maildrop"
            )
        self._count, self._size = stat.count, stat.size
        known = len(self._known)
        if self._count == 0:
            # Every known uid is gone, but into an empty mailbox: nothing to re-baseline.
            self._removed = frozenset(self._known)
            return self._finish()
        if self._full_list:
            return self._after_full_list(results[1])
        if self._vanished:
            # Mail that was there before the mailbox looked empty may be back: only the
            # full list can tell it from new mail.
            return self._start_full_list()
        if known == 0:
            return self._start_appended()
        last = results[1]
        if isinstance(last, str) and last == self._known[-1]:
            if self._count == known and self._size == self._known_size:
                self._uids, self._numbers = self._known, range(1, known + 1)
                return self._start_fetch()
            if self._count > known:
                return self._start_appended()
        return self._start_full_list()

    def _start_appended(self) -> list[Request]:
        self._phase = _Phase.APPENDED
        self._todo = range(len(self._known) + 1, self._count + 1)
        return self._appended_round()

    def _round_size(self) -> int:
        """How many TOPs the next round may ask for: their worst case must fit the budget."""
        room = (self._budget - self._held) // (self._answer_limit + _MESSAGE_OVERHEAD)
        return max(0, min(self._batch, room))

    def _appended_round(self) -> list[Request]:
        size = self._round_size()
        if size == 0:
            # The budget is spent: announce what is complete, the rest next check.
            self._outcome = self._partial()
            self._phase = _Phase.DONE
            return []
        batch, self._todo = self._todo[:size], self._todo[size:]
        requests: list[Request] = []
        for number in batch:
            requests += (Uidl(number), List(number), Top(number, self._top_lines))
        return requests

    def _after_appended(
        self, pending: Sequence[Request], results: Sequence[CheckResult]
    ) -> list[Request]:
        self._record(pending, results)
        batch_uids = {
            self._fetched[request.msg].uid
            for request in pending
            if isinstance(request, Uidl) and request.msg is not None
        }
        if None in batch_uids or not batch_uids.isdisjoint(self._known):
            # Refused, or a known message listed again: the numbers cannot be trusted.
            return self._start_full_list()
        if self._todo:
            return self._appended_round()
        known = len(self._known)
        added = range(known + 1, self._count + 1)
        if self._known_size + sum(self._fetched[n].size or 0 for n in added) != self._size:
            # Mail was also removed or replaced below n: only the full list can tell which.
            return self._start_full_list()
        self._uids = self._known + tuple(self._fetched[n].uid or "" for n in added)
        self._numbers = range(1, self._count + 1)
        self._new = self._first_occurrences(range(known, self._count))
        return self._start_fetch()

    def _start_full_list(self) -> list[Request]:
        self._phase = _Phase.FULL_LIST
        self._full_list = True
        return [Uidl()]

    def _after_full_list(self, listing: CheckResult) -> list[Request]:
        if isinstance(listing, POP3ResponseError):
            raise listing
        if not isinstance(listing, dict):
            raise TypeError(f"UIDL answered with {type(listing).__name__}")
        if len(listing) > MAX_MESSAGES:
            raise POP3ProtocolError(f"UIDL lists more than {MAX_MESSAGES} messages")
        uid_of = cast("dict[int, str]", listing)
        numbers = list(uid_of)
        if numbers != sorted(numbers):
            numbers.sort()
            self._uids = tuple(uid_of[number] for number in numbers)
        else:
            self._uids = tuple(uid_of.values())
        dense = not numbers or (numbers[0] == 1 and numbers[-1] == len(numbers))
        self._numbers = range(1, len(numbers) + 1) if dense else numbers
        if self._fetched:
            for number in list(self._fetched):
                if self._fetched[number].uid != uid_of.get(number):
                    # Answers from the abandoned appended path that belong to another message.
                    self._held -= _cost(self._fetched.pop(number))
        if not self._uids:
            # STAT counted messages the list does not show: a broken server; take it as empty.
            self._removed = frozenset(self._known)
            return self._finish()
        if self._baseline or self._uids == self._known:
            # Nothing changed (a server without UIDL n lands here): no set work at all.
            return self._start_fetch()
        if self._vanished:
            return self._after_vanished()
        # One set of the server's uids answers every question: passes in C over the uids
        # (build it, look the known ones up, take them out), no Python loop. In slices:
        # the caller runs this in a thread, and one C call over 100,000 uids would keep
        # the event loop from the GIL for its whole ~13 ms.
        on_server: set[str] = set()
        for part in _slices(self._uids):
            on_server.update(part)
        removed: set[str] = set()
        for part in _slices(self._known):
            removed.update(filterfalse(on_server.__contains__, part))
        self._removed = frozenset(removed)
        if (
            self._known
            and all(map(on_server.isdisjoint, _slices(self._known)))
            and self._looks_renumbered()
        ):
            self._rebaselined = True
            return self._start_fetch()
        for part in _slices(self._known):
            on_server.difference_update(part)
        if on_server:
            self._new = self._first_occurrences(
                compress(range(len(self._uids)), map(on_server.__contains__, self._uids))
            )
        return self._start_fetch()

    def _after_vanished(self) -> list[Request]:
        """Mail is back after the mailbox looked empty: tombstoned uids are not new.

        No tombstone back while the server holds exactly as many messages of the same
        total size as vanished is the same mail under new ids (a rebuild that renumbered):
        re-baselined. Anything else that is not a tombstone arrived since: announced, so
        mail delivered after another client really emptied the mailbox is not lost.
        """
        old = set(self._known)
        old.update(self._vanished)
        on_server = set(self._uids)
        self._removed = frozenset(uid for uid in self._known if uid not in on_server)
        if (
            on_server.isdisjoint(old)
            and self._count == len(self._vanished) + len(self._known)
            and self._size == self._vanished_size + self._known_size
        ):
            self._rebaselined = True
            return self._start_fetch()
        self._new = self._first_occurrences(
            position for position, uid in enumerate(self._uids) if uid not in old
        )
        return self._start_fetch()

    def _looks_renumbered(self) -> bool:
        """Whether a mailbox where no known uid is left may hold the same mail under new ids.

        A renumbering keeps every message, so the count cannot drop and, with nothing else
        changed, the total size stays. Fewer messages, or as many of another total size, mean
        the known mail was deleted (another client emptied the mailbox) and what is there now
        arrived since: announced, not taken as a new baseline. More messages cannot be told
        apart from a renumbering plus arrivals; re-baselining there risks missing a few new
        messages rather than announcing a whole old mailbox again.
        """
        known = len(self._known)
        return self._count > known or (self._count == known and self._size == self._known_size)

    def _start_fetch(self) -> list[Request]:
        """Fetch what the new messages and the newest one still lack, or finish."""
        self._phase = _Phase.FETCH
        numbers = [self._numbers[i] for i in self._new]
        self._new_numbers = frozenset(numbers)
        newest = len(self._uids) - 1
        newest_is_new = bool(self._new) and self._new[-1] == newest
        self._fetch_newest = newest_is_new or self._uids[newest] != self._newest_known
        if self._fetch_newest and not newest_is_new:
            numbers.append(self._numbers[newest])
        fetched = self._fetched
        self._todo = [
            number
            for number in numbers
            if (entry := fetched.get(number)) is None or entry.raw_top is None or entry.size is None
        ]
        return self._next_fetch()

    def _next_fetch(self) -> list[Request]:
        if not self._todo:
            return self._finish()
        size = self._round_size()
        if size == 0:
            # The budget is spent: announce what is complete, the rest next check.
            self._outcome = self._partial()
            self._phase = _Phase.DONE
            return []
        batch, self._todo = self._todo[:size], self._todo[size:]
        requests: list[Request] = []
        for number in batch:
            lines = self._top_lines if number in self._new_numbers else 0
            requests += (List(number), Top(number, lines))
        return requests

    # -- bookkeeping ----------------------------------------------------------

    def _record(self, pending: Sequence[Request], results: Sequence[CheckResult]) -> None:
        """Store the answers of a round by message number; -ERR answers become placeholders."""
        for request, result in zip(pending, results, strict=True):
            match request:
                case Uidl(msg=int(number)):
                    entry = self._fetched.setdefault(number, _Fetched())
                    entry.uid = result if isinstance(result, str) else None
                case List(msg=int(number)):
                    entry = self._fetched.setdefault(number, _Fetched())
                    entry.size = result if isinstance(result, int) else 0
                case Top(msg=number):
                    entry = self._fetched.setdefault(number, _Fetched())
                    raw = result if isinstance(result, bytes) else b""
                    if len(raw) > self._answer_limit:
                        raise POP3AnswerTooLargeError(
                            f"TOP {number} answered {len(raw)} octets, more than the "
                            f"{self._answer_limit} a check session allows"
                        )
                    self._held -= _cost(entry)
                    entry.raw_top = raw
                    self._held += _cost(entry)
                case _:
                    raise TypeError(f"unexpected request {request!r}")

    def _first_occurrences(self, positions: Iterable[int]) -> list[int]:
        """The positions whose uid was not seen at an earlier one of them (a broken server)."""
        seen: set[str] = set()
        first: list[int] = []
        for position in positions:
            uid = self._uids[position]
            if uid not in seen:
                seen.add(uid)
                first.append(position)
        return first

    def _message(self, position: int) -> NewMessage:
        number = self._numbers[position]
        fetched = self._fetched.get(number, _Fetched())
        return NewMessage(self._uids[position], number, fetched.size or 0, fetched.raw_top or b"")

    def _finish(self) -> list[Request]:
        new = tuple(self._message(position) for position in self._new)
        newest: NewMessage | None = None
        if self._fetch_newest:
            newest = self._message(len(self._uids) - 1)
        self._outcome = CheckOutcome(
            count=self._count,
            size=self._size,
            uids=self._uids,
            new=() if self._rebaselined else new,
            removed=self._removed,
            rebaselined=self._rebaselined,
            full_list=self._full_list,
            newest=newest,
        )
        self._phase = _Phase.DONE
        return []

    # -- progress kept -------------------------------------------------------------

    def partial_outcome(self) -> CheckOutcome | None:
        """What can be kept of a check that stopped early (a later round failed).

        The outcome of a finished check; else, once the new messages are known
        (appended ones checked round by round, or the full list), an outcome covering
        the new messages fetched completely, a prefix in arrival order, with
        `deferred` > 0 for those left out; None when nothing can be kept (the check
        failed before it knew what is new).
        """
        if self._outcome is not None:
            return self._outcome
        if self._phase is _Phase.APPENDED and self._fetched:
            return self._partial()
        if self._phase is _Phase.FETCH:
            return self._partial()
        return None

    def _partial(self) -> CheckOutcome:
        """The outcome of the new messages fetched completely so far (a prefix), see above."""
        if self._phase is _Phase.APPENDED:
            known = len(self._known)
            # Rounds go in number order and each was checked to hold only unknown uids.
            last = known
            while (entry := self._fetched.get(last + 1)) is not None and _complete(entry):
                last += 1
            self._uids = self._known + tuple(
                self._fetched[n].uid or "" for n in range(known + 1, last + 1)
            )
            self._numbers = range(1, last + 1)
            self._new = self._first_occurrences(range(known, last))
            size = self._known_size + sum(
                self._fetched[n].size or 0 for n in range(known + 1, last + 1)
            )
            deferred = self._count - last
            kept = self._new
        else:
            kept = []
            for position in self._new:
                entry = self._fetched.get(self._numbers[position])
                if entry is None or not _complete(entry):
                    break
                kept.append(position)
            left = {self._uids[i] for i in self._new[len(kept) :]}
            deferred = len(left)
            size = self._size
            if left:
                # Left-out uids must not be recorded as known (nor a second listing of one
                # by a broken server); the size then no longer matches, so the next check
                # takes the full list and finds them.
                positions = [i for i, uid in enumerate(self._uids) if uid not in left]
                self._uids = tuple(self._uids[i] for i in positions)
                self._numbers = [self._numbers[i] for i in positions]
                renumber = {old: new for new, old in enumerate(positions)}
                kept = [renumber[i] for i in kept]
        newest: NewMessage | None = None
        if self._uids:
            entry = self._fetched.get(self._numbers[len(self._uids) - 1])
            if entry is not None and _complete(entry):
                newest = self._message(len(self._uids) - 1)
        new = tuple(self._message(position) for position in kept)
        return CheckOutcome(
            count=len(self._uids),
            size=size,
            uids=self._uids,
            new=() if self._rebaselined else new,
            removed=self._removed,
            rebaselined=self._rebaselined,
            full_list=self._full_list,
            newest=newest,
            deferred=deferred,
        )

    def _send(self, requests: list[Request]) -> list[Request]:
        self._pending = requests
        return requests
