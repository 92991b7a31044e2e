"""Tests of the retention decisions: what to archive next and what may be deleted."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, strategies as st
import pytest

from custom_components.pop3_mail.sync.retention import (
    SECONDS_PER_DAY,
    Backlog,
    DeletePolicy,
    backlog,
    has_work,
    is_due,
    is_safe_to_delete,
    to_archive,
    to_delete,
)


@dataclass(frozen=True)
class Record:
    """An archive record as retention sees it."""

    size: int
    archived_at: float


NOW = 1_800_000_000.0

uids_strategy = st.lists(st.sampled_from([f"u{i}" for i in range(30)]), max_size=40)


@st.composite
def mailboxes(draw: st.DrawFn) -> tuple[list[str], dict[str, int], dict[str, Record]]:
    """A server listing (duplicates allowed), sizes, and records for some uids (also gone ones)."""
    server = draw(uids_strategy)
    sizes = {uid: draw(st.integers(0, 5000)) for uid in server}
    recorded = draw(st.sets(st.sampled_from([f"u{i}" for i in range(35)])))
    archived = {
        uid: Record(sizes.get(uid, 10), draw(st.floats(NOW - 40 * SECONDS_PER_DAY, NOW)))
        for uid in recorded
    }
    return server, sizes, archived


def test_to_archive_takes_oldest_first_within_bounds() -> None:
    """Server order is the age order; the batch stops at the count and the byte bound."""
    server = ["a", "b", "c", "d", "e"]
    sizes = dict.fromkeys(server, 100)
    assert to_archive(server, sizes, {"b"}, 2, 10_000) == ["a", "c"]
    assert to_archive(server, sizes, set(), 10, 250) == ["a", "b"]
    assert to_archive(server, sizes, set(server), 10, 10_000) == []
    assert to_archive(server, sizes, set(), 0, 10_000) == []


def test_to_archive_never_stalls_on_one_big_message() -> None:
    """A message larger than the byte bound is taken alone, so the archive moves on."""
    sizes = {"big": 10_000, "small": 1}
    assert to_archive(["big", "small"], sizes, set(), 50, 100) == ["big"]
    assert to_archive(["big", "small"], sizes, {"big"}, 50, 100) == ["small"]


def test_to_archive_keeps_order_rather_than_skipping_ahead() -> None:
    """A message that does not fit ends the batch: a smaller younger one waits its turn."""
    sizes = {"a": 60, "b": 60, "c": 1}
    assert to_archive(["a", "b", "c"], sizes, set(), 50, 100) == ["a"]


def test_to_archive_stops_at_unknown_size() -> None:
    """Without a size the byte bound cannot be kept, so selection stops there."""
    assert to_archive(["a", "b", "c"], {"a": 1, "c": 1}, set(), 50, 100) == ["a"]


def test_duplicate_uids_are_archived_once_and_never_deleted() -> None:
    """A broken server listing a uid twice: one archive file, no deletion."""
    sizes = {"a": 5, "b": 5}
    assert to_archive(["a", "b", "a"], sizes, set(), 50, 100) == ["a", "b"]
    archived = {"a": Record(5, NOW - 1), "b": Record(5, NOW - 1)}
    assert to_delete(["a", "b", "a"], archived, DeletePolicy.AFTER_ARCHIVE, 0, NOW) == ["b"]


def test_backlog_counts_what_is_left() -> None:
    """Messages and bytes not archived yet, each uid once."""
    sizes = {"a": 10, "b": 20, "c": 30}
    assert backlog(["a", "b", "c", "b"], sizes, {"a"}) == Backlog(2, 50)
    assert backlog([], {}, set()) == Backlog(0, 0)


@pytest.mark.parametrize(
    ("policy", "keep_days", "archived_at", "expected"),
    [
        (DeletePolicy.KEEP, 0, NOW - 100 * SECONDS_PER_DAY, False),
        (DeletePolicy.AFTER_ARCHIVE, 14, NOW, True),
        (DeletePolicy.AFTER_DAYS, 14, NOW - 14 * SECONDS_PER_DAY, True),
        (DeletePolicy.AFTER_DAYS, 14, NOW - 14 * SECONDS_PER_DAY + 1, False),
        (DeletePolicy.AFTER_DAYS, 0, NOW, True),
        ("after_days", 1, NOW - 2 * SECONDS_PER_DAY, True),
    ],
)
def test_is_due(
    policy: DeletePolicy | str, keep_days: int, archived_at: float, expected: bool
) -> None:
    """Each policy's deadline, to the second."""
    assert is_due(Record(1, archived_at), policy, keep_days, NOW) is expected


def test_unknown_policy_is_refused() -> None:
    """A typo in the policy must not silently mean "delete"."""
    with pytest.raises(ValueError, match="delete_everything"):
        to_delete(["a"], {"a": Record(1, 0)}, "delete_everything", 0, NOW)


def test_to_delete_by_policy() -> None:
    """Only archived uids, in server order, when the policy says so."""
    archived = {
        "old": Record(1, NOW - 20 * SECONDS_PER_DAY),
        "new": Record(1, NOW - SECONDS_PER_DAY),
        "gone": Record(1, NOW - 20 * SECONDS_PER_DAY),
    }
    server = ["new", "unarchived", "old"]
    assert to_delete(server, archived, DeletePolicy.KEEP, 14, NOW) == []
    assert to_delete(server, archived, DeletePolicy.AFTER_ARCHIVE, 14, NOW) == ["new", "old"]
    assert to_delete(server, archived, DeletePolicy.AFTER_DAYS, 14, NOW) == ["old"]


def test_excluded_mail_is_never_deleted() -> None:
    """Mail there before archiving started stays, even with an archive record."""
    archived = {"before": Record(1, NOW - 20 * SECONDS_PER_DAY), "after": Record(1, NOW)}
    server = ["before", "after"]
    for policy in (DeletePolicy.AFTER_ARCHIVE, DeletePolicy.AFTER_DAYS):
        chosen = to_delete(server, archived, policy, 0, NOW, exclude={"before"})
        assert chosen == ["after"]


def test_is_safe_to_delete_needs_every_witness_to_agree() -> None:
    """Number still maps to the uid, LIST size, file size and record size all equal."""
    record = Record(120, NOW)
    ok = {"uid_at_number": "a", "listed_size": 120, "file_size": 120}
    assert is_safe_to_delete("a", record, **ok)
    assert not is_safe_to_delete("a", None, **ok)
    assert not is_safe_to_delete("a", record, **(ok | {"uid_at_number": "b"}))
    assert not is_safe_to_delete("a", record, **(ok | {"uid_at_number": None}))
    assert not is_safe_to_delete("a", record, **(ok | {"listed_size": 121}))
    assert not is_safe_to_delete("a", record, **(ok | {"listed_size": None}))
    assert not is_safe_to_delete("a", record, **(ok | {"file_size": 119}))
    assert not is_safe_to_delete("a", record, **(ok | {"file_size": None}))


@given(
    mailboxes(),
    st.sampled_from(list(DeletePolicy)),
    st.integers(0, 30),
)
def test_never_deletes_what_is_not_archived(
    mailbox: tuple[list[str], dict[str, int], dict[str, Record]],
    policy: DeletePolicy,
    keep_days: int,
) -> None:
    """Whatever the policy: only recorded uids, each once on the server, in server order."""
    server, _, archived = mailbox
    chosen = to_delete(server, archived, policy, keep_days, NOW)
    assert all(uid in archived for uid in chosen)
    assert all(server.count(uid) == 1 for uid in chosen)
    assert chosen == [uid for uid in server if uid in chosen]
    if policy is DeletePolicy.KEEP:
        assert chosen == []
    for uid in chosen:
        assert archived[uid].archived_at + keep_days * SECONDS_PER_DAY <= NOW or (
            policy is DeletePolicy.AFTER_ARCHIVE
        )


@given(mailboxes(), st.integers(0, 60), st.integers(0, 20_000))
def test_to_archive_respects_bounds_and_order(
    mailbox: tuple[list[str], dict[str, int], dict[str, Record]],
    max_messages: int,
    max_bytes: int,
) -> None:
    """Bounded by count and bytes (one oversize message alone excepted), oldest first, no repeat."""
    server, sizes, archived = mailbox
    chosen = to_archive(server, sizes, archived, max_messages, max_bytes)
    assert len(chosen) <= max_messages
    assert len(set(chosen)) == len(chosen)
    assert not set(chosen) & set(archived)
    assert len(chosen) <= 1 or sum(sizes[uid] for uid in chosen) <= max_bytes
    # Oldest first: the batch is exactly the leading run of the unarchived uids.
    pending = [uid for uid in dict.fromkeys(server) if uid not in archived]
    assert chosen == pending[: len(chosen)]
    # Maximal: the next pending uid would break a bound.
    if len(chosen) < len(pending) and chosen:
        nxt = pending[len(chosen)]
        assert (
            len(chosen) == max_messages
            or sum(sizes[uid] for uid in chosen) + sizes[nxt] > max_bytes
        )
    left = backlog(server, sizes, set(archived) | set(chosen))
    assert left.messages == len(pending) - len(chosen)
    assert left.bytes == sum(sizes[uid] for uid in pending[len(chosen) :])


@given(mailboxes())
def test_repeated_batches_archive_everything_once(
    mailbox: tuple[list[str], dict[str, int], dict[str, Record]],
) -> None:
    """Run after run, the backlog shrinks to zero and no uid is chosen twice."""
    server, sizes, _ = mailbox
    done: list[str] = []
    for _ in range(len(server) + 1):
        batch = to_archive(server, sizes, set(done), 3, 4000)
        if not batch:
            break
        done.extend(batch)
    assert done == list(dict.fromkeys(server))
    assert backlog(server, sizes, set(done)) == Backlog(0, 0)


def test_has_work() -> None:
    """Nothing to archive and nothing due: no session needed."""
    archived = {"a": Record(1, NOW - 2 * SECONDS_PER_DAY)}
    assert not has_work([], {}, DeletePolicy.AFTER_ARCHIVE, 0, NOW)
    assert has_work(["a", "b"], archived, DeletePolicy.KEEP, 14, NOW)
    assert not has_work(["a"], archived, DeletePolicy.KEEP, 14, NOW)
    assert not has_work(["a"], archived, DeletePolicy.AFTER_DAYS, 3, NOW)
    assert has_work(["a"], archived, DeletePolicy.AFTER_DAYS, 2, NOW)
    assert has_work(["a"], archived, DeletePolicy.AFTER_ARCHIVE, 14, NOW)
    assert not has_work(["a", "big"], archived, DeletePolicy.KEEP, 14, NOW, skip={"big"})
    assert not has_work(["a", "old"], archived, DeletePolicy.KEEP, 14, NOW, exclude={"old"})
    assert not has_work(["a"], archived, DeletePolicy.AFTER_ARCHIVE, 14, NOW, exclude={"a"})
    assert has_work(["a", "old", "b"], archived, DeletePolicy.KEEP, 14, NOW, exclude={"old"})
