"""Tests of watches: matching, and the unread summaries they count, against a model."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.pop3_mail.sync.check import CheckOutcome, NewMessage
from custom_components.pop3_mail.sync.message import event_data
from custom_components.pop3_mail.sync.state import (
    LastMessage,
    MailboxState,
    StateFormatError,
    apply,
    forget,
    from_dict,
    mark_read,
    set_watch_last,
    to_dict,
)
from custom_components.pop3_mail.sync.watches import (
    MAX_ADDRESS,
    MAX_NAME,
    MAX_SUBJECT,
    MessageSummary,
    Watch,
    WatchStatus,
    index_matches,
    matching_ids,
    summaries_from_json,
    summaries_to_json,
    summary_of,
    watch_statuses,
)
from custom_components.pop3_mail.watch_index import WatchIndex


def summary(
    sender: str = "bob@example.com", name: str = "", subject: str = "", date: str | None = None
) -> MessageSummary:
    return MessageSummary(sender=sender, sender_name=name, subject=subject, date=date)


def parsed(raw: bytes) -> MessageSummary:
    """The summary of a raw message, as the coordinator makes it."""
    return summary_of(event_data(raw, uid="1", size=len(raw), text_length=0))


# -- matching -----------------------------------------------------------------------------


def test_encoded_spanish_subject_matches_decoded_text() -> None:
    message = parsed(
        b"From: Proveedor <facturas@proveedor.es>\r\n"
        b"Subject: =?iso-8859-1?Q?Factura_n=BA_12?=\r\n\r\n"
    )
    assert message.subject == "Factura nº 12"
    assert Watch("w", "Facturas", subject="FACTURA Nº").matches(message)
    assert Watch("w", "Facturas", subject="factura").matches(message)
    assert not Watch("w", "Facturas", subject="=?iso").matches(message)


def test_encoded_display_name_only_match() -> None:
    message = parsed(
        b"From: =?utf-8?B?QWxhcm1hIENhc2E=?= <noreply@panel.example>\r\nSubject: Evento\r\n\r\n"
    )
    assert message.sender_name == "Alarma Casa"
    # Only the display name says "alarma"; the address does not.
    assert Watch("w", "Alarma", sender="alarma casa").matches(message)
    assert Watch("w", "Alarma", sender="PANEL.example").matches(message)
    assert not Watch("w", "Alarma", sender="alarma@").matches(message)


def test_casefold_not_just_lower() -> None:
    # "STRASSE".lower() is not in "straße"; casefold makes both "strasse".
    assert Watch("w", "Street", subject="STRASSE").matches(summary(subject="Große Straße 1"))
    by_name = Watch("w", "Street", sender="strasse")
    message = summary(sender="info@example.de", name="Straße & Co")
    assert by_name.matches(message)
    assert matching_ids((by_name,), message) == ("w",)


@pytest.mark.parametrize(
    ("watch", "expected"),
    [
        (Watch("w", "both", sender="bank", subject="statement"), True),
        (Watch("w", "sender only wrong", sender="shop", subject="statement"), False),
        (Watch("w", "subject wrong", sender="bank", subject="invoice"), False),
        (Watch("w", "sender only", sender="  MyBank  "), True),
        (Watch("w", "empty"), False),
        (Watch("w", "blank", sender="  ", subject=" "), False),
    ],
)
def test_both_fields_must_match(watch: Watch, expected: bool) -> None:
    message = summary(sender="alerts@mybank.example", name="My Bank", subject="Your statement")
    assert watch.matches(message) is expected


def test_matching_ids_keep_watch_order() -> None:
    watches = (Watch("b", "B", subject="x"), Watch("a", "A", sender="bob"), Watch("c", "C"))
    assert matching_ids(watches, summary(subject="x")) == ("b", "a")


def test_summary_is_cut_and_ignores_bad_values() -> None:
    long = summary_of(
        {
            "sender": "a" * 1000,
            "sender_name": "n" * 1000,
            "subject": "s" * 1000,
            "date": "x" * 100,
        }
    )
    assert (len(long.sender), len(long.sender_name), len(long.subject)) == (
        MAX_ADDRESS,
        MAX_NAME,
        MAX_SUBJECT,
    )
    assert long.date is None
    assert summary_of({"sender": None, "subject": 3}) == summary(sender="", subject="")


# -- the model ----------------------------------------------------------------------------

SENDERS = ("bob@example.com", "alarm@panel.example", "FACTURAS@proveedor.es")
NAMES = ("", "Bob", "Alarma Casa", "Proveedor SL")
SUBJECTS = ("Hola", "Factura nº 12", "ALARMA: puerta", "factura rectificativa", "Straße")
WATCHES = (
    Watch("w1", "Alarm", sender="alarm"),
    Watch("w2", "Facturas", subject="FACTURA"),
    Watch("w3", "Proveedor facturas", sender="proveedor", subject="factura"),
    Watch("w4", "Strasse", subject="strasse"),
    Watch("w5", "Bob by name", sender="bob"),
)


def model_matches(watch: Watch, message: MessageSummary) -> bool:
    """What the issue says a watch matches, written out plainly."""
    if not watch.sender.strip() and not watch.subject.strip():
        return False
    sender_ok = True
    if watch.sender:
        needle = watch.sender.strip().casefold()
        sender_ok = needle in message.sender.casefold() or needle in message.sender_name.casefold()
    subject_ok = True
    if watch.subject:
        subject_ok = watch.subject.strip().casefold() in message.subject.casefold()
    return sender_ok and subject_ok


SUMMARIES = st.builds(
    summary,
    sender=st.sampled_from(SENDERS),
    name=st.sampled_from(NAMES),
    subject=st.sampled_from(SUBJECTS),
    date=st.sampled_from([None, "2025-07-01T10:00:00+02:00"]),
)
OPERATIONS = st.one_of(
    st.tuples(st.just("arrive"), st.lists(SUMMARIES, min_size=1, max_size=4)),
    st.tuples(st.just("read"), st.integers(0, 30)),
    st.tuples(st.just("read_all"), st.none()),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("removed_elsewhere"), st.integers(0, 30)),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("unchanged_check"), st.none()),
    st.tuples(st.just("add_watch"), st.none()),
)


def check(
    state: MailboxState,
    uids: tuple[str, ...],
    new: tuple[str, ...] = (),
    removed: frozenset[str] = frozenset(),
) -> CheckOutcome:
    messages = tuple(NewMessage(uid, uids.index(uid) + 1, 10, b"") for uid in new)
    return CheckOutcome(
        count=len(uids),
        size=len(uids) * 10,
        uids=uids,
        new=messages,
        removed=removed,
        rebaselined=False,
        full_list=bool(removed),
        newest=messages[-1] if messages else None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    baseline=st.integers(0, 3),
    operations=st.lists(OPERATIONS, max_size=25),
    watch_count=st.integers(0, len(WATCHES)),
)
def test_counts_follow_the_model(
    baseline: int, operations: list[tuple[str, Any]], watch_count: int
) -> None:
    """Each watch counts exactly the unread messages on the server it matches, whatever happened.

    Watches may come after the mail: the counts cover mail that arrived before a watch
    existed, because they are worked out from the summaries.

    Its last message is, as the contract says, the newest matching message: reading
    leaves it; when it leaves the server the watch falls back to its newest unread
    match; a watch added later starts from its newest unread match. The coordinator
    settles the state after every change that adds or removes mail, and at setup.
    """
    watches = WATCHES[:watch_count]
    index = WatchIndex(watches)
    # The model of the last messages: watch id -> (uid, summary), or absent for none.
    lasts: dict[str, tuple[str, MessageSummary]] = {}

    def fall_back(watch: Watch) -> None:
        matched = [uid for uid, message in unread.items() if model_matches(watch, message)]
        if matched:
            lasts[watch.watch_id] = (matched[-1], unread[matched[-1]])
        else:
            lasts.pop(watch.watch_id, None)

    first = tuple(f"b{i}" for i in range(baseline))
    state = apply(MailboxState(), check(MailboxState(), first))
    # The model: uid -> summary for every unread message on the server, and the server.
    unread: dict[str, MessageSummary] = {}
    server: list[str] = list(first)
    cache: dict[str, tuple[str, ...]] = {}
    serial = 0
    for operation, argument in operations:
        if operation == "arrive":
            new = []
            for message in argument:
                serial += 1
                new.append(uid := f"u{serial}")
                unread[uid] = message
            server.extend(new)
            summaries = dict(zip(new, argument, strict=True))
            if serial % 2:
                # The coordinator indexes new mail in the executor; sometimes it has not.
                cache.update(index_matches(watches, summaries))
            state = apply(state, check(state, tuple(server), tuple(new)), summaries=summaries)
            state = index.settle(state, summaries)
            for watch in watches:
                matched = [uid for uid in new if model_matches(watch, summaries[uid])]
                if matched:
                    lasts[watch.watch_id] = (matched[-1], summaries[matched[-1]])
        elif operation in ("read", "delete", "removed_elsewhere") and server:
            uid = server[argument % len(server)]
            unread.pop(uid, None)
            if operation == "read":
                state = mark_read(state, uid)
            else:
                server.remove(uid)
                if operation == "delete":
                    state = index.settle(forget(state, [uid], freed_bytes=10))
                else:
                    removed = check(state, tuple(server), removed=frozenset({uid}))
                    state = index.settle(apply(state, removed))
                for watch in watches:
                    if watch.watch_id in lasts and lasts[watch.watch_id][0] == uid:
                        fall_back(watch)
        elif operation == "read_all":
            unread.clear()
            state = mark_read(state, None)
        elif operation == "restart":
            state = from_dict(json.loads(json.dumps(to_dict(state))))
            cache = {}
            index = WatchIndex(watches)
            state = index.settle(state)
        elif operation == "unchanged_check":
            state = index.settle(apply(state, check(state, tuple(server))), {})
        elif operation == "add_watch" and len(watches) < len(WATCHES):
            # Adding a watch reloads the entry: a new index, settled at setup.
            watches = WATCHES[: len(watches) + 1]
            cache = {}
            index = WatchIndex(watches)
            state = index.settle(state)
            fall_back(watches[-1])

        assert state.summaries == unread
        assert list(state.summaries) == [uid for uid in server if uid in unread]
        statuses = watch_statuses(watches, state.summaries, cache)
        for watch in watches:
            matched = [uid for uid, message in unread.items() if model_matches(watch, message)]
            expected = WatchStatus(
                unread=len(matched),
                last_uid=matched[-1] if matched else None,
                last=unread[matched[-1]] if matched else None,
            )
            assert statuses[watch.watch_id] == expected
            last = lasts.get(watch.watch_id)
            assert state.watch_last.get(watch.key) == (
                None
                if last is None
                else LastMessage(last[0], last[1].sender, last[1].subject, last[1].date)
            )


# -- the state ------------------------------------------------------------------------------


def test_baseline_and_rebaseline_keep_no_summaries() -> None:
    state = apply(MailboxState(), check(MailboxState(), ("a",), ("a",)), summaries={"a": summary()})
    assert state.summaries == {}
    rebaselined = CheckOutcome(
        count=1,
        size=10,
        uids=("z",),
        new=(NewMessage("z", 1, 10, b""),),
        removed=frozenset({"a"}),
        rebaselined=True,
        full_list=True,
        newest=None,
    )
    assert apply(state, rebaselined, summaries={"z": summary()}).summaries == {}


def test_state_without_summaries_loads() -> None:
    """A state written before watches existed loads, with no summaries."""
    state = apply(MailboxState(), check(MailboxState(), ("a",)))
    state = apply(state, check(state, ("a", "b"), ("b",)), summaries={"b": summary()})
    stored = to_dict(state)
    del stored["summaries"]
    loaded = from_dict(stored)
    assert loaded.unread == {"b"}
    assert loaded.summaries == {}


def test_stored_summaries_round_trip_and_drop_read_uids() -> None:
    message = summary(name="Alarma", subject="Factura nº 12", date="2025-07-01T10:00:00+02:00")
    rows = summaries_to_json({"a": message, "b": summary()})
    assert json.loads(json.dumps(rows)) == rows
    assert summaries_from_json(rows, frozenset({"a"})) == {"a": message}


@pytest.mark.parametrize(
    "bad",
    [
        {"a": []},
        [["a", "x", "y", "z"]],
        [["a", "x", "y", "z", 5]],
        [[1, "x", "y", "z", None]],
        ["a"],
    ],
)
def test_bad_stored_summaries_are_refused(bad: Any) -> None:
    assert summaries_from_json(bad, frozenset({"a"})) is None
    state = apply(MailboxState(), check(MailboxState(), ()))
    stored = to_dict(state) | {"summaries": bad}
    with pytest.raises(StateFormatError):
        from_dict(stored)


def test_hand_edited_summaries_are_cut_on_load() -> None:
    rows = [["a", "x" * 5000, "n" * 5000, "s" * 5000, None]]
    loaded = summaries_from_json(rows, frozenset({"a"}))
    assert loaded is not None
    assert len(loaded["a"].subject) == MAX_SUBJECT


def test_no_watches_no_statuses() -> None:
    assert watch_statuses((), {"a": summary()}, {}) == {}
    assert index_matches((), {"a": summary()}) == {"a": ()}


def test_watch_last_round_trips_and_old_or_bad_forms() -> None:
    """Saved with the state; a state from before it loads without; a bad one is refused."""
    state = apply(MailboxState(), check(MailboxState(), ("a",)))
    state = apply(state, check(state, ("a", "b"), ("b",)), summaries={"b": summary()})
    last = LastMessage("b", "bob@example.com", "Zona 2", "2025-07-01T10:00:00+02:00")
    state = set_watch_last(state, {"w1": last, "gone": last}, watch_ids=["w1"])
    assert state.watch_last == {"w1": last}  # a deleted watch's entry is not kept
    assert set_watch_last(state, {"w1": last}, watch_ids=["w1"]) is state
    stored = json.loads(json.dumps(to_dict(state)))
    assert from_dict(stored).watch_last == {"w1": last}
    # A message no longer on the server (a hand-edited file) has no entry.
    assert from_dict({**stored, "uids": ["a"], "unread": []}).watch_last == {}
    del stored["watch_last"]
    assert from_dict(stored).watch_last == {}
    for bad in ([], {"w1": ["b", "x", "y"]}, {"w1": ["b", "x", "y", 5]}):
        with pytest.raises(StateFormatError):
            from_dict({**stored, "watch_last": bad})


def test_watch_last_stays_through_reads_and_leaves_with_its_message() -> None:
    state = apply(MailboxState(), check(MailboxState(), ()))
    state = apply(state, check(state, ("a", "b"), ("a", "b")), summaries={"a": summary()})
    last = LastMessage("a", "bob@example.com", "", None)
    state = set_watch_last(state, {"w": last}, watch_ids=["w"])
    assert mark_read(mark_read(state, "a"), None).watch_last == {"w": last}
    assert forget(state, ["b"]).watch_last == {"w": last}
    assert forget(state, ["a"]).watch_last == {}
    assert apply(state, check(state, ("b",), removed=frozenset({"a"}))).watch_last == {}
    assert apply(state, check(state, ())).watch_last == {}  # looks empty: like last_message
