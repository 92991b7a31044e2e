"""The persisted state of one mailbox, and how a check, a read or a deletion changes it.

Public names:

- `MailboxState`: frozen; every change returns a new state. `known_uids` (server
  order, as the last check saw them), `size` (bytes, from STAT), `unread`,
  `last_message`, `archived`, `archive_baseline`, `initialised`, `summaries`,
  `vanished`, `watch_last`.
- `LastMessage(uid, sender, subject, date)`: what the `last_message` sensor shows.
- `Vanished(uids, size, unread, archived, archive_baseline)`: tombstones of the
  mail known when the mailbox last looked empty.
- `ArchiveRecord(filename, size, archived_at)`: a message saved to the archive
  folder (written and read by the archive/retention code).
- `apply(state, outcome, *, last_message=None, summaries=None)`: the state after a check.
- `mark_read(state, uid)`, `forget(state, uids, *, freed_bytes=None)`.
- `set_watch_last(state, lasts, *, watch_ids)`: the state with these per-watch last messages.
- `start_archive(state)` / `stop_archive(state)`: archiving turned on / off.
- `new_check(state, *, top_lines)`: the `MailboxCheck` for the next check.
- `to_dict(state)` / `from_dict(data)`: JSON-safe form for the Home Assistant
  `Store`, with a `version` field; `StateFormatError` for data we cannot read.
  `upgrade(data)`: a dict of an older layout in today's (`STATE_VERSION`);
  version 1 (no `vanished`) reads as nothing vanished, never as a new baseline.

Rules:

- Mail on the server at the first check (the baseline) and after a re-baseline
  counts as read; every other new uid starts unread.
- A uid that leaves the server leaves `known_uids`, `unread` and `archived`: an
  archive record only matters while its message is on the server (retention
  deletes archived messages; a message that is gone has nothing left to delete).
- `last_message` stays while its uid is still the newest on the server.
- `watch_last` (a `LastMessage` per watch `key`, the newest message each watch matched)
  stays while its uid is on the server, read or not: reading never drops it, deletion
  and mail leaving the server (or the mailbox looking empty) do. Which watch matches
  what is not known here: `watch_index.WatchIndex.settle` fills and replaces entries.
- `summaries` (`sync.watches.MessageSummary` by uid, in arrival order) holds one
  summary per unread message that has one, and nothing else: reading a message,
  deleting it or its leaving the server drops its summary. Baseline mail is read,
  so it never has one; states written before summaries existed load without any.
- `archive_baseline` is None while archiving is off. `start_archive` sets it to the
  uids known then: mail already on the server when archiving started is never
  archived, so never deleted either. The first check (when archiving started
  before it) and a re-baseline put every uid they take as read into it; uids
  that leave the server leave it. `stop_archive` clears it, so archiving that
  is turned on again starts from the mail there at that moment.
- A mailbox that looks empty (STAT ``+OK 0 0``) while we know uids may be a server
  rebuilding its index. The known uids, with their unread marks, archive records
  and archive baseline membership, move to `vanished` instead of being forgotten.
  The next check that finds mail compares it with them (see `sync/check.py`): a
  uid that is back is restored as it was (never announced again, never archived
  when it was baseline), anything else is new mail and is announced. Tombstones
  live for `TOMBSTONE_CHECKS` checks that find mail (each of which takes the full
  UIDL list), or until every one came back; while the mailbox stays empty they
  cost nothing (no state change, no write). So a server that blinks empty for a
  while is harmless, and mail that arrives after another client really emptied
  the mailbox is announced at once; only old mail that reappears later than
  that, after new mail, is announced again.

Cost for a 100,000-message mailbox: `apply` of an unchanged check is O(unread),
of an appended check O(new) plus one tuple concatenation; `to_dict`/`from_dict`
are single list/tuple copies of the uids.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import math
from typing import TYPE_CHECKING, Any, Final

from custom_components.pop3_mail.sync.check import MailboxCheck
from custom_components.pop3_mail.sync.watches import (
    MAX_ADDRESS,
    MAX_DATE,
    MAX_SUBJECT,
    MessageSummary,
    summaries_from_json,
    summaries_to_json,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from custom_components.pop3_mail.sync.check import CheckOutcome

#: Checks that find mail after the mailbox looked empty, during which a uid that comes back
#: is restored instead of announced.
TOMBSTONE_CHECKS: Final = 5

#: Version of the `to_dict` layout; `from_dict` refuses any other (`upgrade` first).
STATE_VERSION: Final = 2


class StateFormatError(ValueError):
    """Stored state of an unknown version, or not in the shape `to_dict` writes."""


@dataclass(frozen=True, slots=True)
class LastMessage:
    """The newest message on the server, as the `last_message` sensor shows it.

    `date` is ISO 8601 or None when the message has no readable Date header.
    """

    uid: str
    sender: str
    subject: str
    date: str | None


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """A message saved in the archive folder: file name, bytes written, when (epoch seconds).

    `digest`: SHA-256 (hex) of the file's bytes; None in records saved before it existed.
    """

    filename: str
    size: int
    archived_at: float
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class Vanished:
    """Tombstones of the mail known when the mailbox last looked empty (server order).

    `unread`, `archived`, `archive_baseline` and `summaries` are what the state held
    for those uids, restored for each uid that comes back. `checks_left`: checks finding
    mail before the tombstones are dropped.
    """

    uids: tuple[str, ...]
    size: int
    unread: frozenset[str] = frozenset()
    archived: Mapping[str, ArchiveRecord] = field(default_factory=dict)
    archive_baseline: frozenset[str] = frozenset()
    summaries: Mapping[str, MessageSummary] = field(default_factory=dict)
    checks_left: int = TOMBSTONE_CHECKS


@dataclass(frozen=True, slots=True)
class MailboxState:
    """What we know of one mailbox between checks.

    `initialised` is False until the first check: that check is the baseline.
    `archived` must not be mutated: functions here always build a new mapping.
    `archive_baseline`: uids the archive must leave alone (on the server before
    archiving started; a subset of `known_uids`), or None while archiving is off.
    """

    known_uids: tuple[str, ...] = ()
    size: int = 0
    unread: frozenset[str] = frozenset()
    last_message: LastMessage | None = None
    archived: Mapping[str, ArchiveRecord] = field(default_factory=dict)
    initialised: bool = False
    archive_baseline: frozenset[str] | None = None
    summaries: Mapping[str, MessageSummary] = field(default_factory=dict)
    vanished: Vanished | None = None
    watch_last: Mapping[str, LastMessage] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Messages on the server at the last check."""
        return len(self.known_uids)


def new_check(state: MailboxState, *, top_lines: int) -> MailboxCheck:
    """The planner for the next check of this mailbox (a baseline when not initialised)."""
    return MailboxCheck(
        state.known_uids if state.initialised else None,
        state.size,
        top_lines=top_lines,
        newest_known=state.last_message.uid if state.last_message else None,
        vanished=state.vanished.uids if state.vanished else None,
        vanished_size=state.vanished.size if state.vanished else 0,
    )


def apply(
    state: MailboxState,
    outcome: CheckOutcome,
    *,
    last_message: LastMessage | None = None,
    summaries: Mapping[str, MessageSummary] | None = None,
) -> MailboxState:
    """The state after `outcome`.

    `last_message` is what the caller made of `outcome.newest`; without it the
    previous one is kept while its uid is still the newest on the server.
    `summaries` are those of the new messages; only the ones that start unread are kept.
    """
    if state.initialised and state.known_uids and not outcome.uids:
        return _emptied(state, outcome)
    if state.vanished is not None and outcome.uids:
        state = _restored(state, outcome)
    unread = state.unread
    kept = state.summaries
    if outcome.removed and unread:
        unread = unread - outcome.removed
        if kept and not outcome.removed.isdisjoint(kept):
            kept = {uid: summary for uid, summary in kept.items() if uid in unread}
    if state.initialised and not outcome.rebaselined and outcome.new:
        new_unread = {message.uid for message in outcome.new}
        unread = unread | new_unread
        if summaries:
            kept = {
                **kept,
                **{uid: summary for uid, summary in summaries.items() if uid in new_unread},
            }
    archived = state.archived
    if outcome.removed and archived:
        archived = {uid: rec for uid, rec in archived.items() if uid not in outcome.removed}
    baseline = state.archive_baseline
    if baseline is not None:
        if not state.initialised or outcome.rebaselined:
            # Mail taken as read without an event is existing mail, not new mail to archive.
            baseline = frozenset(outcome.uids)
        elif outcome.removed and not baseline.isdisjoint(outcome.removed):
            baseline = baseline - outcome.removed
    if last_message is None:
        last_message = state.last_message
        if last_message is not None and (not outcome.uids or outcome.uids[-1] != last_message.uid):
            last_message = None
    watch_last = _watch_last_without(state.watch_last, outcome.removed)
    return MailboxState(
        known_uids=outcome.uids,
        size=outcome.size,
        unread=unread,
        last_message=last_message,
        archived=archived,
        initialised=True,
        archive_baseline=baseline,
        summaries=kept,
        vanished=state.vanished,
        watch_last=watch_last,
    )


def _watch_last_without(
    watch_last: Mapping[str, LastMessage], gone: frozenset[str]
) -> Mapping[str, LastMessage]:
    """`watch_last` without the entries whose message is in `gone` (one entry per watch)."""
    if not gone or not watch_last or all(last.uid not in gone for last in watch_last.values()):
        return watch_last
    return {watch_id: last for watch_id, last in watch_last.items() if last.uid not in gone}


def set_watch_last(
    state: MailboxState, lasts: Mapping[str, LastMessage], *, watch_ids: Iterable[str]
) -> MailboxState:
    """The state with `lasts` over its per-watch last messages, kept only for `watch_ids` (keys).

    Entries of watches that no longer exist are dropped, so deleted watches do not
    grow the state. The same state is returned when nothing changes (no write).
    """
    ids = frozenset(watch_ids)
    merged = {
        watch_id: last
        for watch_id, last in {**state.watch_last, **lasts}.items()
        if watch_id in ids
    }
    if merged == state.watch_last:
        return state
    return replace(state, watch_last=merged)


def _emptied(state: MailboxState, outcome: CheckOutcome) -> MailboxState:
    """The mailbox looks empty: what we knew becomes tombstones (see the module docstring)."""
    old = state.vanished
    known = state.known_uids
    baseline = state.archive_baseline or frozenset()
    vanished = Vanished(
        uids=known if old is None else old.uids + known,
        size=state.size + (0 if old is None else old.size),
        unread=state.unread | (old.unread if old else frozenset()),
        archived={**(old.archived if old else {}), **state.archived},
        archive_baseline=baseline | (old.archive_baseline if old else frozenset()),
        summaries={**(old.summaries if old else {}), **state.summaries},
    )
    return MailboxState(
        size=outcome.size,
        initialised=True,
        archive_baseline=None if state.archive_baseline is None else frozenset(),
        vanished=vanished,
    )


def _restored(state: MailboxState, outcome: CheckOutcome) -> MailboxState:
    """The state with each tombstoned uid that is on the server again as it was."""
    vanished = state.vanished
    assert vanished is not None  # noqa: S101  # the caller checked
    if outcome.rebaselined:
        return replace(state, vanished=None)
    on_server = set(outcome.uids)
    back = frozenset(uid for uid in vanished.uids if uid in on_server)
    rest = tuple(uid for uid in vanished.uids if uid not in back)
    baseline = state.archive_baseline
    if baseline is not None:
        baseline = baseline | (vanished.archive_baseline & back)
    unread = state.unread | (vanished.unread & back)
    return replace(
        state,
        unread=unread,
        summaries={
            **state.summaries,
            **{uid: summary for uid, summary in vanished.summaries.items() if uid in back},
        },
        archived={
            **state.archived,
            **{uid: rec for uid, rec in vanished.archived.items() if uid in back},
        },
        archive_baseline=baseline,
        vanished=None
        if not rest or vanished.checks_left <= 1
        else Vanished(
            uids=rest,
            # The size of what is still missing is not known per message; keep the total.
            size=vanished.size,
            unread=vanished.unread - back,
            archived={uid: rec for uid, rec in vanished.archived.items() if uid not in back},
            archive_baseline=vanished.archive_baseline - back,
            summaries={
                uid: summary for uid, summary in vanished.summaries.items() if uid not in back
            },
            checks_left=vanished.checks_left - 1,
        ),
    )


def start_archive(state: MailboxState) -> MailboxState:
    """The state once archiving is on: mail known now is never archived; unchanged if on."""
    if state.archive_baseline is not None:
        return state
    vanished = state.vanished
    if vanished is not None:
        # Mail that comes back was there before archiving started, too.
        vanished = replace(vanished, archive_baseline=frozenset(vanished.uids))
    return replace(state, archive_baseline=frozenset(state.known_uids), vanished=vanished)


def stop_archive(state: MailboxState) -> MailboxState:
    """The state once archiving is off: turned on again, it starts from the mail there then."""
    if state.archive_baseline is None:
        return state
    return replace(state, archive_baseline=None)


def mark_read(state: MailboxState, uid: str | None = None) -> MailboxState:
    """Mark one message read, or every message when `uid` is None."""
    if uid is None:
        vanished = state.vanished
        if vanished is not None and vanished.unread:
            vanished = replace(vanished, unread=frozenset(), summaries={})
        return replace(state, unread=frozenset(), summaries={}, vanished=vanished)
    if uid not in state.unread:
        return state
    summaries = state.summaries
    if uid in summaries:
        summaries = {key: summary for key, summary in summaries.items() if key != uid}
    return replace(state, unread=state.unread - {uid}, summaries=summaries)


def forget(
    state: MailboxState, uids: Iterable[str], *, freed_bytes: int | None = None
) -> MailboxState:
    """The state after we deleted `uids` from the server ourselves: no event, counts right.

    `freed_bytes` (the LIST sizes of the deleted messages) keeps `size` exact;
    without it `size` is left as it was, and the next check, seeing a size that
    does not match, downloads the full list once and corrects it.
    """
    gone = frozenset(uids)
    if not gone:
        return state
    known = tuple(uid for uid in state.known_uids if uid not in gone)
    size = state.size if freed_bytes is None else max(0, state.size - freed_bytes)
    archived = {uid: rec for uid, rec in state.archived.items() if uid not in gone}
    baseline = state.archive_baseline
    if baseline is not None and not baseline.isdisjoint(gone):
        baseline = baseline - gone
    last_message = state.last_message
    if last_message is not None and last_message.uid in gone:
        last_message = None
    summaries = state.summaries
    if not gone.isdisjoint(summaries):
        summaries = {uid: summary for uid, summary in summaries.items() if uid not in gone}
    return replace(
        state,
        known_uids=known,
        size=size,
        unread=state.unread - gone,
        last_message=last_message,
        archived=archived,
        archive_baseline=baseline,
        summaries=summaries,
        watch_last=_watch_last_without(state.watch_last, gone),
    )


def to_dict(state: MailboxState) -> dict[str, Any]:
    """JSON-safe form of the state for the Home Assistant `Store`."""
    last = state.last_message
    baseline = state.archive_baseline
    return {
        "version": STATE_VERSION,
        "initialised": state.initialised,
        "uids": list(state.known_uids),
        "size": state.size,
        # Sorted so two saves of the same state are byte-identical.
        "unread": sorted(state.unread),
        "last_message": None
        if last is None
        else {"uid": last.uid, "sender": last.sender, "subject": last.subject, "date": last.date},
        "archived": _archived_to(state.archived),
        "archive_baseline": _baseline_to(baseline, state.known_uids),
        "summaries": summaries_to_json(state.summaries),
        "vanished": _vanished_to(state.vanished),
        "watch_last": watch_last_to_json(state.watch_last),
    }


def watch_last_to_json(watch_last: Mapping[str, LastMessage]) -> dict[str, list[Any]]:
    """The stored form of the per-watch last messages: `{key: [uid, sender, subject, date]}`."""
    return {
        watch_id: [last.uid, last.sender, last.subject, last.date]
        for watch_id, last in sorted(watch_last.items())
    }


def watch_last_from_json(data: Any) -> dict[str, LastMessage] | None:
    """What `watch_last_to_json` wrote; None for a bad shape. Missing reads as none.

    Missing means a state written before watches kept their last message: the
    watches then start again from their newest unread match.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        return None
    lasts: dict[str, LastMessage] = {}
    for watch_id, row in data.items():
        match row:
            case [str(uid), str(sender), str(subject), str() | None as date]:
                lasts[watch_id] = LastMessage(
                    uid,
                    sender[:MAX_ADDRESS],
                    subject[:MAX_SUBJECT],
                    date if date is None or len(date) <= MAX_DATE else None,
                )
            case _:
                return None
    return lasts


def _vanished_to(vanished: Vanished | None) -> dict[str, Any] | None:
    if vanished is None:
        return None
    return {
        "uids": list(vanished.uids),
        "size": vanished.size,
        "unread": sorted(vanished.unread),
        "archived": _archived_to(vanished.archived),
        "archive_baseline": _baseline_to(vanished.archive_baseline, vanished.uids),
        "summaries": summaries_to_json(vanished.summaries),
        "checks_left": vanished.checks_left,
    }


def _archived_to(archived: Mapping[str, ArchiveRecord]) -> dict[str, list[Any]]:
    return {
        uid: [rec.filename, rec.size, rec.archived_at]
        + ([rec.digest] if rec.digest is not None else [])
        for uid, rec in archived.items()
    }


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` in today's layout; raises `StateFormatError` for a version we cannot read.

    Version 1 (before tombstones) differs only by lacking `vanished`.
    """
    version = data.get("version")
    if version == 1:
        return {**data, "version": STATE_VERSION, "vanished": None}
    if version == STATE_VERSION:
        return dict(data)
    raise StateFormatError(f"unsupported mailbox state version {version!r}")


def from_dict(data: Mapping[str, Any]) -> MailboxState:
    """The state `to_dict` wrote; raises `StateFormatError` for another version or a bad shape."""
    version = data.get("version")
    if version != STATE_VERSION:
        raise StateFormatError(f"unsupported mailbox state version {version!r}")
    known, unread, size = _uid_lists_from(data)
    initialised = data.get("initialised")
    if type(initialised) is not bool:
        raise StateFormatError("mailbox state with a bad size or flag")
    summaries = summaries_from_json(data.get("summaries"), unread)
    if summaries is None:
        raise StateFormatError("mailbox state with bad message summaries")
    watch_last = watch_last_from_json(data.get("watch_last"))
    if watch_last is None:
        raise StateFormatError("mailbox state with bad watch last messages")
    known_set = frozenset(known) if watch_last else frozenset()
    return MailboxState(
        known_uids=known,
        size=size,
        unread=unread,
        last_message=_last_message_from(data.get("last_message")),
        archived=_archived_from(data.get("archived")),
        initialised=initialised,
        archive_baseline=_baseline_from(data.get("archive_baseline"), known),
        summaries=summaries,
        vanished=_vanished_from(data.get("vanished")),
        # Only mail on the server keeps its entry, as `apply` and `forget` keep it.
        watch_last={
            watch_id: last for watch_id, last in watch_last.items() if last.uid in known_set
        },
    )


def _uid_lists_from(data: Mapping[str, Any]) -> tuple[tuple[str, ...], frozenset[str], int]:
    uids = data.get("uids")
    unread = data.get("unread")
    if not isinstance(uids, list) or not isinstance(unread, list):
        raise StateFormatError("mailbox state without uid lists")
    known = tuple(uids)
    # map(type, ...) keeps the scan of 100,000 uids in C.
    if not set(map(type, known)) <= {str} or not set(map(type, unread)) <= {str}:
        raise StateFormatError("mailbox state with a uid that is not a string")
    size = data.get("size")
    if type(size) is not int or size < 0:
        raise StateFormatError("mailbox state with a bad size or flag")
    return known, frozenset(unread), size


def _vanished_from(data: Any) -> Vanished | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise StateFormatError("mailbox state with bad tombstones")
    uids, unread, size = _uid_lists_from(data)
    checks_left = data.get("checks_left")
    if type(checks_left) is not int or checks_left < 1:
        raise StateFormatError("mailbox state with bad tombstones")
    summaries = summaries_from_json(data.get("summaries"), unread)
    if summaries is None:
        raise StateFormatError("mailbox state with bad tombstones")
    return Vanished(
        uids=uids,
        size=size,
        unread=unread,
        archived=_archived_from(data.get("archived")),
        archive_baseline=_baseline_from(data.get("archive_baseline"), uids) or frozenset(),
        summaries=summaries,
        checks_left=checks_left,
    )


def _last_message_from(data: Any) -> LastMessage | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise StateFormatError("mailbox state with a bad last message")
    uid, sender, subject, date = (data.get(key) for key in ("uid", "sender", "subject", "date"))
    if not (isinstance(uid, str) and isinstance(sender, str) and isinstance(subject, str)):
        raise StateFormatError("mailbox state with a bad last message")
    if date is not None and not isinstance(date, str):
        raise StateFormatError("mailbox state with a bad last message date")
    return LastMessage(uid=uid, sender=sender, subject=subject, date=date)


def _baseline_to(baseline: frozenset[str] | None, known: tuple[str, ...]) -> int | list[str] | None:
    """The baseline as the number of leading known uids it is, else its uids in server order.

    New mail arrives at the end, so the baseline is nearly always the first uids
    the server lists: a count keeps a 100,000-uid baseline out of the JSON, and
    checking it only looks at the mail that came after.
    """
    if baseline is None:
        return None
    count = len(baseline)
    # The baseline only holds known uids: none after the first `count` means those are it.
    if baseline.isdisjoint(known[count:]):
        return count
    return [uid for uid in known if uid in baseline]


def _baseline_from(data: Any, known: tuple[str, ...]) -> frozenset[str] | None:
    # Missing (state written before archiving had a baseline) reads as "archiving not started".
    if data is None:
        return None
    if type(data) is int and 0 <= data <= len(known):
        return frozenset(known[:data])
    if not isinstance(data, list) or not set(map(type, data)) <= {str}:
        raise StateFormatError("mailbox state with a bad archive baseline")
    return frozenset(data)


def _archived_from(data: Any) -> dict[str, ArchiveRecord]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StateFormatError("mailbox state with bad archive records")
    records: dict[str, ArchiveRecord] = {}
    for uid, record in data.items():
        match record:
            case [str(filename), int(size), int() | float() as archived_at] if not isinstance(
                size, bool
            ) and math.isfinite(archived_at):
                records[uid] = ArchiveRecord(filename, size, float(archived_at))
            case [
                str(filename),
                int(size),
                int() | float() as archived_at,
                str(digest),
            ] if not isinstance(size, bool) and math.isfinite(archived_at):
                records[uid] = ArchiveRecord(filename, size, float(archived_at), digest)
            case _:
                raise StateFormatError(f"mailbox state with a bad archive record for {uid!r}")
    return records
