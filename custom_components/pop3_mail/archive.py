"""Download new mail into a local Maildir, and delete archived mail from the server.

No Home Assistant imports: the coordinator calls this after the read-only check
session, in a session of its own.

Usage::

    archive = MaildirArchive(Path(folder), mailbox="alice@example.com")  # keep one per entry
    async with connect(...) as session:
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
back; files already written are adopted by the next run.
`has_work(state.known_uids, state.archived, policy, keep_days, now, skip=archive.too_large,
exclude=state.archive_baseline or ())` (from `sync.retention`) tells, without connecting,
whether a run would do anything.

`MaildirArchive`
    `ensure()` creates the folder and its `tmp/`, `new/`, `cur/`.
    `store(uid, data)` writes `data` byte for byte to `tmp/`, fsyncs it, renames it
    into `new/` and fsyncs `new/`; it returns the `ArchiveRecord`. File names are
    `<epoch>.U<hash>.<host>,S=<size>` where the hash is of the mailbox and the uid,
    so one uid has one recognisable file: a retry, or a run after a crash between
    writing the file and saving the state, finds it (`find(uid)`) and adopts it
    instead of writing a second copy; `find` fsyncs the file and its folder first,
    since the crash may have come before they were durable. `new/` and `cur/` are listed once per
    `MaildirArchive` (lazily, when a uid without a record must be archived, and
    again only if a recorded file is missing and cur/ changed); the state's
    records are the index otherwise. `file_size(record)` also finds a file a
    mail client moved to `cur/`. Errors are `ArchiveError` with `reason`
    "not_writable", "disk_full" or "other".

`run_archive_session(session, state, archive, ...)` -> `ArchiveReport`
    1. Only uids the check has already seen (`state.known_uids`) are considered, so
       a message is never archived, let alone deleted, before its event fired; and
       of those, none in `state.archive_baseline` (mail that was on the server
       before archiving started): they are never archived nor deleted.
    2. Message numbers are confirmed in this session: `UIDL n` + `LIST n` pipelined
       for each uid to archive or delete, numbered as in the check; if the mailbox
       changed since (or the backlog is large), one pipelined full `UIDL` + `LIST`.
    3. At most `max_messages` / `max_bytes` of the oldest unarchived messages are
       retrieved (RETR, pipelined in small groups) and stored, or adopted if a file
       for the uid is already there. A message larger than `max_message_bytes`
       (keep it below the session's `max_response_bytes`) is skipped, reported in
       `too_large`, and so never deleted either; the archive object remembers it
       (`archive.too_large`) so later runs do not ask about it again.
    4. The delete policy (`sync.retention`) names the archived uids due; DELE is
       sent only for those whose number maps to the uid in this session, whose
       LIST size equals the record's size, and whose archive file exists with that
       exact size (stat now). With `after_archive` that is the same session that
       archived it, right after the fsyncs. Deletions take effect at the caller's
       QUIT; if the session fails first, the client closes without QUIT and
       nothing is deleted.
    An `ArchiveError` stops archiving for this run and is returned in the report
    (the deletions of mail already safely archived still go ahead); POP3 errors
    propagate unchanged so the caller's session closes without QUIT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import errno
import hashlib
import os
import socket
import time
from typing import TYPE_CHECKING, Literal

import aiofiles
import aiofiles.os

from .pop3.errors import POP3ProtocolError, POP3ResponseError
from .pop3.requests import Dele, List, Retr, Uidl
from .sync.retention import DeletePolicy, backlog, is_safe_to_delete, to_archive, to_delete
from .sync.state import ArchiveRecord

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from .pop3 import POP3Session
    from .sync.state import MailboxState

type ArchiveErrorReason = Literal["not_writable", "disk_full", "other"]

DEFAULT_MAX_MESSAGES = 50
DEFAULT_MAX_BYTES = 25 * 2**20
#: Below the client's default max_response_bytes (64 MiB), leaving room for dot-stuffing.
DEFAULT_MAX_MESSAGE_BYTES = 48 * 2**20

#: Above this many numbers to confirm, one full UIDL + LIST costs less than UIDL n + LIST n each.
_MAX_PROBES = 200
#: RETRs pipelined together hold at most this many bytes (or one message) in memory at once.
_RETR_GROUP_BYTES = 4 * 2**20
_RETR_GROUP_MESSAGES = 10
#: Free space we leave on the disk beyond the message itself.
_FREE_SPACE_MARGIN = 2**20
_SUBDIRS = ("tmp", "new", "cur")
#: Hex digits of the uid hash in file names: 96 bits, no collision in any real archive.
_TAG_HEX = 24
_HEX = frozenset("0123456789abcdef")

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_NOT_WRITABLE = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR}
)


class ArchiveError(Exception):
    """The archive folder cannot take the message; `reason` says why.

    `reason` is "not_writable" (permissions, read-only file system, a path that is
    not a folder), "disk_full" (no space or quota left) or "other".
    """

    def __init__(self, reason: ArchiveErrorReason, path: Path, detail: str) -> None:
        self.reason: ArchiveErrorReason = reason
        self.path = path
        self.detail = detail
        super().__init__(f"Cannot archive mail in {path}: {detail}")

    @classmethod
    def from_os_error(cls, err: OSError, path: Path) -> ArchiveError:
        """Classify an OSError from the file system."""
        reason: ArchiveErrorReason
        if err.errno in _DISK_FULL:
            reason = "disk_full"
        elif err.errno in _NOT_WRITABLE:
            reason = "not_writable"
        else:
            reason = "other"
        return cls(reason, path, err.strerror or str(err))


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


def _host_part(hostname: str) -> str:
    # Maildir names use "/" and ":" as separators; the spec escapes them in the host.
    return hostname.replace("/", r"\057").replace(":", r"\072") or "localhost"


def _is_tag(part: str) -> bool:
    return len(part) == _TAG_HEX + 1 and part[0] == "U" and all(c in _HEX for c in part[1:])


def _fsync_file(fd: int) -> None:
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MaildirArchive:
    """A Maildir the archive writes into; one per config entry (it caches a file index)."""

    def __init__(self, folder: Path, *, mailbox: str = "", hostname: str | None = None) -> None:
        """Use `folder` as the Maildir; `mailbox` keeps two mailboxes sharing it apart."""
        self.folder = folder
        self._mailbox = mailbox
        self._host = _host_part(socket.gethostname() if hostname is None else hostname)
        self._index: dict[str, tuple[str, str]] | None = None
        self._index_cur_mtime = 0
        #: Uids found larger than `max_message_bytes` since start: not asked about again.
        self.too_large: set[str] = set()
        #: Archived uids whose deletion could not be verified (LIST size, record and file
        #: disagree), with when that was last found: a caller need not log in just to retry them.
        self.unverified: dict[str, float] = {}

    def tag(self, uid: str) -> str:
        """The part of the file name that stands for this mailbox's `uid`."""
        digest = hashlib.sha256(f"{self._mailbox}\0{uid}".encode()).hexdigest()
        return f"U{digest[:_TAG_HEX]}"

    async def ensure(self) -> None:
        """Create the folder and its tmp/, new/ and cur/ if missing."""
        for sub in _SUBDIRS:
            path = self.folder / sub
            try:
                await aiofiles.os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as err:
                raise ArchiveError.from_os_error(err, path) from err

    async def find(self, uid: str) -> ArchiveRecord | None:
        """Return the record of a file already archived for `uid` (new/ or cur/), if any.

        The file and its folder are fsynced first: after a crash, the rename into
        new/ may not be on disk yet, and a record (and so a DELE) must only ever
        name a durable file.
        """
        tag = self.tag(uid)
        try:
            return await self._durable_record(tag)
        except FileNotFoundError:
            pass  # a mail client moved it to cur/ between the lookup and the fsync
        try:
            return await self._durable_record(tag)
        except FileNotFoundError as err:
            raise ArchiveError.from_os_error(err, self.folder) from err

    async def _durable_record(self, tag: str) -> ArchiveRecord | None:
        """The record of the file for `tag`, once it and its folder are fsynced.

        Raises `ArchiveError`, or FileNotFoundError when the file moved meanwhile.
        """
        found = await self._locate(tag)
        if found is None:
            return None
        path, stat = found
        loop = asyncio.get_running_loop()
        try:
            async with aiofiles.open(path, "rb") as file:
                await loop.run_in_executor(None, _fsync_file, file.fileno())
            await loop.run_in_executor(None, _fsync_dir, path.parent)
        except FileNotFoundError:
            raise
        except OSError as err:
            raise ArchiveError.from_os_error(err, path) from err
        return ArchiveRecord(filename=path.name, size=stat.st_size, archived_at=stat.st_mtime)

    async def store(self, uid: str, data: bytes, *, now: float | None = None) -> ArchiveRecord:
        """Write `data` durably into new/ and return its record.

        The file is written under tmp/, flushed and fsynced, renamed into new/,
        and new/ is fsynced: once this returns, the message survives a power cut.
        """
        existing = await self.find(uid)
        if existing is not None:
            return existing
        stamp = time.time() if now is None else now
        tag = self.tag(uid)
        base = f"{int(stamp)}.{tag}.{self._host}"
        name = f"{base},S={len(data)}"
        # One tmp name per uid: a retry after a failed write reuses it instead of leaving litter.
        tmp = self.folder / "tmp" / f"{tag}.{self._host}"
        final = self.folder / "new" / name
        await self._check_free_space(len(data))
        renamed = False
        try:
            async with aiofiles.open(tmp, "wb") as file:
                await file.write(data)
                await file.flush()
                await asyncio.get_running_loop().run_in_executor(None, _fsync_file, file.fileno())
            await aiofiles.os.rename(tmp, final)
            renamed = True
            await asyncio.get_running_loop().run_in_executor(None, _fsync_dir, final.parent)
        except OSError as err:
            # new/ holds only durable files: one that might not survive a power cut must
            # not be adopted later as if it would.
            await self._discard(final if renamed else tmp)
            raise ArchiveError.from_os_error(err, final) from err
        index = await self._load_index()
        index[tag] = ("new", name)
        return ArchiveRecord(filename=name, size=len(data), archived_at=stamp)

    async def file_size(self, record: ArchiveRecord) -> int | None:
        """Return the size of the record's file now, or None when it is gone.

        Looks in new/, then for the same file in cur/, where a mail client moves
        what it has shown and appends ":2,<flags>" to the name.
        """
        try:
            return (await aiofiles.os.stat(self.folder / "new" / record.filename)).st_size
        except OSError:
            pass
        parts = record.filename.split(".", 2)
        if len(parts) != 3 or not _is_tag(parts[1]):
            return None
        try:
            found = await self._locate(parts[1])
        except ArchiveError:
            return None
        return None if found is None else found[1].st_size

    async def _locate(self, tag: str) -> tuple[Path, os.stat_result] | None:
        """Path and stat of the file for `tag`, rescanning once if cur/ changed since the index."""
        for refresh in (False, True):
            index = await self._load_index(refresh=refresh)
            if (entry := index.get(tag)) is None:
                continue
            path = self.folder / entry[0] / entry[1]
            try:
                return path, await aiofiles.os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError.from_os_error(err, path) from err
        return None

    async def _cur_mtime(self) -> int:
        try:
            return (await aiofiles.os.stat(self.folder / "cur")).st_mtime_ns
        except OSError:
            return 0

    async def _load_index(self, *, refresh: bool = False) -> dict[str, tuple[str, str]]:
        """Map tag -> (subfolder, name); listed once, again only when cur/ has changed.

        Our own files go to new/ and are added as they are written; other programs
        only move them to cur/ (or delete them), which changes cur/'s mtime.
        """
        if self._index is not None and (
            not refresh or await self._cur_mtime() == self._index_cur_mtime
        ):
            return self._index
        cur_mtime = await self._cur_mtime()
        index: dict[str, tuple[str, str]] = {}
        for sub in ("cur", "new"):
            try:
                names = await aiofiles.os.listdir(self.folder / sub)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError.from_os_error(err, self.folder / sub) from err
            for name in names:
                parts = name.split(".", 2)
                if len(parts) == 3 and _is_tag(parts[1]):
                    # new/ is read last: a file still in new/ wins over a stale copy in cur/.
                    index[parts[1]] = (sub, name)
        self._index = index
        self._index_cur_mtime = cur_mtime
        return index

    async def _check_free_space(self, size: int) -> None:
        path = self.folder / "tmp"
        try:
            fs = await aiofiles.os.statvfs(path)
        except OSError as err:
            raise ArchiveError.from_os_error(err, path) from err
        if fs.f_bavail * fs.f_frsize < size + _FREE_SPACE_MARGIN:
            raise ArchiveError("disk_full", path, "not enough free space")

    async def _discard(self, path: Path) -> None:
        try:
            await aiofiles.os.remove(path)
        except OSError:
            return


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
    known = list(state.known_uids)
    archived: dict[str, ArchiveRecord] = dict(state.archived)
    exclude = state.archive_baseline or frozenset()
    unarchived = [
        uid
        for uid in dict.fromkeys(known)
        if uid not in archived and uid not in archive.too_large and uid not in exclude
    ]
    due = set(to_delete(known, archived, policy, keep_days, clock, exclude=exclude))
    if not unarchived and not due:
        return report

    listing: _Listing | None = None
    wanted = set(unarchived) | due
    if len(unarchived) <= max_messages and len(wanted) <= _MAX_PROBES:
        listing = await _probe(session, known, wanted)
    if listing is None:
        listing = await _full_listing(session, known)

    archive.too_large.update(
        uid
        for uid in listing.order
        if uid not in archived
        and uid not in exclude
        and listing.sizes.get(uid, 0) > max_message_bytes
    )
    report.too_large = [uid for uid in dict.fromkeys(listing.order) if uid in archive.too_large]
    # Counted as done for selection only: they never get a record, so never a DELE.
    skip = archived.keys() | archive.too_large | exclude
    batch = to_archive(listing.order, listing.sizes, skip, max_messages, max_bytes)
    try:
        if batch:
            await archive.ensure()
        fetch: list[str] = []
        for uid in batch:
            if (found := await archive.find(uid)) is not None:
                report.archived[uid] = found
                report.adopted.append(uid)
            else:
                fetch.append(uid)
        for group in _retr_groups(fetch, listing.sizes):
            results = await session.pipeline([Retr(listing.numbers[uid]) for uid in group])
            for uid, data in zip(group, results, strict=True):
                if not isinstance(data, bytes):
                    continue  # -ERR: the message went away; it stays pending if it comes back
                report.archived[uid] = await archive.store(uid, data, now=clock)
                report.bytes_written += len(data)
    except ArchiveError as err:
        report.error = err

    archived.update(report.archived)
    dele: list[str] = []
    for uid in to_delete(listing.order, archived, policy, keep_days, clock, exclude=exclude):
        record = archived[uid]
        number = listing.numbers.get(uid, 0)
        file_size = await archive.file_size(record)
        if is_safe_to_delete(
            uid,
            record,
            uid_at_number=listing.uid_at.get(number),
            listed_size=listing.sizes.get(uid),
            file_size=file_size,
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

    left = backlog(listing.order, listing.sizes, skip | report.archived.keys())
    report.pending_messages = left.messages
    report.pending_bytes = left.bytes
    return report
