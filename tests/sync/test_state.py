"""Tests of the persisted mailbox state: check results, reads, our deletions, storage."""

from __future__ import annotations

from dataclasses import replace
import gc
import json
import tracemalloc
from typing import Any

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.pop3_mail.pop3.errors import POP3ResponseError
from custom_components.pop3_mail.pop3.requests import List, Request, Stat, StatResult, Top, Uidl
from custom_components.pop3_mail.sync.check import CheckOutcome, MailboxCheck, NewMessage
from custom_components.pop3_mail.sync.state import (
    STATE_VERSION,
    ArchiveRecord,
    LastMessage,
    MailboxState,
    StateFormatError,
    apply,
    forget,
    from_dict,
    mark_read,
    new_check,
    start_archive,
    stop_archive,
    to_dict,
)

BIG = 100_000
# The limits the brief sets for a mailbox of 100,000 messages.
MAX_STATE_BYTES = 20 * 2**20


def outcome(
    uids: tuple[str, ...],
    *,
    new: tuple[str, ...] = (),
    removed: frozenset[str] = frozenset(),
    rebaselined: bool = False,
    size: int = 100,
) -> CheckOutcome:
    messages = tuple(NewMessage(uid, uids.index(uid) + 1, 10, b"Subject: x\r\n\r\n") for uid in new)
    return CheckOutcome(
        count=len(uids),
        size=size,
        uids=uids,
        new=messages,
        removed=removed,
        rebaselined=rebaselined,
        full_list=bool(removed),
        newest=messages[-1] if messages else None,
    )


def record(name: str = "a.eml") -> ArchiveRecord:
    return ArchiveRecord(filename=name, size=1234, archived_at=1_700_000_000.5)


def test_baseline_counts_everything_read() -> None:
    state = apply(MailboxState(), outcome(("a", "b")))
    assert state.initialised
    assert state.known_uids == ("a", "b")
    assert state.count == 2
    assert state.unread == frozenset()


def test_new_mail_is_unread_until_marked_read() -> None:
    state = apply(MailboxState(), outcome(("a",)))
    state = apply(state, outcome(("a", "b", "c"), new=("b", "c")))
    assert state.unread == {"b", "c"}
    assert mark_read(state, "b").unread == {"c"}
    assert mark_read(state).unread == frozenset()
    assert mark_read(state, "unknown") is state


def test_rebaseline_counts_nothing_unread() -> None:
    state = apply(MailboxState(), outcome(("a",)))
    state = apply(state, outcome(("a", "b"), new=("b",)))
    state = apply(state, outcome(("x", "y"), removed=frozenset({"a", "b"}), rebaselined=True))
    assert state.unread == frozenset()
    assert state.known_uids == ("x", "y")


def test_removed_mail_leaves_unread_and_archive_records() -> None:
    state = apply(MailboxState(), outcome(("a",)))
    state = apply(state, outcome(("a", "b", "c"), new=("b", "c")))
    state = MailboxState(
        known_uids=state.known_uids,
        size=state.size,
        unread=state.unread,
        archived={"a": record("a"), "b": record("b")},
        initialised=True,
    )
    state = apply(state, outcome(("a", "c"), removed=frozenset({"b"})))
    assert state.unread == {"c"}
    assert set(state.archived) == {"a"}


def test_last_message_follows_the_newest() -> None:
    last_b = LastMessage("b", "x@example.com", "hello", "2025-01-01T10:00:00+00:00")
    state = apply(MailboxState(), outcome(("a", "b")), last_message=last_b)
    assert state.last_message == last_b
    # Still the newest: kept without being fetched again.
    state = apply(state, outcome(("b",), removed=frozenset({"a"})))
    assert state.last_message == last_b
    # No longer the newest and nothing given: unknown rather than wrong.
    state = apply(state, outcome(("b", "c"), new=("c",)))
    assert state.last_message is None
    assert apply(state, outcome(())).last_message is None


def test_forget_after_our_own_deletions() -> None:
    last = LastMessage("c", "", "", None)
    state = MailboxState(
        known_uids=("a", "b", "c"),
        size=300,
        unread=frozenset({"b", "c"}),
        last_message=last,
        archived={"a": record(), "c": record()},
        initialised=True,
    )
    after = forget(state, ["a", "c"], freed_bytes=200)
    assert after.known_uids == ("b",)
    assert after.size == 100
    assert after.unread == {"b"}
    assert after.archived == {}
    assert after.last_message is None
    assert forget(state, ["b"]).size == 300
    assert forget(state, []) is state


def test_archive_starts_from_the_mail_known_then() -> None:
    state = apply(MailboxState(), outcome(("a", "b")))
    assert state.archive_baseline is None
    started = start_archive(state)
    assert started.archive_baseline == {"a", "b"}
    assert start_archive(apply(started, outcome(("a", "b", "c"), new=("c",)))).archive_baseline == {
        "a",
        "b",
    }
    stopped = stop_archive(started)
    assert stopped.archive_baseline is None
    assert stop_archive(stopped) is stopped
    assert start_archive(started) is started


def test_archive_baseline_follows_the_server() -> None:
    # Started before the first check: that check's baseline is the archive's too.
    state = apply(start_archive(MailboxState()), outcome(("a", "b")))
    assert state.archive_baseline == {"a", "b"}
    state = apply(state, outcome(("a", "b", "c"), new=("c",)))
    assert state.archive_baseline == {"a", "b"}
    state = apply(state, outcome(("b", "c"), removed=frozenset({"a"})))
    assert state.archive_baseline == {"b"}
    state = apply(state, outcome(("b",), removed=frozenset({"c"})))
    assert state.archive_baseline == {"b"}
    assert forget(state, ["b"]).archive_baseline == frozenset()
    # A re-baseline takes the mail there as read, without events: existing mail, not archived.
    state = apply(state, outcome(("x", "y"), removed=frozenset({"b"}), rebaselined=True))
    assert state.archive_baseline == {"x", "y"}
    # Archiving off: nothing to keep.
    off = apply(MailboxState(), outcome(("a",)))
    assert apply(off, outcome(("a", "b"), new=("b",))).archive_baseline is None


def test_new_check_plans_a_baseline_only_once() -> None:
    assert new_check(MailboxState(), top_lines=0).first_requests() == [Stat(), Uidl()]
    state = apply(MailboxState(), outcome(("a", "b")))
    assert new_check(state, top_lines=0).first_requests() == [Stat(), Uidl(2)]
    empty = apply(MailboxState(), outcome(()))
    assert new_check(empty, top_lines=0).first_requests() == [Stat()]


# -- storage --------------------------------------------------------------------------------

UIDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=70)
STATES = st.builds(
    MailboxState,
    known_uids=st.lists(UIDS, max_size=20).map(tuple),
    size=st.integers(0, 2**40),
    unread=st.frozensets(UIDS, max_size=5),
    last_message=st.none()
    | st.builds(LastMessage, UIDS, st.text(), st.text(), st.none() | st.just("2025-01-01")),
    archived=st.dictionaries(
        UIDS,
        st.builds(
            ArchiveRecord,
            st.text(min_size=1),
            st.integers(0, 2**31),
            st.floats(0, 2e9, allow_nan=False),
        ),
        max_size=5,
    ),
    initialised=st.booleans(),
).flatmap(
    # The archive baseline is off, or any subset of the known uids.
    lambda state: (
        st.none()
        | st.lists(
            st.booleans(), min_size=len(state.known_uids), max_size=len(state.known_uids)
        ).map(lambda keep: frozenset(u for u, k in zip(state.known_uids, keep, strict=True) if k))
    ).map(lambda baseline: replace(state, archive_baseline=baseline))
)


@settings(max_examples=200)
@given(state=STATES)
def test_round_trip_through_json(state: MailboxState) -> None:
    data = json.loads(json.dumps(to_dict(state)))
    assert data["version"] == STATE_VERSION
    assert from_dict(data) == state


def test_saves_are_deterministic() -> None:
    state = MailboxState(known_uids=("a", "b"), unread=frozenset({"b", "a"}), initialised=True)
    assert json.dumps(to_dict(state)) == json.dumps(to_dict(from_dict(to_dict(state))))
    assert to_dict(state)["unread"] == ["a", "b"]


@pytest.mark.parametrize(
    "change",
    [
        {"version": 1},
        {"version": 3},
        {"version": None},
        {"vanished": []},
        {"vanished": {"uids": "a", "unread": [], "size": 0}},
        {"vanished": {"uids": ["a"], "unread": [], "size": -1}},
        {"uids": "abc"},
        {"uids": ["a", 1]},
        {"unread": [None]},
        {"size": -1},
        {"size": "1"},
        {"initialised": 1},
        {"last_message": ["a"]},
        {"last_message": {"uid": "a", "sender": "", "subject": 3, "date": None}},
        {"last_message": {"uid": "a", "sender": "", "subject": "", "date": 5}},
        {"archived": []},
        {"archived": {"a": ["f", "1", 2.0]}},
        {"archived": {"a": ["f", True, 2.0]}},
        {"archived": {"a": ["f", 1, float("inf")]}},
        {"archived": {"a": ["f", 1]}},
        {"archive_baseline": 2},
        {"archive_baseline": -1},
        {"archive_baseline": True},
        {"archive_baseline": "a"},
        {"archive_baseline": ["a", 1]},
    ],
)
def test_unreadable_state_is_refused(change: dict[str, Any]) -> None:
    data = to_dict(MailboxState(known_uids=("a",), archived={"a": record()}, initialised=True))
    data.update(change)
    with pytest.raises(StateFormatError):
        from_dict(data)


def test_state_without_archive_records_loads() -> None:
    data = to_dict(MailboxState(known_uids=("a",), initialised=True))
    del data["archived"]
    del data["archive_baseline"]
    loaded = from_dict(data)
    assert loaded.archived == {}
    assert loaded.archive_baseline is None


def test_archive_baseline_is_saved_as_a_count_when_it_leads() -> None:
    state = MailboxState(known_uids=("a", "b", "c"), initialised=True)
    leading = replace(state, archive_baseline=frozenset({"a", "b"}))
    assert to_dict(leading)["archive_baseline"] == 2
    assert from_dict(to_dict(leading)) == leading
    # Mail inserted among the old (or a duplicate uid): the uids themselves, in server order.
    scattered = replace(state, archive_baseline=frozenset({"c", "a"}))
    assert to_dict(scattered)["archive_baseline"] == ["a", "c"]
    assert from_dict(to_dict(scattered)) == scattered
    twice = MailboxState(known_uids=("a", "b", "a"), archive_baseline=frozenset({"a", "b"}))
    assert to_dict(twice)["archive_baseline"] == ["a", "b", "a"]
    assert from_dict(to_dict(twice)) == twice


# -- a mailbox of 100,000 messages -------------------------------------------------------


def big_uids(count: int = BIG, suffix: str = "") -> list[str]:
    """Uids as long as RFC 1939 allows (70 characters), the worst case for memory."""
    return [
        f"{i:010d}.M{i * 7919:012d}P4242V000000000000FD01I00ABCDEF{suffix}".ljust(70, "x")
        for i in range(count)
    ]


def drive(checker: MailboxCheck, uids: list[str], size: int) -> None:
    """Answer the checker like a server holding `uids` until it is done."""

    def answer(request: Request) -> object:
        match request:
            case Stat():
                return StatResult(len(uids), size)
            case Uidl(msg=None):
                return dict(enumerate(uids, 1))
            case Uidl(msg=int(number)):
                return uids[number - 1] if number <= len(uids) else POP3ResponseError("no such")
            case List(msg=int()):
                return 100
            case Top():
                return b"Subject: hi\r\n\r\n"
        raise AssertionError(request)

    requests = checker.first_requests()
    while requests:
        requests = checker.feed([answer(request) for request in requests])


def test_big_mailbox_state_is_small() -> None:
    uids = tuple(big_uids())
    # Archiving started with every uid known: the usual case of a big mailbox.
    state = MailboxState(uids, 10**9, initialised=True, archive_baseline=frozenset(uids))
    text = json.dumps(to_dict(state))
    gc.collect()
    tracemalloc.start()
    try:
        state = from_dict(json.loads(text))
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state.count == BIG
    print(f"\n100k-uid state: {held / 2**20:.1f} MiB held, JSON {len(text) / 2**20:.1f} MiB")
    assert held < MAX_STATE_BYTES


def test_big_mailbox_round_trips_and_checks() -> None:
    """100,000 uids: the state survives the Store, an append is found without the full list.

    How long each step holds the event loop is measured by benchmarks/bench_state.py
    (a script, against the 20 ms limit), not here: timings on a shared machine are noise.
    """
    uids = big_uids()
    unread = frozenset(uids[-100:])
    baseline = frozenset(uids[:-100])
    state = MailboxState(tuple(uids), 10**9, unread, initialised=True, archive_baseline=baseline)
    assert from_dict(json.loads(json.dumps(to_dict(state)))) == state

    unchanged_check = new_check(state, top_lines=0)
    drive(unchanged_check, uids, 10**9)
    unchanged = unchanged_check.outcome()
    assert unchanged.new == ()
    assert not unchanged.full_list

    arrived = [*uids, *big_uids(20, suffix="new")]
    appended_check = new_check(state, top_lines=0)
    drive(appended_check, arrived, 10**9 + 20 * 100)
    appended = appended_check.outcome()
    after = apply(state, appended)
    assert len(appended.new) == 20
    assert not appended.full_list
    assert after.count == BIG + 20
    assert len(after.unread) == 120
    assert mark_read(after).unread == frozenset()


@pytest.mark.parametrize("change", ["reordered", "deleted", "inserted"])
def test_big_mailbox_full_list_check(change: str) -> None:
    """The full-list fallback over 100,000 uids finds exactly what changed."""
    uids = big_uids()
    state = MailboxState(tuple(uids), 10**9, initialised=True, archive_baseline=frozenset(uids))
    server = {
        "reordered": [uids[-1], *uids[:-1]],
        "deleted": uids[:500] + uids[501:],
        "inserted": [*uids[:500], "inserted", *uids[500:]],
    }[change]
    checker = new_check(state, top_lines=0)
    drive(checker, server, 10**9)
    result = checker.outcome()
    assert result.full_list
    assert [message.uid for message in result.new] == (["inserted"] if change == "inserted" else [])
    assert result.removed == ({uids[500]} if change == "deleted" else frozenset())
    after = apply(state, result)
    assert after.known_uids == tuple(server)
    assert after.unread == ({"inserted"} if change == "inserted" else frozenset())
