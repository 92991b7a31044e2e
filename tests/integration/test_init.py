"""Setting up, unloading and removing a mailbox entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.helpers import device_registry as dr
import pytest

import custom_components.pop3_mail
from custom_components.pop3_mail.button import MARK_READ
from custom_components.pop3_mail.const import CONF_SCAN_INTERVAL, DOMAIN, ISSUE_ARCHIVE_FAILED
from custom_components.pop3_mail.errors import update_error
from custom_components.pop3_mail.event import NEW_MESSAGE
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
from custom_components.pop3_mail.sensor import SENSORS
from tests.integration.conftest import login_faults
from tests.servers.fake_pop3 import FakePOP3Server, FaultAction, err

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    """The entry loads with its first check done, and unloads writing its state at once."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.data.count == 2

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]
    assert stored["uids"] == ["uid-1", "uid-2"]
    assert stored["initialised"] is True


async def test_device(
    hass: HomeAssistant, init_integration: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """One service device per mailbox, named after it."""
    [device] = dr.async_entries_for_config_entry(device_registry, init_integration.entry_id)
    assert device.identifiers == {(DOMAIN, init_integration.entry_id)}
    assert device.name == "alice@127.0.0.1"
    assert device.entry_type is dr.DeviceEntryType.SERVICE


async def test_remove_deletes_state(
    hass: HomeAssistant, init_integration: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    """Removing the entry removes its saved mailbox state."""
    key = f"{DOMAIN}.{init_integration.entry_id}"
    await hass.config_entries.async_unload(init_integration.entry_id)
    assert key in hass_storage
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_setup_retries_when_server_is_down(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A server that cannot be reached leaves the entry retrying, not failed."""
    await pop3_server.stop()
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY


@pytest.mark.parametrize(
    "fault",
    [
        err("[IN-USE] Mailbox is locked by another POP3 session."),
        err("[SYS/TEMP] try again"),
        err("[LOGIN-DELAY] wait"),
    ],
)
async def test_setup_retries_on_transient_login_errors(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    pop3_server: FakePOP3Server,
    fault: FaultAction,
) -> None:
    """A locked or busy mailbox is retried later and never asks for a new password."""
    pop3_server.faults.extend(login_faults(fault))
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_setup_auth_failure_starts_reauth(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Rejected credentials at setup fail the entry and start reauthentication."""
    pop3_server.users["alice"] = "changed"
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_options_change_reloads(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """New options take effect at once: the entry reloads with them."""
    old = init_integration.runtime_data
    hass.config_entries.async_update_entry(init_integration, options={CONF_SCAN_INTERVAL: 600})
    await hass.async_block_till_done()
    new = init_integration.runtime_data
    assert new is not old
    assert new.update_interval is not None
    assert new.update_interval.total_seconds() == 600


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Every leaf path of a translation tree, such as `config.error.invalid_auth`."""
    keys: set[str] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_translations_and_icons_are_complete() -> None:
    """Spanish has every English string; every entity has a name and an icon; every
    error the integration raises has a message."""
    folder = Path(custom_components.pop3_mail.__file__).parent
    english = json.loads((folder / "translations" / "en.json").read_text())
    spanish = json.loads((folder / "translations" / "es.json").read_text())
    icons = json.loads((folder / "icons.json").read_text())
    assert _keys(english) == _keys(spanish)

    for platform, descriptions in (
        ("sensor", [d.translation_key for d in SENSORS]),
        ("event", [NEW_MESSAGE.translation_key]),
        ("button", [MARK_READ.translation_key]),
    ):
        for key in descriptions:
            assert english["entity"][platform][key]["name"]
            assert icons["entity"][platform][key]["default"].startswith("mdi:")

    raised = {
        update_error(error, "m").translation_key
        for error in (
            POP3AuthError("x"),
            POP3PlaintextRefusedError("x"),
            POP3InUseError("x"),
            POP3LoginDelayError("x"),
            POP3TempError("x"),
            POP3PermError("x"),
            POP3STLSUnavailableError("x"),
            POP3TLSError("x"),
            POP3TimeoutError("x"),
            POP3ConnectionError("x"),
            POP3ProtocolError("x"),
            POP3Error("x"),
        )
    }
    assert raised <= set(english["exceptions"])
    assert ISSUE_ARCHIVE_FAILED in english["issues"]
    for key in ("security", "delete_policy"):
        assert english["selector"][key]["options"]
