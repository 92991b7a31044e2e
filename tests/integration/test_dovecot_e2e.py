"""End to end against a real Dovecot: set up through the flow over TLS, receive mail, see it."""

from __future__ import annotations

from typing import TYPE_CHECKING
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import (
    CONF_HOST,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
    CONF_VERIFY_SSL,
)
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN, EVENT_NEW_MESSAGE
from tests.integration.conftest import mail

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from homeassistant.core import HomeAssistant

    from tests.servers.dovecot import DovecotServer


@pytest.fixture
def trust_test_ca(dovecot: DovecotServer) -> Iterator[None]:
    """Make the integration's TLS contexts trust the test CA that signed Dovecot's certificate."""
    with patch(
        "custom_components.pop3_mail.session.ssl_context_for",
        lambda verify_ssl: dovecot.pki.client_context(),
    ):
        yield


def message_files(maildir: Path) -> list[str]:
    """Names of the message files of a Maildir (new/ and cur/)."""
    return [path.name for sub in ("cur", "new") for path in (maildir / sub).iterdir()]


def is_seen(name: str) -> bool:
    """Whether a Maildir file name carries the Seen flag (RETR sets it, TOP does not)."""
    return ":2," in name and "S" in name.split(":2,", 1)[1]


@pytest.mark.usefixtures("trust_test_ca")
@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_mail_arrives(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    dovecot_user: tuple[str, str],
    security: str,
) -> None:
    """Flow over verified TLS, baseline without events, then one delivery: sensors, bus, entity."""
    name, password = dovecot_user
    dovecot.deliver(name, mail(1))
    dovecot.deliver(name, mail(2))
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)

    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "password"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: dovecot.host,
            CONF_SECURITY: security,
            CONF_PORT: dovecot.pop3s_port if security == "ssl" else dovecot.pop3_port,
            CONF_USERNAME: name,
            CONF_PASSWORD: password,
            CONF_VERIFY_SSL: True,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    prefix = f"{name}_{dovecot.host}".replace(".", "_")
    assert hass.states.get(f"sensor.{prefix}_messages").state == "2"
    assert hass.states.get(f"sensor.{prefix}_unread").state == "0"
    assert events == []

    dovecot.deliver(name, mail(3, sender="Carol <Carol@Example.org>"))
    await entry.runtime_data.async_refresh()
    await hass.async_block_till_done()

    assert len(events) == 1
    data = events[0].data
    assert data["mailbox"] == f"{name}@{dovecot.host}"
    assert data["sender"] == "carol@example.org"
    assert data["subject"] == "Message 3"
    assert data["uid"] == entry.runtime_data.state.known_uids[-1]
    assert hass.states.get(f"sensor.{prefix}_messages").state == "3"
    assert hass.states.get(f"sensor.{prefix}_unread").state == "1"
    last = hass.states.get(f"sensor.{prefix}_last_message")
    assert last.state == "2025-07-01T08:03:00+00:00"
    assert last.attributes["subject"] == "Message 3"
    event_state = hass.states.get(f"event.{prefix}_new_message")
    assert event_state.attributes["uid"] == data["uid"]
    assert event_state.attributes["sender"] == "carol@example.org"

    # Checking never marked anything read on the server, and an unchanged mailbox stays quiet.
    await entry.runtime_data.async_refresh()
    await hass.async_block_till_done()
    assert len(events) == 1
    files = message_files(dovecot.maildir(name))
    assert len(files) == 3
    assert not any(is_seen(file) for file in files)
    figures = entry.runtime_data.last_check
    assert figures is not None
    assert not figures.full_list
    assert await hass.config_entries.async_unload(entry.entry_id)
