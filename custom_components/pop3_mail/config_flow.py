"""Config flow of POP3 Mail: a mailbox is added only after a real login to it."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    ConfigEntry,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.config_entry_oauth2_flow import AbstractOAuth2FlowHandler
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .const import (
    CONF_ARCHIVE_FOLDER,
    CONF_DELETE_POLICY,
    CONF_KEEP_DAYS,
    CONF_SCAN_INTERVAL,
    CONF_SECURITY,
    CONF_TEXT_LENGTH,
    CONF_VERIFY_SSL,
    CONF_WATCH_NAME,
    CONF_WATCH_SENDER,
    CONF_WATCH_SUBJECT,
    DEFAULT_DELETE_POLICY,
    DEFAULT_KEEP_DAYS,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_SECURITY,
    DEFAULT_TEXT_LENGTH,
    DEFAULT_VERIFY_SSL,
    DOMAIN,
    LOGGER,
    MAX_KEEP_DAYS,
    MAX_SCAN_INTERVAL,
    MAX_TEXT_LENGTH,
    MIN_KEEP_DAYS,
    MIN_SCAN_INTERVAL,
    SUBENTRY_WATCH,
)
from .errors import error_keys
from .oauth import (
    CONF_TOKEN,
    MICROSOFT_SCOPES,
    EntryTokens,
    entry_data_for,
    is_oauth_entry,
    mailbox_address,
)
from .pop3 import Security
from .pop3.errors import POP3Error
from .session import mailbox_name, open_session
from .sync.retention import DeletePolicy

if TYPE_CHECKING:
    from collections.abc import Mapping
    import logging

# Home Assistant 2026 validates with probatio, installed under the name `voluptuous`; the two
# libraries' types differ, so the schemas below are typed Any to check against both.
_HOST_SELECTOR = TextSelector(TextSelectorConfig(autocomplete="off"))
_SECURITY_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=[mode.value for mode in Security],
        translation_key=CONF_SECURITY,
        mode=SelectSelectorMode.DROPDOWN,
    )
)
_PORT_SELECTOR = NumberSelector(
    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
)
_USERNAME_SELECTOR = TextSelector(TextSelectorConfig(autocomplete="username"))
_PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)

STEP_USER_SCHEMA: Any = vol.Schema(
    {
        vol.Required(CONF_HOST): _HOST_SELECTOR,
        vol.Required(CONF_SECURITY, default=DEFAULT_SECURITY.value): _SECURITY_SELECTOR,
        vol.Optional(CONF_PORT): _PORT_SELECTOR,
        vol.Required(CONF_USERNAME): _USERNAME_SELECTOR,
        vol.Required(CONF_PASSWORD): _PASSWORD_SELECTOR,
        vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): BooleanSelector(),
    }
)
# The server side of a mailbox: what reconfigure may change.
STEP_RECONFIGURE_SCHEMA: Any = vol.Schema(
    {
        vol.Required(CONF_HOST): _HOST_SELECTOR,
        vol.Required(CONF_SECURITY, default=DEFAULT_SECURITY.value): _SECURITY_SELECTOR,
        vol.Optional(CONF_PORT): _PORT_SELECTOR,
        vol.Required(CONF_VERIFY_SSL, default=DEFAULT_VERIFY_SSL): BooleanSelector(),
    }
)
STEP_REAUTH_SCHEMA: Any = vol.Schema({vol.Required(CONF_PASSWORD): _PASSWORD_SELECTOR})

# No min/max in the number selectors: Home Assistant would reject a value out of range with
# an untranslated message naming no field; `range_errors` checks the ranges instead.
OPTIONS_SCHEMA: Any = vol.Schema(
    {
        vol.Required(CONF_SCAN_INTERVAL, default=DEFAULT_SCAN_INTERVAL): NumberSelector(
            NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="s")
        ),
        vol.Required(CONF_TEXT_LENGTH, default=DEFAULT_TEXT_LENGTH): NumberSelector(
            NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX)
        ),
        vol.Optional(CONF_ARCHIVE_FOLDER): TextSelector(),
        vol.Required(CONF_DELETE_POLICY, default=DEFAULT_DELETE_POLICY.value): SelectSelector(
            SelectSelectorConfig(
                options=[policy.value for policy in DeletePolicy],
                translation_key=CONF_DELETE_POLICY,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Required(CONF_KEEP_DAYS, default=DEFAULT_KEEP_DAYS): NumberSelector(
            NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="d")
        ),
    }
)
# Each number option's range; out of it, the form shows the error `<key>_out_of_range`.
OPTION_RANGES: Final = {
    CONF_SCAN_INTERVAL: (MIN_SCAN_INTERVAL, MAX_SCAN_INTERVAL),
    CONF_TEXT_LENGTH: (0, MAX_TEXT_LENGTH),
    CONF_KEEP_DAYS: (MIN_KEEP_DAYS, MAX_KEEP_DAYS),
}


def mailbox_unique_id(data: Mapping[str, Any]) -> str:
    """Return the unique id of the mailbox `data` logs in to: lower-cased username@host."""
    return mailbox_name(data).lower()


async def async_try_login(
    data: Mapping[str, Any], *, tokens: EntryTokens | None = None
) -> dict[str, str]:
    """Log in to the mailbox `data` describes and out again; return the form's errors.

    A Microsoft mailbox logs in with the token in `data`, or made valid by `tokens`.
    """
    try:
        async with open_session(data, tokens=tokens):
            pass
    except POP3Error as error:
        LOGGER.debug("Logging in to %s failed: %s", mailbox_name(data), error)
        return {"base": error_keys(error).form}
    except Exception:  # noqa: BLE001  (the form must show an error, whatever went wrong)
        LOGGER.exception("Unexpected error logging in to %s", mailbox_name(data))
        return {"base": "unknown"}
    return {}


def _clean_server_input(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise what the form returned: trimmed host, whole port number."""
    cleaned = dict(user_input)
    cleaned[CONF_HOST] = str(user_input[CONF_HOST]).strip()
    if (port := user_input.get(CONF_PORT)) is not None:
        cleaned[CONF_PORT] = int(port)
    return cleaned


class Pop3MailConfigFlow(AbstractOAuth2FlowHandler, domain=DOMAIN):
    """Add a mailbox (password or sign-in with Microsoft), sign in again, or move it."""

    DOMAIN = DOMAIN
    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> Pop3MailOptionsFlow:
        """Return the options flow of an entry."""
        return Pop3MailOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Return the subentries a mailbox can hold: watches."""
        return {SUBENTRY_WATCH: WatchSubentryFlow}

    @property
    @override
    def logger(self) -> logging.Logger:
        """The logger of Home Assistant's OAuth2 steps."""
        return LOGGER

    @property
    @override
    def extra_authorize_data(self) -> dict[str, Any]:
        """Ask Microsoft for POP3 access and a refresh token, and let the user pick the account."""
        return {"scope": " ".join(MICROSOFT_SCOPES), "prompt": "select_account"}

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask how the mailbox signs in: with a password, or with Microsoft."""
        return self.async_show_menu(step_id="user", menu_options=["password", "microsoft"])

    async def async_step_password(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the server and the account, and log in before adding it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = _clean_server_input(user_input)
            # A flow left open (the dialog closed after an error) must not block a new try
            # for the same mailbox; the entry that gets created aborts the other flows.
            await self.async_set_unique_id(mailbox_unique_id(data), raise_on_progress=False)
            self._abort_if_unique_id_configured()
            if not (errors := await async_try_login(data)):
                # Another flow for this mailbox may have finished during the login.
                self._abort_if_unique_id_configured()
                return self.async_create_entry(title=mailbox_name(data), data=data)
        return self.async_show_form(
            step_id="password",
            data_schema=self.add_suggested_values_to_schema(
                STEP_USER_SCHEMA, _without_password(user_input)
            ),
            errors=errors,
        )

    async def async_step_microsoft(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Sign in with Microsoft through the application credentials."""
        return await self.async_step_pick_implementation()

    @override
    async def async_oauth_create_entry(self, data: dict[str, Any]) -> ConfigFlowResult:
        """Log in with the new token (XOAUTH2), then add the mailbox or renew its sign-in.

        `data` holds Home Assistant's `auth_implementation` and `token`.
        """
        if (username := mailbox_address(data[CONF_TOKEN])) is None:
            LOGGER.warning("Microsoft's id token names no mailbox address")
            return self.async_abort(reason="oauth_error")
        if self.source == SOURCE_REAUTH:
            # The server may have been reconfigured; the account must stay the same.
            entry_data = {**self._get_reauth_entry().data, **data}
            await self.async_set_unique_id(
                mailbox_unique_id({**entry_data, CONF_USERNAME: username})
            )
            self._abort_if_unique_id_mismatch(reason="wrong_account")
        else:
            entry_data = entry_data_for(data, username)
            await self.async_set_unique_id(mailbox_unique_id(entry_data))
            self._abort_if_unique_id_configured()
        if errors := await async_try_login(entry_data):
            return self.async_abort(reason=errors["base"])
        if self.source == SOURCE_REAUTH:
            return self.async_update_reload_and_abort(self._get_reauth_entry(), data=entry_data)
        return self.async_create_entry(title=mailbox_name(entry_data), data=entry_data)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start over with a new password or sign-in after the stored one was rejected."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password and log in with it, or sign in with Microsoft again."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if is_oauth_entry(entry.data):
            if user_input is not None:
                return await self.async_step_pick_implementation()
            return self.async_show_form(
                step_id="reauth_confirm", description_placeholders={"mailbox": entry.title}
            )
        if user_input is not None:
            data = {**entry.data, CONF_PASSWORD: user_input[CONF_PASSWORD]}
            if (result := await self._async_update_entry(entry, data, errors)) is not None:
                return result
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=STEP_REAUTH_SCHEMA,
            description_placeholders={"mailbox": entry.title},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the mailbox to other server settings, keeping its account (and its sign-in)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                **{key: value for key, value in entry.data.items() if key != CONF_PORT},
                **_clean_server_input(user_input),
            }
            if (result := await self._async_update_entry(entry, data, errors)) is not None:
                return result
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                STEP_RECONFIGURE_SCHEMA, user_input or entry.data
            ),
            description_placeholders={"mailbox": entry.title},
            errors=errors,
        )

    async def _async_update_entry(
        self, entry: ConfigEntry, data: dict[str, Any], errors: dict[str, str]
    ) -> ConfigFlowResult | None:
        """Log in with `data` and store it in `entry`, or fill `errors` and return None.

        Another host moves the mailbox (a provider's new server, another Microsoft cloud):
        its unique id and title follow the new `username@host`, and its known messages
        and read state stay. Another entry watching that mailbox already aborts.
        """
        unique_id = mailbox_unique_id(data)
        if unique_id != entry.unique_id:
            await self.async_set_unique_id(unique_id, raise_on_progress=False)
            self._abort_if_unique_id_configured()
        tokens = EntryTokens(self.hass, entry) if is_oauth_entry(entry.data) else None
        if login_errors := await async_try_login(data, tokens=tokens):
            errors.update(login_errors)
            return None
        if tokens is not None:
            # The login may have renewed the token in the entry: keep that one.
            data = {**data, CONF_TOKEN: entry.data[CONF_TOKEN]}
        return self.async_update_reload_and_abort(
            entry, unique_id=unique_id, title=mailbox_name(data), data=data
        )


class Pop3MailOptionsFlow(OptionsFlow):
    """How often to check, what to put in events, and where to archive mail."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options and check the archive folder before saving them."""
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := range_errors(user_input)):
            options = clean_options(user_input)
            errors = options_errors(options)
            folder: str | None = options.get(CONF_ARCHIVE_FOLDER)
            if (
                not errors
                and folder is not None
                and (
                    error := await self.hass.async_add_executor_job(
                        prepare_archive_folder, self.hass, folder
                    )
                )
            ):
                errors[CONF_ARCHIVE_FOLDER] = error
            if not errors:
                return self.async_create_entry(data=options)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                OPTIONS_SCHEMA, user_input or self.config_entry.options
            ),
            errors=errors,
        )


def clean_options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise the options form: whole numbers, a trimmed folder or none at all."""
    options: dict[str, Any] = {
        CONF_SCAN_INTERVAL: int(user_input[CONF_SCAN_INTERVAL]),
        CONF_TEXT_LENGTH: int(user_input[CONF_TEXT_LENGTH]),
        CONF_DELETE_POLICY: user_input[CONF_DELETE_POLICY],
        CONF_KEEP_DAYS: int(user_input[CONF_KEEP_DAYS]),
    }
    if folder := str(user_input.get(CONF_ARCHIVE_FOLDER) or "").strip():
        options[CONF_ARCHIVE_FOLDER] = folder
    return options


def range_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Return the errors of number options outside their range, by field."""
    return {
        key: f"{key}_out_of_range"
        for key, (low, high) in OPTION_RANGES.items()
        # NaN and infinity (JSON allows them) are out of every range.
        if not (math.isfinite(value := float(user_input[key])) and low <= value <= high)
    }


def options_errors(options: Mapping[str, Any]) -> dict[str, str]:
    """Return the errors of options that contradict each other."""
    # Mail is deleted only once it is safe in the archive, so there must be one.
    if options[CONF_DELETE_POLICY] != DeletePolicy.KEEP and CONF_ARCHIVE_FOLDER not in options:
        return {CONF_ARCHIVE_FOLDER: "archive_folder_required"}
    return {}


def prepare_archive_folder(hass: HomeAssistant, folder: str) -> str | None:
    """Create the archive folder if needed; return an error key when it cannot be used.

    Blocking: run it in the executor.
    """
    if not Path(folder).is_absolute() or not hass.config.is_allowed_path(folder):
        return "archive_folder_not_allowed"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        LOGGER.debug("Cannot create archive folder %s: %s", folder, error)
        return "archive_folder_unusable"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "archive_folder_unusable"
    return None


def _without_password(user_input: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return what to show again in a form after an error: everything but the password."""
    if user_input is None:
        return None
    return {key: value for key, value in user_input.items() if key != CONF_PASSWORD}


# -- Watches (config subentries) ------------------------------------------------------------

WATCH_SCHEMA: Any = vol.Schema(
    {
        vol.Required(CONF_WATCH_NAME): TextSelector(),
        vol.Optional(CONF_WATCH_SENDER): TextSelector(),
        vol.Optional(CONF_WATCH_SUBJECT): TextSelector(),
    }
)


def clean_watch(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Normalise the watch form: trimmed texts, empty ones left out, a name always set.

    A blank name becomes what the watch looks for, so every watch's device has a name.
    """
    watch = {
        key: text
        for key in (CONF_WATCH_NAME, CONF_WATCH_SENDER, CONF_WATCH_SUBJECT)
        if (text := str(user_input.get(key) or "").strip())
    }
    if CONF_WATCH_NAME not in watch:
        watch[CONF_WATCH_NAME] = " ".join(
            watch[key] for key in (CONF_WATCH_SENDER, CONF_WATCH_SUBJECT) if key in watch
        )
    return watch


def watch_errors(watch: Mapping[str, str]) -> dict[str, str]:
    """Return the errors of a watch: it must look for a sender, a subject or both."""
    if CONF_WATCH_SENDER not in watch and CONF_WATCH_SUBJECT not in watch:
        return {"base": "watch_empty"}
    return {}


class WatchSubentryFlow(ConfigSubentryFlow):
    """Add or change a watch: the mail of one sender, about one subject, or both.

    The mailbox entry reloads on every subentry change (its update listener), so
    the watch's entities follow an addition, a change and a removal.
    """

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask what the new watch looks for."""
        errors: dict[str, str] = {}
        if user_input is not None:
            watch = clean_watch(user_input)
            if not (errors := watch_errors(watch)):
                return self.async_create_entry(title=watch[CONF_WATCH_NAME], data=watch)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(WATCH_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change what an existing watch looks for, or its name."""
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            watch = clean_watch(user_input)
            if not (errors := watch_errors(watch)):
                return self.async_update_and_abort(
                    self._get_entry(), subentry, title=watch[CONF_WATCH_NAME], data=watch
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                WATCH_SCHEMA, user_input or subentry.data
            ),
            errors=errors,
        )
