"""Watches: the subentry flow, the watch entities, and counts that follow the mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigSubentryData
from homeassistant.const import CONF_PORT, CONF_USERNAME, Platform
from homeassistant.core import callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    snapshot_platform,
)

from custom_components.pop3_mail.const import DOMAIN, EVENT_NEW_MESSAGE, SUBENTRY_WATCH
from custom_components.pop3_mail.diagnostics import async_get_config_entry_diagnostics
from custom_components.pop3_mail.store import journal_key, storage_key
from custom_components.pop3_mail.sync.watches import MessageSummary, Watch, WatchStatus
from custom_components.pop3_mail.watch_index import WatchIndex
from tests.integration.conftest import mail

if TYPE_CHECKING:
    from homeassistant.core import Event, EventStateChangedData, HomeAssistant
    from syrupy.assertion import SnapshotAssertion

    from tests.servers.fake_pop3 import FakePOP3Server
    from tests.servers.fixtures import FakePOP3Factory

ALARM_ID = "01JZWATCHALARM000000000001"
FACTURA_ID = "01JZWATCHFACTURA0000000001"
ALARM = ConfigSubentryData(
    data={"name": "Alarm", "sender": "alarma casa"},
    subentry_id=ALARM_ID,
    subentry_type=SUBENTRY_WATCH,
    title="Alarm",
    unique_id=None,
)
FACTURA = ConfigSubentryData(
    data={"name": "Facturas", "subject": "FACTURA Nº"},
    subentry_id=FACTURA_ID,
    subentry_type=SUBENTRY_WATCH,
    title="Facturas",
    unique_id=None,
)
# Only the display name says who it is: the address is a generic one.
ALARM_MAIL = mail(
    10, sender="=?utf-8?B?QWxhcm1hIENhc2E=?= <noreply@panel.example>", subject="Zona 2"
)
FACTURA_MAIL = mail(
    11, sender="Proveedor <cobros@proveedor.es>", subject="=?iso-8859-1?Q?Factura_n=BA_12?="
)
OTHER_MAIL = mail(12, subject="Hola")


def watch_entity(hass: HomeAssistant, watch_id: str, platform: str, key: str) -> str:
    """The entity id of a watch's entity, found by its unique id."""
    entry_id = "01JZPOP3MA1LTESTENTRY00001"
    entity_id = er.async_get(hass).async_get_entity_id(
        platform, DOMAIN, f"{entry_id}_{watch_id}_{key}"
    )
    assert entity_id is not None
    return entity_id


def unread(hass: HomeAssistant, watch_id: str) -> str:
    state = hass.states.get(watch_entity(hass, watch_id, "sensor", "watch_unread"))
    assert state is not None
    return state.state


@pytest.fixture
def subentries() -> list[ConfigSubentryData]:
    """The watches the entry starts with."""
    return [ALARM, FACTURA]


@pytest.fixture
def mock_config_entry(
    entry_data: dict[str, Any], subentries: list[ConfigSubentryData]
) -> MockConfigEntry:
    """Alice's mailbox with its watches."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id="01JZPOP3MA1LTESTENTRY00001",
        title=f"{entry_data[CONF_USERNAME]}@127.0.0.1",
        unique_id=f"{entry_data[CONF_USERNAME]}@127.0.0.1",
        data=entry_data,
        version=1,
        minor_version=1,
        subentries_data=subentries,
    )


async def refresh(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await entry.runtime_data.async_refresh()
    await hass.async_block_till_done()


async def deliver(hass: HomeAssistant, entry: MockConfigEntry, server: FakePOP3Server) -> list[str]:
    """Deliver the alarm, the invoice and another message; check; return their uids."""
    uids = [server.mailbox.add(raw) for raw in (ALARM_MAIL, FACTURA_MAIL, OTHER_MAIL)]
    await refresh(hass, entry)
    return uids


def device(hass: HomeAssistant, entry: MockConfigEntry, identifier: str) -> dr.DeviceEntry | None:
    """The entry's device with `identifier` (a lookup both Home Assistant releases offer)."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    return next((d for d in devices if (DOMAIN, identifier) in d.identifiers), None)


def subentries_of(device: dr.DeviceEntry) -> dict[str, set[str | None]]:
    """The subentries a device belongs to, by entry (2026 ties a device to one entry)."""
    if hasattr(device, "config_subentry_id"):
        return {device.config_entry_id: {device.config_subentry_id}}
    return device.config_entries_subentries  # Home Assistant 2025.4


@pytest.mark.parametrize("platform", [Platform.SENSOR, Platform.EVENT])
async def test_entities(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    *,
    platform: Platform,
) -> None:
    """Each watch has two sensors and an event entity, named after it.

    The event entities are pinned before any event (their state is when they last fired);
    `test_bus_event_and_watch_event_entity` checks what they carry.
    """
    with patch("custom_components.pop3_mail.PLATFORMS", [platform]):
        mock_config_entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        if platform is Platform.SENSOR:
            await deliver(hass, mock_config_entry, pop3_server)
        await snapshot_platform(hass, entity_registry, snapshot, mock_config_entry.entry_id)


async def test_devices(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Each watch has its own device, reached through the mailbox's."""
    mailbox = device(hass, init_integration, init_integration.entry_id)
    assert mailbox is not None
    for watch_id, name in ((ALARM_ID, "Alarm"), (FACTURA_ID, "Facturas")):
        watch_device = device(hass, init_integration, watch_id)
        assert watch_device is not None
        assert watch_device.name == name
        assert watch_device.via_device_id == mailbox.id
        assert subentries_of(watch_device) == {init_integration.entry_id: {watch_id}}
    # The mailbox's own device belongs to no subentry.
    assert subentries_of(mailbox) == {init_integration.entry_id: {None}}


async def test_counts_matches_and_last_message(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Encoded Spanish subjects and display-name-only senders match; the rest does not."""
    assert unread(hass, ALARM_ID) == "0"
    alarm, factura, _ = await deliver(hass, init_integration, pop3_server)
    assert unread(hass, ALARM_ID) == "1"
    assert unread(hass, FACTURA_ID) == "1"
    last = hass.states.get(watch_entity(hass, FACTURA_ID, "sensor", "watch_last_message"))
    assert last is not None
    assert last.state == "2025-07-01T08:11:00+00:00"
    assert {key: last.attributes[key] for key in ("sender", "subject", "uid")} == {
        "sender": "cobros@proveedor.es",
        "subject": "Factura nº 12",
        "uid": factura,
    }
    assert alarm != factura


async def test_bus_event_and_watch_event_entity(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """The bus event names the matching watches; each watch's entity fires for its mail only."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    fired: dict[str, list[dict[str, Any]]] = {ALARM_ID: [], FACTURA_ID: []}
    for watch_id, changes in fired.items():

        @callback
        def record(event: Event[EventStateChangedData], changes: list[Any] = changes) -> None:
            changes.append(dict(event.data["new_state"].attributes))

        async_track_state_change_event(
            hass, watch_entity(hass, watch_id, "event", "watch_message"), record
        )

    alarm, factura, other = await deliver(hass, init_integration, pop3_server)

    assert [(event.data["uid"], event.data["watches"]) for event in events] == [
        (alarm, ["Alarm"]),
        (factura, ["Facturas"]),
        (other, []),
    ]
    assert [change["uid"] for change in fired[ALARM_ID]] == [alarm]
    assert [change["uid"] for change in fired[FACTURA_ID]] == [factura]
    alarm_event = fired[ALARM_ID][0]
    assert {
        key: alarm_event[key] for key in ("event_type", "sender", "sender_name", "subject")
    } == {
        "event_type": "new_message",
        "sender": "noreply@panel.example",
        "sender_name": "Alarma Casa",
        "subject": "Zona 2",
    }
    assert alarm_event["date"] == "2025-07-01T10:10:00+02:00"


@pytest.mark.parametrize("subentries", [[]])
async def test_watch_added_later_counts_earlier_mail(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A watch added after the mail arrived counts it: the summaries were kept."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    uids = await deliver(hass, init_integration, pop3_server)
    assert [event.data["watches"] for event in events] == [[], [], []]

    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_WATCH), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Facturas", "subject": "factura"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    (watch_id,) = init_integration.subentries
    assert init_integration.subentries[watch_id].title == "Facturas"
    assert unread(hass, watch_id) == "1"
    # No message is announced again by the reload.
    assert len(events) == 3

    # Its last message starts from its newest unread match, and reading it (then a
    # restart) leaves it: the watch took it as its own when it was added.
    last_id = watch_entity(hass, watch_id, "sensor", "watch_last_message")
    assert hass.states.get(last_id).attributes["uid"] == uids[1]
    await hass.services.async_call(
        DOMAIN,
        "mark_read",
        {"config_entry_id": init_integration.entry_id, "uid": uids[1]},
        blocking=True,
    )
    assert unread(hass, watch_id) == "0"
    assert hass.states.get(last_id).attributes["uid"] == uids[1]
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    last = hass.states.get(last_id)
    assert (last.state, last.attributes["uid"]) == ("2025-07-01T08:11:00+00:00", uids[1])


async def test_last_message_survives_a_crash_after_it_was_read(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_storage: dict[str, Any],
) -> None:
    """A crash before the full write: the journal brings back a read last message.

    Once read, the message has no summary any more, so only the journal's own
    record of the watch's last message can restore it.
    """
    entry_id = init_integration.entry_id
    alarm, _, _ = await deliver(hass, init_integration, pop3_server)
    await hass.services.async_call(
        DOMAIN, "mark_read", {"config_entry_id": entry_id, "uid": alarm}, blocking=True
    )
    await hass.async_block_till_done()
    full = hass_storage[storage_key(entry_id)]
    journal = hass_storage[journal_key(entry_id)]
    assert alarm not in full["data"]["uids"]  # the full file is from before the mail
    await hass.config_entries.async_unload(entry_id)
    hass_storage[storage_key(entry_id)] = full
    hass_storage[journal_key(entry_id)] = journal
    assert await hass.config_entries.async_setup(entry_id)
    await hass.async_block_till_done()

    assert unread(hass, ALARM_ID) == "0"
    last = hass.states.get(watch_entity(hass, ALARM_ID, "sensor", "watch_last_message"))
    assert {key: last.attributes[key] for key in ("sender", "subject", "uid")} == {
        "sender": "noreply@panel.example",
        "subject": "Zona 2",
        "uid": alarm,
    }


async def test_flow_errors_and_cleaning(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A watch needs a sender or a subject; blanks are trimmed and a blank name filled in."""
    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_WATCH), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Nothing", "sender": "  ", "subject": ""}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "watch_empty"}

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": " ", "sender": " bank@ "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "bank@"
    assert result["data"] == {"name": "bank@", "sender": "bank@"}


async def test_reconfigure(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Changing what a watch looks for changes its counts; its entities keep their ids."""
    await deliver(hass, init_integration, pop3_server)
    entity_id = watch_entity(hass, FACTURA_ID, "sensor", "watch_unread")
    assert unread(hass, FACTURA_ID) == "1"

    result = await hass.config_entries.subentries.async_init(
        (init_integration.entry_id, SUBENTRY_WATCH),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": FACTURA_ID},
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Facturas", "sender": "", "subject": ""}
    )
    assert result["errors"] == {"base": "watch_empty"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Hola", "subject": "hola"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    subentry = init_integration.subentries[FACTURA_ID]
    assert (subentry.title, dict(subentry.data)) == ("Hola", {"name": "Hola", "subject": "hola"})
    assert watch_entity(hass, FACTURA_ID, "sensor", "watch_unread") == entity_id
    assert unread(hass, FACTURA_ID) == "1"
    assert hass.states.get(entity_id).attributes.get("friendly_name") == "Hola Unread"
    last = hass.states.get(watch_entity(hass, FACTURA_ID, "sensor", "watch_last_message"))
    assert last.attributes["subject"] == "Hola"


async def test_removal(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    entity_registry: er.EntityRegistry,
) -> None:
    """Deleting a watch removes its device and entities; the bus event no longer names it."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    entity_id = watch_entity(hass, ALARM_ID, "sensor", "watch_unread")
    assert hass.config_entries.async_remove_subentry(init_integration, ALARM_ID)
    await hass.async_block_till_done()

    assert device(hass, init_integration, ALARM_ID) is None
    assert device(hass, init_integration, FACTURA_ID) is not None
    assert entity_registry.async_get(entity_id) is None
    assert hass.states.get(entity_id) is None
    await deliver(hass, init_integration, pop3_server)
    assert [event.data["watches"] for event in events] == [[], ["Facturas"], []]
    assert unread(hass, FACTURA_ID) == "1"


async def test_counts_follow_reads_deletions_and_restarts(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """Marking read, deleting, mail removed elsewhere and a restart: the counts follow."""
    second_alarm = mail(20, sender="alarm <alarma casa@panel.example>", subject="Zona 3")
    alarm, factura, _ = await deliver(hass, init_integration, pop3_server)
    later = pop3_server.mailbox.add(second_alarm)
    await refresh(hass, init_integration)
    assert unread(hass, ALARM_ID) == "2"

    # A restart keeps the counts: the summaries are saved with the state.
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert (unread(hass, ALARM_ID), unread(hass, FACTURA_ID)) == ("2", "1")

    await hass.services.async_call(
        DOMAIN,
        "mark_read",
        {"config_entry_id": init_integration.entry_id, "uid": later},
        blocking=True,
    )
    assert unread(hass, ALARM_ID) == "1"
    # Reading the newest match leaves it the watch's last message, also over a restart.
    last_id = watch_entity(hass, ALARM_ID, "sensor", "watch_last_message")
    assert hass.states.get(last_id).attributes["uid"] == later
    assert hass.states.get(last_id).attributes["subject"] == "Zona 3"
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(last_id).attributes["uid"] == later

    await hass.services.async_call(
        DOMAIN,
        "delete_message",
        {"config_entry_id": init_integration.entry_id, "uid": factura},
        blocking=True,
    )
    assert unread(hass, FACTURA_ID) == "0"
    # Its last message left the server: nothing of the watch's is left there.
    factura_last = hass.states.get(watch_entity(hass, FACTURA_ID, "sensor", "watch_last_message"))
    assert factura_last.state == "unknown"

    # Removed by another client (a phone): the next check notices, and the watch
    # falls back to its newest unread match.
    pop3_server.mailbox.remove(later)
    await refresh(hass, init_integration)
    assert unread(hass, ALARM_ID) == "1"
    assert hass.states.get(last_id).attributes["uid"] == alarm
    pop3_server.mailbox.remove(alarm)
    await refresh(hass, init_integration)
    assert unread(hass, ALARM_ID) == "0"
    last = hass.states.get(last_id)
    assert last.state == "unknown"
    assert last.attributes["uid"] is None

    # Read mail stays read after a restart; the mark-all button path clears the rest.
    pop3_server.mailbox.add(ALARM_MAIL)
    await refresh(hass, init_integration)
    assert unread(hass, ALARM_ID) == "1"
    await hass.services.async_call(
        DOMAIN, "mark_read", {"config_entry_id": init_integration.entry_id}, blocking=True
    )
    assert unread(hass, ALARM_ID) == "0"
    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert unread(hass, ALARM_ID) == "0"


async def test_two_mailboxes_with_same_named_watches(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    fake_pop3: FakePOP3Factory,
    entry_data: dict[str, Any],
) -> None:
    """Two mailboxes may each have an "Alarm" watch: each counts its own mail."""
    other_server = await fake_pop3(users={"bob": "pw"}, messages=())
    other = MockConfigEntry(
        domain=DOMAIN,
        title="bob@127.0.0.1",
        unique_id="bob@127.0.0.1",
        data={**entry_data, CONF_USERNAME: "bob", "password": "pw", CONF_PORT: other_server.port},
        version=1,
        minor_version=1,
        subentries_data=[
            ConfigSubentryData(
                data={"name": "Alarm", "sender": "alarma"},
                subentry_type=SUBENTRY_WATCH,
                title="Alarm",
                unique_id=None,
            )
        ],
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done()
    (other_watch,) = other.subentries

    await deliver(hass, init_integration, pop3_server)
    registry = er.async_get(hass)
    other_unread = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{other.entry_id}_{other_watch}_watch_unread"
    )
    assert other_unread is not None
    mine = watch_entity(hass, ALARM_ID, "sensor", "watch_unread")
    assert other_unread != mine
    assert (hass.states.get(mine).state, hass.states.get(other_unread).state) == ("1", "0")

    other_server.mailbox.add(ALARM_MAIL)
    other_server.mailbox.add(ALARM_MAIL)
    await refresh(hass, other)
    assert (hass.states.get(mine).state, hass.states.get(other_unread).state) == ("1", "2")


async def test_diagnostics_show_watch_definitions_not_mail(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Diagnostics list what each watch looks for and counts, never a matched message."""
    await deliver(hass, init_integration, pop3_server)
    diagnostics = await async_get_config_entry_diagnostics(hass, init_integration)
    assert diagnostics["watches"] == [
        {"name": "Alarm", "sender": "alarma casa", "subject": "", "unread": 1},
        {"name": "Facturas", "sender": "", "subject": "FACTURA Nº", "unread": 1},
    ]
    # One per unread message, watched or not: a watch added later counts them.
    assert diagnostics["state"]["summaries"] == 3
    text = repr(diagnostics)
    for secret in ("Zona 2", "Factura nº 12", "noreply@panel.example", "cobros@"):
        assert secret not in text


async def test_watch_index_keeps_matches_of_unread_mail_only(hass: HomeAssistant) -> None:
    """Matches of mail read long ago leave the cache; unmatched new mail is matched on demand."""
    watch = Watch("w", "Alarm", sender="alarm")
    index = WatchIndex((watch,))
    alarm = MessageSummary("alarm@panel.example", "", "Zona 1", None)
    many = {f"u{n}": alarm for n in range(300)}
    await index.async_index(hass, many)
    assert index.status("w", many).unread == 300
    few = {"u299": alarm}
    assert index.status("w", few) == WatchStatus(unread=1, last_uid="u299", last=alarm)
    assert index._matches == {"u299": ("w",)}
    # A message announced before any summary of it was matched (no executor run).
    assert index.watch_ids({"uid": "new", "sender": "alarm@panel.example"}) == ("w",)
    assert index.watch_ids({"uid": "other", "sender": "bob@example.com"}) == ()
    assert index.status("nope", few) == WatchStatus()
