"""Actions of POP3 Mail: fetch, delete and mark read one message of a mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError, Unauthorized, UnknownUser
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .const import DOMAIN
from .helpers import pop3_error_handler
from .pop3.errors import POP3ResponseError
from .pop3.requests import List, Uidl
from .sync.message import full_message

if TYPE_CHECKING:
    from .coordinator import Pop3MailConfigEntry
    from .pop3 import POP3Session
    from .sync.state import MailboxState

# Home Assistant 2025.4 has no ATTR_CONFIG_ENTRY_ID in homeassistant.const.
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_UID: Final = "uid"

SERVICE_FETCH_MESSAGE: Final = "fetch_message"
SERVICE_DELETE_MESSAGE: Final = "delete_message"
SERVICE_MARK_READ: Final = "mark_read"

#: Largest message `fetch_message` downloads: the whole message is held in memory and
#: returned as one response.
MAX_FETCH_BYTES: Final = 10 * 2**20

# Home Assistant 2026 validates with probatio, installed under the name `voluptuous`; the two
# libraries' types differ, so the schemas are typed Any to check against both.
_ENTRY_SCHEMA: Any = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
_UID_SCHEMA: Any = _ENTRY_SCHEMA.extend({vol.Required(ATTR_UID): cv.string})
_MARK_READ_SCHEMA: Any = _ENTRY_SCHEMA.extend({vol.Optional(ATTR_UID): cv.string})


def _loaded_entry(hass: HomeAssistant, entry_id: str) -> Pop3MailConfigEntry:
    """Return the loaded POP3 Mail entry `entry_id`, or raise a translated validation error."""
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"mailbox": entry.title},
        )
    loaded: Pop3MailConfigEntry = entry
    return loaded


async def _require_admin(hass: HomeAssistant, call: ServiceCall) -> None:
    """Refuse a call by a user who is not an administrator (automations have no user).

    Home Assistant 2025.4's `async_register_admin_service` cannot return a response, so
    the check is done here, the same way.
    """
    if call.context.user_id is None:
        return
    user = await hass.auth.async_get_user(call.context.user_id)
    if user is None:
        raise UnknownUser(context=call.context)
    if not user.is_admin:
        raise Unauthorized(context=call.context)


def _unknown_uid(entry: Pop3MailConfigEntry, uid: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_uid",
        translation_placeholders={"uid": uid, "mailbox": entry.title},
    )


def _expected_number(state: MailboxState, uid: str) -> int | None:
    """Return the message number the last check saw `uid` at, or None if it did not see it."""
    try:
        return state.known_uids.index(uid) + 1
    except ValueError:
        return None


async def _find_message(
    session: POP3Session, entry: Pop3MailConfigEntry, uid: str
) -> tuple[int, int]:
    """Return the number and size of message `uid` in this session.

    The number the last check saw is tried first (`UIDL n` and `LIST n` in one round
    trip); the full UIDL list is the fallback when mail was deleted since or the server
    renumbered its messages.
    """
    if (number := _expected_number(entry.runtime_data.state, uid)) is not None:
        found_uid, size = await session.pipeline([Uidl(number), List(number)])
        if found_uid == uid and isinstance(size, int):
            return number, size
    numbers = [number for number, found in (await session.uidl()).items() if found == uid]
    if not numbers:
        raise _unknown_uid(entry, uid)
    return numbers[0], await session.list_one(numbers[0])


async def _download(session: POP3Session, number: int) -> bytes:
    """Download message `number` whole, without marking it read where the server allows.

    A message within `MAX_FETCH_BYTES` has fewer lines than that, so `TOP n MAX_FETCH_BYTES`
    returns all of it, even from servers whose LIST sizes are only estimates; unlike RETR,
    TOP does not mark the message read (Dovecot keeps it unseen).
    """
    if session.capabilities.top:
        try:
            return await session.top(number, MAX_FETCH_BYTES)
        except POP3ResponseError as error:
            # A -ERR without a response code is a server that lists TOP but lacks it;
            # with one ([SYS/PERM] ...) the server understood and failed.
            if error.code is not None:
                raise
    return await session.retr(number)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the POP3 Mail actions."""

    async def fetch_message(call: ServiceCall) -> ServiceResponse:
        await _require_admin(hass, call)
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        coordinator = entry.runtime_data
        uid: str = call.data[ATTR_UID]
        async with (
            coordinator.session_lock,
            pop3_error_handler(hass, entry),
            coordinator.connect() as session,
        ):
            number, size = await _find_message(session, entry, uid)
            if size > MAX_FETCH_BYTES:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="message_too_large",
                    translation_placeholders={
                        "uid": uid,
                        "size": str(size),
                        "limit": str(MAX_FETCH_BYTES),
                    },
                )
            raw = await _download(session, number)
        # Parsing megabytes of MIME would hold up the event loop.
        message = await hass.async_add_executor_job(full_message, raw)
        return {ATTR_UID: uid, **message}

    async def delete_message(call: ServiceCall) -> None:
        await _require_admin(hass, call)
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        coordinator = entry.runtime_data
        uid: str = call.data[ATTR_UID]
        async with (
            coordinator.session_lock,
            pop3_error_handler(hass, entry),
            coordinator.connect() as session,
        ):
            number, size = await _find_message(session, entry, uid)
            await session.dele(number)
        # The server deleted it at QUIT, on leaving the session.
        coordinator.async_forget([uid], freed_bytes=size)

    @callback
    def mark_read(call: ServiceCall) -> None:
        entry = _loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
        coordinator = entry.runtime_data
        uid: str | None = call.data.get(ATTR_UID)
        if uid is not None and _expected_number(coordinator.state, uid) is None:
            raise _unknown_uid(entry, uid)
        coordinator.async_mark_read(uid)

    # Reading and deleting someone's mail is for administrators (checked in the handlers);
    # marking read is what the mark-read button does for every user.
    hass.services.async_register(
        DOMAIN,
        SERVICE_FETCH_MESSAGE,
        fetch_message,
        schema=_UID_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(DOMAIN, SERVICE_DELETE_MESSAGE, delete_message, schema=_UID_SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_MARK_READ, mark_read, schema=_MARK_READ_SCHEMA)
