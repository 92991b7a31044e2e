"""One archive session: save new mail into the Maildir, delete what the policy says is due.

The POP3 side of the archive; files are written by `maildir.MaildirArchive`, the
decisions come from `sync.retention`. No Home Assistant imports: `archiver.py`
runs it in a session of its own before each check.

Usage::

    archive = MaildirArchive(Path(folder), mailbox="alice@example.com")  # keep one per entry
    async with open_session(...) as session:
        report = await run_archive_session(
            session, state, archive,
            policy=DeletePolicy.AFTER_ARCHIVE, keep_days=14, now=time.time(),
            max_messages=50, max_bytes=25 * 2**20,
        )
    # Records first, and kept even if the session failed at QUIT: the files are durable.
    state = replace(state, archived={**state.archived, **report.archived})
    # Only after a clean QUIT (the `async with` exited normally) did the DELEs take effect.
    state = forget(state, report.deleted, freed_bytes=report.deleted_bytes)
    if report.error: ...                                # ArchiveError -> a repair issue

If the session raises (a POP3 error), nothing was deleted and no report comes
back; files already written are adopted by the next run (after comparing bytes).
`has_work(state.known_uids, state.archived, policy, keep_days, now, skip=archive.too_large,
exclude=state.archive_baseline or ())` (from `sync.retention`) tells, without connecting,
whether a run would do anything.

`run_archive_session(session, state, archive, ...)` -> `ArchiveReport`, in steps:
    1. Select (`_select`): only uids the check has already seen (`state.known_uids`)
       are considered, so a message is never archived, let alone deleted, before its
       event fired; and of those, none in `state.archive_baseline` (mail that was on
       the server before archiving started): they are never archived nor deleted.
    2. Confirm the numbers (`_listing`): `UIDL n` + `LIST n` pipelined for each uid
       to archive or delete, numbered as in the check; if the mailbox changed since
       (or the backlog is large), one pipelined full `UIDL` + `LIST`.
    3. Archive (`_archive_batch`): at most `max_messages` / `max_bytes` of the oldest
       unarchived messages are retrieved (RETR, pipelined in small groups) and
       stored; a file already there for the uid is adopted only if it holds the same
       bytes (size and SHA-256), since a server may give an old uid to a new message.
       A message larger than `max_message_bytes` (keep it below the session's
       `max_response_bytes`) is skipped, reported in `too_large`, and so never deleted
       either; the archive object remembers it (`archive.too_large`).
    4. Delete (`_delete_due`): the delete policy names the archived uids due; DELE is
       sent only for those whose number maps to the uid in this session, whose LIST
       size equals the record's size, whose archive file exists with that size, and
       whose bytes on the server have the SHA-256 of the file (and of the record,
       when it has one): known from this session's RETR, else retrieved again. With
       `after_archive` that is the same session that archived it, right after the
       fsyncs. Deletions take effect at the caller's QUIT; if the session fails
       first, the client closes without QUIT and nothing is deleted.
    An `ArchiveError` stops archiving for this run and is returned in the report
    (the deletions of mail already safely archived still go ahead); POP3 errors
    propagate unchanged so the caller's session closes without QUIT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING

from .maildir import ArchiveError, digest_of
from .pop3.errors import POP3ProtocolError, POP3ResponseError
from .pop3.requests import Dele, List, Retr, Uidl
from .sync.retention import DeletePolicy, backlog, is_safe_to_delete, to_archive, to_delete

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .maildir import MaildirArchive
    from .pop3 import POP3Session
    from .sync.state import ArchiveRecord, MailboxState

DEFAULT_MAX_MESSAGES = 50
DEFAULT_MAX_BYTES = 25 * 2**20
#: Below the client's default max_response_bytes (64 MiB), leaving room for dot-stuffing.
DEFAULT_MAX_MESSAGE_BYTES = 48 * 2**20

#: Above this many numbers to confirm, one full UIDL + LIST costs less than UIDL n + LIST n each.
_MAX_PROBES = 200
#: RETRs pipelined together hold at most this many bytes (or one message) in memory at once.
_RETR_GROUP_BYTES = 4 * 2**20
_RETR_GROUP_MESSAGES = 10


@dataclass(slots=True)
class ArchiveReport:
    """What one archive session did.

    `archived`: records of the uids archived in this run (written, or `adopted`
    from a file already there). `deleted`: uids DELE'd in this session, gone once
    the session's QUIT succeeds. `pending_messages` / `pending_bytes`: known mail
    still not archived after this run. `unverified`: uids the policy wanted
    deleted but kept because the server or the file did not match the record.
    `too_large`: uids over `max_message_bytes`, never archived (so never deleted).
    `error`: why archiving stopped early, or None. `deleted_bytes`: the LIST
    sizes of the deleted messages (for `sync.state.forget(..., freed_bytes=...)`).
    """

    archived: dict[str, ArchiveRecord] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    pending_messages: int = 0
    pending_bytes: int = 0
    error: ArchiveError | None = None
    adopted: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    bytes_written: int = 0
    deleted_bytes: int = 0


@dataclass(slots=True)
class _Listing:
    """What this session's server says: number, uid and size of the messages we care about."""

    order: list[str]
    numbers: dict[str, int]
    sizes: dict[str, int]
    uid_at: dict[int, str]


def _retr_groups(uids: Sequence[str], sizes: dict[str, int]) -> Iterator[list[str]]:
    group: list[str] = []
    total = 0
    for uid in uids:
        size = sizes[uid]
        if group and (total + size > _RETR_GROUP_BYTES or len(group) >= _RETR_GROUP_MESSAGES):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


async def _probe(session: POP3Session, known: Sequence[str], wanted: set[str]) -> _Listing | None:
    """Confirm with `UIDL n` + `LIST n` that the check's numbering still holds for `wanted`."""
    numbered = [(index + 1, uid) for index, uid in enumerate(known) if uid in wanted]
    requests: list[Uidl | List] = []
    for number, _ in numbered:
        requests += [Uidl(number), List(number)]
    results = await session.pipeline(requests)
    listing = _Listing(order=list(known), numbers={}, sizes={}, uid_at={})
    for (number, uid), got_uid, got_size in zip(
        numbered, results[0::2], results[1::2], strict=True
    ):
        if got_uid != uid or not isinstance(got_size, int):
            return None
        listing.numbers.setdefault(uid, number)
        listing.sizes.setdefault(uid, got_size)
        listing.uid_at[number] = uid
    return listing


async def _full_listing(session: POP3Session, known: Sequence[str]) -> _Listing:
    """One pipelined UIDL + LIST: the session's own numbering, for the uids the check knows."""
    uidl, sizes = await session.pipeline([Uidl(), List()])
    if isinstance(uidl, POP3ResponseError):
        raise uidl
    if isinstance(sizes, POP3ResponseError):
        raise sizes
    if not isinstance(uidl, dict) or not isinstance(sizes, dict):
        raise POP3ProtocolError("The server answered UIDL or LIST without a list.")
    known_set = set(known)
    listing = _Listing(order=[], numbers={}, sizes={}, uid_at={})
    for number, uid in sorted(uidl.items()):
        if not isinstance(uid, str) or uid not in known_set:
            continue
        listing.order.append(uid)
        listing.uid_at[number] = uid
        listing.numbers.setdefault(uid, number)
        size = sizes.get(number)
        if isinstance(size, int):
            listing.sizes.setdefault(uid, size)
    return listing


@dataclass(slots=True)
class _Selection:
    """Step 1: what this run may touch, decided from the state alone."""

    known: list[str]
    archived: dict[str, ArchiveRecord]
    exclude: frozenset[str]
    unarchived: list[str]
    due: set[str]


def _select(
    state: MailboxState,
    archive: MaildirArchive,
    policy: DeletePolicy,
    keep_days: float,
    clock: float,
) -> _Selection:
    known = list(state.known_uids)
    archived = dict(state.archived)
    exclude = state.archive_baseline or frozenset()
    unarchived = [
        uid
        for uid in dict.fromkeys(known)
        if uid not in archived and uid not in archive.too_large and uid not in exclude
    ]
    due = set(to_delete(known, archived, policy, keep_days, clock, exclude=exclude))
    return _Selection(known, archived, exclude, unarchived, due)


async def _listing(session: POP3Session, selection: _Selection, max_messages: int) -> _Listing:
    """Step 2: this session's numbers and sizes of the uids the run may touch."""
    wanted = set(selection.unarchived) | selection.due
    if len(selection.unarchived) <= max_messages and len(wanted) <= _MAX_PROBES:
        listing = await _probe(session, selection.known, wanted)
        if listing is not None:
            return listing
    return await _full_listing(session, selection.known)


def _note_too_large(
    archive: MaildirArchive,
    selection: _Selection,
    listing: _Listing,
    max_message_bytes: int,
    report: ArchiveReport,
) -> None:
    archive.too_large.update(
        uid
        for uid in listing.order
        if uid not in selection.archived
        and uid not in selection.exclude
        and listing.sizes.get(uid, 0) > max_message_bytes
    )
    report.too_large = [uid for uid in dict.fromkeys(listing.order) if uid in archive.too_large]


async def _archive_batch(
    session: POP3Session,
    archive: MaildirArchive,
    listing: _Listing,
    batch: Sequence[str],
    *,
    clock: float,
    report: ArchiveReport,
) -> None:
    """Step 3: retrieve each uid of `batch`; store it, or adopt a file with the same bytes.

    Every message is retrieved, even when a file of its uid exists: a server may give an
    old uid to a new message, and only the bytes tell the two apart. An `ArchiveError`
    stops the step.
    """
    try:
        if batch:
            await archive.ensure()
        for group in _retr_groups(batch, listing.sizes):
            results = await session.pipeline([Retr(listing.numbers[uid]) for uid in group])
            for uid, data in zip(group, results, strict=True):
                if not isinstance(data, bytes):
                    continue  # -ERR: the message went away; it stays pending if it comes back
                record, adopted = await archive.store_or_adopt(uid, data, now=clock)
                report.archived[uid] = record
                if adopted:
                    report.adopted.append(uid)
                else:
                    report.bytes_written += len(data)
    except ArchiveError as err:
        report.error = err


async def _delete_due(
    session: POP3Session,
    archive: MaildirArchive,
    listing: _Listing,
    *,
    archived: dict[str, ArchiveRecord],
    due: Sequence[str],
    clock: float,
    report: ArchiveReport,
    max_messages: int,
    max_bytes: int,
) -> None:
    """Step 4: DELE each uid of `due` whose server copy and file both match its record.

    Sizes first (`is_safe_to_delete`), then the bytes: a message archived in this session
    was hashed as it was stored; any other is retrieved again and its SHA-256 compared
    with the file's, so a new message under a reused uid is never deleted for an old file.
    Retrieving again is bounded like archiving (`max_messages`, `max_bytes`), so a long
    backlog of due mail cannot outlast the session; the rest waits for the next run.
    """
    sized: list[str] = []
    for uid in due:
        record = archived[uid]
        number = listing.numbers.get(uid, 0)
        if is_safe_to_delete(
            uid,
            record,
            uid_at_number=listing.uid_at.get(number),
            listed_size=listing.sizes.get(uid),
            file_size=await archive.file_size(record),
        ):
            sized.append(uid)
        else:
            report.unverified.append(uid)
            archive.unverified[uid] = clock
    server_digests = {
        uid: record.digest for uid, record in report.archived.items() if record.digest is not None
    }
    recheck = [uid for uid in sized if uid not in server_digests]
    recheck = to_archive(recheck, listing.sizes, frozenset(), max_messages, max_bytes)
    await _retrieve_digests(session, listing, recheck, server_digests)
    dele: list[str] = []
    for uid in sized:
        if uid not in server_digests and uid not in recheck:
            continue  # beyond this run's budget: neither deleted nor unverified
        record = archived[uid]
        server_digest = server_digests.get(uid)
        if uid in report.archived:
            file_digest = record.digest  # written or matched byte for byte in this session
        else:
            file_digest = await archive.file_digest(record)
        if (
            server_digest is not None
            and server_digest == file_digest
            and record.digest in {None, server_digest}
        ):
            dele.append(uid)
            archive.unverified.pop(uid, None)
        else:
            report.unverified.append(uid)
            archive.unverified[uid] = clock
    if dele:
        results = await session.pipeline([Dele(listing.numbers[uid]) for uid in dele])
        report.deleted = [uid for uid, result in zip(dele, results, strict=True) if result is None]
        report.deleted_bytes = sum(listing.sizes[uid] for uid in report.deleted)


async def _retrieve_digests(
    session: POP3Session, listing: _Listing, uids: Sequence[str], digests: dict[str, str]
) -> None:
    """RETR `uids` in bounded groups and note the SHA-256 of each message in `digests`."""
    loop = asyncio.get_running_loop()
    for group in _retr_groups(uids, listing.sizes):
        results = await session.pipeline([Retr(listing.numbers[uid]) for uid in group])
        for uid, data in zip(group, results, strict=True):
            if isinstance(data, bytes):
                digests[uid] = await loop.run_in_executor(None, digest_of, data)


async def run_archive_session(
    session: POP3Session,
    state: MailboxState,
    archive: MaildirArchive,
    *,
    policy: DeletePolicy | str = DeletePolicy.KEEP,
    keep_days: float = 14,
    now: float | None = None,
    max_messages: int = DEFAULT_MAX_MESSAGES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ArchiveReport:
    """Archive the next batch of known mail and delete what the policy says; see the module doc.

    `session` is logged in; this sends UIDL, LIST, RETR and DELE, never QUIT.
    `now` is seconds since the epoch (default: the clock), used for the file
    names, the records and the `after_days` deadline.
    """
    clock = time.time() if now is None else now
    policy = DeletePolicy(policy)
    report = ArchiveReport()
    selection = _select(state, archive, policy, keep_days, clock)
    if not selection.unarchived and not selection.due:
        return report
    listing = await _listing(session, selection, max_messages)
    _note_too_large(archive, selection, listing, max_message_bytes, report)
    # Counted as done for selection only: they never get a record, so never a DELE.
    skip = selection.archived.keys() | archive.too_large | selection.exclude
    batch = to_archive(listing.order, listing.sizes, skip, max_messages, max_bytes)
    await _archive_batch(session, archive, listing, batch, clock=clock, report=report)
    archived = {**selection.archived, **report.archived}
    due = to_delete(listing.order, archived, policy, keep_days, clock, exclude=selection.exclude)
    await _delete_due(
        session,
        archive,
        listing,
        archived=archived,
        due=due,
        clock=clock,
        report=report,
        max_messages=max_messages,
        max_bytes=max_bytes,
    )
    left = backlog(listing.order, listing.sizes, skip | report.archived.keys())
    report.pending_messages = left.messages
    report.pending_bytes = left.bytes
    return report
