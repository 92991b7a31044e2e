"""Base entity of POP3 Mail: one service device per mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import Pop3MailCoordinator

if TYPE_CHECKING:
    from homeassistant.helpers.entity import EntityDescription


class Pop3MailEntity(CoordinatorEntity[Pop3MailCoordinator]):
    """An entity of one mailbox, named after what it shows."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: Pop3MailCoordinator, description: EntityDescription) -> None:
        """Attach the entity to the mailbox's device."""
        super().__init__(coordinator)
        self.entity_description = description
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            entry_type=DeviceEntryType.SERVICE,
            identifiers={(DOMAIN, entry.entry_id)},
            name=coordinator.mailbox,
        )
