"""Tests of the Maildir archive and the archive/retention session.

Against the fake POP3 server and a real Dovecot: files byte-exact with what the
server sends, deletions only of durably archived mail, committed at QUIT.
"""

from __future__ import annotations

from dataclasses import replace
import errno
import hashlib
import os
from pathlib import Path
import re
import time
from typing import TYPE_CHECKING, Any

import aiofiles.os
import aiofiles.threadpool.binary
import pytest

from custom_components.pop3_mail import maildir as maildir_module
from custom_components.pop3_mail.archive_session import ArchiveReport, run_archive_session
from custom_components.pop3_mail.maildir import ArchiveError, MaildirArchive
from custom_components.pop3_mail.pop3 import (
    POP3ConnectionError,
    POP3Error,
    POP3ResponseError,
    Security,
    connect,
)
from custom_components.pop3_mail.sync.retention import SECONDS_PER_DAY, DeletePolicy, has_work
from custom_components.pop3_mail.sync.state import (
    ArchiveRecord,
    MailboxState,
    forget,
    from_dict,
    to_dict,
)
from tests.servers.fake_pop3 import FakePOP3Server, Fault, drop, drop_mid_response, err

if TYPE_CHECKING:
    from tests.servers.fixtures import FakePOP3Factory

NOW = 1_800_000_000.0
NAME = re.compile(r"^(\d+)\.(U[0-9a-f]{24})\.([^/:]+),S=(\d+)$")

DOT_STUFFED = (
    b"From: a@example.com\r\nSubject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...three\r\nend.\r\n"
)
EIGHT_BIT = (
    b"From: b@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Content-Type: text/plain; charset=latin-1\r\n\r\n"
    + bytes(range(0x80, 0x100))
    + b"\r\ncaf\xe9 \xc3\xa9\r\n"
)
CRLF_BODY = b"From: c@example.com\r\nSubject: lines\r\n\r\nline 1\r\n\r\n\r\nline 4\r\n"


def message(n: int, body_bytes: int = 0) -> bytes:
    """A small message numbered `n`, padded to about `body_bytes`."""
    pad = b"x" * 70 + b"\r\n"
    return (
        f"From: sender{n}@example.com\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode()
        + pad * (body_bytes // len(pad))
    )


def known(server: FakePOP3Server, **changes: Any) -> MailboxState:
    """The state a check of `server` would have left (every uid known, in server order)."""
    uids = tuple(server.mailbox.uids())
    size = sum(len(server.mailbox.get(uid)) for uid in uids)
    return replace(MailboxState(known_uids=uids, size=size, initialised=True), **changes)


def commit(state: MailboxState, report: ArchiveReport, *, quit_ok: bool = True) -> MailboxState:
    """What the coordinator does with a report: records always, deletions after a clean QUIT."""
    state = replace(state, archived={**state.archived, **report.archived})
    if quit_ok:
        state = forget(state, report.deleted, freed_bytes=report.deleted_bytes)
    return state


async def run(
    server: FakePOP3Server, state: MailboxState, archive: MaildirArchive, **kwargs: Any
) -> ArchiveReport:
    """One archive session against the fake server (closed with QUIT on success)."""
    kwargs.setdefault("now", NOW)
    async with connect(
        server.host, server.port, security=Security.NONE, username="alice", password="secret"
    ) as session:
        return await run_archive_session(session, state, archive, **kwargs)


def files(folder: Path, sub: str = "new") -> dict[str, bytes]:
    """The files of a Maildir subfolder by name."""
    return {path.name: path.read_bytes() for path in sorted((folder / sub).iterdir())}


def commands(server: FakePOP3Server, word: str, session: int = -1) -> list[str]:
    """The commands of one recorded session that start with `word`."""
    return [c for c in server.sessions[session].commands if c.split(" ")[0] == word]


# --- MaildirArchive -------------------------------------------------------------------------


async def test_store_writes_maildir_file_atomically(tmp_path: Path) -> None:
    """tmp/new/cur created; the file lands in new/ byte for byte, tmp/ left empty."""
    archive = MaildirArchive(tmp_path / "mail", mailbox="alice@h", hostname="ha.local")
    await archive.ensure()
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == ["cur", "new", "tmp"]

    record = await archive.store("uid-1", EIGHT_BIT, now=NOW)

    assert record == ArchiveRecord(
        filename=f"{int(NOW)}.{archive.tag('uid-1')}.ha.local,S={len(EIGHT_BIT)}",
        size=len(EIGHT_BIT),
        archived_at=NOW,
        digest=hashlib.sha256(EIGHT_BIT).hexdigest(),
    )
    assert files(tmp_path / "mail") == {record.filename: EIGHT_BIT}
    assert files(tmp_path / "mail", "tmp") == {}
    assert NAME.match(record.filename)
    assert await archive.file_size(record) == len(EIGHT_BIT)


async def test_store_fsyncs_file_before_rename_and_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Durable: the data is on disk before the name appears in new/, the name after."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()
    seen: list[tuple[str, list[str]]] = []
    fsync_file, fsync_dir = maildir_module._fsync_file, maildir_module._fsync_dir

    def spy_file(fd: int) -> None:
        seen.append(("file", os.listdir(tmp_path / "new")))
        fsync_file(fd)

    def spy_dir(path: Path) -> None:
        seen.append((f"dir {path.name}", os.listdir(tmp_path / "new")))
        fsync_dir(path)

    monkeypatch.setattr(maildir_module, "_fsync_file", spy_file)
    monkeypatch.setattr(maildir_module, "_fsync_dir", spy_dir)
    record = await archive.store("uid-1", b"data\r\n", now=NOW)
    assert seen == [("file", []), ("dir new", [record.filename])]


async def test_hostile_uid_stays_inside_the_folder(tmp_path: Path) -> None:
    """A uid is only ever hashed into a name: "../" or "/" in it cannot escape new/."""
    archive = MaildirArchive(tmp_path / "archive")
    await archive.ensure()
    record = await archive.store("../../etc/passwd:2,S", b"x\r\n", now=NOW)
    assert NAME.match(record.filename)
    assert list((tmp_path / "archive" / "new").iterdir()) == [
        tmp_path / "archive" / "new" / record.filename
    ]


async def test_crash_inside_a_write_leaves_no_trace(tmp_path: Path) -> None:
    """A half-written tmp/ file from a crash is replaced by the retry, never moved to new/."""
    archive = MaildirArchive(tmp_path, hostname="ha")
    await archive.ensure()
    (tmp_path / "tmp" / f"{archive.tag('uid-1')}.ha").write_bytes(b"half a mess")
    record = await archive.store("uid-1", b"the whole message\r\n", now=NOW)
    assert files(tmp_path) == {record.filename: b"the whole message\r\n"}
    assert files(tmp_path, "tmp") == {}


async def test_host_with_separators_is_escaped(tmp_path: Path) -> None:
    """A host name with "/" or ":" cannot break the Maildir name."""
    archive = MaildirArchive(tmp_path, hostname="a/b:c")
    await archive.ensure()
    record = await archive.store("u", b"x\r\n", now=NOW)
    assert record.filename.endswith(r".a\057b\072c,S=3")


async def test_store_twice_keeps_one_file(tmp_path: Path) -> None:
    """The same uid stored again (a retry) returns the first file."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()
    first = await archive.store("uid-1", b"one\r\n", now=NOW)
    again = await archive.store("uid-1", b"one\r\n", now=NOW + 60)
    assert again.filename == first.filename
    assert len(files(tmp_path)) == 1


async def test_find_adopts_file_after_restart(tmp_path: Path) -> None:
    """A new archive object (restart) finds the file of a uid in new/ or cur/."""
    first = MaildirArchive(tmp_path, mailbox="m")
    await first.ensure()
    a = await first.store("uid-a", b"aaaa\r\n", now=NOW)
    b = await first.store("uid-b", b"bb\r\n", now=NOW)
    # A mail client read uid-b: it moved the file to cur/ and added flags.
    os.rename(tmp_path / "new" / b.filename, tmp_path / "cur" / f"{b.filename}:2,S")

    restarted = MaildirArchive(tmp_path, mailbox="m")
    found_a = await restarted.find("uid-a", b"aaaa\r\n")
    found_b = await restarted.find("uid-b", b"bb\r\n")
    assert found_a is not None
    assert (found_a.filename, found_a.size) == (a.filename, 6)
    assert found_b is not None
    assert (found_b.filename, found_b.size) == (f"{b.filename}:2,S", 4)
    assert await restarted.find("uid-c", b"aaaa\r\n") is None
    assert await restarted.file_size(b) == 4  # the record kept its old name: found in cur/


async def test_find_makes_an_adopted_file_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file found after a crash may predate the fsyncs: file and folder are synced first."""
    first = MaildirArchive(tmp_path, mailbox="m")
    await first.ensure()
    a = await first.store("uid-a", b"aaaa\r\n", now=NOW)
    b = await first.store("uid-b", b"bb\r\n", now=NOW)
    os.rename(tmp_path / "new" / b.filename, tmp_path / "cur" / f"{b.filename}:2,S")
    synced: list[tuple[str, Path]] = []
    fsync_file, fsync_dir = maildir_module._fsync_file, maildir_module._fsync_dir

    def spy_file(fd: int) -> None:
        synced.append(("file", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        fsync_file(fd)

    def spy_dir(path: Path) -> None:
        synced.append(("dir", path))
        fsync_dir(path)

    monkeypatch.setattr(maildir_module, "_fsync_file", spy_file)
    monkeypatch.setattr(maildir_module, "_fsync_dir", spy_dir)
    restarted = MaildirArchive(tmp_path, mailbox="m")
    assert await restarted.find("uid-a", b"aaaa\r\n") is not None
    assert await restarted.find("uid-b", b"bb\r\n") is not None
    assert synced == [
        ("file", tmp_path / "new" / a.filename),
        ("dir", tmp_path / "new"),
        ("file", tmp_path / "cur" / f"{b.filename}:2,S"),
        ("dir", tmp_path / "cur"),
    ]


async def test_find_follows_a_file_moved_while_adopting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail client moves the file to cur/ between the lookup and the fsync: found there."""
    first = MaildirArchive(tmp_path, mailbox="m")
    await first.ensure()
    a = await first.store("uid-a", b"aaaa\r\n", now=NOW)
    moved = tmp_path / "cur" / f"{a.filename}:2,S"
    real_open = aiofiles.open
    opened: list[Path] = []

    def open_after_a_move(path: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        if path.parent.name == "new":
            os.rename(path, moved)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(maildir_module.aiofiles, "open", open_after_a_move)
    found = await MaildirArchive(tmp_path, mailbox="m").find("uid-a", b"aaaa\r\n")

    assert found is not None
    assert (found.filename, found.size) == (moved.name, 6)
    assert opened == [tmp_path / "new" / a.filename, moved]


async def test_adoption_that_cannot_be_made_durable_records_and_deletes_nothing(
    fake_pop3: FakePOP3Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync of a found file fails: an error, no record, so no DELE of it."""
    server = await fake_pop3(messages=[message(1)])
    state = known(server)
    await run(server, state, MaildirArchive(tmp_path), policy="keep")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(maildir_module, "_fsync_file", broken)
    report = await run(server, state, MaildirArchive(tmp_path), policy="after_archive")

    assert report.error is not None
    assert report.error.reason == "other"
    assert report.archived == {}
    assert report.deleted == []
    assert server.mailbox.uids() == ["uid-1"]


async def test_mailboxes_sharing_a_folder_do_not_collide(tmp_path: Path) -> None:
    """The same uid in two mailboxes is two files, never adopted across mailboxes."""
    alice = MaildirArchive(tmp_path, mailbox="alice@h")
    bob = MaildirArchive(tmp_path, mailbox="bob@h")
    await alice.ensure()
    await alice.store("uid-1", b"alice\r\n", now=NOW)
    assert await bob.find("uid-1", b"alice\r\n") is None
    await bob.store("uid-1", b"bob\r\n", now=NOW)
    assert sorted(files(tmp_path).values()) == [b"alice\r\n", b"bob\r\n"]


async def test_folder_that_is_a_file_is_not_writable(tmp_path: Path) -> None:
    """A path that is a file (tests run as root, so chmod would not stop writes)."""
    (tmp_path / "archive").write_bytes(b"not a folder")
    with pytest.raises(ArchiveError) as caught:
        await MaildirArchive(tmp_path / "archive").ensure()
    assert caught.value.reason == "not_writable"
    assert str(tmp_path / "archive") in str(caught.value)


async def test_new_that_is_a_file_is_not_writable(tmp_path: Path) -> None:
    """A Maildir whose new/ is a file cannot take mail."""
    for sub in ("tmp", "cur"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new").write_bytes(b"")
    with pytest.raises(ArchiveError) as caught:
        await MaildirArchive(tmp_path).ensure()
    assert caught.value.reason == "not_writable"


def fail_write(monkeypatch: pytest.MonkeyPatch, code: int, after: int = 0) -> list[int]:
    """Make the low-level file write raise OSError(code) after `after` successful writes."""
    calls: list[int] = []
    original = aiofiles.threadpool.binary.AsyncBufferedIOBase.write

    async def write(self: Any, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > after:
            raise OSError(code, os.strerror(code))
        result: int = await original(self, data)
        return result

    monkeypatch.setattr(aiofiles.threadpool.binary.AsyncBufferedIOBase, "write", write)
    return calls


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "disk_full"),
        (errno.EDQUOT, "disk_full"),
        (errno.EROFS, "not_writable"),
        (errno.EACCES, "not_writable"),
        (errno.EIO, "other"),
    ],
)
async def test_write_failure_is_typed_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    """A failed write raises ArchiveError(reason) and leaves neither tmp/ nor new/ files."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()
    fail_write(monkeypatch, code)
    with pytest.raises(ArchiveError) as caught:
        await archive.store("uid-1", b"data\r\n", now=NOW)
    assert caught.value.reason == reason
    assert files(tmp_path) == {}
    assert files(tmp_path, "tmp") == {}
    assert await archive.find("uid-1", b"data\r\n") is None


async def test_fsync_failure_is_not_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync can report ENOSPC (delayed allocation, NFS): the file never reaches new/."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maildir_module, "_fsync_file", no_space)
    with pytest.raises(ArchiveError) as caught:
        await archive.store("uid-1", b"data\r\n", now=NOW)
    assert caught.value.reason == "disk_full"
    assert files(tmp_path) == {}
    assert files(tmp_path, "tmp") == {}


async def test_folder_fsync_failure_removes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename could not be made durable: the file leaves new/ so no run adopts it."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()

    def io_error(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(maildir_module, "_fsync_dir", io_error)
    with pytest.raises(ArchiveError) as caught:
        await archive.store("uid-1", b"data\r\n", now=NOW)
    assert caught.value.reason == "other"
    assert files(tmp_path) == {}
    assert files(tmp_path, "tmp") == {}
    assert await archive.find("uid-1", b"data\r\n") is None


async def test_no_free_space_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not enough room for the message: disk_full without a partial file."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()
    real = os.statvfs(tmp_path)

    async def full(path: Any) -> Any:
        return os.statvfs_result((*real[:4], 0, *real[5:]))  # f_bavail = 0

    monkeypatch.setattr(aiofiles.os, "statvfs", full)
    with pytest.raises(ArchiveError) as caught:
        await archive.store("uid-1", b"data\r\n", now=NOW)
    assert caught.value.reason == "disk_full"
    assert files(tmp_path, "tmp") == {}


async def test_unreadable_folder_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder we cannot list: find raises not_writable, file_size says "gone"."""
    archive = MaildirArchive(tmp_path)
    await archive.ensure()
    record = await MaildirArchive(tmp_path).store("uid-1", b"x\r\n", now=NOW)
    os.rename(tmp_path / "new" / record.filename, tmp_path / "cur" / f"{record.filename}:2,S")

    async def denied(path: Any) -> list[str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(aiofiles.os, "listdir", denied)
    with pytest.raises(ArchiveError) as caught:
        await archive.find("uid-1", b"x\r\n")
    assert caught.value.reason == "not_writable"
    assert await archive.file_size(record) is None


async def test_file_size_of_foreign_or_missing_files(tmp_path: Path) -> None:
    """A record whose name is not ours, or a folder that is gone: no size, so no deletion."""
    archive = MaildirArchive(tmp_path / "archive")
    assert await archive.file_size(ArchiveRecord("not-ours", 1, NOW)) is None
    ours = ArchiveRecord(f"1.{archive.tag('u')}.host,S=1", 1, NOW)
    assert await archive.file_size(ours) is None
    with pytest.raises(ArchiveError) as caught:
        await archive.store("u", b"x", now=NOW)  # ensure() was never called
    assert caught.value.reason == "other"


def test_error_classification() -> None:
    """Each errno maps to the reason a repair issue can explain."""
    path = Path("/x")
    assert ArchiveError.from_os_error(OSError(errno.ENOSPC, "full"), path).reason == "disk_full"
    assert ArchiveError.from_os_error(OSError(errno.ENOTDIR, "no"), path).reason == "not_writable"
    assert ArchiveError.from_os_error(OSError(errno.EPERM, "no"), path).reason == "not_writable"
    assert ArchiveError.from_os_error(OSError(errno.ENOENT, "no"), path).reason == "other"
    assert ArchiveError.from_os_error(OSError("weird"), path).reason == "other"


# --- archive sessions against the fake server -----------------------------------------------


async def test_archive_is_byte_exact(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """Dot-stuffed lines, CRLF, 8-bit, 5 MB: each file is what the server holds; none deleted."""
    big = message(0, 5 * 2**20)
    server = await fake_pop3(messages=[DOT_STUFFED, CRLF_BODY, EIGHT_BIT, big])
    archive = MaildirArchive(tmp_path)
    state = known(server)

    report = await run(server, state, archive, policy="keep")

    assert report.error is None
    assert list(report.archived) == server.mailbox.uids()
    for uid, record in report.archived.items():
        assert (tmp_path / "new" / record.filename).read_bytes() == server.mailbox.get(uid)
        assert record.size == len(server.mailbox.get(uid))
        assert record.archived_at == NOW
    assert len(files(tmp_path)) == 4
    assert report.deleted == []
    assert (report.pending_messages, report.pending_bytes) == (0, 0)
    assert report.bytes_written == sum(len(server.mailbox.get(u)) for u in server.mailbox.uids())
    assert commands(server, "DELE") == []
    assert len(commands(server, "RETR")) == 4
    assert server.sessions[-1].quit
    assert len(server.mailbox) == 4

    # The next run has nothing to do and says nothing to the server.
    state = commit(state, report)
    again = await run(server, state, archive, policy="keep")
    assert again == ArchiveReport()
    assert server.sessions[-1].commands[-1] == "QUIT"
    assert not commands(server, "RETR")
    assert not commands(server, "UIDL")


async def test_after_archive_deletes_in_the_same_session(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """Archived and durable -> DELE, committed by QUIT; mail the check has not seen is untouched."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 4)])
    state = known(server)
    late = server.mailbox.add(message(99))  # arrived after the check: no event fired yet

    report = await run(server, state, MaildirArchive(tmp_path), policy="after_archive")

    assert sorted(report.archived) == ["uid-1", "uid-2", "uid-3"]
    assert report.deleted == ["uid-1", "uid-2", "uid-3"]
    assert report.deleted_bytes == sum(len(message(i)) for i in range(1, 4))
    assert server.sessions[-1].deleted == ["uid-1", "uid-2", "uid-3"]
    assert server.mailbox.uids() == [late]
    assert late not in report.archived
    assert len(files(tmp_path)) == 3
    state = commit(state, report)
    assert state.known_uids == ()
    assert state.archived == {}
    assert state.size == 0


@pytest.mark.parametrize("policy", ["after_archive", "after_days"])
async def test_mail_there_before_archiving_started_is_left_alone(
    fake_pop3: FakePOP3Factory, tmp_path: Path, policy: str
) -> None:
    """Baseline uids: never fetched, counted or deleted, even with a record; the rest as usual."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 5)])
    old_record = ArchiveRecord("old-file", len(message(2)), NOW - 30 * SECONDS_PER_DAY)
    state = known(
        server,
        archive_baseline=frozenset({"uid-1", "uid-2"}),
        archived={"uid-2": old_record},
    )
    assert has_work(
        state.known_uids, state.archived, policy, 0, NOW, exclude=state.archive_baseline or ()
    )

    report = await run(server, state, MaildirArchive(tmp_path), policy=policy, keep_days=0)

    assert sorted(report.archived) == ["uid-3", "uid-4"]
    assert commands(server, "RETR") == ["RETR 3", "RETR 4"]
    assert report.deleted == ["uid-3", "uid-4"]
    assert (report.pending_messages, report.unverified) == (0, [])
    assert server.mailbox.uids() == ["uid-1", "uid-2"]
    assert sorted(files(tmp_path).values()) == [message(3), message(4)]
    state = commit(state, report)
    assert not has_work(
        state.known_uids, state.archived, policy, 0, NOW, exclude=state.archive_baseline or ()
    )


async def test_after_days_deletes_on_the_day(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """keep_days after archiving, and not a second earlier."""
    server = await fake_pop3(messages=[message(1), message(2)])
    archive = MaildirArchive(tmp_path)
    state = known(server)
    first = await run(server, state, archive, policy="after_days", keep_days=3, now=NOW)
    assert first.deleted == []
    state = commit(state, first)
    # uid-3 is archived a day later than the others.
    state = replace(state, known_uids=(*state.known_uids, server.mailbox.add(message(3))))
    state = commit(
        state,
        await run(
            server, state, archive, policy="after_days", keep_days=3, now=NOW + SECONDS_PER_DAY
        ),
    )

    early = await run(
        server, state, archive, policy="after_days", keep_days=3, now=NOW + 3 * SECONDS_PER_DAY - 1
    )
    assert early.deleted == []
    assert commands(server, "DELE") == []
    assert commands(server, "UIDL") == []  # nothing due: the session did nothing

    due = await run(
        server, state, archive, policy="after_days", keep_days=3, now=NOW + 3 * SECONDS_PER_DAY
    )
    assert due.deleted == ["uid-1", "uid-2"]
    assert server.mailbox.uids() == ["uid-3"]
    state = commit(state, due)

    later = await run(
        server, state, archive, policy="after_days", keep_days=3, now=NOW + 4 * SECONDS_PER_DAY
    )
    assert later.deleted == ["uid-3"]
    assert server.mailbox.uids() == []
    assert len(files(tmp_path)) == 3


async def test_keep_never_deletes(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """keep: archived mail stays on the server forever."""
    server = await fake_pop3(messages=[message(1)])
    state = known(server)
    archive = MaildirArchive(tmp_path)
    state = commit(state, await run(server, state, archive, policy="keep"))
    report = await run(server, state, archive, policy="keep", now=NOW + 1000 * SECONDS_PER_DAY)
    assert report.deleted == []
    assert server.mailbox.uids() == ["uid-1"]


async def test_unwritable_folder_loses_nothing(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """Archive folder is a file: a typed error in the report, no exception, nothing deleted."""
    server = await fake_pop3(messages=[message(1), message(2)])
    (tmp_path / "archive").write_bytes(b"")
    state = known(server)

    report = await run(server, state, MaildirArchive(tmp_path / "archive"), policy="after_archive")

    assert report.error is not None
    assert report.error.reason == "not_writable"
    assert report.archived == {}
    assert report.deleted == []
    assert (report.pending_messages, report.pending_bytes) == (2, len(message(1)) + len(message(2)))
    assert commands(server, "RETR") == []
    assert commands(server, "DELE") == []
    assert server.sessions[-1].quit
    assert server.mailbox.uids() == ["uid-1", "uid-2"]


async def test_disk_full_midway_deletes_only_what_is_archived(
    fake_pop3: FakePOP3Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills after one message: that one may go, the others stay on the server."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 5)])
    archive = MaildirArchive(tmp_path)
    state = known(server)
    fail_write(monkeypatch, errno.ENOSPC, after=1)

    report = await run(server, state, archive, policy="after_archive")

    assert report.error is not None
    assert report.error.reason == "disk_full"
    assert list(report.archived) == ["uid-1"]
    assert report.deleted == ["uid-1"]
    assert server.mailbox.uids() == ["uid-2", "uid-3", "uid-4"]
    assert report.pending_messages == 3
    assert len(files(tmp_path)) == 1
    assert files(tmp_path, "tmp") == {}

    # Space again: the rest follows, each message once.
    monkeypatch.undo()
    state = commit(state, report)
    report = await run(server, state, archive, policy="after_archive")
    assert report.error is None
    assert list(report.archived) == ["uid-2", "uid-3", "uid-4"]
    assert server.mailbox.uids() == []
    assert len(files(tmp_path)) == 4


async def test_crash_before_recording_adopts_the_file(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """Files written but the state never saved: the next run adopts them, no copy.

    Each message is retrieved again: only its bytes can show that the file is its copy.
    """
    server = await fake_pop3(messages=[DOT_STUFFED, EIGHT_BIT, message(3)])
    state = known(server)
    lost = await run(server, state, MaildirArchive(tmp_path), policy="keep")
    assert len(lost.archived) == 3
    before = files(tmp_path)

    # Home Assistant restarted: a fresh archive object, the old state (no records).
    report = await run(server, state, MaildirArchive(tmp_path), policy="after_archive")

    assert sorted(report.adopted) == sorted(report.archived) == ["uid-1", "uid-2", "uid-3"]
    assert {uid: r.filename for uid, r in report.archived.items()} == {
        uid: r.filename for uid, r in lost.archived.items()
    }
    assert commands(server, "RETR") == ["RETR 1", "RETR 2", "RETR 3"]
    assert report.bytes_written == 0
    assert files(tmp_path) == before
    assert report.deleted == ["uid-1", "uid-2", "uid-3"]
    assert server.mailbox.uids() == []


async def test_drop_before_quit_deletes_nothing(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """DELE sent but the connection dies at QUIT: the server keeps all; the next run finishes."""
    server = await fake_pop3(messages=[message(1), message(2)])
    server.faults.append(Fault("QUIT", drop()))
    archive = MaildirArchive(tmp_path)
    state = known(server)
    reports: list[ArchiveReport] = []

    with pytest.raises(POP3ConnectionError):
        async with connect(
            server.host, server.port, security=Security.NONE, username="alice", password="secret"
        ) as session:
            reports.append(
                await run_archive_session(session, state, archive, policy="after_archive", now=NOW)
            )

    assert reports[0].deleted == ["uid-1", "uid-2"]  # DELE sent...
    assert server.mailbox.uids() == ["uid-1", "uid-2"]  # ...but never committed
    assert server.sessions[-1].deleted == []
    state = commit(state, reports[0], quit_ok=False)
    assert state.known_uids == ("uid-1", "uid-2")

    report = await run(server, state, archive, policy="after_archive")
    assert report.archived == {}
    assert report.deleted == ["uid-1", "uid-2"]
    assert server.mailbox.uids() == []
    assert len(files(tmp_path)) == 2


async def test_drop_during_dele_deletes_nothing(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """The connection dies between two DELEs: the error propagates and nothing is deleted."""
    server = await fake_pop3(messages=[message(1), message(2)])
    server.faults.append(Fault("DELE", drop(), nth=2))
    archive = MaildirArchive(tmp_path)
    state = known(server)

    with pytest.raises(POP3ConnectionError):
        await run(server, state, archive, policy="after_archive")

    assert commands(server, "DELE") == ["DELE 1", "DELE 2"]
    assert not server.sessions[-1].quit
    assert server.mailbox.uids() == ["uid-1", "uid-2"]
    assert len(files(tmp_path)) == 2  # durable before any DELE: adopted next time


async def test_caller_failure_after_dele_deletes_nothing(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """The caller fails after the report (e.g. saving state): no QUIT, so no deletion."""
    server = await fake_pop3(messages=[message(1)])
    state = known(server)

    reports: list[ArchiveReport] = []

    async def archive_then_fail() -> None:
        async with connect(
            server.host, server.port, security=Security.NONE, username="alice", password="secret"
        ) as session:
            reports.append(
                await run_archive_session(
                    session, state, MaildirArchive(tmp_path), policy="after_archive", now=NOW
                )
            )
            raise RuntimeError("store failed")

    with pytest.raises(RuntimeError, match="store failed"):
        await archive_then_fail()

    assert reports[0].deleted == ["uid-1"]
    assert not server.sessions[-1].quit
    assert "QUIT" not in server.sessions[-1].commands
    assert server.mailbox.uids() == ["uid-1"]


async def test_drop_mid_retr_keeps_what_is_durable(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """The connection dies inside a RETR: the error propagates, no DELE, no QUIT, no loss."""
    server = await fake_pop3(messages=[message(1), message(2, 6 * 2**20), message(3)])
    server.faults.append(Fault("RETR", drop_mid_response(after_bytes=100_000), nth=2))
    archive = MaildirArchive(tmp_path)
    state = known(server)

    with pytest.raises(POP3Error):
        await run(server, state, archive, policy="after_archive")

    assert commands(server, "DELE") == []
    assert not server.sessions[-1].quit
    assert server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert list(files(tmp_path).values()) == [server.mailbox.get("uid-1")]
    assert files(tmp_path, "tmp") == {}

    report = await run(server, state, archive, policy="after_archive")
    assert report.adopted == ["uid-1"]
    assert sorted(report.archived) == ["uid-1", "uid-2", "uid-3"]
    assert report.deleted == ["uid-1", "uid-2", "uid-3"]
    assert sorted(files(tmp_path).values()) == sorted(
        [message(1), message(2, 6 * 2**20), message(3)]
    )


async def test_backlog_is_archived_in_bounded_batches(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """1,000 messages: each run at most 50 messages and 64 KB, oldest first, all archived once."""
    sizes = [200 + (i * 37) % 3000 for i in range(1000)]
    server = await fake_pop3(messages=[message(i, size) for i, size in enumerate(sizes)])
    archive = MaildirArchive(tmp_path)
    state = known(server)
    order = list(state.known_uids)
    total = sum(len(server.mailbox.get(uid)) for uid in order)
    archived_order: list[str] = []
    runs = 0
    while True:
        report = await run(
            server, state, archive, policy="keep", max_messages=50, max_bytes=64 * 1024
        )
        runs += 1
        batch = list(report.archived)
        batch_bytes = sum(r.size for r in report.archived.values())
        assert len(batch) <= 50
        assert batch_bytes <= 64 * 1024
        assert len(commands(server, "RETR")) == len(batch)
        archived_order += batch
        assert report.pending_messages == 1000 - len(archived_order)
        assert report.pending_bytes == total - sum(
            len(server.mailbox.get(uid)) for uid in archived_order
        )
        state = commit(state, report)
        if not report.pending_messages:
            break
        assert runs < 100
    assert archived_order == order  # oldest first, each once
    assert len(files(tmp_path)) == 1000
    assert runs >= total // (64 * 1024)


async def test_changed_numbering_is_detected(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """Mail deleted by another client between check and archive: the right ones are archived."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 5)])
    state = known(server)
    server.mailbox.remove("uid-2")
    late = server.mailbox.add(message(5))  # not checked yet: left alone

    report = await run(server, state, MaildirArchive(tmp_path), policy="after_archive")

    uidl = commands(server, "UIDL")
    assert "UIDL" in uidl  # the probe failed, the full list followed
    assert sorted(report.archived) == ["uid-1", "uid-3", "uid-4"]
    for uid, record in report.archived.items():
        assert (tmp_path / "new" / record.filename).read_bytes() == message(int(uid[-1]))
    assert report.deleted == ["uid-1", "uid-3", "uid-4"]
    assert server.mailbox.uids() == [late]


async def test_small_work_uses_pipelined_probes_not_the_full_list(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """Two new messages in a big mailbox: UIDL n + LIST n for those two, one write, no full list."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 201)])
    archive = MaildirArchive(tmp_path)
    state = known(
        server, archived={uid: ArchiveRecord("x", 1, NOW) for uid in server.mailbox.uids()}
    )
    state = replace(
        state,
        known_uids=(
            *state.known_uids,
            server.mailbox.add(message(201)),
            server.mailbox.add(message(202)),
        ),
    )

    report = await run(server, state, archive, policy="keep")

    assert sorted(report.archived) == ["uid-201", "uid-202"]
    record = server.sessions[-1]
    assert commands(server, "UIDL") == ["UIDL 201", "UIDL 202"]
    assert commands(server, "LIST") == ["LIST 201", "LIST 202"]
    assert any(b"UIDL 201\r\nLIST 201\r\nUIDL 202\r\nLIST 202\r\n" in w for w in record.writes)


async def test_no_dele_when_sizes_disagree(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """File changed, file gone, or the server's message not the archived one: no DELE."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 5)])
    archive = MaildirArchive(tmp_path)
    state = known(server)
    state = commit(state, await run(server, state, archive, policy="keep"))
    records = state.archived
    # uid-1: the archive file grew; uid-2: it was deleted; uid-3: the server now holds
    # a different message under the same uid; uid-4 is fine.
    with (tmp_path / "new" / records["uid-1"].filename).open("ab") as file:
        file.write(b"appended\r\n")
    (tmp_path / "new" / records["uid-2"].filename).unlink()
    server.mailbox.remove("uid-3")
    server.mailbox.add(message(3, 500), uid="uid-3")
    state = replace(state, known_uids=tuple(server.mailbox.uids()))

    report = await run(server, state, archive, policy="after_archive")

    assert report.deleted == ["uid-4"]
    assert sorted(report.unverified) == ["uid-1", "uid-2", "uid-3"]
    assert commands(server, "DELE") == ["DELE 3"]  # uid-4 is now the third message
    assert sorted(server.mailbox.uids()) == ["uid-1", "uid-2", "uid-3"]


async def test_files_moved_to_cur_by_a_mail_client(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """A reader moved the archive files to cur/ with flags: still verified, and still by size."""
    server = await fake_pop3(messages=[message(1), message(2)])
    archive = MaildirArchive(tmp_path)
    state = known(server)
    state = commit(state, await run(server, state, archive, policy="keep"))
    for record in state.archived.values():
        os.rename(tmp_path / "new" / record.filename, tmp_path / "cur" / f"{record.filename}:2,S")
    with (tmp_path / "cur" / f"{state.archived['uid-2'].filename}:2,S").open("ab") as file:
        file.write(b"edited by the reader\r\n")

    report = await run(server, state, archive, policy="after_archive")

    assert report.deleted == ["uid-1"]
    assert report.unverified == ["uid-2"]
    assert server.mailbox.uids() == ["uid-2"]


async def test_too_large_message_is_skipped_not_deleted(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """A message over max_message_bytes does not stall the archive and is never deleted."""
    server = await fake_pop3(messages=[message(1), message(2, 300_000), message(3)])
    archive = MaildirArchive(tmp_path)
    report = await run(
        server, known(server), archive, policy="after_archive", max_message_bytes=200_000
    )
    assert report.too_large == ["uid-2"]
    assert sorted(report.archived) == ["uid-1", "uid-3"]
    assert report.deleted == ["uid-1", "uid-3"]
    assert (report.pending_messages, report.pending_bytes) == (0, 0)
    assert commands(server, "RETR") == ["RETR 1", "RETR 3"]
    assert server.mailbox.uids() == ["uid-2"]
    assert archive.too_large == {"uid-2"}

    # Remembered: the next runs neither stall on it nor open a session for it.
    state = commit(known(server), report)
    assert not has_work(state.known_uids, state.archived, "keep", 14, NOW, skip=archive.too_large)
    server.mailbox.add(message(4))
    state = replace(state, known_uids=tuple(server.mailbox.uids()))
    report = await run(server, state, archive, policy="keep", max_message_bytes=200_000)
    assert list(report.archived) == ["uid-4"]
    assert report.too_large == ["uid-2"]
    assert commands(server, "UIDL") == ["UIDL 2"]


async def test_retr_refused_leaves_the_message_pending(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """-ERR to one RETR: that message is neither archived nor deleted, the others are."""
    server = await fake_pop3(messages=[message(1), message(2), message(3)])
    server.faults.append(Fault("RETR", err("[SYS/TEMP] cannot read it now"), nth=2))
    report = await run(server, known(server), MaildirArchive(tmp_path), policy="after_archive")
    assert sorted(report.archived) == ["uid-1", "uid-3"]
    assert report.deleted == ["uid-1", "uid-3"]
    assert (report.pending_messages, report.pending_bytes) == (1, len(message(2)))
    assert server.mailbox.uids() == ["uid-2"]


@pytest.mark.parametrize(
    ("options", "fault"),
    [
        ({"capabilities": ["TOP", "USER", "PIPELINING"]}, None),
        ({}, Fault("LIST", err("[SYS/PERM] no sizes today"), repeat=True)),
    ],
    ids=["no-uidl", "list-refused"],
)
async def test_unconfirmable_numbers_are_an_error(
    fake_pop3: FakePOP3Factory, tmp_path: Path, options: dict[str, Any], fault: Fault | None
) -> None:
    """Without UIDL or LIST no number can be confirmed: the -ERR propagates, nothing is fetched."""
    server = await fake_pop3(messages=[message(1)], **options)
    if fault:
        server.faults.append(fault)
    with pytest.raises(POP3ResponseError):
        await run(server, known(server), MaildirArchive(tmp_path), policy="after_archive")
    assert commands(server, "RETR") == []
    assert commands(server, "DELE") == []
    assert list(tmp_path.iterdir()) == []


async def test_dele_refused_is_not_reported(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """-ERR to DELE: that uid is not reported deleted."""
    server = await fake_pop3(messages=[message(1), message(2)])
    server.faults.append(Fault("DELE", err("[SYS/TEMP] not now")))
    report = await run(server, known(server), MaildirArchive(tmp_path), policy="after_archive")
    assert report.deleted == ["uid-2"]
    assert server.mailbox.uids() == ["uid-1"]


async def test_duplicate_uids_are_never_deleted(fake_pop3: FakePOP3Factory, tmp_path: Path) -> None:
    """A broken server lists one uid twice: archived once, neither copy deleted."""
    server = await fake_pop3(messages=[message(1), message(2), message(3)])
    server.mailbox._messages[2].uid = "uid-1"
    state = known(server)

    report = await run(server, state, MaildirArchive(tmp_path), policy="after_archive")

    assert sorted(report.archived) == ["uid-1", "uid-2"]
    assert (tmp_path / "new" / report.archived["uid-1"].filename).read_bytes() == message(1)
    assert report.deleted == ["uid-2"]
    assert len(files(tmp_path)) == 2
    assert server.mailbox.uids() == ["uid-1", "uid-1"]


# --- against a real Dovecot ---------------------------------------------------------------


async def test_dovecot_archive_then_delete(
    dovecot: Any, dovecot_user: tuple[str, str], socket_enabled: None, tmp_path: Path
) -> None:
    """Files byte-exact with RETR; after_archive really removes the mail from Dovecot at QUIT."""
    user, password = dovecot_user
    for raw in (DOT_STUFFED, EIGHT_BIT, CRLF_BODY, message(4, 300_000)):
        dovecot.deliver(user, raw)

    def session() -> Any:
        return connect(
            dovecot.host,
            dovecot.pop3_port,
            security=Security.NONE,
            username=user,
            password=password,
        )

    async with session() as pop:
        uids = await pop.uidl()
        sent = {uid: await pop.retr(n) for n, uid in uids.items()}
        count, size = await pop.stat()
    state = MailboxState(known_uids=tuple(uids.values()), size=size, initialised=True)
    archive = MaildirArchive(tmp_path, mailbox=f"{user}@{dovecot.host}")

    maildir = dovecot.maildir(user)

    def stored() -> list[Path]:
        return [p for sub in ("new", "cur") for p in (maildir / sub).iterdir()]

    async with session() as pop:
        report = await run_archive_session(
            pop, state, archive, policy=DeletePolicy.AFTER_ARCHIVE, now=NOW
        )
        assert len(stored()) == 4  # DELE only marks; QUIT deletes

    assert count == 4
    assert report.error is None
    assert sorted(report.deleted) == sorted(sent)
    for uid, data in sent.items():
        assert (tmp_path / "new" / report.archived[uid].filename).read_bytes() == data
    async with session() as pop:
        assert (await pop.stat()) == (0, 0)
    assert stored() == []


async def test_default_clock_is_the_wall_clock(
    fake_pop3: FakePOP3Factory, tmp_path: Path, freezer: Any
) -> None:
    """Without `now`, the records and the after_days deadline follow the (frozen) wall clock."""
    freezer.move_to("2027-01-15 12:00:00+00:00")
    frozen = 1_800_014_400.0
    server = await fake_pop3(messages=[message(1)])
    archive = MaildirArchive(tmp_path)

    async def archive_run(state: MailboxState) -> ArchiveReport:
        async with connect(
            server.host, server.port, security=Security.NONE, username="alice", password="secret"
        ) as session:
            return await run_archive_session(
                session, state, archive, policy="after_days", keep_days=1
            )

    state = known(server)
    report = await archive_run(state)
    assert report.archived["uid-1"].archived_at == frozen
    assert report.archived["uid-1"].filename.startswith(f"{int(frozen)}.")
    state = commit(state, report)

    freezer.tick(SECONDS_PER_DAY - 1)
    assert (await archive_run(state)).deleted == []
    freezer.tick(1)
    assert (await archive_run(state)).deleted == ["uid-1"]
    assert server.mailbox.uids() == []


# --- Trust: a reused uid, planted links, crash litter --------------------------------------


def same_size_other_mail(n: int) -> bytes:
    """Another message exactly as long as `message(n)`: only its bytes tell them apart."""
    other = message(n).replace(b"body", b"BODY")
    assert other != message(n)
    assert len(other) == len(message(n))
    return other


@pytest.mark.parametrize("size", ["same", "other"])
async def test_reused_uid_is_archived_anew_not_adopted(
    fake_pop3: FakePOP3Factory, tmp_path: Path, size: str
) -> None:
    """A server gives an archived-and-deleted uid to a new message: the new bytes are archived.

    Under after_archive the new message is deleted only once its own bytes are in a file;
    the old file is neither adopted for it nor replaced.
    """
    server = await fake_pop3(messages=[message(1)])
    archive = MaildirArchive(tmp_path, mailbox="m")
    state = known(server)
    first = await run(server, state, archive, policy="after_archive")
    assert first.deleted == ["uid-1"]
    state = commit(state, first)
    assert state.archived == {}

    new = same_size_other_mail(1) if size == "same" else message(1, 500)
    server.mailbox.add(new, uid="uid-1")
    state = replace(state, known_uids=("uid-1",), size=len(new))  # the check announced it
    # A fresh archive object: the file index is listed from disk, as after a restart.
    report = await run(server, state, MaildirArchive(tmp_path, mailbox="m"), policy="after_archive")

    assert report.adopted == []
    assert report.archived["uid-1"].digest == hashlib.sha256(new).hexdigest()
    assert sorted(files(tmp_path).values()) == sorted([message(1), new])
    assert files(tmp_path)[report.archived["uid-1"].filename] == new
    assert report.deleted == ["uid-1"]
    assert server.mailbox.uids() == []


async def test_reused_uid_with_a_record_is_not_deleted_for_the_old_file(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """The server swaps the message behind a recorded uid (same size): no DELE under after_days."""
    server = await fake_pop3(messages=[message(1)])
    archive = MaildirArchive(tmp_path, mailbox="m")
    state = known(server)
    kept = await run(server, state, archive, policy="keep")
    state = commit(state, kept)
    server.mailbox.remove("uid-1")
    server.mailbox.add(same_size_other_mail(1), uid="uid-1")

    later = NOW + 30 * SECONDS_PER_DAY
    report = await run(server, state, archive, policy="after_days", keep_days=14, now=later)

    assert report.deleted == []
    assert report.unverified == ["uid-1"]
    assert commands(server, "DELE") == []
    assert server.mailbox.uids() == ["uid-1"]


async def test_deferred_deletion_of_a_matching_copy_goes_ahead(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """after_days: the server still holds the archived bytes, so the message is deleted."""
    server = await fake_pop3(messages=[message(1)])
    archive = MaildirArchive(tmp_path, mailbox="m")
    state = known(server)
    state = commit(state, await run(server, state, archive, policy="keep"))

    later = NOW + 30 * SECONDS_PER_DAY
    report = await run(server, state, archive, policy="after_days", keep_days=14, now=later)

    assert report.deleted == ["uid-1"]
    assert commands(server, "RETR") == ["RETR 1"]  # the bytes are compared before DELE
    assert server.mailbox.uids() == []


async def test_a_record_of_an_older_version_without_digest_is_checked_by_bytes(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """Records saved before digests existed: the file's bytes are compared with the server's."""
    server = await fake_pop3(messages=[message(1), message(2)])
    archive = MaildirArchive(tmp_path, mailbox="m")
    state = known(server)
    report = await run(server, state, archive, policy="keep")
    legacy = {uid: replace(record, digest=None) for uid, record in report.archived.items()}
    state = replace(state, archived=legacy)
    server.mailbox.remove("uid-2")
    server.mailbox.add(same_size_other_mail(2), uid="uid-2")

    later = NOW + 30 * SECONDS_PER_DAY
    report = await run(server, state, archive, policy="after_days", keep_days=14, now=later)

    assert report.deleted == ["uid-1"]
    assert report.unverified == ["uid-2"]
    assert server.mailbox.uids() == ["uid-2"]


async def test_a_symlink_planted_in_tmp_is_not_followed(tmp_path: Path) -> None:
    """A link at the tmp name (anyone who can write tmp/) never redirects the write."""
    archive = MaildirArchive(tmp_path / "mail", mailbox="m", hostname="h")
    await archive.ensure()
    victim = tmp_path / "secrets.yaml"
    victim.write_bytes(b"keep me\n")
    (tmp_path / "mail" / "tmp" / f"{archive.tag('uid-1')}.h").symlink_to(victim)

    record = await archive.store("uid-1", b"the mail\r\n", now=NOW)

    assert victim.read_bytes() == b"keep me\n"
    path = tmp_path / "mail" / "new" / record.filename
    assert not path.is_symlink()
    assert path.read_bytes() == b"the mail\r\n"
    assert files(tmp_path / "mail", "tmp") == {}


async def test_a_symlink_planted_after_the_cleanup_stops_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link planted between our cleanup and our open: the open fails, nothing is written."""
    archive = MaildirArchive(tmp_path / "mail", mailbox="m", hostname="h")
    await archive.ensure()
    victim = tmp_path / "secrets.yaml"
    victim.write_bytes(b"keep me\n")
    link = tmp_path / "mail" / "tmp" / f"{archive.tag('uid-1')}.h"
    discard = MaildirArchive._discard

    async def replant(self: MaildirArchive, path: Path) -> None:
        await discard(self, path)
        if path == link and not link.is_symlink():
            link.symlink_to(victim)

    monkeypatch.setattr(MaildirArchive, "_discard", replant)
    with pytest.raises(ArchiveError):
        await archive.store("uid-1", b"the mail\r\n", now=NOW)
    assert victim.read_bytes() == b"keep me\n"
    assert files(tmp_path / "mail") == {}


async def test_stale_tmp_files_are_cleaned_up_fresh_ones_kept(tmp_path: Path) -> None:
    """Files a crash left in tmp/ over 36 hours ago go; younger ones may be in use and stay."""
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me\n")
    old = time.time() - 37 * 3600
    fresh = time.time() - 35 * 3600
    tmp = tmp_path / "tmp"
    (tmp / "crashed").write_bytes(b"half a message")
    os.utime(tmp / "crashed", (old, old))
    (tmp / "in-progress").write_bytes(b"another writer")
    os.utime(tmp / "in-progress", (fresh, fresh))
    (tmp / "old-link").symlink_to(victim)
    os.utime(tmp / "old-link", (old, old), follow_symlinks=False)
    (tmp / "a-folder").mkdir()
    os.utime(tmp / "a-folder", (old, old))

    await MaildirArchive(tmp_path).ensure()

    assert sorted(p.name for p in tmp.iterdir()) == ["a-folder", "in-progress"]
    assert victim.read_bytes() == b"keep me\n"


def test_the_digest_survives_a_save_and_old_records_load() -> None:
    """The record's digest is saved; a record saved before digests existed loads without one."""
    record = ArchiveRecord("f", 3, NOW, hashlib.sha256(b"abc").hexdigest())
    state = MailboxState(
        known_uids=("uid-1",), size=3, initialised=True, archived={"uid-1": record}
    )
    assert from_dict(to_dict(state)).archived == {"uid-1": record}
    old = to_dict(state)
    old["archived"] = {"uid-1": ["f", 3, NOW]}
    assert from_dict(old).archived == {"uid-1": ArchiveRecord("f", 3, NOW)}


async def test_deferred_deletions_are_checked_in_bounded_batches(
    fake_pop3: FakePOP3Factory, tmp_path: Path
) -> None:
    """Retrieving due mail again to compare bytes is bounded per run; the rest waits, unflagged."""
    server = await fake_pop3(messages=[message(i) for i in range(1, 6)])
    archive = MaildirArchive(tmp_path, mailbox="m")
    state = known(server)
    state = commit(state, await run(server, state, archive, policy="keep"))

    later = NOW + 30 * SECONDS_PER_DAY
    deleted: list[list[str]] = []
    for _ in range(3):
        report = await run(
            server, state, archive, policy="after_days", keep_days=14, now=later, max_messages=2
        )
        assert report.unverified == []
        assert len(commands(server, "RETR")) == len(report.deleted)
        deleted.append(report.deleted)
        state = commit(state, report)
    assert deleted == [["uid-1", "uid-2"], ["uid-3", "uid-4"], ["uid-5"]]
    assert server.mailbox.uids() == []


async def test_a_file_the_index_does_not_know_is_never_replaced(tmp_path: Path) -> None:
    """Another archive object wrote the same name meanwhile: ours gets a name of its own."""
    ours = MaildirArchive(tmp_path, mailbox="m", hostname="h")
    await ours.ensure()
    assert await ours.find("uid-1", message(1)) is None  # our index is listed now, empty
    theirs = MaildirArchive(tmp_path, mailbox="m", hostname="h")
    first = await theirs.store("uid-1", message(1), now=NOW)

    other = same_size_other_mail(1)
    second = await ours.store("uid-1", other, now=NOW)

    assert second.filename != first.filename
    assert files(tmp_path) == {first.filename: message(1), second.filename: other}


async def test_file_digest_of_a_missing_file_is_none(tmp_path: Path) -> None:
    """No file, no digest: nothing can be deleted for it."""
    archive = MaildirArchive(tmp_path, mailbox="m")
    await archive.ensure()
    record = await archive.store("uid-1", b"x\r\n", now=NOW)
    assert await archive.file_digest(record) == hashlib.sha256(b"x\r\n").hexdigest()
    (tmp_path / "new" / record.filename).unlink()
    assert await archive.file_digest(record) is None
