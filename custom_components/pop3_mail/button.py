"""Button of POP3 Mail: mark every message read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription

from .entity import Pop3MailEntity

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import Pop3MailConfigEntry

# Pressing writes the mailbox state; one press at a time keeps the unread count exact.
PARALLEL_UPDATES = 1

MARK_READ = ButtonEntityDescription(key="mark_read", translation_key="mark_read")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the mark-read button of a mailbox."""
    async_add_entities([Pop3MailMarkReadButton(entry.runtime_data, MARK_READ)])


class Pop3MailMarkReadButton(Pop3MailEntity, ButtonEntity):
    """Marks every message on the server read (in Home Assistant; the server is not told)."""

    async def async_press(self) -> None:
        """Mark every message read."""
        self.coordinator.async_mark_read(None)
