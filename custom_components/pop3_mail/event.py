"""Event entity of POP3 Mail: one `new_message` event per new message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback

from .entity import Pop3MailEntity
from .watch import async_add_watch_events

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import Pop3MailConfigEntry
    from .models import NewMessageEventData

# The coordinator does the talking; the entity only relays what it found.
PARALLEL_UPDATES = 0

EVENT_TYPE_NEW_MESSAGE: Final = "new_message"

# The full message data goes on the bus; the entity keeps what a card or a trigger needs,
# because its attributes land in the recorder with every event.
ENTITY_EVENT_KEYS: Final = ("uid", "sender", "sender_name", "subject", "date")

NEW_MESSAGE = EventEntityDescription(
    key="new_message",
    translation_key="new_message",
    event_types=[EVENT_TYPE_NEW_MESSAGE],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the new-message event entity of a mailbox, and those of its watches."""
    async_add_entities([Pop3MailNewMessageEvent(entry.runtime_data, NEW_MESSAGE)])
    async_add_watch_events(hass, entry, async_add_entities)


class Pop3MailNewMessageEvent(Pop3MailEntity, EventEntity):
    """Fires `new_message` once for every message that arrives in the mailbox."""

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's announcements of new mail."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_message_listener(self._handle_message))

    @callback
    def _handle_message(self, message: NewMessageEventData) -> None:
        """Fire the event for one new message."""
        self._trigger_event(
            EVENT_TYPE_NEW_MESSAGE, {key: message.get(key) for key in ENTITY_EVENT_KEYS}
        )
        self.async_write_ha_state()
