"""The sensors of a mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING
from unittest.mock import patch

from homeassistant.const import STATE_UNKNOWN, Platform
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform

from tests.integration.conftest import mail

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import entity_registry as er
    from syrupy.assertion import SnapshotAssertion

    from tests.servers.fake_pop3 import FakePOP3Server

LAST_MESSAGE = "sensor.alice_127_0_0_1_last_message"
MAILBOX_SIZE = "sensor.alice_127_0_0_1_mailbox_size"


@pytest.fixture(autouse=True)
def only_sensors() -> object:
    """Set up the sensor platform alone."""
    with patch("custom_components.pop3_mail.PLATFORMS", [Platform.SENSOR]):
        yield


async def test_sensors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor, its registry entry and its state, as set up against two messages."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_mailbox_size_in_megabytes(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """The size is shown in MB, converted from the bytes STAT reports."""
    pop3_server.mailbox.add(mail(3, body="x" * 2_000_000 + "\r\n"))
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(MAILBOX_SIZE)
    assert state.attributes["unit_of_measurement"] == "MB"
    assert float(state.state) == pytest.approx(
        init_integration.runtime_data.state.size / 1_000_000, abs=0.05
    )


@pytest.mark.parametrize(
    "server_options",
    [
        {
            "messages": [
                mail(1, extra_headers="", sender="Nobody <n@x.org>").replace(
                    b"Date: Tue, 1 Jul 2025 10:01:00 +0200\r\n", b""
                )
            ]
        }
    ],
)
async def test_last_message_without_date(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A newest message without a Date header: unknown time, its sender and subject shown."""
    state = hass.states.get(LAST_MESSAGE)
    assert state.state == STATE_UNKNOWN
    assert state.attributes["sender"] == "n@x.org"
    assert state.attributes["subject"] == "Message 1"
    assert state.attributes["uid"] == "uid-1"


@pytest.mark.parametrize("server_options", [{"messages": []}])
async def test_empty_mailbox(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """An empty mailbox: zero messages, no last message."""
    assert hass.states.get("sensor.alice_127_0_0_1_messages").state == "0"
    state = hass.states.get(LAST_MESSAGE)
    assert state.state == STATE_UNKNOWN
    assert state.attributes["uid"] is None
