"""Sensors of POP3 Mail: what is in the mailbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfInformation

from .entity import Pop3MailEntity
from .watch import async_add_watch_sensors

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import Pop3MailConfigEntry
    from .models import MailboxData

# The coordinator does the talking; sensors only read what it found.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class Pop3MailSensorEntityDescription(SensorEntityDescription):
    """A sensor of a mailbox, and how to read its state and attributes."""

    value_fn: Callable[[MailboxData], int | datetime | None]
    attributes_fn: Callable[[MailboxData], Mapping[str, Any] | None] = lambda _: None


def _last_message_attributes(data: MailboxData) -> Mapping[str, Any]:
    last = data.last_message
    if last is None:
        return {"sender": None, "subject": None, "uid": None}
    return {"sender": last.sender, "subject": last.subject, "uid": last.uid}


SENSORS: tuple[Pop3MailSensorEntityDescription, ...] = (
    Pop3MailSensorEntityDescription(
        key="messages",
        translation_key="messages",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: data.count,
    ),
    Pop3MailSensorEntityDescription(
        key="unread",
        translation_key="unread",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data: data.unread,
    ),
    Pop3MailSensorEntityDescription(
        key="mailbox_size",
        translation_key="mailbox_size",
        device_class=SensorDeviceClass.DATA_SIZE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.MEGABYTES,
        suggested_display_precision=2,
        value_fn=lambda data: data.size,
    ),
    Pop3MailSensorEntityDescription(
        key="last_message",
        translation_key="last_message",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda data: data.last_message.date if data.last_message else None,
        attributes_fn=_last_message_attributes,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: Pop3MailConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of a mailbox, and those of its watches."""
    coordinator = entry.runtime_data
    async_add_entities(Pop3MailSensorEntity(coordinator, description) for description in SENSORS)
    async_add_watch_sensors(hass, entry, async_add_entities)


class Pop3MailSensorEntity(Pop3MailEntity, SensorEntity):
    """A sensor of a mailbox."""

    entity_description: Pop3MailSensorEntityDescription

    @property
    def native_value(self) -> int | datetime | None:
        """Return the state read from the last check."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the attributes read from the last check."""
        return self.entity_description.attributes_fn(self.coordinator.data)
