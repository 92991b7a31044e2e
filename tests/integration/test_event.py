"""The new-message event entity of a mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING
from unittest.mock import patch

from homeassistant.const import Platform
from homeassistant.core import callback
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform

from tests.integration.conftest import mail

if TYPE_CHECKING:
    from homeassistant.core import Event, EventStateChangedData, HomeAssistant
    from homeassistant.helpers import entity_registry as er
    from syrupy.assertion import SnapshotAssertion

    from tests.servers.fake_pop3 import FakePOP3Server

NEW_MESSAGE = "event.alice_127_0_0_1_new_message"


@pytest.fixture(autouse=True)
def only_events() -> object:
    """Set up the event platform alone."""
    with patch("custom_components.pop3_mail.PLATFORMS", [Platform.EVENT]):
        yield


async def test_event_entity(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """The entity as set up: no event yet."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_fires_once_per_message(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Two new messages: two state changes, in arrival order, with the compact attributes."""
    changes: list[Event[EventStateChangedData]] = []

    # A callback runs in the event loop as each change happens; a plain function would run
    # in the executor, where two jobs may finish out of order.
    @callback
    def record(event: Event[EventStateChangedData]) -> None:
        changes.append(event)

    async_track_state_change_event(hass, NEW_MESSAGE, record)
    pop3_server.mailbox.add(mail(3, sender="Carol <carol@example.org>"))
    pop3_server.mailbox.add(mail(4))
    await init_integration.runtime_data.async_refresh()
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()

    attributes = [dict(change.data["new_state"].attributes) for change in changes]
    assert [a["uid"] for a in attributes] == ["uid-3", "uid-4"]
    assert attributes[0] == {
        "event_types": ["new_message"],
        "event_type": "new_message",
        "uid": "uid-3",
        "sender": "carol@example.org",
        "sender_name": "Carol",
        "subject": "Message 3",
        "date": "2025-07-01T10:03:00+02:00",
        "friendly_name": "alice@127.0.0.1 New message",
    }


async def test_stops_listening_when_unloaded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Unloading removes the entity's listener from the coordinator."""
    coordinator = init_integration.runtime_data
    assert coordinator.announcer.listener_count == 1
    await hass.config_entries.async_unload(init_integration.entry_id)
    assert coordinator.announcer.listener_count == 0
