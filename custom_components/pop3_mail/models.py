"""What the entities, the bus event and diagnostics show of a mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

from homeassistant.util import dt as dt_util

if TYPE_CHECKING:
    from datetime import datetime

    from .sync.state import MailboxState


@dataclass(frozen=True, slots=True)
class LastMessageData:
    """The newest message on the server, as the `last_message` sensor shows it.

    Not `sync.state.LastMessage`, the persisted form (its date is an ISO string).
    """

    uid: str
    sender: str
    subject: str
    date: datetime | None


@dataclass(frozen=True, slots=True)
class MailboxData:
    """What the entities show of a mailbox."""

    count: int
    size: int
    unread: int
    last_message: LastMessageData | None


def mailbox_data(state: MailboxState) -> MailboxData:
    """Return what the entities show of `state`."""
    last: LastMessageData | None = None
    if (stored := state.last_message) is not None:
        last = LastMessageData(
            uid=stored.uid,
            sender=stored.sender,
            subject=stored.subject,
            date=dt_util.parse_datetime(stored.date) if stored.date else None,
        )
    return MailboxData(
        count=state.count, size=state.size, unread=len(state.unread), last_message=last
    )


@dataclass(frozen=True, slots=True)
class CheckFigures:
    """What the last check cost and found (for diagnostics and benchmarks).

    The byte and command counts are those of the check's own session; `error` is
    the reason a failed check gave, None when it succeeded.
    """

    started: datetime
    duration_s: float
    bytes_in: int
    bytes_out: int
    commands: int
    round_trips: int
    full_list: bool
    new: int
    removed: int
    rebaselined: bool
    error: str | None


class NewMessageEventData(TypedDict):
    """The data of the `pop3_mail_new_message` bus event (keys fixed by the contract).

    The event entity's `new_message` event carries `uid`, `sender`, `sender_name`,
    `subject` and `date` of it.
    """

    entry_id: str
    device_id: str | None
    mailbox: str
    uid: str
    sender: str
    sender_name: str
    to: list[str]
    cc: list[str]
    subject: str
    date: str | None
    message_id: str | None
    size: int
    headers: dict[str, str]
    text: NotRequired[str]
    #: Names of the watches (config subentries) the message matches.
    watches: list[str]
