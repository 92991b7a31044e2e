"""The mailbox state on disk: nothing written for an unchanged check, a journal right
after announcing, version 1 files migrated, a crash costs at most that check's events again."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.pop3_mail.const import DOMAIN, EVENT_NEW_MESSAGE
from custom_components.pop3_mail.store import (
    FULL_SAVE_DELAY,
    MailboxStore,
    journal_key,
    replay,
    storage_key,
)
from custom_components.pop3_mail.sync import check as check_module
from custom_components.pop3_mail.sync.state import LastMessage, MailboxState
from custom_components.pop3_mail.sync.watches import MessageSummary, summaries_to_json
from tests.servers.fake_pop3 import Fault, drop

from .conftest import mail

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    import pytest
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.pop3_mail.coordinator import Pop3MailCoordinator
    from tests.servers.fake_pop3 import FakePOP3Server


async def refresh(hass: HomeAssistant, entry: MockConfigEntry) -> Pop3MailCoordinator:
    coordinator: Pop3MailCoordinator = entry.runtime_data
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    return coordinator


async def test_an_unchanged_check_writes_nothing(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    store = init_integration.runtime_data._store
    full, journal = store.full_writes, store.journal_writes
    for _ in range(5):
        await refresh(hass, init_integration)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=FULL_SAVE_DELAY + 1))
    await hass.async_block_till_done()
    # Was a full write after every check (2.6 MB a minute for 100,000 messages).
    assert (store.full_writes, store.journal_writes) == (full, journal)
    assert journal_key(init_integration.entry_id) not in hass_storage


async def test_new_mail_is_journalled_at_once_and_written_in_full_once_per_delay(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    entry_id = init_integration.entry_id
    store = init_integration.runtime_data._store
    full = store.full_writes
    for n in (3, 4, 5):
        pop3_server.mailbox.add(mail(n))
        await refresh(hass, init_integration)
    assert store.full_writes == full
    operations = hass_storage[journal_key(entry_id)]["data"]["operations"]
    assert [op for op in operations if op[0] == "announced"] == [
        ["announced", "uid-3"],
        ["announced", "uid-4"],
        ["announced", "uid-5"],
    ]
    # With what the watches count of each (a summary per unread message).
    assert [row[0] for op in operations if op[0] == "summaries" for row in op[1]] == [
        "uid-3",
        "uid-4",
        "uid-5",
    ]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=FULL_SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert store.full_writes == full + 1
    assert hass_storage[storage_key(entry_id)]["data"]["uids"][-1] == "uid-5"
    assert journal_key(entry_id) not in hass_storage


async def test_a_crash_before_the_full_write_announces_nothing_again(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """The journal is replayed: announced mail stays known and unread, read marks stay."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    entry_id = init_integration.entry_id
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    coordinator = await refresh(hass, init_integration)
    coordinator.async_mark_read("uid-3")
    await hass.async_block_till_done()
    full = hass_storage[storage_key(entry_id)]
    journal = hass_storage[journal_key(entry_id)]
    assert "uid-3" not in full["data"]["uids"]
    # A crash: Home Assistant starts again from the files as they are.
    store = MailboxStore(hass, entry_id)
    state = await store.async_load()
    assert state is not None
    assert state.known_uids[-2:] == ("uid-3", "uid-4")
    assert state.unread == {"uid-4"}
    assert set(state.summaries) == {"uid-4"}  # what the watches count survives too
    await hass.config_entries.async_unload(entry_id)
    hass_storage[storage_key(entry_id)] = full
    hass_storage[journal_key(entry_id)] = journal
    await hass.config_entries.async_setup(entry_id)
    await hass.async_block_till_done()
    assert [event.data["uid"] for event in events] == ["uid-3", "uid-4"]
    assert init_integration.runtime_data.data.unread == 1


async def test_a_version_1_file_of_todays_main_loads_without_a_new_baseline(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """Written by main before tombstones: migrated, its unread marks and uids kept."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    key = storage_key(mock_config_entry.entry_id)
    hass_storage[key] = {
        "version": 1,
        "minor_version": 1,
        "key": key,
        "data": {
            "version": 1,
            "initialised": True,
            "uids": ["uid-1"],
            "size": 1,
            "unread": ["uid-1"],
            "last_message": None,
            "archived": {},
            "archive_baseline": None,
        },
    }
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    # uid-2 arrived while the old version was stopped: announced, not taken as a baseline.
    assert [event.data["uid"] for event in events] == ["uid-2"]
    assert mock_config_entry.runtime_data.data.unread == 2
    await hass.config_entries.async_unload(mock_config_entry.entry_id)
    assert hass_storage[key]["version"] == 2
    assert hass_storage[key]["data"]["version"] == 2


def test_replay_skips_what_it_cannot_read() -> None:
    state = MailboxState(known_uids=("a",), unread=frozenset({"a"}), initialised=True)
    assert replay(state, [["announced", "a"], ["nonsense"], ["read", 5]]) is state
    replayed = replay(state, [["announced", "b", 7], ["read_all"], ["announced", "c"]])
    assert replayed.known_uids == ("a", "b", "c")
    assert replayed.unread == {"c"}


async def test_removing_the_entry_deletes_both_files(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    entry_id = init_integration.entry_id
    hass_storage[journal_key(entry_id)] = {"version": 1, "key": journal_key(entry_id), "data": {}}
    assert await hass.config_entries.async_remove(entry_id)
    await hass.async_block_till_done()
    assert storage_key(entry_id) not in hass_storage
    assert journal_key(entry_id) not in hass_storage
    assert DOMAIN


async def test_a_journal_of_another_generation_is_not_replayed(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """A crash between the full write and the journal's removal leaves a journal the
    full state already covers: replaying it again must not undo what came after."""
    state = MailboxState(known_uids=("a", "b"), unread=frozenset({"b"}), initialised=True)
    writer = MailboxStore(hass, "entry", lambda: state)
    await writer.async_load()
    await writer.async_note_read(None)  # journal of generation 0: read_all
    state = MailboxState(known_uids=("a", "b"), initialised=True)
    await writer.async_save_now()  # the full state, a later generation
    await hass.async_block_till_done()
    assert journal_key("entry") not in hass_storage  # removed once covered
    generation = hass_storage[storage_key("entry")]["data"]["journal"]
    assert generation > 0
    hass_storage[journal_key("entry")] = {
        "version": 1,
        "key": journal_key("entry"),
        "data": {"generation": 0, "operations": [["announced", "c"]]},
    }
    loaded = await MailboxStore(hass, "entry").async_load()
    assert loaded is not None
    assert loaded.known_uids == ("a", "b")
    hass_storage[journal_key("entry")]["data"]["generation"] = generation
    loaded = await MailboxStore(hass, "entry").async_load()
    assert loaded is not None
    assert loaded.known_uids == ("a", "b", "c")


async def test_a_check_that_drops_midway_announces_what_it_fetched(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Issue 9 item 5: progress made is not thrown away; the next check fetches the rest."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    for n in range(3, 43):
        pop3_server.mailbox.add(mail(n))
    # The first round asks for 31 TOPs (the budget's worst case); the connection drops
    # during the second.
    pop3_server.faults.append(Fault("TOP", drop(), nth=35))
    coordinator = await refresh(hass, init_integration)
    first = [event.data["uid"] for event in events]
    assert first == [f"uid-{n}" for n in range(3, 3 + len(first))]
    assert 0 < len(first) < 40
    assert coordinator.last_update_success
    assert coordinator.last_check is not None
    assert coordinator.last_check.error is not None
    await refresh(hass, init_integration)
    assert [event.data["uid"] for event in events] == [f"uid-{n}" for n in range(3, 43)]
    assert coordinator.data.unread == 40


async def test_tops_are_capped_for_the_budget_but_the_full_list_is_not(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The per-check budget caps each TOP answer and defers what does not fit to the next
    check; a long UIDL list keeps the client's cap."""
    monkeypatch.setattr(check_module, "CHECK_ANSWER_LIMIT", 3000)
    monkeypatch.setattr(check_module, "CHECK_BUDGET", 60_000)
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    for n in range(3, 403):
        pop3_server.mailbox.add(mail(n))
    uids = pop3_server.mailbox.uids()
    pop3_server.mailbox.reorder([uids[-1], *uids[:-1]])  # the full list is needed
    coordinator = await refresh(hass, init_integration)
    assert coordinator.last_check is not None
    assert coordinator.last_check.full_list  # a listing of ~5 kB, above the TOP cap
    assert coordinator.last_update_success
    # 60 kB hold ~85 messages beside the next round's worst case: the rest comes later,
    # in order, each once.
    checks = 1
    while len(events) < 400:
        assert 85 * (checks - 1) < len(events) <= 85 * checks
        await refresh(hass, init_integration)
        assert coordinator.last_update_success
        checks += 1
    assert checks == 5
    expected = ["uid-402", *(f"uid-{n}" for n in range(3, 402))]  # server order
    assert [event.data["uid"] for event in events] == expected
    pop3_server.mailbox.add(mail(500, extra_headers="X-Pad: " + "p" * 4000 + "\r\n"))
    coordinator = await refresh(hass, init_integration)
    assert not coordinator.last_update_success
    assert getattr(coordinator.last_exception, "translation_key", None) == "answer_too_large"
    assert len(events) == 400


def test_replay_restores_the_summaries_of_announced_mail() -> None:
    """A crash before the full write keeps what the watches count (issue 11 with item 8)."""
    state = MailboxState(known_uids=("a",), initialised=True)
    summary = MessageSummary("bob@example.com", "Bob", "Alarm", None)
    replayed = replay(
        state,
        [
            ["announced", "b", "c"],
            ["summaries", summaries_to_json({"b": summary, "c": summary})],
            ["read", "c"],
            ["summaries", "not rows"],
        ],
    )
    assert replayed.unread == {"b"}
    assert replayed.summaries == {"b": summary}


def test_replay_restores_the_watches_last_messages() -> None:
    """The newest record wins, an empty one clears, a bad one is skipped (issue 11)."""
    state = MailboxState(known_uids=("a",), initialised=True)
    first = LastMessage("b", "bob@example.com", "Alarm", None)
    second = LastMessage("c", "ana@example.com", "Zona 3", "2025-07-01T10:00:00+02:00")
    rows = {"w1": ["b", "bob@example.com", "Alarm", None]}
    newer = {**rows, "w2": ["c", "ana@example.com", "Zona 3", "2025-07-01T10:00:00+02:00"]}
    replayed = replay(
        state,
        [
            ["announced", "b", "c"],
            ["watch_last", rows],
            ["watch_last", newer],
            ["watch_last", {"w1": "not a row"}],
            ["read", "b"],
        ],
    )
    assert replayed.watch_last == {"w1": first, "w2": second}
    assert replay(replayed, [["watch_last", {}]]).watch_last == {}
    # A record naming mail neither saved nor journaled as announced is not kept.
    assert replay(state, [["watch_last", rows]]).watch_last == {}
