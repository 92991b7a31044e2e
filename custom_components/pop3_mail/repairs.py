"""Repair issues of POP3 Mail: a password sent in clear text, a check past its memory budget."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import TYPE_CHECKING

from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import CONF_SECURITY, DOMAIN, LOGGER
from .pop3 import POP3AnswerTooLargeError, POP3Error, Security

if TYPE_CHECKING:
    from .coordinator import Pop3MailConfigEntry

ISSUE_INSECURE_CONNECTION = "insecure_connection"
ISSUE_CHECK_TOO_LARGE = "check_too_large"
_IPV4_CHARACTERS = frozenset("0123456789abcdefx.")


def is_loopback_host(host: str) -> bool:
    """Tell whether `host` names this machine, so clear text never leaves it.

    Only loopback addresses, in any spelling the connection itself accepts (``127.1``,
    ``0x7f.0.0.1``, ``::1``, ``::ffff:127.0.0.1``), and the reserved ``localhost`` names
    (RFC 6761) count; nothing is looked up, since any other name could resolve anywhere.
    """
    text = host.strip().lower()
    name = text.rstrip(".")  # a fully qualified name; "127.0.0.1." is no address
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip_address(text.removeprefix("[").removesuffix("]"))
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `text` spells, as the resolver reads it, or None for a host name."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    # The short and numeric IPv4 forms (127.1, 2130706433, 0x7f.1, 0177.0.0.1) that
    # inet_aton accepts, as the connection's resolver does; inet_aton also ignores anything
    # after a space, which the resolver does not, so such text stays a (remote) name.
    if text and set(text) <= _IPV4_CHARACTERS:
        with contextlib.suppress(OSError):
            return ipaddress.IPv4Address(socket.inet_aton(text))
    return None


def is_insecure_connection(security: str, host: str) -> bool:
    """Tell whether the settings send the password in clear text to another machine."""
    return security == Security.NONE and not is_loopback_host(host)


def insecure_connection_issue_id(entry_id: str) -> str:
    """Return the issue id of the insecure-connection issue of one entry."""
    return f"{ISSUE_INSECURE_CONNECTION}_{entry_id}"


@callback
def async_check_insecure_connection(hass: HomeAssistant, entry: Pop3MailConfigEntry) -> None:
    """Create or delete the `insecure_connection` issue of `entry`; call from setup.

    The issue stays while setup keeps failing and retrying (each retry still sends the
    password); `async_delete_insecure_connection` removes it when the entry is unloaded
    or removed. A reconfigure reloads the entry, which checks anew.
    """
    issue_id = insecure_connection_issue_id(entry.entry_id)
    if not is_insecure_connection(entry.data[CONF_SECURITY], entry.data[CONF_HOST]):
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_INSECURE_CONNECTION,
        translation_placeholders={"mailbox": entry.title, "host": entry.data[CONF_HOST]},
    )


@callback
def async_delete_insecure_connection(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the `insecure_connection` issue of an entry that is unloaded or removed."""
    ir.async_delete_issue(hass, DOMAIN, insecure_connection_issue_id(entry_id))


def check_too_large_issue_id(entry_id: str) -> str:
    """Return the issue id of the check-too-large issue of one entry."""
    return f"{ISSUE_CHECK_TOO_LARGE}_{entry_id}"


@callback
def async_report_check(
    hass: HomeAssistant, entry: Pop3MailConfigEntry, error: POP3Error | None
) -> None:
    """Keep the `check_too_large` issue in step with a check that ended with `error`.

    An answer past a check's memory budget fails every check until the message
    behind it is gone, so the person has to act: the issue says what to do. It is
    removed by the next check that succeeds (`error` None), not by a check that
    failed for another reason (the message may still be there), nor on unload
    (`async_delete_check_too_large`).
    """
    issue_id = check_too_large_issue_id(entry.entry_id)
    if error is None:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    if not isinstance(error, POP3AnswerTooLargeError):
        return
    LOGGER.warning(
        "Checking %s failed: the server sent an answer larger than a check may hold "
        "(%s); retrying with backoff until that message is removed from the server",
        entry.title,
        error,
    )
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_CHECK_TOO_LARGE,
        translation_placeholders={"mailbox": entry.title, "error": str(error)},
    )


@callback
def async_delete_check_too_large(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the `check_too_large` issue of an entry that is unloaded or removed."""
    ir.async_delete_issue(hass, DOMAIN, check_too_large_issue_id(entry_id))
