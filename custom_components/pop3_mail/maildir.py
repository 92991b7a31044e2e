"""A Maildir the archive writes mail into, durably and byte for byte. No POP3 here.

Usage::

    archive = MaildirArchive(Path(folder), mailbox="alice@example.com")  # keep one per entry
    await archive.ensure()                       # the folder and its tmp/, new/, cur/
    record = await archive.store(uid, data)      # durable in new/ once this returns

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
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import time
from typing import TYPE_CHECKING, Literal

import aiofiles
import aiofiles.os

from .sync.state import ArchiveRecord

if TYPE_CHECKING:
    from pathlib import Path

type ArchiveErrorReason = Literal["not_writable", "disk_full", "other"]

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
