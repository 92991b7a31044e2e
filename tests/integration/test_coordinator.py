"""The coordinator against the fake POP3 server: checks, state, events, faults, archive."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import json
import threading
import time
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.pop3_mail import (
    announcer as announcer_module,
    coordinator as coordinator_module,
)
from custom_components.pop3_mail.archive_session import DEFAULT_MAX_MESSAGE_BYTES
from custom_components.pop3_mail.const import (
    CONF_ARCHIVE_FOLDER,
    CONF_DELETE_POLICY,
    CONF_TEXT_LENGTH,
    DOMAIN,
    EVENT_NEW_MESSAGE,
    ISSUE_ARCHIVE_FAILED,
)
from custom_components.pop3_mail.coordinator import Pop3MailCoordinator, backoff_interval
from custom_components.pop3_mail.errors import update_error
from custom_components.pop3_mail.models import LastMessageData, MailboxData
from custom_components.pop3_mail.pop3.errors import (
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
)
from tests.integration.conftest import MAILBOX, login_faults, mail
from tests.servers.fake_pop3 import (
    FakePOP3Server,
    Fault,
    delay,
    drop,
    drop_mid_response,
    err,
)

if TYPE_CHECKING:
    from pathlib import Path

    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import Event, HomeAssistant

UNREAD = "sensor.alice_127_0_0_1_unread"
MESSAGES = "sensor.alice_127_0_0_1_messages"
NEW_MESSAGE = "event.alice_127_0_0_1_new_message"
CHECK_COMMANDS = {"CAPA", "APOP", "AUTH", "USER", "PASS", "STAT", "UIDL", "LIST", "TOP", "QUIT"}


async def check(hass: HomeAssistant, entry: MockConfigEntry) -> Pop3MailCoordinator:
    """Run one check now, as the schedule would."""
    coordinator: Pop3MailCoordinator = entry.runtime_data
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    return coordinator


def uids(events: list[Event]) -> list[str]:
    """The uids the bus events announced, in order."""
    return [event.data["uid"] for event in events]


@pytest.fixture
async def events(hass: HomeAssistant) -> list[Event]:
    """Every `pop3_mail_new_message` bus event from the start of the test."""
    return async_capture_events(hass, EVENT_NEW_MESSAGE)


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add (unless added) and set up `entry`."""
    if hass.config_entries.async_get_entry(entry.entry_id) is None:
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


# -- baseline and new mail --------------------------------------------------------------------


async def test_baseline_announces_nothing(
    hass: HomeAssistant, events: list[Event], init_integration: MockConfigEntry
) -> None:
    """Mail already there at the first setup counts as read and fires nothing."""
    assert events == []
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    assert coordinator.data == MailboxData(
        count=2,
        size=coordinator.state.size,
        unread=0,
        last_message=LastMessageData(
            uid="uid-2",
            sender="bob@example.com",
            subject="Message 2",
            date=dt_util.parse_datetime("2025-07-01T10:02:00+02:00"),
        ),
    )
    assert hass.states.get(NEW_MESSAGE).state == STATE_UNKNOWN


async def test_new_mail_announced_once_in_order(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Each new message fires one bus event, in arrival order, with the contract's data."""
    pop3_server.mailbox.add(
        mail(3, sender='"Carol" <Carol@Example.org>', extra_headers="Cc: Dan <Dan@X.org>\r\n")
    )
    pop3_server.mailbox.add(mail(4, subject="=?utf-8?q?Caf=C3=A9?="))
    await check(hass, init_integration)
    await check(hass, init_integration)

    assert uids(events) == ["uid-3", "uid-4"]
    [device] = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    first = events[0].data
    assert first["entry_id"] == init_integration.entry_id
    assert first["device_id"] == device.id
    assert first["mailbox"] == MAILBOX
    assert first["sender"] == "carol@example.org"
    assert first["sender_name"] == "Carol"
    assert first["to"] == ["alice@example.com"]
    assert first["cc"] == ["dan@x.org"]
    assert first["subject"] == "Message 3"
    assert first["date"] == "2025-07-01T10:03:00+02:00"
    assert first["message_id"] == "<m3@example.com>"
    assert first["size"] == len(pop3_server.mailbox.get("uid-3"))
    assert first["headers"]["Subject"] == "Message 3"
    assert "text" not in first
    assert events[1].data["subject"] == "Café"

    assert hass.states.get(UNREAD).state == "2"
    assert hass.states.get(MESSAGES).state == "4"
    state = hass.states.get(NEW_MESSAGE)
    assert state.attributes["event_type"] == "new_message"
    assert state.attributes["uid"] == "uid-4"
    assert state.attributes["subject"] == "Café"


async def test_announced_mail_is_saved_at_once(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """The state is written right after an announcement, not after the debounce delay.

    A crash inside the delay would otherwise announce the same mail again at the next start.
    """
    pop3_server.mailbox.add(mail(3))
    await check(hass, init_integration)
    assert uids(events) == ["uid-3"]
    # No time has passed, so only an immediate write can have stored the new uid: the
    # journal, which holds what the full state (written later, kind to SD cards) lacks.
    journal = hass_storage[f"{DOMAIN}.{init_integration.entry_id}.journal"]["data"]
    assert journal["operations"][0] == ["announced", "uid-3"]


async def test_concurrent_refreshes_announce_once(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Two refreshes at once (a schedule and a manual update): each message announced once.

    Parsing is slowed down so that, were the state applied outside the session lock, the
    second check would start from the state before the first one's outcome.
    """
    pop3_server.mailbox.add(mail(3))
    slow = coordinator_module.describe_outcome

    def slow_describe(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return slow(*args, **kwargs)

    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    with patch.object(coordinator_module, "describe_outcome", slow_describe):
        await asyncio.gather(coordinator.async_refresh(), coordinator.async_refresh())
        await hass.async_block_till_done()
    assert uids(events) == ["uid-3"]


async def test_events_are_fitted_off_the_event_loop(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Cutting an event to size runs in the executor; the events still fire once, in order."""
    fitted: list[tuple[str, bool]] = []
    real_fit = announcer_module.fit_event

    def spy(data: dict[str, Any], limit: int) -> dict[str, Any]:
        fitted.append((data["uid"], threading.current_thread() is threading.main_thread()))
        return real_fit(data, limit)

    for n in (3, 4, 5):
        pop3_server.mailbox.add(mail(n))
    entity_uids: list[str] = []
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    remove = coordinator.async_add_message_listener(lambda m: entity_uids.append(m["uid"]))
    with patch.object(announcer_module, "fit_event", spy):
        await check(hass, init_integration)
    remove()
    assert fitted == [("uid-3", False), ("uid-4", False), ("uid-5", False)]
    assert uids(events) == ["uid-3", "uid-4", "uid-5"]
    assert entity_uids == ["uid-3", "uid-4", "uid-5"]


async def test_failing_listener_costs_no_event(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener that raises is logged; every message still reaches the bus and the entity."""
    coordinator: Pop3MailCoordinator = init_integration.runtime_data

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    coordinator.async_add_message_listener(broken)
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    await check(hass, init_integration)
    assert uids(events) == ["uid-3", "uid-4"]
    assert hass.states.get(NEW_MESSAGE).attributes["uid"] == "uid-4"
    assert caplog.text.count("Error announcing a message") == 2


async def test_checks_are_read_only(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Checking sends only STAT, UIDL, LIST, TOP (and login, CAPA, QUIT): never RETR or DELE."""
    pop3_server.mailbox.add(mail(3))
    await check(hass, init_integration)
    await check(hass, init_integration)
    sent = {command.split()[0] for session in pop3_server.sessions for command in session.commands}
    assert sent <= CHECK_COMMANDS
    assert {"STAT", "UIDL", "TOP"} <= sent
    assert pop3_server.mailbox.read_flags == set()
    assert all(session.quit for session in pop3_server.sessions)


async def test_unchanged_mailbox_skips_full_list(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """An unchanged mailbox costs STAT and UIDL n, not the full list; figures say so."""
    coordinator = await check(hass, init_integration)
    commands = pop3_server.sessions[-1].commands
    assert "UIDL" not in commands
    assert "UIDL 2" in commands
    figures = coordinator.last_check
    assert figures is not None
    assert figures.error is None
    assert not figures.full_list
    assert figures.new == 0
    assert figures.commands >= 2
    assert figures.bytes_in > 0
    assert figures.bytes_out > 0


async def test_deletions_and_arrivals(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Mail deleted elsewhere while new mail arrives: only the new mail is announced."""
    pop3_server.mailbox.add(mail(3))
    await check(hass, init_integration)
    pop3_server.mailbox.remove("uid-1")
    pop3_server.mailbox.remove("uid-3")
    pop3_server.mailbox.add(mail(4))
    coordinator = await check(hass, init_integration)
    assert uids(events) == ["uid-3", "uid-4"]
    assert coordinator.state.known_uids == ("uid-2", "uid-4")
    assert coordinator.state.unread == {"uid-4"}
    assert hass.states.get(UNREAD).state == "1"
    assert hass.states.get(MESSAGES).state == "2"


async def test_renumbered_ids_rebaseline(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every known uid gone at once: new baseline, a warning, and no events for old mail."""
    pop3_server.mailbox.set_uids({"uid-1": "new-1", "uid-2": "new-2"})
    coordinator = await check(hass, init_integration)
    assert events == []
    assert coordinator.state.known_uids == ("new-1", "new-2")
    assert coordinator.state.unread == frozenset()
    assert "renumbered" in caplog.text

    pop3_server.mailbox.add(mail(3), uid="new-3")
    await check(hass, init_integration)
    assert uids(events) == ["new-3"]


async def test_mailbox_emptied_elsewhere_then_new_mail(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another client took every known message and new mail came before the check: announced."""
    pop3_server.mailbox.remove("uid-1")
    pop3_server.mailbox.remove("uid-2")
    pop3_server.mailbox.add(mail(3))
    coordinator = await check(hass, init_integration)
    assert uids(events) == ["uid-3"]
    assert coordinator.state.known_uids == ("uid-3",)
    assert hass.states.get(UNREAD).state == "1"
    assert "renumbered" not in caplog.text


async def test_mail_inserted_before_the_newest(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """A server that files new mail before older mail: found, announced, newest unchanged."""
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.reorder(["uid-1", "uid-3", "uid-2"])
    coordinator = await check(hass, init_integration)
    assert uids(events) == ["uid-3"]
    assert coordinator.data.last_message is not None
    assert coordinator.data.last_message.uid == "uid-2"


async def test_empty_mailbox(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Mail deleted elsewhere until nothing is left: zero messages, no last message."""
    pop3_server.mailbox.remove("uid-1")
    pop3_server.mailbox.remove("uid-2")
    coordinator = await check(hass, init_integration)
    assert coordinator.data == MailboxData(count=0, size=0, unread=0, last_message=None)


# -- restarts -----------------------------------------------------------------------------------


async def test_restart_announces_mail_that_arrived_meanwhile(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Mail that arrived while stopped is announced once after the restart, old mail never."""
    pop3_server.mailbox.add(mail(3))
    await check(hass, init_integration)
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()

    pop3_server.mailbox.add(mail(4))
    pop3_server.mailbox.add(mail(5))
    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()

    assert uids(events) == ["uid-3", "uid-4", "uid-5"]
    assert events[1].data["device_id"] is not None
    # The event entity existed in time to relay them.
    assert hass.states.get(NEW_MESSAGE).attributes["uid"] == "uid-5"
    assert hass.states.get(UNREAD).state == "3"

    await check(hass, init_integration)
    assert len(events) == 3


async def test_setup_failing_before_announcing_loses_nothing(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """Mail the first check after a restart found, when setup fails before announcing it.

    The saved state must not count it as known: the next successful start announces it.
    """
    key = f"{DOMAIN}.{init_integration.entry_id}"
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    pop3_server.mailbox.add(mail(3))

    with patch.object(
        hass.config_entries, "async_forward_entry_setups", side_effect=RuntimeError("boom")
    ):
        assert not await hass.config_entries.async_setup(init_integration.entry_id)
        await hass.async_block_till_done()
    assert events == []
    assert "uid-3" not in hass_storage[key]["data"]["uids"]

    await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert uids(events) == ["uid-3"]


async def test_unreadable_saved_state_starts_a_new_baseline(
    hass: HomeAssistant,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A saved state of another version is ignored with a warning; nothing is announced."""
    hass_storage[f"{DOMAIN}.{mock_config_entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{mock_config_entry.entry_id}",
        "data": {"version": 99},
    }
    await setup_entry(hass, mock_config_entry)
    assert events == []
    assert mock_config_entry.runtime_data.data.count == 2
    assert "Ignoring the saved state" in caplog.text


# -- faults -------------------------------------------------------------------------------------


FAULTS: dict[str, list[Fault]] = {
    "in_use": login_faults(err("[IN-USE] Mailbox is locked by another POP3 session.")),
    "login_delay": login_faults(err("[LOGIN-DELAY] Wait a little longer.")),
    "sys_temp": [Fault("STAT", err("[SYS/TEMP] Try again later."))],
    "drop_mid_response": [Fault("TOP", drop_mid_response(after_bytes=20), nth=2)],
    "timeout": [Fault("TOP", delay(3), nth=2)],
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_fault_then_recovery_announces_exactly_once(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    fault: list[Fault],
) -> None:
    """A check that fails midway announces nothing and keeps the state; the retry announces."""
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    before = coordinator.state
    pop3_server.faults.extend(Fault(f.command, f.action, nth=f.nth, repeat=f.repeat) for f in fault)
    with patch("custom_components.pop3_mail.session.COMMAND_TIMEOUT", 0.5):
        await check(hass, init_integration)

    assert not coordinator.last_update_success
    assert events == []
    assert coordinator.state is before
    assert hass.states.get(UNREAD).state == STATE_UNAVAILABLE
    assert hass.states.get(NEW_MESSAGE).state == STATE_UNAVAILABLE
    assert coordinator.last_check is not None
    assert coordinator.last_check.error
    assert coordinator.update_interval == timedelta(seconds=120)
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    pop3_server.faults.clear()
    await check(hass, init_integration)
    await check(hass, init_integration)
    assert coordinator.last_update_success
    assert uids(events) == ["uid-3", "uid-4"]
    assert hass.states.get(NEW_MESSAGE).attributes["uid"] == "uid-4"
    assert hass.states.get(UNREAD).state == "2"
    assert coordinator.update_interval == timedelta(seconds=60)


async def test_auth_failure_starts_reauth(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """A password the server no longer takes starts reauthentication; nothing is announced."""
    pop3_server.users["alice"] = "changed"
    pop3_server.mailbox.add(mail(3))
    coordinator = await check(hass, init_integration)
    assert not coordinator.last_update_success
    assert events == []
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert hass.states.get(UNREAD).state == STATE_UNAVAILABLE


async def test_errors_are_translated(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """The failure the coordinator records carries a translation of its own."""
    pop3_server.faults.extend(login_faults(err("[IN-USE] locked")))
    coordinator = await check(hass, init_integration)
    error = coordinator.last_exception
    assert error is not None
    assert getattr(error, "translation_domain", None) == DOMAIN
    assert getattr(error, "translation_key", None) == "mailbox_in_use"
    assert getattr(error, "translation_placeholders", {})["mailbox"] == MAILBOX


async def test_backoff_grows_caps_and_resets(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Failures in a row double the interval up to 30 minutes; a success resets it."""
    pop3_server.faults.append(Fault("STAT", err("[SYS/TEMP] busy"), repeat=True))
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    intervals = []
    for _ in range(7):
        await check(hass, init_integration)
        assert coordinator.update_interval is not None
        intervals.append(int(coordinator.update_interval.total_seconds()))
    assert intervals == [120, 240, 480, 960, 1800, 1800, 1800]
    pop3_server.faults.clear()
    await check(hass, init_integration)
    assert coordinator.update_interval == timedelta(seconds=60)


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (POP3PlaintextRefusedError("no"), "plaintext_refused"),
        (POP3InUseError("locked", "IN-USE"), "mailbox_in_use"),
        (POP3LoginDelayError("wait", "LOGIN-DELAY"), "login_delay"),
        (POP3TempError("busy", "SYS/TEMP"), "server_busy"),
        (POP3PermError("broken", "SYS/PERM"), "server_error"),
        (POP3STLSUnavailableError("no STLS"), "starttls_unavailable"),
        (POP3TLSError("bad certificate"), "tls_error"),
        (POP3TimeoutError("slow"), "timeout"),
        (POP3ConnectionError("refused"), "cannot_connect"),
        (POP3ProtocolError("garbage"), "protocol_error"),
        (POP3Error("odd"), "unknown_error"),
    ],
)
def test_update_errors(error: POP3Error, key: str) -> None:
    """Every client error becomes a translated UpdateFailed, never a reauthentication."""
    result = update_error(error, MAILBOX)
    assert isinstance(result, UpdateFailed)
    assert result.translation_domain == DOMAIN
    assert result.translation_key == key
    assert result.translation_placeholders == {"mailbox": MAILBOX, "error": str(error)}


def test_auth_error_asks_for_reauth() -> None:
    """Rejected credentials become ConfigEntryAuthFailed."""
    result = update_error(POP3AuthError("[AUTH] no", "AUTH"), MAILBOX)
    assert isinstance(result, ConfigEntryAuthFailed)
    assert result.translation_key == "auth_failed"


def test_backoff_interval_bounds() -> None:
    """Never below the base (even above the cap), never overflowing."""
    base = timedelta(minutes=1)
    assert backoff_interval(base, 0) == base
    assert backoff_interval(base, 10_000) == timedelta(minutes=30)
    assert backoff_interval(timedelta(hours=2), 3) == timedelta(hours=2)


@pytest.mark.parametrize("server_options", [{"login_delay": 900, "messages": [mail(1)]}])
async def test_login_delay_raises_interval(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A server that advertises LOGIN-DELAY 900 is never checked more often than that."""
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    assert coordinator.update_interval == timedelta(seconds=900)
    assert backoff_interval(timedelta(seconds=900), 1) == timedelta(seconds=1800)


async def test_schedule_runs_checks_and_backs_off(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Checks run every scan interval; after a failure the next one waits twice as long."""
    sessions = len(pop3_server.sessions)
    pop3_server.mailbox.add(mail(3))
    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(pop3_server.sessions) == sessions + 1
    assert uids(events) == ["uid-3"]

    pop3_server.faults.append(Fault("STAT", err("[SYS/TEMP] busy")))
    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(pop3_server.sessions) == sessions + 2

    pop3_server.mailbox.add(mail(4))
    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(pop3_server.sessions) == sessions + 2

    freezer.tick(timedelta(seconds=61))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(pop3_server.sessions) == sessions + 3
    assert uids(events) == ["uid-3", "uid-4"]


# -- event content ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry_options", [{CONF_TEXT_LENGTH: 40}])
async def test_text_in_events(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """With text_length, events carry that much body text; the entity keeps it out."""
    pop3_server.mailbox.add(mail(3, body="A" * 100 + "\r\n"))
    await check(hass, init_integration)
    assert events[0].data["text"] == "A" * 40
    assert "text" not in hass.states.get(NEW_MESSAGE).attributes


async def test_huge_event_is_cut_not_dropped(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """A message with 50 KB of headers is announced within 30,000 bytes of JSON."""
    pop3_server.mailbox.add(mail(3, extra_headers=f"X-Big: {'b' * 50_000}\r\n"))
    await check(hass, init_integration)
    assert uids(events) == ["uid-3"]
    assert len(json.dumps(events[0].data).encode()) <= 30_000
    assert events[0].data["subject"] == "Message 3"


# -- our own changes ----------------------------------------------------------------------------


async def test_mark_read_and_forget(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """Marking read and forgetting our own deletions update the sensors, fire nothing, persist."""
    for n in (3, 4, 5):
        pop3_server.mailbox.add(mail(n))
    coordinator = await check(hass, init_integration)
    assert hass.states.get(UNREAD).state == "3"

    coordinator.async_mark_read("uid-3")
    await hass.async_block_till_done()
    assert hass.states.get(UNREAD).state == "2"

    coordinator.async_forget(["uid-4"])
    await hass.async_block_till_done()
    assert hass.states.get(UNREAD).state == "1"
    assert hass.states.get(MESSAGES).state == "4"

    coordinator.async_mark_read(None)
    await hass.async_block_till_done()
    assert hass.states.get(UNREAD).state == "0"
    assert len(events) == 3

    # Nothing left to change: the state object stays the same.
    state = coordinator.state
    coordinator.async_mark_read("uid-5")
    assert coordinator.state is state

    await hass.config_entries.async_unload(init_integration.entry_id)
    stored = hass_storage[f"{DOMAIN}.{init_integration.entry_id}"]["data"]
    assert stored["unread"] == []
    assert "uid-4" not in stored["uids"]


# -- archive --------------------------------------------------------------------------------


async def setup_archiving(
    hass: HomeAssistant, entry: MockConfigEntry, folder: Path, *, policy: str = "keep"
) -> None:
    """Add `entry` with an archive folder and a delete policy, and set it up."""
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={CONF_ARCHIVE_FOLDER: str(folder), CONF_DELETE_POLICY: policy}
    )
    await setup_entry(hass, entry)


@pytest.fixture
def archive_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """The archive folder of the entry (not created yet)."""
    return tmp_path / "archive"


async def test_archive_then_delete(
    hass: HomeAssistant,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """Mail is archived and deleted only after it was announced; counts follow, no events.

    The mail there at the first check (the baseline) is existing mail: never archived or deleted.
    """
    await setup_archiving(hass, mock_config_entry, archive_dir, policy="after_archive")
    baseline_size = mock_config_entry.runtime_data.state.size
    pop3_server.mailbox.add(mail(3))
    coordinator = await check(hass, mock_config_entry)
    # Nothing new was known before this check: it only announces uid-3.
    assert uids(events) == ["uid-3"]
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert not (archive_dir / "new").exists()

    pop3_server.mailbox.add(mail(4))
    await check(hass, mock_config_entry)
    # Archived (and deleted) before this check: uid-3; the new uid-4 only announced.
    assert uids(events) == ["uid-3", "uid-4"]
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-4"]
    assert [p.read_bytes() for p in (archive_dir / "new").iterdir()] == [mail(3)]
    assert coordinator.data.count == 3
    assert coordinator.state.size == baseline_size + len(pop3_server.mailbox.get("uid-4"))

    await check(hass, mock_config_entry)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]
    assert len(list((archive_dir / "new").iterdir())) == 2
    assert (coordinator.data.count, coordinator.data.size) == (2, baseline_size)
    assert coordinator.data.unread == 0
    assert set(coordinator.state.archived) == set()
    assert uids(events) == ["uid-3", "uid-4"]
    assert coordinator.last_check is not None
    assert not coordinator.last_check.full_list


async def test_a_reused_uid_is_archived_before_it_is_deleted(
    hass: HomeAssistant,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """The server gives the uid of archived, deleted mail to a new message (same size).

    Under after_archive the new message is announced, archived in a file of its own, and
    only then deleted: the old file never stands for it.
    """
    await setup_archiving(hass, mock_config_entry, archive_dir, policy="after_archive")
    old = mail(3)
    pop3_server.mailbox.add(old)
    await check(hass, mock_config_entry)
    await check(hass, mock_config_entry)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]

    new = old.replace(b"Message 3", b"Message 9")
    assert len(new) == len(old)
    pop3_server.mailbox.add(new, uid="uid-3")
    await check(hass, mock_config_entry)
    assert uids(events) == ["uid-3", "uid-3"]
    assert events[-1].data["subject"] == "Message 9"
    await check(hass, mock_config_entry)

    assert sorted(p.read_bytes() for p in (archive_dir / "new").iterdir()) == sorted([old, new])
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]


async def test_archive_failure_raises_repair_issue(
    hass: HomeAssistant,
    *,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """An archive folder that cannot be written: a repair issue, events still fire; fixed, gone."""
    archive_dir.write_text("a file where the folder should be")
    await setup_archiving(hass, mock_config_entry, archive_dir)
    pop3_server.mailbox.add(mail(3))
    await check(hass, mock_config_entry)
    # The run after the check that announced uid-3 tries to archive it.
    await check(hass, mock_config_entry)
    issue_id = f"{ISSUE_ARCHIVE_FAILED}_{mock_config_entry.entry_id}"
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == ISSUE_ARCHIVE_FAILED
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["folder"] == str(archive_dir)
    assert uids(events) == ["uid-3"]
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]

    archive_dir.unlink()
    await check(hass, mock_config_entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert [p.read_bytes() for p in (archive_dir / "new").iterdir()] == [mail(3)]

    # Unloading drops a standing issue; the next run after setup reports it again if needed.
    archive_dir.rename(archive_dir.with_suffix(".old"))
    archive_dir.write_text("in the way again")
    pop3_server.mailbox.add(mail(4))
    await check(hass, mock_config_entry)
    await check(hass, mock_config_entry)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    await hass.config_entries.async_unload(mock_config_entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_archive_session_failure_does_not_fail_the_check(
    hass: HomeAssistant,
    *,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server error while archiving is logged; the check that follows still announces."""
    await setup_archiving(hass, mock_config_entry, archive_dir)
    pop3_server.mailbox.add(mail(3))
    await check(hass, mock_config_entry)
    pop3_server.mailbox.add(mail(4))
    # The first UIDL of the next update is the archive session's (uid-3 waits to be archived).
    pop3_server.faults.append(Fault("UIDL", drop_mid_response(after_bytes=3)))
    coordinator = await check(hass, mock_config_entry)
    assert coordinator.last_update_success
    assert uids(events) == ["uid-3", "uid-4"]
    assert "Archiving the mail of" in caplog.text
    assert not (archive_dir / "new").exists()

    await check(hass, mock_config_entry)
    assert "works again" in caplog.text
    assert sorted(p.read_bytes() for p in (archive_dir / "new").iterdir()) == [mail(3), mail(4)]


async def test_archive_quit_failure_keeps_files_deletes_nothing(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """QUIT refused after archiving: the files count as archived, no message counts as gone."""
    await setup_archiving(hass, mock_config_entry, archive_dir, policy="after_archive")
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    await check(hass, mock_config_entry)
    pop3_server.faults.append(Fault("QUIT", err("[SYS/TEMP] could not commit")))
    coordinator = await check(hass, mock_config_entry)
    assert coordinator.last_update_success
    assert set(coordinator.state.archived) == {"uid-3", "uid-4"}
    assert coordinator.state.known_uids == ("uid-1", "uid-2", "uid-3", "uid-4")
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3", "uid-4"]

    await check(hass, mock_config_entry)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]
    assert coordinator.data.count == 2


@pytest.mark.parametrize("server_options", [{"login_delay": 900, "messages": [mail(1)]}])
async def test_archive_and_check_take_turns_under_login_delay(
    hass: HomeAssistant,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """A server that allows one login per LOGIN-DELAY gets one session per update."""
    await setup_archiving(hass, mock_config_entry, archive_dir)
    pop3_server.mailbox.add(mail(2))

    sessions = len(pop3_server.sessions)
    # Nothing to archive yet (uid-1 was there before archiving): only the check.
    coordinator = await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 1
    assert not any(c.startswith("RETR") for c in pop3_server.sessions[-1].commands)
    assert uids(events) == ["uid-2"]

    pop3_server.mailbox.add(mail(3))
    await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 2
    assert any(c.startswith("RETR") for c in pop3_server.sessions[-1].commands)
    assert uids(events) == ["uid-2"]
    assert coordinator.last_update_success

    await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 3
    assert not any(c.startswith("RETR") for c in pop3_server.sessions[-1].commands)
    assert uids(events) == ["uid-2", "uid-3"]

    await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 4
    assert set(coordinator.state.archived) == {"uid-2", "uid-3"}


@pytest.mark.parametrize("server_options", [{"login_delay": 900, "messages": [mail(1)]}])
async def test_server_down_under_login_delay_fails_every_update(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An archive session that could not connect did not take the check's turn: no flapping.

    With mail waiting to be archived and a LOGIN-DELAY, every update while the server
    is down fails; none reports success for a turn the server never gave.
    """
    await setup_archiving(hass, mock_config_entry, archive_dir)
    pop3_server.mailbox.add(mail(2))
    coordinator = await check(hass, mock_config_entry)
    assert coordinator.last_update_success
    assert coordinator.archiver is not None
    assert coordinator.archiver.has_work(coordinator.state, time.time())

    pop3_server.faults.append(Fault("GREETING", drop(), repeat=True))
    caplog.clear()
    outcomes = []
    for _ in range(4):
        await check(hass, mock_config_entry)
        outcomes.append(coordinator.last_update_success)
    assert outcomes == [False, False, False, False]
    assert "recovered" not in caplog.text

    pop3_server.faults.clear()
    await check(hass, mock_config_entry)
    assert coordinator.last_update_success


async def test_archive_crash_before_bookkeeping_adopts_files(
    hass: HomeAssistant,
    *,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
    hass_storage: dict[str, Any],
) -> None:
    """Files written but never recorded (a crash in between): adopted after restart, not rewritten.

    The crash is simulated by restarting the entry with the state saved before the archive run.
    """
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry,
        options={CONF_ARCHIVE_FOLDER: str(archive_dir), CONF_DELETE_POLICY: "after_archive"},
    )
    key = f"{DOMAIN}.{mock_config_entry.entry_id}"
    await setup_entry(hass, mock_config_entry)
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    await check(hass, mock_config_entry)
    # The archive run's QUIT fails, so it writes and records files but deletes nothing.
    pop3_server.faults.append(Fault("QUIT", err("[SYS/TEMP] could not commit")))
    coordinator = await check(hass, mock_config_entry)
    assert set(coordinator.state.archived) == {"uid-3", "uid-4"}
    files = sorted((archive_dir / "new").iterdir())
    stamps = {path: path.stat().st_mtime_ns for path in files}
    assert len(files) == 2

    # The "crash": the state on disk never heard of these files.
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    hass_storage[key]["data"]["archived"] = {}
    pop3_server.mailbox.add(mail(5))
    # Setting up runs the archive (adopting, then deleting as the policy says) and the check.
    await setup_entry(hass, mock_config_entry)

    # Same two files, untouched, no second copy; uid-5 is announced and waits for the next run.
    assert sorted((archive_dir / "new").iterdir()) == files
    assert {path: path.stat().st_mtime_ns for path in files} == stamps
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-5"]
    assert uids(events) == ["uid-3", "uid-4", "uid-5"]


async def test_archive_turned_on_leaves_existing_mail_alone(
    hass: HomeAssistant,
    events: list[Event],
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """Archiving turned on later takes only mail that arrives after; the rest stays on the server.

    Turned off and on again, it starts over from the mail there at that moment.
    """
    archive_options = {CONF_ARCHIVE_FOLDER: str(archive_dir), CONF_DELETE_POLICY: "after_archive"}
    pop3_server.mailbox.add(mail(3))
    await check(hass, init_integration)
    # An options change reloads the entry.
    hass.config_entries.async_update_entry(init_integration, options=archive_options)
    await hass.async_block_till_done()
    assert init_integration.runtime_data.state.archive_baseline == {"uid-1", "uid-2", "uid-3"}
    await check(hass, init_integration)
    await check(hass, init_integration)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert not (archive_dir / "new").exists()

    pop3_server.mailbox.add(mail(4))
    await check(hass, init_integration)
    await check(hass, init_integration)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert [p.read_bytes() for p in (archive_dir / "new").iterdir()] == [mail(4)]

    hass.config_entries.async_update_entry(init_integration, options={})
    await hass.async_block_till_done()
    assert init_integration.runtime_data.state.archive_baseline is None
    pop3_server.mailbox.add(mail(5))
    await check(hass, init_integration)

    hass.config_entries.async_update_entry(init_integration, options=archive_options)
    await hass.async_block_till_done()
    await check(hass, init_integration)
    await check(hass, init_integration)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3", "uid-5"]
    assert [p.read_bytes() for p in (archive_dir / "new").iterdir()] == [mail(4)]
    assert uids(events) == ["uid-3", "uid-4", "uid-5"]


async def test_archive_does_not_log_in_again_for_a_message_too_large(
    hass: HomeAssistant,
    events: list[Event],
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    archive_dir: Path,
) -> None:
    """A message too large to archive costs one archive session, not one more login per update."""
    await setup_archiving(hass, mock_config_entry, archive_dir)
    line = "x" * 998 + "\r\n"
    pop3_server.mailbox.add(mail(3, body=line * (DEFAULT_MAX_MESSAGE_BYTES // len(line) + 1)))
    await check(hass, mock_config_entry)
    assert uids(events) == ["uid-3"]

    sessions = len(pop3_server.sessions)
    await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 2
    await check(hass, mock_config_entry)
    assert len(pop3_server.sessions) == sessions + 3
    assert not any(c.startswith("RETR") for s in pop3_server.sessions for c in s.commands)
    assert mock_config_entry.runtime_data.state.archived == {}


@pytest.mark.parametrize("server_options", [{"login_delay": 10**12, "messages": [mail(1)]}])
async def test_absurd_login_delay_is_capped(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A LOGIN-DELAY of 30,000 years waits the longest scan interval, not forever (nor crashes)."""
    coordinator: Pop3MailCoordinator = init_integration.runtime_data
    assert coordinator.last_update_success
    assert coordinator.update_interval == timedelta(seconds=86_400)
