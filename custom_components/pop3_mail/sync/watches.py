"""Watches: which messages a watch matches, and what each watch counts among the unread mail.

Pure: no I/O, no Home Assistant. Public names:

- `MessageSummary(sender, sender_name, subject, date)`: what the state keeps of each
  unread message, cut to `MAX_ADDRESS`/`MAX_NAME`/`MAX_SUBJECT` characters.
  `summary_of(event_data)` builds one from a message's event data.
- `Watch(watch_id, name, sender, subject)`: one watch; `matches(summary)` says
  whether a message is one it looks for; `key` names its last message in the state.
- `matching_ids(watches, summary)`: ids of the watches a message matches, in order.
- `index_matches(watches, summaries)`: those ids for many messages (CPU work over
  every unread message: the caller runs it off the event loop when there are many).
- `watch_statuses(watches, summaries, matches)`: per watch, the unread messages it
  matches and the newest of them; the uids `matches` lacks are matched here.
- `summaries_to_json(summaries)` / `summaries_from_json(data, unread)`: the stored form.

Rules:

- A watch matches when its `sender` is a case-insensitive substring of the sender
  address or the display name, and its `subject` one of the decoded subject; both
  when both are set. An empty field matches everything, a watch with neither matches
  nothing (the flow refuses one).
- Matching always looks at the summary, never at the full message: the event of a
  new message and the counts can never disagree about a long subject.
- Only unread messages have a summary; a uid that is read or leaves the server
  loses it, so the counts follow mark-read, deletion and mail removed elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: Longest address SMTP carries (RFC 5321: 254 in a path); the rest cannot be a real address.
MAX_ADDRESS: Final = 254
#: Enough for any real display name and subject a watch would look for; hostile mail is cut.
MAX_NAME: Final = 128
MAX_SUBJECT: Final = 256
#: ISO 8601 with an offset and microseconds is 32 characters.
MAX_DATE: Final = 40


class MessageSummary(NamedTuple):
    """What the state keeps of an unread message, so watches added later can count it.

    `date` is ISO 8601, or None when the message has no readable Date header. A named
    tuple, not a dataclass: 10,000 of them are built while a state loads, and a tuple
    is built several times faster and held in less memory.
    """

    sender: str
    sender_name: str
    subject: str
    date: str | None


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def summary_of(data: Mapping[str, Any]) -> MessageSummary:
    """The summary of a message from its event data (`sync.message.event_data`)."""
    date = data.get("date")
    return MessageSummary(
        sender=_text(data.get("sender"), MAX_ADDRESS),
        sender_name=_text(data.get("sender_name"), MAX_NAME),
        subject=_text(data.get("subject"), MAX_SUBJECT),
        date=date if isinstance(date, str) and len(date) <= MAX_DATE else None,
    )


@dataclass(frozen=True, slots=True)
class Watch:
    """A watch: the messages whose sender and subject hold these texts.

    `watch_id` is its config subentry's id: unique across every mailbox, so two
    mailboxes may each have a watch of the same name.
    """

    watch_id: str
    name: str
    sender: str = ""
    subject: str = ""
    _sender: str = field(init=False, repr=False, compare=False)
    _subject: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Casefold the texts once, not for every message."""
        object.__setattr__(self, "_sender", self.sender.strip().casefold())
        object.__setattr__(self, "_subject", self.subject.strip().casefold())

    @property
    def key(self) -> str:
        """The key of its last message in the state: its id and what it looks for.

        A reconfigured watch looks for other mail, so its last message is no longer
        right: a new key drops it and starts again from the newest unread match.
        """
        return "\x00".join((self.watch_id, self._sender, self._subject))

    @property
    def is_empty(self) -> bool:
        """Whether the watch has nothing to look for (and so matches nothing)."""
        return not self._sender and not self._subject

    def matches(self, summary: MessageSummary) -> bool:
        """Whether `summary` is a message this watch looks for."""
        return self.matches_folded(
            summary.sender.casefold(), summary.sender_name.casefold(), summary.subject.casefold()
        )

    def matches_folded(self, sender: str, sender_name: str, subject: str) -> bool:
        """`matches` for texts already casefolded (one casefold per message, not per watch)."""
        if self.is_empty:
            return False
        if self._sender and self._sender not in sender and self._sender not in sender_name:
            return False
        return not self._subject or self._subject in subject


def matching_ids(watches: Iterable[Watch], summary: MessageSummary) -> tuple[str, ...]:
    """Ids of the watches `summary` matches, in the order of `watches`."""
    sender = summary.sender.casefold()
    name = summary.sender_name.casefold()
    subject = summary.subject.casefold()
    return tuple(watch.watch_id for watch in watches if watch.matches_folded(sender, name, subject))


def index_matches(
    watches: tuple[Watch, ...], summaries: Mapping[str, MessageSummary]
) -> dict[str, tuple[str, ...]]:
    """The ids of the watches each message matches, by uid (an empty tuple for none)."""
    if not watches:
        return dict.fromkeys(summaries, ())
    return {uid: matching_ids(watches, summary) for uid, summary in summaries.items()}


@dataclass(frozen=True, slots=True)
class WatchStatus:
    """What one watch shows: its unread messages and the newest of them."""

    unread: int = 0
    last_uid: str | None = None
    last: MessageSummary | None = None


def watch_statuses(
    watches: tuple[Watch, ...],
    summaries: Mapping[str, MessageSummary],
    matches: dict[str, tuple[str, ...]],
) -> dict[str, WatchStatus]:
    """Per watch id, its unread count and newest unread match.

    `summaries` is in arrival order, so the last match seen is the newest. `matches`
    is a cache (`index_matches`); uids it lacks are matched here and added to it.
    """
    if not watches:
        return {}
    counts = dict.fromkeys((watch.watch_id for watch in watches), 0)
    newest: dict[str, str] = {}
    for uid, summary in summaries.items():
        ids = matches.get(uid)
        if ids is None:
            ids = matches[uid] = matching_ids(watches, summary)
        for watch_id in ids:
            counts[watch_id] += 1
            newest[watch_id] = uid
    return {
        watch_id: WatchStatus(
            unread=count,
            last_uid=newest.get(watch_id),
            last=summaries[newest[watch_id]] if watch_id in newest else None,
        )
        for watch_id, count in counts.items()
    }


def summaries_to_json(summaries: Mapping[str, MessageSummary]) -> list[list[Any]]:
    """The stored form: `[uid, sender, sender_name, subject, date]` rows in arrival order.

    Rows rather than objects: at 10,000 unread messages the key names alone would
    add half a megabyte to every save.
    """
    return [[uid, *summary] for uid, summary in summaries.items()]


def summaries_from_json(data: Any, unread: frozenset[str]) -> dict[str, MessageSummary] | None:
    """The summaries `summaries_to_json` wrote, only of `unread` uids; None for a bad shape.

    Missing (a state written before watches existed) reads as no summaries. The
    texts are cut again: the file is ours, but a hand-edited one must not grow the state.
    """
    if data is None:
        return {}
    if not isinstance(data, list):
        return None
    summaries: dict[str, MessageSummary] = {}
    # Plain type checks and slices, no pattern matching or dicts: 10,000 rows load in a few ms.
    for row in data:
        if type(row) is not list or len(row) != 5:
            return None
        uid, sender, name, subject, date = row
        if not (type(uid) is type(sender) is type(name) is type(subject) is str):
            return None
        if date is not None and type(date) is not str:
            return None
        if uid in unread:
            summaries[uid] = MessageSummary(
                sender[:MAX_ADDRESS],
                name[:MAX_NAME],
                subject[:MAX_SUBJECT],
                date if date is None or len(date) <= MAX_DATE else None,
            )
    return summaries
