"""Tests of the check planner against a simulated POP3 maildrop.

`SimMaildrop` answers the planner's requests the way a POP3 server answers them
within one session (numbers 1..count, -ERR for a number that does not exist),
and refuses anything but STAT, LIST, UIDL and TOP. Hypothesis drives it through
histories of arrivals, deletions, Courier-style insertions, reordering, uid
reassignment, duplicate uids and an emptied maildrop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import hashlib
import math
import random

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.pop3_mail.pop3.errors import POP3ResponseError
from custom_components.pop3_mail.pop3.requests import (
    List,
    Request,
    Stat,
    StatResult,
    Top,
    Uidl,
)
from custom_components.pop3_mail.sync.check import (
    CHECK_ANSWER_LIMIT,
    CHECK_BUDGET,
    MAX_BATCH,
    CheckOutcome,
    MailboxCheck,
    NewMessage,
    default_batch_size,
)
from custom_components.pop3_mail.sync.state import (
    LastMessage,
    MailboxState,
    apply,
    new_check,
    start_archive,
)


def make_raw(uid: str, lines: int = 3) -> bytes:
    body = b"".join(b"line %d of %s\r\n" % (i, uid.encode()) for i in range(lines))
    return f"From: Sender <sender@example.com>\r\nSubject: message {uid}\r\n\r\n".encode() + body


def octets(raw: bytes) -> int:
    """The size the simulated server reports: spread out so that, as with real mail, no two
    sets of messages weigh the same (the planner trusts count + last uid + total size)."""
    return len(raw) + int(hashlib.sha256(raw).hexdigest()[:12], 16) % 10**9


@dataclass
class SimMaildrop:
    """A POP3 maildrop as one session sees it; messages in server order."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    uidl_one: bool = True
    log: list[Request] = field(default_factory=list)

    def add(self, uid: str, position: int | None = None) -> None:
        entry = (uid, make_raw(uid))
        if position is None:
            self.messages.append(entry)
        else:
            self.messages.insert(position, entry)

    def _message(self, number: int | None) -> tuple[str, bytes] | None:
        if number is None or not 1 <= number <= len(self.messages):
            return None
        return self.messages[number - 1]

    def answer(self, request: Request) -> object:
        self.log.append(request)
        match request:
            case Stat():
                return StatResult(len(self.messages), sum(octets(raw) for _, raw in self.messages))
            case Uidl(msg=None):
                return {n: uid for n, (uid, _) in enumerate(self.messages, 1)}
            case List(msg=None):
                return {n: octets(raw) for n, (_, raw) in enumerate(self.messages, 1)}
            case Uidl(msg=number):
                found = self._message(number)
                if not self.uidl_one:
                    return POP3ResponseError("Unknown command", command="UIDL")
                return found[0] if found else POP3ResponseError("No such message")
            case List(msg=number):
                found = self._message(number)
                return octets(found[1]) if found else POP3ResponseError("No such message")
            case Top(msg=number, lines=lines):
                found = self._message(number)
                if not found:
                    return POP3ResponseError("No such message")
                head, _, body = found[1].partition(b"\r\n\r\n")
                kept = body.split(b"\r\n")[:lines]
                return head + b"\r\n\r\n" + b"".join(line + b"\r\n" for line in kept if line)
            case _:
                raise AssertionError(f"a check must never send {request!r}")

    def top(self, number: int, lines: int) -> object:
        return self.answer(Top(number, lines))


@dataclass
class Run:
    outcome: CheckOutcome
    rounds: int
    requests: list[Request]


def drive(checker: MailboxCheck, maildrop: SimMaildrop) -> Run:
    """The coordinator's loop, with the maildrop instead of a session."""
    sent: list[Request] = []
    rounds = 0
    requests = checker.first_requests()
    while requests:
        rounds += 1
        sent += requests
        requests = checker.feed([maildrop.answer(request) for request in requests])
    assert checker.done
    return Run(checker.outcome(), rounds, sent)


def check_and_apply(
    state: MailboxState, maildrop: SimMaildrop, *, batch_size: int = 3, top_lines: int = 0
) -> tuple[MailboxState, Run]:
    """One check of `maildrop` and the state after it, the way the coordinator does it."""
    checker = MailboxCheck(
        state.known_uids if state.initialised else None,
        state.size,
        top_lines=top_lines,
        newest_known=state.last_message.uid if state.last_message else None,
        batch_size=batch_size,
        vanished=state.vanished.uids if state.vanished else None,
        vanished_size=state.vanished.size if state.vanished else 0,
    )
    run = drive(checker, maildrop)
    newest = run.outcome.newest
    last = LastMessage(newest.uid, "sender@example.com", "", None) if newest else None
    return apply(state, run.outcome, last_message=last), run


def mailbox(count: int, prefix: str = "m") -> SimMaildrop:
    maildrop = SimMaildrop()
    for i in range(count):
        maildrop.add(f"{prefix}{i}")
    return maildrop


def baselined(maildrop: SimMaildrop) -> MailboxState:
    state, _ = check_and_apply(MailboxState(), maildrop)
    maildrop.log.clear()
    return state


# -- examples ------------------------------------------------------------------------------


def test_baseline_announces_nothing_and_fetches_only_the_newest() -> None:
    maildrop = mailbox(5)
    state, run = check_and_apply(MailboxState(), maildrop)
    assert run.outcome.new == ()
    assert run.outcome.uids == ("m0", "m1", "m2", "m3", "m4")
    assert run.outcome.full_list
    assert run.outcome.newest is not None
    assert run.outcome.newest.uid == "m4"
    assert run.outcome.newest.raw_top == maildrop.top(5, 0)
    assert [r for r in run.requests if isinstance(r, Top)] == [Top(5, 0)]
    assert run.rounds == 2
    assert state.initialised
    assert state.unread == frozenset()


def test_baseline_of_an_empty_mailbox() -> None:
    state, run = check_and_apply(MailboxState(), SimMaildrop())
    assert run.outcome == CheckOutcome(
        count=0,
        size=0,
        uids=(),
        new=(),
        removed=frozenset(),
        rebaselined=False,
        full_list=True,
        newest=None,
    )
    assert run.rounds == 1
    assert state.initialised


def test_unchanged_mailbox_costs_one_round_of_two_commands() -> None:
    maildrop = mailbox(1000)
    state = baselined(maildrop)
    state2, run = check_and_apply(state, maildrop)
    assert run.requests == [Stat(), Uidl(1000)]
    assert run.rounds == 1
    assert not run.outcome.full_list
    assert run.outcome.newest is None
    assert run.outcome.uids is state.known_uids
    assert state2 == state


def test_appended_messages_cost_three_commands_each() -> None:
    maildrop = mailbox(1000)
    state = baselined(maildrop)
    for i in range(7):
        maildrop.add(f"new{i}")
    state, run = check_and_apply(state, maildrop, batch_size=3, top_lines=5)
    outcome = run.outcome
    assert [m.uid for m in outcome.new] == [f"new{i}" for i in range(7)]
    assert [m.number for m in outcome.new] == list(range(1001, 1008))
    assert not outcome.full_list
    assert run.rounds == 1 + 3  # 7 messages in batches of 3
    assert len(run.requests) == 2 + 3 * 7
    assert outcome.new[0].raw_top == maildrop.top(1001, 5)
    assert outcome.new[0].size == octets(maildrop.messages[1000][1])
    assert outcome.newest == outcome.new[-1]
    assert state.unread == {f"new{i}" for i in range(7)}
    assert state.count == 1007


def test_first_messages_in_an_empty_known_mailbox_use_the_append_path() -> None:
    maildrop = SimMaildrop()
    state = baselined(maildrop)
    maildrop.add("a")
    maildrop.add("b")
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["a", "b"]
    assert run.requests[0] == Stat()
    assert not run.outcome.full_list
    assert state.unread == {"a", "b"}


def test_deleting_the_newest_fetches_the_new_newest() -> None:
    maildrop = mailbox(4)
    state = baselined(maildrop)
    maildrop.messages.pop()
    state, run = check_and_apply(state, maildrop)
    assert run.outcome.removed == {"m3"}
    assert run.outcome.new == ()
    assert run.outcome.newest is not None
    assert run.outcome.newest.uid == "m2"
    assert state.last_message is not None
    assert state.last_message.uid == "m2"


def test_deleting_in_the_middle_keeps_the_newest() -> None:
    maildrop = mailbox(4)
    state = baselined(maildrop)
    del maildrop.messages[1]
    state, run = check_and_apply(state, maildrop)
    assert run.outcome.removed == {"m1"}
    assert run.outcome.uids == ("m0", "m2", "m3")
    assert run.outcome.full_list
    assert run.outcome.newest is None
    assert not any(isinstance(r, Top) for r in run.requests)


def test_courier_insertion_in_the_middle_is_announced() -> None:
    maildrop = mailbox(5)
    state = baselined(maildrop)
    maildrop.add("old-but-new", position=2)
    maildrop.add("tail")
    _, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["old-but-new", "tail"]
    assert [m.number for m in run.outcome.new] == [3, 7]
    assert run.outcome.full_list


def test_append_with_a_hidden_replacement_falls_back_to_the_full_list() -> None:
    maildrop = mailbox(5)
    state = baselined(maildrop)
    # One removed and one inserted below n: UIDL n still names the last known message.
    del maildrop.messages[0]
    maildrop.add("inserted", position=1)
    maildrop.add("appended")
    _, run = check_and_apply(state, maildrop)
    assert run.outcome.full_list
    assert [m.uid for m in run.outcome.new] == ["inserted", "appended"]
    assert run.outcome.removed == {"m0"}
    # The TOP of the appended message from the abandoned path is reused, not fetched twice.
    assert run.requests.count(Top(6, 0)) == 1


def test_known_uid_reappearing_at_the_end_falls_back_to_the_full_list() -> None:
    maildrop = mailbox(3)
    state = baselined(maildrop)
    maildrop.add("m0")  # a broken server lists m0 twice
    state, run = check_and_apply(state, maildrop)
    assert run.outcome.full_list
    assert run.outcome.new == ()
    assert run.outcome.uids == ("m0", "m1", "m2", "m0")
    # Its uid is known but its headers are not: the newest is fetched for last_message.
    assert run.outcome.newest is not None
    assert run.outcome.newest.number == 4
    _, again = check_and_apply(state, maildrop)
    assert again.rounds == 1


def test_duplicate_new_uids_are_announced_once() -> None:
    maildrop = mailbox(2)
    state = baselined(maildrop)
    maildrop.add("dup")
    maildrop.add("dup")
    state, run = check_and_apply(state, maildrop)
    assert [m.uid for m in run.outcome.new] == ["dup"]
    _, again = check_and_apply(state, maildrop)
    assert again.outcome.new == ()


def test_every_uid_replaced_rebaselines() -> None:
    maildrop = mailbox(4)
    state = baselined(maildrop)
    maildrop.messages = [(f"r{i}", raw) for i, (_, raw) in enumerate(maildrop.messages)]
    maildrop.add("r-new")
    state, run = check_and_apply(state, maildrop)
    assert run.outcome.rebaselined
    assert run.outcome.new == ()
    assert run.outcome.removed == {"m0", "m1", "m2", "m3"}
    assert run.outcome.newest is not None
    assert run.outcome.newest.uid == "r-new"
    assert state.unread == frozenset()


def test_same_mail_under_new_ids_rebaselines() -> None:
    """As many messages of the same total size under new ids: a renumbering, nothing new."""
    maildrop = mailbox(3)
    state = baselined(maildrop)
    maildrop.messages = [(f"r{i}", raw) for i, (_, raw) in enumerate(maildrop.messages)]
    _, run = check_and_apply(state, maildrop)
    assert run.outcome.rebaselined
    assert run.outcome.new == ()


@pytest.mark.parametrize(
    ("known", "arrived"),
    [
        pytest.param(1, 1, id="the only message deleted, one arrived"),
        pytest.param(3, 1, id="three deleted, one arrived"),
        pytest.param(3, 2, id="three deleted, two arrived"),
        pytest.param(2, 2, id="two deleted, two of another size arrived"),
    ],
)
def test_known_mail_deleted_elsewhere_then_new_mail_is_announced(known: int, arrived: int) -> None:
    """Another client emptied the mailbox and mail came before our check: that mail is new."""
    maildrop = mailbox(known)
    state = baselined(maildrop)
    maildrop.messages.clear()
    for i in range(arrived):
        maildrop.add(f"new{i}")
    state, run = check_and_apply(state, maildrop)
    assert not run.outcome.rebaselined
    assert [m.uid for m in run.outcome.new] == [f"new{i}" for i in range(arrived)]
    assert run.outcome.removed == {f"m{i}" for i in range(known)}
    assert state.unread == {f"new{i}" for i in range(arrived)}
    _, again = check_and_apply(state, maildrop)
    assert again.outcome.new == ()


def test_emptied_mailbox_is_not_a_rebaseline() -> None:
    maildrop = mailbox(3)
    state = baselined(maildrop)
    maildrop.messages.clear()
    state, run = check_and_apply(state, maildrop)
    assert run.requests == [Stat(), Uidl(3)]
    assert not run.outcome.rebaselined
    assert run.outcome.removed == {"m0", "m1", "m2"}
    assert state.known_uids == ()
    assert state.last_message is None


def test_server_without_uidl_n_uses_the_full_list() -> None:
    maildrop = mailbox(3)
    maildrop.uidl_one = False
    state = baselined(maildrop)
    maildrop.add("x")
    _, run = check_and_apply(state, maildrop)
    assert run.outcome.full_list
    assert [m.uid for m in run.outcome.new] == ["x"]


def test_refused_top_still_announces_the_message_once() -> None:
    maildrop = mailbox(2)
    state = baselined(maildrop)
    maildrop.add("x")
    checker = new_check(state, top_lines=0)
    requests = checker.first_requests()
    while requests:
        results = [
            POP3ResponseError("gone") if isinstance(r, Top) else maildrop.answer(r)
            for r in requests
        ]
        requests = checker.feed(results)
    outcome = checker.outcome()
    assert outcome.new == (NewMessage("x", 3, octets(maildrop.messages[2][1]), b""),)


def test_refused_stat_is_raised() -> None:
    checker = MailboxCheck(["a"], 10)
    checker.first_requests()
    error = POP3ResponseError("mailbox locked", code="IN-USE")
    with pytest.raises(POP3ResponseError) as caught:
        checker.feed([error, "a"])
    assert caught.value is error


def test_refused_full_uidl_is_raised() -> None:
    checker = MailboxCheck(["a"], 10)
    checker.first_requests()
    assert checker.feed([StatResult(2, 20), "b"]) == [Uidl()]
    with pytest.raises(POP3ResponseError):
        checker.feed([POP3ResponseError("no UIDL here")])


def test_expects_full_list_flags_the_heavy_round() -> None:
    baseline = MailboxCheck(None)
    baseline.first_requests()
    assert baseline.expects_full_list
    checker = MailboxCheck(["a", "b"], 20, newest_known="b")
    checker.first_requests()
    assert not checker.expects_full_list
    assert checker.feed([StatResult(1, 10), POP3ResponseError("no such message")]) == [Uidl()]
    assert checker.expects_full_list
    assert checker.feed([{1: "b"}]) == []
    assert not checker.expects_full_list
    assert checker.outcome().removed == {"a"}


def test_driving_errors() -> None:
    checker = MailboxCheck(["a"], 10)
    with pytest.raises(RuntimeError):
        checker.feed([])
    with pytest.raises(RuntimeError):
        checker.outcome()
    checker.first_requests()
    with pytest.raises(RuntimeError):
        checker.first_requests()
    with pytest.raises(ValueError, match="expected 2 results"):
        checker.feed([StatResult(1, 10)])
    with pytest.raises(ValueError, match="top_lines"):
        MailboxCheck([], top_lines=-1)
    with pytest.raises(ValueError, match="batch_size"):
        MailboxCheck([], batch_size=0)


def test_batches_shrink_when_bodies_are_asked_for() -> None:
    assert default_batch_size(0) == MAX_BATCH
    assert default_batch_size(850) < default_batch_size(300) < MAX_BATCH
    assert default_batch_size(10**9) == 8


def test_appended_burst_is_fetched_in_bounded_rounds() -> None:
    maildrop = mailbox(10)
    state = baselined(maildrop)
    for i in range(450):
        maildrop.add(f"burst{i}")
    roomy = MAX_BATCH * (CHECK_ANSWER_LIMIT + 1024)
    for budget, per_round in ((roomy, MAX_BATCH), (CHECK_BUDGET, 31)):
        # Each round's worst case (every TOP at the per-answer cap) fits the budget.
        checker = MailboxCheck(state.known_uids, state.size, budget=budget)
        requests = checker.first_requests()
        largest = 0
        while requests:
            largest = max(largest, len(requests))
            requests = checker.feed([maildrop.answer(r) for r in requests])
        assert len(checker.outcome().new) == 450
        assert largest == 3 * per_round


# -- properties over histories -------------------------------------------------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("arrive"), st.integers(1, 4)),
    st.tuples(st.just("insert"), st.integers(0, 10_000)),
    st.tuples(st.just("delete"), st.integers(0, 10_000)),
    st.tuples(st.just("delete_newest"), st.just(0)),
    st.tuples(st.just("reorder"), st.integers(0, 10_000)),
    st.tuples(st.just("reassign"), st.just(0)),
    st.tuples(st.just("vanish"), st.just(0)),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000)),
    st.tuples(st.just("blink"), st.just(0)),
    st.tuples(st.just("check"), st.just(0)),
    st.tuples(st.just("check"), st.just(0)),
)


@dataclass
class History:
    """The truth about every message, for judging what the checks announced."""

    maildrop: SimMaildrop
    fresh: set[str] = field(default_factory=set)  # uids that are genuinely new mail
    seen: set[str] = field(default_factory=set)  # uids some check has seen on the server
    serial: int = 0
    blink: bool = False  # the next check finds the maildrop empty, then the mail is back

    def uid(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}{self.serial}"

    def apply(self, operation: str, argument: int) -> bool:
        """Change the maildrop; True when the change was only appended fresh mail."""
        messages = self.maildrop.messages
        match operation:
            case "arrive":
                for _ in range(argument):
                    uid = self.uid("new")
                    self.fresh.add(uid)
                    self.maildrop.add(uid)
                return True
            case "insert":
                uid = self.uid("ins")
                self.fresh.add(uid)
                self.maildrop.add(uid, position=argument % (len(messages) + 1))
            case "delete" if messages:
                del messages[argument % len(messages)]
            case "delete_newest" if messages:
                messages.pop()
            case "reorder" if messages:
                random.Random(argument).shuffle(messages)
            case "reassign":
                # The server renumbered its ids: the same old mail under new uids.
                renamed = []
                for uid, raw in messages:
                    new_uid = self.uid("old")
                    if uid in self.fresh and uid not in self.seen:
                        # Mail no check has seen yet stays new mail under its new uid.
                        self.fresh.add(new_uid)
                    renamed.append((new_uid, raw))
                self.maildrop.messages = renamed
            case "vanish":
                messages.clear()
            case "duplicate" if messages:
                self.maildrop.add(messages[argument % len(messages)][0])
            case "blink":
                # A server rebuilding its index: one check sees "+OK 0 0", the mail comes back.
                self.blink = True
                return False
            case _:
                return True  # nothing changed
        return False


def run_history(
    initial: int, operations: list[tuple[str, int]], *, uidl_one: bool, batch_size: int
) -> None:
    history = History(mailbox(initial, prefix="base"))
    history.maildrop.uidl_one = uidl_one
    state, _ = check_and_apply(MailboxState(), history.maildrop, batch_size=batch_size)
    # Archiving from the start: the mail there now must never become archivable.
    state = start_archive(state)
    announced: Counter[str] = Counter()
    baseline = set(state.known_uids)
    excused: set[str] = set()  # fresh mail on the server when a check re-baselined
    only_appended, appended = True, 0
    for operation, argument in [*operations, ("check", 0)]:
        if operation != "check":
            before = len(history.maildrop.messages)
            only_appended &= history.apply(operation, argument)
            appended += len(history.maildrop.messages) - before
            continue
        stashed = history.maildrop.messages
        if history.blink:
            history.maildrop.messages = []
        known, known_size = state.known_uids, state.size
        vanished = state.vanished.uids if state.vanished else ()
        tombstones = set(vanished)
        tombstones_size = state.vanished.size if state.vanished else 0
        server = [uid for uid, _ in history.maildrop.messages]
        server_size = sum(octets(raw) for _, raw in history.maildrop.messages)
        history.seen.update(server)
        state, run = check_and_apply(state, history.maildrop, batch_size=batch_size)
        came_back = history.blink and bool(stashed)
        if history.blink:
            history.maildrop.messages, history.blink = stashed, False
        outcome = run.outcome
        new = [message.uid for message in outcome.new]
        announced.update(new)

        assert Counter(outcome.uids) == Counter(server)
        if outcome.full_list:
            assert list(outcome.uids) == server
        assert outcome.count == len(server)
        assert outcome.removed == set(known) - set(server)
        for message in outcome.new:
            assert server[message.number - 1] == message.uid
            assert message.raw_top == history.maildrop.top(message.number, 0)
        assert new == sorted(new, key=server.index)
        if tombstones and server:
            # After the mailbox looked empty: only exactly the same amount of mail, none of it
            # back, is a renumbering; anything not back is new.
            gone_at_once = not (set(known) | tombstones) & set(server)
            renumbered = (
                len(server) == len(known) + len(vanished)
                and server_size == known_size + tombstones_size
            )
        else:
            gone_at_once = bool(known) and bool(server) and not set(known) & set(server)
            # Every known uid gone: a renumbering only when the server may hold the same mail
            # (as many messages of the same size, or more); otherwise the known mail was
            # deleted and everything on the server now is announced, in order, once.
            renumbered = len(server) > len(known) or (
                len(server) == len(known) and server_size == known_size
            )
        assert outcome.rebaselined == (gone_at_once and renumbered)
        if gone_at_once and not renumbered:
            # The one case where old mail can be announced: old mail under new ids that is
            # also fewer (or resized) is indistinguishable from new mail after a deletion.
            assert new == list(dict.fromkeys(server))
            baseline -= set(server)
        else:
            # Nothing old is announced.
            assert not set(new) & baseline
            assert set(new) <= history.fresh
        # Old mail stays out of the archive, across blinks and tombstones too.
        assert state.archive_baseline is not None
        assert set(server) & baseline <= state.archive_baseline
        if outcome.rebaselined:
            excused |= set(server)
        else:
            missing = {uid for uid in server if uid in history.fresh} - set(announced) - excused
            assert not missing, f"never announced: {missing}"
        if server:
            assert state.last_message is not None
            assert state.last_message.uid == server[-1]
        else:
            assert state.last_message is None
        # Cost: an unchanged mailbox in one round, k appended messages in O(k). While
        # tombstones wait for mail to come back (a bounded number of checks), the full list.
        only_appended &= not tombstones
        if uidl_one and only_appended and appended == 0:
            assert run.rounds == 1
            assert not outcome.full_list
        if uidl_one and only_appended and appended > 0:
            assert not outcome.full_list
            assert len(run.requests) <= 2 + 3 * appended
            assert run.rounds == 1 + math.ceil(appended / batch_size)
        # Mail back after a blink is a change the next check must notice (by the full list).
        only_appended, appended = not came_back, 0
    assert max(announced.values(), default=1) == 1


HISTORY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@HISTORY_SETTINGS
@given(
    initial=st.integers(0, 6),
    operations=st.lists(OPERATIONS, max_size=30),
    batch_size=st.sampled_from([1, 2, 200]),
)
def test_histories(initial: int, operations: list[tuple[str, int]], batch_size: int) -> None:
    """Every new message is announced exactly once, whatever the server did in between."""
    run_history(initial, operations, uidl_one=True, batch_size=batch_size)


@HISTORY_SETTINGS
@given(initial=st.integers(0, 6), operations=st.lists(OPERATIONS, max_size=30))
def test_histories_without_uidl_n(initial: int, operations: list[tuple[str, int]]) -> None:
    """The same guarantees from a server that only knows the full UIDL list."""
    run_history(initial, operations, uidl_one=False, batch_size=2)
