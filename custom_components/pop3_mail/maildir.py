"""A Maildir the archive writes mail into, durably and byte for byte. No POP3 here.

Usage::

    archive = MaildirArchive(Path(folder), mailbox="alice@example.com")  # keep one per entry
    await archive.ensure()                       # the folder and its tmp/, new/, cur/
    record = await archive.store(uid, data)      # durable in new/ once this returns

`MaildirArchive`
    `ensure()` creates the folder and its `tmp/`, `new/`, `cur/`, and (once per
    object) removes files a crash left in `tmp/` more than 36 hours ago.
    `store(uid, data)` writes `data` byte for byte to `tmp/` (a file we create,
    never through a symlink: O_CREAT|O_EXCL|O_NOFOLLOW), fsyncs it, renames it
    into `new/` and fsyncs `new/`; it returns the `ArchiveRecord` with the SHA-256
    of the bytes. File names are `<epoch>.U<hash>.<host>,S=<size>` where the hash
    is of the mailbox and the uid, so the files of one uid are recognisable: a
    retry, or a run after a crash between writing the file and saving the state,
    finds a file with the same size and SHA-256 (`find(uid, data)`) and adopts it
    instead of writing a second copy; a file of the uid with other bytes (the
    server gave an old uid to a new message) is never adopted nor replaced.
    `find` fsyncs the file and its folder first, since the crash may have come
    before they were durable. `new/` and `cur/` are listed once per
    `MaildirArchive` (lazily, and again only if a file is missing and cur/
    changed); the state's records are the index otherwise. `file_size(record)`
    and `file_digest(record)` also find a file a mail client moved to `cur/`.
    Errors are `ArchiveError` with `reason` "not_writable", "disk_full" or "other".
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import stat
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
#: Files in tmp/ untouched this long were left by a crash (the Maildir spec's 36 hours).
STALE_TMP_SECONDS = 36 * 3600
_READ_CHUNK = 2**20

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


def digest_of(data: bytes) -> str:
    """Return the SHA-256 (hex) of `data`: what an archive record calls its `digest`."""
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _base_name(name: str) -> str:
    """The name a file was written under: a mail client appends ":2,<flags>" in cur/."""
    return name.split(":", 1)[0]


def _exclusive_opener(path: str, flags: int) -> int:
    # Anyone who can write to tmp/ could plant a symlink at our name: never follow one, and
    # never write into a file we did not create.
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)


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
        #: tag -> (subfolder, name) of every file of that uid, cur/ first, then new/.
        self._index: dict[str, list[tuple[str, str]]] | None = None
        self._index_cur_mtime = 0
        self._tmp_cleaned = False
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
        """Create the folder and its tmp/, new/ and cur/ if missing; clear stale tmp/ files."""
        for sub in _SUBDIRS:
            path = self.folder / sub
            try:
                await aiofiles.os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as err:
                raise ArchiveError.from_os_error(err, path) from err
        if not self._tmp_cleaned:
            self._tmp_cleaned = True
            await self.clean_tmp(time.time())

    async def clean_tmp(self, now: float) -> None:
        """Remove files from tmp/ untouched for `STALE_TMP_SECONDS`: litter of a crash.

        Younger files may be another writer's work in progress and are left alone;
        a symlink is removed itself, never what it points to.
        """
        tmp = self.folder / "tmp"
        try:
            names = await aiofiles.os.listdir(tmp)
        except OSError:
            return
        loop = asyncio.get_running_loop()
        for name in names:
            path = tmp / name
            try:
                info = await loop.run_in_executor(None, os.lstat, path)
                if stat.S_ISDIR(info.st_mode):
                    continue
                if now - max(info.st_mtime, info.st_atime) > STALE_TMP_SECONDS:
                    await aiofiles.os.remove(path)
            except OSError:
                continue  # gone meanwhile, or not ours to remove: tmp/ litter is harmless

    async def find(self, uid: str, data: bytes) -> ArchiveRecord | None:
        """Return the record of a file already archived for `uid` holding exactly `data`.

        Only a file of the same size and SHA-256 counts: a server may give an old uid to
        a new message, and a file of the old one must never stand for it. The file and
        its folder are fsynced first: after a crash, the rename into new/ may not be on
        disk yet, and a record (and so a DELE) must only ever name a durable file.
        """
        digest = await self._digest(data)
        return await self._find(self.tag(uid), len(data), digest)

    async def store(self, uid: str, data: bytes, *, now: float | None = None) -> ArchiveRecord:
        """Write `data` durably into new/ and return its record; see `store_or_adopt`."""
        record, _ = await self.store_or_adopt(uid, data, now=now)
        return record

    async def store_or_adopt(
        self, uid: str, data: bytes, *, now: float | None = None
    ) -> tuple[ArchiveRecord, bool]:
        """Return the record of `data` for `uid`, and whether an existing file was adopted.

        A file of `uid` with these exact bytes (a retry, or a crash before the state
        was saved) is adopted. Otherwise the data is written under tmp/, flushed and
        fsynced, renamed into new/, and new/ is fsynced: once this returns, the message
        survives a power cut. A file of `uid` with other bytes is left untouched.
        """
        digest = await self._digest(data)
        tag = self.tag(uid)
        if (existing := await self._find(tag, len(data), digest)) is not None:
            return existing, True
        stamp = time.time() if now is None else now
        name = f"{int(stamp)}.{tag}.{self._host},S={len(data)}"
        if await self._name_taken(tag, name):
            # Another message under the same uid, same second and size: never replace it.
            name = f"{name},H={digest[:16]}"
        # One tmp name per uid: a retry after a failed write reuses it instead of leaving litter.
        tmp = self.folder / "tmp" / f"{tag}.{self._host}"
        final = self.folder / "new" / name
        await self._check_free_space(len(data))
        # Left by a failed write, or planted: removing a symlink never touches its target.
        await self._discard(tmp)
        renamed = False
        try:
            async with aiofiles.open(tmp, "xb", opener=_exclusive_opener) as file:
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
        index.setdefault(tag, []).append(("new", name))
        return ArchiveRecord(filename=name, size=len(data), archived_at=stamp, digest=digest), False

    async def file_size(self, record: ArchiveRecord) -> int | None:
        """Return the size of the record's file now, or None when it is gone.

        Looks in new/, then for the same file in cur/, where a mail client moves
        what it has shown and appends ":2,<flags>" to the name.
        """
        found = await self._locate_record(record)
        return None if found is None else found[1].st_size

    async def file_digest(self, record: ArchiveRecord) -> str | None:
        """Return the SHA-256 of the record's file now, or None when it is gone or unreadable."""
        found = await self._locate_record(record)
        if found is None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(None, _file_digest, found[0])
        except OSError:
            return None

    async def _digest(self, data: bytes) -> str:
        # Up to tens of megabytes: hashing them would hold the event loop.
        return await asyncio.get_running_loop().run_in_executor(None, digest_of, data)

    async def _find(self, tag: str, size: int, digest: str) -> ArchiveRecord | None:
        try:
            return await self._durable_match(tag, size, digest)
        except FileNotFoundError:
            pass  # a mail client moved it to cur/ between the lookup and the fsync
        try:
            return await self._durable_match(tag, size, digest)
        except FileNotFoundError as err:
            raise ArchiveError.from_os_error(err, self.folder) from err

    async def _durable_match(self, tag: str, size: int, digest: str) -> ArchiveRecord | None:
        """The record of the file for `tag` with these bytes, once it and its folder are fsynced.

        Raises `ArchiveError`, or FileNotFoundError when the file moved meanwhile.
        """
        loop = asyncio.get_running_loop()
        for refresh in (False, True):
            for path, info in await self._files(tag, refresh=refresh):
                if info.st_size != size:
                    continue
                try:
                    if await loop.run_in_executor(None, _file_digest, path) != digest:
                        continue
                    async with aiofiles.open(path, "rb") as file:
                        await loop.run_in_executor(None, _fsync_file, file.fileno())
                    await loop.run_in_executor(None, _fsync_dir, path.parent)
                except FileNotFoundError:
                    raise
                except OSError as err:
                    raise ArchiveError.from_os_error(err, path) from err
                return ArchiveRecord(
                    filename=path.name, size=info.st_size, archived_at=info.st_mtime, digest=digest
                )
        return None

    async def _files(self, tag: str, *, refresh: bool) -> list[tuple[Path, os.stat_result]]:
        """Path and stat of each file of `tag` (rescanning only if cur/ changed since)."""
        index = await self._load_index(refresh=refresh)
        found: list[tuple[Path, os.stat_result]] = []
        for sub, name in index.get(tag, ()):
            path = self.folder / sub / name
            try:
                found.append((path, await aiofiles.os.stat(path)))
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError.from_os_error(err, path) from err
        return found

    async def _locate_record(self, record: ArchiveRecord) -> tuple[Path, os.stat_result] | None:
        """Path and stat of the record's file in new/, or moved to cur/; None when gone."""
        path = self.folder / "new" / record.filename
        try:
            return path, await aiofiles.os.stat(path)
        except OSError:
            pass
        parts = record.filename.split(".", 2)
        if len(parts) != 3 or not _is_tag(parts[1]):
            return None
        base = _base_name(record.filename)
        try:
            for refresh in (False, True):
                for found in await self._files(parts[1], refresh=refresh):
                    if _base_name(found[0].name) == base:
                        return found
        except ArchiveError:
            return None
        return None

    async def _name_taken(self, tag: str, name: str) -> bool:
        index = await self._load_index()
        if any(_base_name(known) == name for _, known in index.get(tag, ())):
            return True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, os.lstat, self.folder / "new" / name)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: better a longer name than a replaced file
        return True

    async def _cur_mtime(self) -> int:
        try:
            return (await aiofiles.os.stat(self.folder / "cur")).st_mtime_ns
        except OSError:
            return 0

    async def _load_index(self, *, refresh: bool = False) -> dict[str, list[tuple[str, str]]]:
        """Map tag -> [(subfolder, name)]; listed once, again only when cur/ has changed.

        Our own files go to new/ and are added as they are written; other programs
        only move them to cur/ (or delete them), which changes cur/'s mtime.
        """
        if self._index is not None and (
            not refresh or await self._cur_mtime() == self._index_cur_mtime
        ):
            return self._index
        cur_mtime = await self._cur_mtime()
        index: dict[str, list[tuple[str, str]]] = {}
        for sub in ("cur", "new"):
            try:
                names = await aiofiles.os.listdir(self.folder / sub)
            except FileNotFoundError:
                continue
            except OSError as err:
                raise ArchiveError.from_os_error(err, self.folder / sub) from err
            for name in sorted(names):
                parts = name.split(".", 2)
                if len(parts) == 3 and _is_tag(parts[1]):
                    index.setdefault(parts[1], []).append((sub, name))
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
