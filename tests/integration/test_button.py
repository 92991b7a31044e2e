"""The mark-read button of a mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING
from unittest.mock import patch

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID, Platform
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform

from tests.integration.conftest import mail

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers import entity_registry as er
    from syrupy.assertion import SnapshotAssertion

    from tests.servers.fake_pop3 import FakePOP3Server

MARK_READ = "button.alice_127_0_0_1_mark_all_read"


@pytest.fixture(autouse=True)
def only_buttons() -> object:
    """Set up the button platform alone."""
    with patch("custom_components.pop3_mail.PLATFORMS", [Platform.BUTTON]):
        yield


async def test_button(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """The button as set up."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_press_marks_everything_read(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Pressing marks every message read, without touching the server."""
    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    coordinator = init_integration.runtime_data
    await coordinator.async_refresh()
    assert coordinator.data.unread == 2
    sessions = len(pop3_server.sessions)

    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: MARK_READ}, blocking=True
    )
    assert coordinator.data.unread == 0
    assert coordinator.state.unread == frozenset()
    assert len(pop3_server.sessions) == sessions
