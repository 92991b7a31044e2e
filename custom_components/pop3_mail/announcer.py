"""Announcing new mail: the bus event and the event entity, once per message, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_NEW_MESSAGE, LOGGER, MAX_EVENT_BYTES
from .sync.message import fit_event

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from homeassistant.config_entries import ConfigEntry

    from .models import NewMessageEventData
    from .sync.watches import Watch

type MessageListener = Callable[[NewMessageEventData], None]


class Announcer:
    """Holds the new mail of a mailbox until it can be announced, then announces it.

    Mail found before the entities exist (the first check of a setup) waits until
    `async_start`, so it reaches the event entity and carries the device id. Each
    message is announced once, in arrival order, by one task at a time.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        mailbox: str,
        on_announced: Callable[[list[str]], None],
        *,
        watches: Sequence[Watch] = (),
        watch_ids: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda _: (),
    ) -> None:
        """Announce the mail of `entry`; `on_announced` gets the uids of each announced batch.

        `watch_ids` tells which of `watches` a message matches: the bus event names
        them and their listeners hear of it.
        """
        self._hass = hass
        self._entry = entry
        self._mailbox = mailbox
        self._on_announced = on_announced
        self._watch_names = {watch.watch_id: watch.name for watch in watches}
        self._watch_ids = watch_ids
        self._listeners: list[MessageListener] = []
        self._watch_listeners: dict[str, list[MessageListener]] = {}
        self._pending: list[dict[str, Any]] = []
        self._started = False
        self._announcing = False

    @property
    def pending(self) -> Sequence[dict[str, Any]]:
        """Event data (without the entry's keys) of mail found but not announced yet."""
        return self._pending

    @property
    def listener_count(self) -> int:
        """How many event entities listen."""
        return len(self._listeners)

    @callback
    def async_add_listener(
        self, listener: MessageListener, *, watch_id: str | None = None
    ) -> CALLBACK_TYPE:
        """Call `listener` with the event data of every new message; returns the remover.

        With `watch_id`, only for the messages that watch matches.
        """
        if watch_id is None:
            listeners = self._listeners
        else:
            listeners = self._watch_listeners.setdefault(watch_id, [])
        listeners.append(listener)
        return lambda: listeners.remove(listener)

    @callback
    def queue(self, messages: Sequence[dict[str, Any]]) -> None:
        """Take the event data of new messages, in arrival order, to announce next."""
        self._pending.extend(messages)

    @callback
    def async_start(self) -> None:
        """Announce from now on, starting with what is pending."""
        self._started = True
        self.async_announce()

    @callback
    def async_announce(self) -> None:
        """Announce each pending message, in order, in a task (one at a time)."""
        if not self._started or not self._pending or self._announcing:
            return
        self._announcing = True
        self._entry.async_create_task(self._hass, self._async_announce(), "pop3_mail announce")

    async def _async_announce(self) -> None:
        """Fire the bus event and the event entity for each pending message, in order.

        Fitting an event to `MAX_EVENT_BYTES` is CPU work over up to megabytes of
        headers, so it runs in the executor; one message at a time keeps the order. A
        message leaves `pending` only once announced, so a save meanwhile keeps the
        rest unseen (announced again after a crash, never lost).
        """
        announced: list[str] = []
        try:
            entry_id = self._entry.entry_id
            device_id = next(
                (
                    device.id
                    for device in dr.async_entries_for_config_entry(
                        dr.async_get(self._hass), entry_id
                    )
                    if (DOMAIN, entry_id) in device.identifiers
                ),
                None,
            )
            entry_keys = {"entry_id": entry_id, "device_id": device_id, "mailbox": self._mailbox}
            while self._pending:
                watch_ids = self._watch_ids(self._pending[0])
                data = {
                    **self._pending[0],
                    **entry_keys,
                    "watches": [self._watch_names[watch_id] for watch_id in watch_ids],
                }
                message = cast(
                    "NewMessageEventData",
                    await self._hass.async_add_executor_job(fit_event, data, MAX_EVENT_BYTES),
                )
                self._hass.bus.async_fire(EVENT_NEW_MESSAGE, message)
                listeners = list(self._listeners)
                for watch_id in watch_ids:
                    listeners.extend(self._watch_listeners.get(watch_id, ()))
                for listener in listeners:
                    try:
                        listener(message)
                    except Exception:  # noqa: BLE001
                        # One failing listener must not cost the others, or later mail, its event.
                        LOGGER.exception("Error announcing a message of %s", self._mailbox)
                announced.append(self._pending.pop(0)["uid"])
        finally:
            self._announcing = False
            if announced:
                self._on_announced(announced)
