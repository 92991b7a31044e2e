"""The POP3 Mail integration: watch POP3 mailboxes and announce every new message once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN
from .coordinator import Pop3MailConfigEntry, Pop3MailCoordinator
from .oauth import CONF_TOKEN
from .repairs import async_check_insecure_connection, async_delete_insecure_connection
from .services import async_setup_services
from .store import MailboxStore

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS = [Platform.BUTTON, Platform.EVENT, Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, which work on any loaded mailbox."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: Pop3MailConfigEntry) -> bool:
    """Check the mailbox once, then add its entities and start announcing new mail."""
    async_check_insecure_connection(hass, entry)
    coordinator = Pop3MailCoordinator(hass, entry)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    coordinator.async_start_announcing()
    settings = _settings(entry)

    async def _async_entry_updated(hass: HomeAssistant, entry: Pop3MailConfigEntry) -> None:
        # A renewed OAuth token, stored in entry.data before a session, must not reload the
        # entry in the middle of that session; any other change starts over with it.
        if _settings(entry) != settings:
            await hass.config_entries.async_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def async_unload_entry(hass: HomeAssistant, entry: Pop3MailConfigEntry) -> bool:
    """Remove the entities; the coordinator saves the mailbox state as it shuts down."""
    # Not called for a setup that failed: its retries still send the password, so the
    # insecure-connection issue stays up for them.
    async_delete_insecure_connection(hass, entry.entry_id)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: Pop3MailConfigEntry) -> None:
    """Delete the saved mailbox state (and any repair issue) of a removed entry."""
    async_delete_insecure_connection(hass, entry.entry_id)
    await MailboxStore(hass, entry.entry_id).async_remove()


def _settings(entry: Pop3MailConfigEntry) -> tuple[Any, ...]:
    """Everything of the entry a reload must follow: all of it but its OAuth token."""
    data = {key: value for key, value in entry.data.items() if key != CONF_TOKEN}
    watches = {
        subentry_id: (subentry.subentry_type, subentry.title, dict(subentry.data))
        for subentry_id, subentry in entry.subentries.items()
    }
    return data, dict(entry.options), entry.title, watches
