"""Entities of the watches: per watch a device with two sensors and an event entity.

Home Assistant ties a device to at most one config subentry, so each watch has a
device of its own, reached through the mailbox's device. The sensor and event
platforms call `async_add_watch_sensors` / `async_add_watch_events`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .coordinator import Pop3MailCoordinator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity import Entity, EntityDescription
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import Pop3MailConfigEntry
    from .sync.watches import Watch

EVENT_TYPE_NEW_MESSAGE: Final = "new_message"
# What the watch's event carries: the same keys as the mailbox's own event entity.
WATCH_EVENT_KEYS: Final = ("uid", "sender", "sender_name", "subject", "date")

WATCH_UNREAD = SensorEntityDescription(
    key="watch_unread",
    translation_key="watch_unread",
    state_class=SensorStateClass.MEASUREMENT,
)
WATCH_LAST_MESSAGE = SensorEntityDescription(
    key="watch_last_message",
    translation_key="watch_last_message",
    device_class=SensorDeviceClass.TIMESTAMP,
)
WATCH_MESSAGE = EventEntityDescription(
    key="watch_message",
    translation_key="watch_message",
    event_types=[EVENT_TYPE_NEW_MESSAGE],
)


def _async_add_per_watch(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[Pop3MailCoordinator, Watch, DeviceInfo], Iterable[Entity]],
) -> None:
    """Add the entities `build` makes for each watch, each to its own subentry."""
    coordinator = entry.runtime_data
    if not coordinator.watch_index.watches:
        return
    # The watch devices name the mailbox's device as `via_device`: it must exist first,
    # whichever platform happens to be set up first.
    mailbox = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **mailbox_device_info(coordinator)
    )
    for watch in coordinator.watch_index.watches:
        device = watch_device_info(watch, mailbox.id, entry.entry_id)
        async_add_entities(build(coordinator, watch, device), config_subentry_id=watch.watch_id)


def async_add_watch_sensors(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the `watch_unread` and `watch_last_message` sensors of every watch."""
    _async_add_per_watch(
        hass,
        entry,
        async_add_entities,
        lambda coordinator, watch, device: (
            WatchUnreadSensor(coordinator, watch, device, WATCH_UNREAD),
            WatchLastMessageSensor(coordinator, watch, device, WATCH_LAST_MESSAGE),
        ),
    )


def async_add_watch_events(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the `watch_message` event entity of every watch."""
    _async_add_per_watch(
        hass,
        entry,
        async_add_entities,
        lambda coordinator, watch, device: (
            WatchMessageEvent(coordinator, watch, device, WATCH_MESSAGE),
        ),
    )


def mailbox_device_info(coordinator: Pop3MailCoordinator) -> DeviceInfo:
    """The mailbox's device, as `entity.Pop3MailEntity` declares it."""
    entry = coordinator.config_entry
    return DeviceInfo(
        entry_type=DeviceEntryType.SERVICE,
        identifiers={(DOMAIN, entry.entry_id)},
        name=coordinator.mailbox,
    )


def watch_device_info(watch: Watch, mailbox_device_id: str, entry_id: str) -> DeviceInfo:
    """The watch's device, linked to the mailbox's device."""
    info: dict[str, Any] = {
        "entry_type": DeviceEntryType.SERVICE,
        "identifiers": {(DOMAIN, watch.watch_id)},
        "name": watch.name,
    }
    if "via_device_id" in DeviceInfo.__annotations__:
        # Home Assistant 2026.8 links by device id and deprecates `via_device`.
        info["via_device_id"] = mailbox_device_id
    else:
        info["via_device"] = (DOMAIN, entry_id)
    return cast("DeviceInfo", info)


class Pop3MailWatchEntity(CoordinatorEntity[Pop3MailCoordinator]):
    """An entity of one watch, on the watch's device."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: Pop3MailCoordinator,
        watch: Watch,
        device: DeviceInfo,
        description: EntityDescription,
    ) -> None:
        """Make an entity of `watch`, on the watch's `device`."""
        super().__init__(coordinator)
        self._attr_device_info = device
        self.entity_description = description
        self.watch = watch
        entry = coordinator.config_entry
        # Subentry ids are unique across entries: same-named watches of two mailboxes differ.
        self._attr_unique_id = f"{entry.entry_id}_{watch.watch_id}_{description.key}"


class WatchUnreadSensor(Pop3MailWatchEntity, SensorEntity):
    """Unread messages on the server that the watch matches."""

    @property
    def native_value(self) -> int:
        """Return the count, from the summaries of the unread mail."""
        return self.coordinator.watch_status(self.watch.watch_id).unread


class WatchLastMessageSensor(Pop3MailWatchEntity, SensorEntity):
    """When the newest message the watch matched was sent, read or not.

    Like the mailbox's `last_message`: it stays while its message is on the server.
    """

    @property
    def native_value(self) -> datetime | None:
        """Return the Date of the watch's last message, None when it has none."""
        last = self.coordinator.state.watch_last.get(self.watch.key)
        if last is None or last.date is None:
            return None
        return dt_util.parse_datetime(last.date)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return who sent the watch's last message, its subject and uid."""
        last = self.coordinator.state.watch_last.get(self.watch.key)
        if last is None:
            return {"sender": None, "subject": None, "uid": None}
        return {"sender": last.sender, "subject": last.subject, "uid": last.uid}


class WatchMessageEvent(Pop3MailWatchEntity, EventEntity):
    """Fires `new_message` once for every new message the watch matches."""

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's announcements of this watch's mail."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_watch_listener(self.watch.watch_id, self._handle_message)
        )

    @callback
    def _handle_message(self, message: Mapping[str, Any]) -> None:
        """Fire the event for one new matching message."""
        self._trigger_event(
            EVENT_TYPE_NEW_MESSAGE, {key: message.get(key) for key in WATCH_EVENT_KEYS}
        )
        self.async_write_ha_state()
