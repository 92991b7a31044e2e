"""Which messages to archive next, and which archived messages may leave the server.

Pure decisions over plain values (no I/O, no clock: `now` is an argument). The
archive runner (`custom_components.pop3_mail.archive`) asks these functions and
does what they say.

- `to_archive(server_uids, sizes, archived, max_messages, max_bytes)`: the next
  batch to download, oldest first, bounded by count and bytes.
- `backlog(server_uids, sizes, archived)`: how much is still not archived.
- `to_delete(server_uids, archived, policy, keep_days, now, exclude=...)`: archived
  uids the delete policy wants gone from the server, in server order.
- `is_safe_to_delete(uid, record, ...)`: the last check before DELE, with what the
  server and the disk said in the same session.
- `has_work(known_uids, archived, policy, keep_days, now, skip=..., exclude=...)`: whether
  an archive session would do anything at all (so the caller can skip connecting).

`exclude` holds the uids that were on the server before archiving started
(`MailboxState.archive_baseline`): they are never archived and never deleted.

The rule that never bends: a uid is only ever chosen for deletion when it has an
archive record, is not excluded, appears exactly once on the server, and (checked right before
DELE) the number still maps to that uid and both the server's LIST size and the
archive file's size equal the recorded size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Container, Mapping, Sequence

SECONDS_PER_DAY = 86_400


class DeletePolicy(StrEnum):
    """When archived messages are deleted from the server (option `delete_policy`)."""

    KEEP = "keep"
    AFTER_ARCHIVE = "after_archive"
    AFTER_DAYS = "after_days"


class ArchivedMessage(Protocol):
    """What retention needs of an archive record (`sync.state.ArchiveRecord` fits)."""

    @property
    def size(self) -> int:
        """Octets of the archived file."""
        ...

    @property
    def archived_at(self) -> float:
        """When the file became durable, seconds since the epoch."""
        ...


@dataclass(frozen=True, slots=True)
class Backlog:
    """Messages on the server that are not archived yet."""

    messages: int
    bytes: int


def _first_occurrences(server_uids: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    unique: list[str] = []
    for uid in server_uids:
        if uid not in seen:
            seen.add(uid)
            unique.append(uid)
    return unique


def to_archive(
    server_uids: Sequence[str],
    sizes: Mapping[str, int],
    archived: Container[str],
    max_messages: int,
    max_bytes: int,
) -> list[str]:
    """Return the next uids to download, oldest (first in server order) first.

    At most `max_messages` uids whose sizes add up to at most `max_bytes`; the
    first one is taken even when it alone is larger, so one big message cannot
    stall the archive forever. Selection stops (rather than skipping ahead) at
    the first uid that does not fit or whose size is unknown, so the archive
    always grows in server order. A uid listed twice is considered once.
    """
    chosen: list[str] = []
    total = 0
    if max_messages <= 0:
        return chosen
    for uid in _first_occurrences(server_uids):
        if uid in archived:
            continue
        size = sizes.get(uid)
        if size is None:
            break
        if chosen and total + size > max_bytes:
            break
        chosen.append(uid)
        total += size
        if len(chosen) >= max_messages:
            break
    return chosen


def backlog(
    server_uids: Sequence[str], sizes: Mapping[str, int], archived: Container[str]
) -> Backlog:
    """Count the server's messages not archived yet (unknown sizes count as 0 bytes)."""
    messages = 0
    total = 0
    for uid in _first_occurrences(server_uids):
        if uid not in archived:
            messages += 1
            total += sizes.get(uid, 0)
    return Backlog(messages, total)


def is_due(
    record: ArchivedMessage, policy: DeletePolicy | str, keep_days: float, now: float
) -> bool:
    """Tell whether the policy wants an archived message off the server at `now`."""
    match DeletePolicy(policy):
        case DeletePolicy.KEEP:
            return False
        case DeletePolicy.AFTER_ARCHIVE:
            return True
        case DeletePolicy.AFTER_DAYS:
            return record.archived_at + keep_days * SECONDS_PER_DAY <= now


def to_delete(
    server_uids: Sequence[str],
    archived: Mapping[str, ArchivedMessage],
    policy: DeletePolicy | str,
    keep_days: float,
    now: float,
    *,
    exclude: Container[str] = frozenset(),
) -> list[str]:
    """Return the archived uids the policy wants deleted now, in server order.

    A uid without an archive record is never returned, whatever the policy, nor
    one in `exclude` (mail that was there before archiving started). A uid the
    server lists more than once is never returned either: only one of those
    messages can have been archived under that name.
    """
    if DeletePolicy(policy) is DeletePolicy.KEEP or not archived:
        return []
    counts = Counter(server_uids)
    return [
        uid
        for uid in server_uids
        if counts[uid] == 1
        and uid not in exclude
        and (record := archived.get(uid)) is not None
        and is_due(record, policy, keep_days, now)
    ]


def is_safe_to_delete(
    uid: str,
    record: ArchivedMessage | None,
    *,
    uid_at_number: str | None,
    listed_size: int | None,
    file_size: int | None,
) -> bool:
    """Tell whether DELE may be sent for the message number that should hold `uid`.

    `uid_at_number` and `listed_size` are the answers to `UIDL n` and `LIST n` in
    the session that will send DELE (None when the server answered -ERR);
    `file_size` is the archive file's size on disk now (None when it is missing).
    All of them must agree with the archive record.
    """
    return (
        record is not None
        and uid_at_number == uid
        and listed_size is not None
        and listed_size == record.size
        and file_size is not None
        and file_size == record.size
    )


def has_work(
    known_uids: Sequence[str],
    archived: Mapping[str, ArchivedMessage],
    policy: DeletePolicy | str,
    keep_days: float,
    now: float,
    *,
    skip: Container[str] = frozenset(),
    exclude: Container[str] = frozenset(),
) -> bool:
    """Tell whether some known uid still needs archiving or is due for deletion.

    Uids in `skip` (too large to archive) and in `exclude` (there before
    archiving started) do not count as work.
    """
    return any(
        uid not in archived and uid not in skip and uid not in exclude for uid in known_uids
    ) or bool(to_delete(known_uids, archived, policy, keep_days, now, exclude=exclude))
