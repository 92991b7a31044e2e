"""Bounds, the per-check memory budget, progress kept, and a mailbox that blinks empty.

The planner against `SimMaildrop` (see test_check.py) and hostile variants of it:
claimed counts it never backs, TOP answers of megabytes, rounds that fail midway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import tracemalloc

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.pop3_mail.pop3.errors import POP3ProtocolError
from custom_components.pop3_mail.pop3.requests import Request, Stat, StatResult, Top
from custom_components.pop3_mail.sync import check as check_module
from custom_components.pop3_mail.sync.check import (
    CHECK_ANSWER_LIMIT,
    CHECK_BUDGET,
    MAX_MAILBOX_BYTES,
    MAX_MESSAGES,
    CheckOutcome,
    MailboxCheck,
)
from custom_components.pop3_mail.sync.state import (
    TOMBSTONE_CHECKS,
    MailboxState,
    apply,
    from_dict,
    mark_read,
    new_check,
    start_archive,
    to_dict,
    upgrade,
)
from custom_components.pop3_mail.sync.watches import MessageSummary

from .test_check import SimMaildrop, baselined, check_and_apply, mailbox

# -- bounds on what the server claims ------------------------------------------------------


def test_a_claimed_count_allocates_nothing_before_the_server_sends_it() -> None:
    """STAT claiming the most messages allowed costs one small round, not a list of them."""
    checker = MailboxCheck(["a", "b"], 10)
    checker.first_requests()
    tracemalloc.start()
    try:
        requests = checker.feed([StatResult(MAX_MESSAGES, 10**9), "b"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000
    assert len(requests) <= 3 * 31


@pytest.mark.parametrize(
    ("count", "size"),
    [
        (100_000_000, 10),
        (10**9, 10),
        (10**19, 10),
        (MAX_MESSAGES + 1, 10),
        (5, MAX_MAILBOX_BYTES + 1),
        (5, 10**20),
        (-1, 0),
    ],
)
def test_absurd_stat_answers_are_protocol_errors(count: int, size: int) -> None:
    for known in (["a"], None, []):
        checker = MailboxCheck(known, 10)
        checker.first_requests()
        answers: list[object] = [StatResult(count, size)]
        if known is None or known:
            answers.append({1: "a"} if known is None else "a")
        with pytest.raises(POP3ProtocolError):
            checker.feed(answers)  # type: ignore[arg-type]


def test_a_full_list_longer_than_the_maximum_is_a_protocol_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_module, "MAX_MESSAGES", 10)  # a list of a million is slow
    checker = MailboxCheck(None)
    checker.first_requests()
    listing = {n: f"u{n}" for n in range(1, 12)}
    with pytest.raises(POP3ProtocolError):
        checker.feed([StatResult(5, 10), listing])


# -- the per-check memory budget -------------------------------------------------------------


class FatMaildrop(SimMaildrop):
    """Every TOP answer is `fat` bytes of headers: a hostile server, or very large mail."""

    fat: int = 0

    def answer(self, request: Request) -> object:
        result = super().answer(request)
        if isinstance(request, Top) and isinstance(result, bytes) and self.fat:
            return b"X-Pad: " + b"a" * (self.fat - 9) + b"\r\n" + result
        return result


def drive_bounded(
    checker: MailboxCheck, maildrop: SimMaildrop, budget: int, limit: int
) -> CheckOutcome:
    """Drive a check, asserting each round's worst case fits the budget beside what is held."""
    requests = checker.first_requests()
    held = 0
    while requests:
        tops = sum(isinstance(request, Top) for request in requests)
        assert held + tops * (limit + 512) <= budget
        answers = [maildrop.answer(request) for request in requests]
        held += sum(
            len(a) + 512
            for r, a in zip(requests, answers, strict=True)
            if isinstance(r, Top) and isinstance(a, bytes)
        )
        requests = checker.feed(answers)  # type: ignore[arg-type]
    return checker.outcome()


def test_a_check_stops_at_its_budget_and_the_next_one_fetches_the_rest() -> None:
    limit, budget = 10_000, 100_000  # the production figures scaled down 1:~1,300
    maildrop = FatMaildrop()
    for i in range(3):
        maildrop.add(f"old{i}")
    state = baselined(maildrop)
    for i in range(40):
        maildrop.add(f"new{i}")
    maildrop.fat = 9_000
    announced: list[str] = []
    checks = 0
    while True:
        checks += 1
        checker = MailboxCheck(
            state.known_uids, state.size, newest_known=None, budget=budget, answer_limit=limit
        )
        outcome = drive_bounded(checker, maildrop, budget, limit)
        assert sum(len(message.raw_top) for message in outcome.new) <= budget
        announced += [message.uid for message in outcome.new]
        state = apply(state, outcome)
        if not outcome.deferred:
            break
        assert outcome.new, "every check makes progress"
    assert announced == [f"new{i}" for i in range(40)]
    assert checks == 4  # 10 answers of ~9.6 kB fit 100 kB beside the next round's worst case
    assert state.known_uids == tuple(uid for uid, _ in maildrop.messages)
    stat = maildrop.answer(Stat())
    assert isinstance(stat, StatResult)
    assert state.size == stat.size


def test_the_default_budget_bounds_each_round() -> None:
    """200 new messages: at most (128 MiB / 4 MiB) - 1 TOPs are asked for per round."""
    maildrop = mailbox(2)
    state = baselined(maildrop)
    for i in range(200):
        maildrop.add(f"n{i}")
    outcome = drive_bounded(
        new_check(state, top_lines=0), maildrop, CHECK_BUDGET, CHECK_ANSWER_LIMIT
    )
    assert len(outcome.new) == 200


def test_an_answer_above_the_session_cap_is_a_protocol_error() -> None:
    maildrop = FatMaildrop()
    maildrop.add("a")
    state = baselined(maildrop)
    maildrop.add("b")
    maildrop.fat = 20_000
    checker = MailboxCheck(state.known_uids, state.size, budget=100_000, answer_limit=10_000)
    requests = checker.feed([maildrop.answer(r) for r in checker.first_requests()])  # type: ignore[misc]
    answers = [maildrop.answer(r) for r in requests]
    with pytest.raises(POP3ProtocolError):
        checker.feed(answers)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="answer_limit"):
        MailboxCheck([], budget=100, answer_limit=100)


# -- progress kept when a later round fails -------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    initial=st.integers(0, 5),
    arrived=st.integers(1, 12),
    inserted=st.booleans(),
    batch=st.integers(1, 4),
    fail_at=st.integers(1, 8),
    listed_twice=st.integers(0, 12),
)
def test_a_failed_round_keeps_the_complete_prefix(  # noqa: PLR0917
    initial: int, arrived: int, inserted: bool, batch: int, fail_at: int, listed_twice: int
) -> None:
    """Whatever round fails, nothing is announced twice, nothing skipped, order kept."""
    maildrop = mailbox(initial, prefix="old")
    state = baselined(maildrop)
    fresh = [f"new{i}" for i in range(arrived)]
    for uid in fresh:
        maildrop.add(uid)
    if inserted and initial:
        # A Courier-style insertion sends the check down the full-list path.
        maildrop.add("ins", position=0)
        fresh.insert(0, "ins")
    if listed_twice < arrived:
        maildrop.add(fresh[-arrived + listed_twice])  # a broken server lists one uid twice
    checker = MailboxCheck(state.known_uids, state.size, batch_size=batch)
    requests = checker.first_requests()
    rounds = 0
    announced: list[str] = []
    while requests:
        rounds += 1
        if rounds == fail_at:
            break  # the session timed out or the connection dropped
        requests = checker.feed([maildrop.answer(r) for r in requests])  # type: ignore[misc]
    partial = checker.partial_outcome()
    if partial is not None:
        assert [m.uid for m in partial.new] == [
            u for u in fresh if u in {m.uid for m in partial.new}
        ]
        announced += [m.uid for m in partial.new]
        state = apply(state, partial)
        if checker.done:
            assert partial is checker.outcome()
        elif rounds > 1:
            assert partial.deferred > 0 or partial.new
    state, run = check_and_apply(state, maildrop)
    announced += [m.uid for m in run.outcome.new]
    assert Counter(announced) == Counter(fresh)
    assert sorted(announced, key=fresh.index) == announced
    assert state.known_uids == tuple(uid for uid, _ in maildrop.messages)


def test_nothing_is_kept_before_the_check_knows_what_is_new() -> None:
    checker = MailboxCheck(["a"], 10)
    assert checker.partial_outcome() is None
    checker.first_requests()
    assert checker.partial_outcome() is None


def test_a_timeout_in_the_second_round_still_announces_the_first() -> None:
    """The issue's slow server: 200 new messages, the session dies after the first batch."""
    maildrop = mailbox(5)
    state = baselined(maildrop)
    for i in range(200):
        maildrop.add(f"n{i}")
    checker = new_check(state, top_lines=0)
    requests = checker.first_requests()
    requests = checker.feed([maildrop.answer(r) for r in requests])  # type: ignore[misc]
    requests = checker.feed([maildrop.answer(r) for r in requests])  # type: ignore[misc]
    assert requests  # ... and this round times out
    partial = checker.partial_outcome()
    assert partial is not None
    assert [m.uid for m in partial.new] == [f"n{i}" for i in range(31)]
    assert partial.deferred == 169
    state = apply(state, partial)
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == [f"n{i}" for i in range(31, 200)]


# -- a mailbox that blinks empty ----------------------------------------------------------


def archiving(count: int) -> tuple[SimMaildrop, MailboxState]:
    maildrop = mailbox(count, prefix="base")
    state = start_archive(baselined(maildrop))
    maildrop.add("mail1")
    state, _ = check_and_apply(state, maildrop)
    return maildrop, state


def test_a_transient_empty_stat_forgets_nothing() -> None:
    maildrop, before = archiving(4)
    assert before.unread == {"mail1"}
    messages, maildrop.messages = maildrop.messages, []
    state, run = check_and_apply(before, maildrop)
    assert run.outcome.count == 0
    assert state.count == 0
    assert state.archive_baseline == frozenset()
    state = from_dict(to_dict(state))  # a restart in between changes nothing
    state, run = check_and_apply(state, maildrop)  # still empty: no change, nothing to save
    assert to_dict(state) == to_dict(from_dict(to_dict(state)))
    maildrop.messages = messages
    maildrop.add("mail2")
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["mail2"]
    assert state.archive_baseline == before.archive_baseline
    assert state.unread == {"mail1", "mail2"}
    assert state.vanished is None
    state, run = check_and_apply(state, maildrop)
    assert not run.outcome.full_list
    assert run.rounds == 1


def test_mail_after_a_real_sweep_is_announced_and_tombstones_expire() -> None:
    maildrop, state = archiving(3)
    maildrop.messages = []
    state, _ = check_and_apply(state, maildrop)
    maildrop.add("after1")
    maildrop.add("after2")
    maildrop.add("after3")
    maildrop.add("after4")  # more than vanished: not a renumbering
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["after1", "after2", "after3", "after4"]
    assert state.archive_baseline == frozenset()  # new mail is archived, not baseline
    for _ in range(TOMBSTONE_CHECKS - 1):
        assert state.vanished is not None
        state, run = check_and_apply(state, maildrop)
        assert not run.outcome.new
    assert state.vanished is None
    state, run = check_and_apply(state, maildrop)
    assert run.rounds == 1


def test_same_mail_under_new_ids_after_an_empty_stat_rebaselines() -> None:
    maildrop, state = archiving(3)
    messages, maildrop.messages = maildrop.messages, []
    state, _ = check_and_apply(state, maildrop)
    maildrop.messages = [(f"re{uid}", raw) for uid, raw in messages]
    state, run = check_and_apply(state, maildrop)
    assert run.outcome.rebaselined
    assert not run.outcome.new
    assert state.vanished is None
    assert state.archive_baseline == {f"re{uid}" for uid, _ in messages}


def test_mark_all_read_reaches_tombstones_and_archive_start_covers_them() -> None:
    maildrop, state = archiving(2)
    messages, maildrop.messages = maildrop.messages, []
    state, _ = check_and_apply(state, maildrop)
    state = mark_read(state)
    state = start_archive(replace_baseline(state))
    maildrop.messages = messages
    state, _ = check_and_apply(state, maildrop)
    assert state.unread == frozenset()
    assert state.archive_baseline == {uid for uid, _ in messages}


def replace_baseline(state: MailboxState) -> MailboxState:
    """Archiving turned off while the mailbox looked empty."""
    return replace(state, archive_baseline=None)


def test_a_version_1_state_loads_without_a_new_baseline() -> None:
    data = to_dict(
        MailboxState(known_uids=("a", "b"), size=5, unread=frozenset({"b"}), initialised=True)
    )
    del data["vanished"]
    data["version"] = 1
    state = from_dict(upgrade(data))
    assert state.initialised
    assert state.known_uids == ("a", "b")
    assert state.unread == {"b"}
    assert upgrade(to_dict(state)) == to_dict(state)


def test_a_deferred_uid_listed_twice_is_not_recorded_as_known() -> None:
    """A broken server lists a new uid twice; the check fails before fetching it."""
    maildrop = mailbox(3, prefix="old")
    state = baselined(maildrop)
    maildrop.add("ins", position=0)  # forces the full list
    maildrop.add("twice")
    maildrop.add("twice")
    checker = MailboxCheck(state.known_uids, state.size, batch_size=1)
    requests = checker.first_requests()
    for _ in range(3):  # STAT, the full list, the TOP of "ins"; the next round fails
        requests = checker.feed([maildrop.answer(r) for r in requests])  # type: ignore[misc]
    partial = checker.partial_outcome()
    assert partial is not None
    assert [m.uid for m in partial.new] == ["ins"]
    assert "twice" not in partial.uids
    state = apply(state, partial)
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["twice"]


def test_tombstones_keep_what_the_watches_count() -> None:
    summary = MessageSummary("bob@example.com", "Bob", "Alarm", None)
    state = MailboxState(
        known_uids=("a", "b"),
        size=10,
        unread=frozenset({"b"}),
        summaries={"b": summary},
        initialised=True,
    )

    def outcome(uids: tuple[str, ...], size: int) -> CheckOutcome:
        return CheckOutcome(
            count=len(uids),
            size=size,
            uids=uids,
            new=(),
            removed=frozenset(),
            rebaselined=False,
            full_list=True,
            newest=None,
        )

    emptied = apply(state, outcome((), 0))
    assert emptied.summaries == {}
    assert emptied.vanished is not None
    assert from_dict(to_dict(emptied)) == emptied
    back = apply(emptied, outcome(("a", "b"), 10))
    assert back.unread == {"b"}
    assert back.summaries == {"b": summary}
    assert mark_read(emptied).vanished == replace(
        emptied.vanished, unread=frozenset(), summaries={}
    )
