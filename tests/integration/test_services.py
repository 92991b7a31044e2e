"""Tests of the actions fetch_message, delete_message and mark_read (fake server, Dovecot)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.pop3_mail.const import CONF_SECURITY, DOMAIN, EVENT_NEW_MESSAGE
from custom_components.pop3_mail.helpers import translation_key_for
from custom_components.pop3_mail.pop3.errors import (
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
)
from custom_components.pop3_mail.services import (
    MAX_FETCH_BYTES,
    SERVICE_DELETE_MESSAGE,
    SERVICE_FETCH_MESSAGE,
    SERVICE_MARK_READ,
)
from tests.integration.conftest import INITIAL_MESSAGES, USERNAME, login_faults, mail
from tests.servers.fake_pop3 import Fault, delay, drop, drop_mid_response, err, raw

if TYPE_CHECKING:
    from homeassistant.auth.models import User

    from tests.servers.dovecot import DovecotServer
    from tests.servers.fake_pop3 import FakePOP3Server

PDF = b"%PDF-1.4\n% not really a PDF, 52 bytes of test data\n"
REPORT = (
    b'From: "Bob Example" <Bob@Example.com>\r\n'
    b"To: Alice <alice@example.com>, carol@example.com\r\n"
    b"Cc: Dave <DAVE@example.org>\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_report?=\r\n"
    b"Date: Tue, 1 Jul 2025 10:30:00 +0200\r\n"
    b"Message-ID: <report@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Alice,\r\n"
    b".the report is attached.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Hello Alice,<br>.the report is attached.</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes(PDF).replace(b"\n", b"\r\n") + b"--outer--\r\n"
)
# What fetch_message answers for REPORT (uid added); the body lines starting with "." check
# that the message arrives dot-unstuffed.
REPORT_RESPONSE = {
    "uid": "uid-3",
    "sender": "bob@example.com",
    "sender_name": "Bob Example",
    "to": ["alice@example.com", "carol@example.com"],
    "cc": ["dave@example.org"],
    "subject": "Café report",
    "date": "2025-07-01T10:30:00+02:00",
    "message_id": "<report@example.com>",
    "headers": {
        "From": '"Bob Example" <Bob@Example.com>',
        "To": "Alice <alice@example.com>, carol@example.com",
        "Cc": "Dave <DAVE@example.org>",
        "Subject": "Café report",
        "Date": "Tue, 1 Jul 2025 10:30:00 +0200",
        "Message-ID": "<report@example.com>",
        "MIME-Version": "1.0",
        "Content-Type": 'multipart/mixed; boundary="outer"',
    },
    "text": "Hello Alice,\n.the report is attached.",
    "html": "<p>Hello Alice,<br>.the report is attached.</p>",
    "attachments": [
        {"filename": "report.pdf", "content_type": "application/pdf", "size": len(PDF)}
    ],
}


TRANSACTION = {"STAT", "LIST", "UIDL", "TOP", "RETR", "DELE", "RSET", "NOOP", "QUIT"}


def after_login(server: FakePOP3Server) -> list[str]:
    """The commands of the server's last session once logged in (no CAPA or login)."""
    return [
        command for command in server.sessions[-1].commands if command.split()[0] in TRANSACTION
    ]


def sensor_state(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    """The state of the entry's sensor `key` (messages, unread, ...)."""
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_{key}")
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def call(
    hass: HomeAssistant,
    service: str,
    entry: MockConfigEntry | str,
    *,
    context: Context | None = None,
    **data: Any,
) -> Any:
    """Call a pop3_mail action blocking; fetch_message with its response."""
    entry_id = entry if isinstance(entry, str) else entry.entry_id
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"config_entry_id": entry_id, **data},
        blocking=True,
        context=context,
        return_response=service == SERVICE_FETCH_MESSAGE,
    )


# -- fetch_message ---------------------------------------------------------------------------


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Alice's mailbox holds two plain messages and the multipart report."""
    return {"users": {USERNAME: "secret"}, "messages": [*INITIAL_MESSAGES, REPORT]}


async def test_fetch_message(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """The whole message comes back parsed, through TOP, found where the last check saw it."""
    response = await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert response == REPORT_RESPONSE
    assert after_login(pop3_server) == ["UIDL 3", "LIST 3", f"TOP 3 {MAX_FETCH_BYTES}", "QUIT"]
    # UIDL n and LIST n travel in one write (PIPELINING).
    assert b"UIDL 3\r\nLIST 3\r\n" in pop3_server.sessions[-1].writes
    assert pop3_server.mailbox.seen == set()


async def test_fetch_message_moved(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A message that moved since the last check is found through the full UIDL list."""
    pop3_server.mailbox.remove("uid-1")

    response = await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert response == REPORT_RESPONSE
    assert after_login(pop3_server) == [
        "UIDL 3",
        "LIST 3",
        "UIDL",
        "LIST 2",
        f"TOP 2 {MAX_FETCH_BYTES}",
        "QUIT",
    ]


async def test_fetch_message_not_checked_yet(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A message that arrived after the last check can be fetched already."""
    uid = pop3_server.mailbox.add(mail(4, subject="Fresh"))

    response = await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid=uid)

    assert response["uid"] == uid
    assert response["subject"] == "Fresh"
    assert response["text"] == "Hello Alice,\nthis is a test."
    assert response["html"] is None
    assert response["attachments"] == []
    assert after_login(pop3_server)[0] == "UIDL"


@pytest.mark.parametrize(
    "server_options",
    [
        {
            "users": {USERNAME: "secret"},
            "messages": [*INITIAL_MESSAGES, REPORT],
            "capabilities": ["UIDL", "USER", "RESP-CODES"],
        }
    ],
)
async def test_fetch_message_without_top(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A server without TOP gets RETR (which marks the message read there)."""
    response = await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert response == REPORT_RESPONSE
    assert after_login(pop3_server)[-2:] == ["RETR 3", "QUIT"]
    assert pop3_server.mailbox.seen == {"uid-3"}


async def test_fetch_message_top_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A server that lists TOP but refuses it still gives the message, through RETR."""
    pop3_server.faults.append(Fault("TOP", err("command not implemented")))

    response = await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert response == REPORT_RESPONSE
    assert after_login(pop3_server)[-3:] == [f"TOP 3 {MAX_FETCH_BYTES}", "RETR 3", "QUIT"]


async def test_fetch_message_unknown_uid(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A uid that is not on the server is a validation error, after a look at the full list."""
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-99")

    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "unknown_uid"
    assert raised.value.translation_placeholders == {
        "uid": "uid-99",
        "mailbox": init_integration.title,
    }
    assert after_login(pop3_server) == ["UIDL", "QUIT"]


async def test_fetch_message_too_large(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A message over the limit is refused after LIST, without downloading it."""
    body = b"x" * 998 + b"\r\n"
    big = mail(5, body="") + body * (MAX_FETCH_BYTES // len(body) + 1)
    uid = pop3_server.mailbox.add(big)

    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid=uid)

    assert raised.value.translation_key == "message_too_large"
    assert raised.value.translation_placeholders == {
        "uid": uid,
        "size": str(len(big)),
        "limit": str(MAX_FETCH_BYTES),
    }
    assert after_login(pop3_server) == ["UIDL", "LIST 4", "QUIT"]


# -- entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "service", [SERVICE_FETCH_MESSAGE, SERVICE_DELETE_MESSAGE, SERVICE_MARK_READ]
)
async def test_unknown_entry(
    hass: HomeAssistant, init_integration: MockConfigEntry, service: str
) -> None:
    """An entry id that is not ours is a translated validation error."""
    other = MockConfigEntry(domain="other_domain", title="other")
    other.add_to_hass(hass)

    for entry_id in ("no-such-entry", other.entry_id):
        with pytest.raises(ServiceValidationError) as raised:
            await call(hass, service, entry_id, uid="uid-1")
        assert raised.value.translation_domain == DOMAIN
        assert raised.value.translation_key == "entry_not_found"
        assert raised.value.translation_placeholders == {"entry_id": entry_id}


@pytest.mark.parametrize(
    "service", [SERVICE_FETCH_MESSAGE, SERVICE_DELETE_MESSAGE, SERVICE_MARK_READ]
)
async def test_unloaded_entry(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    service: str,
) -> None:
    """An entry that is not loaded is a translated validation error; nothing is sent."""
    await hass.config_entries.async_unload(init_integration.entry_id)
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    sessions = len(pop3_server.sessions)

    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, service, init_integration, uid="uid-1")

    assert raised.value.translation_key == "entry_not_loaded"
    assert raised.value.translation_placeholders == {"mailbox": init_integration.title}
    assert len(pop3_server.sessions) == sessions


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "translation_key"),
    [
        (
            Fault("APOP", err("[IN-USE] Mailbox is locked by another POP3 session.")),
            "action_mailbox_in_use",
        ),
        (Fault("APOP", err("[LOGIN-DELAY] Wait a while.")), "action_login_delay"),
        (Fault("UIDL", err("[SYS/TEMP] Try again later."), nth=2), "action_server_busy"),
        (Fault("TOP", err("[SYS/PERM] Storage failure.")), "action_server_error"),
        (Fault("GREETING", drop()), "cannot_connect"),
        (Fault("TOP", drop_mid_response(after_bytes=40)), "cannot_connect"),
        (Fault("LIST", raw(b"what?\r\n")), "protocol_error"),
        (Fault("QUIT", err("[SYS/TEMP] Could not update the maildrop.")), "action_server_busy"),
    ],
    ids=["in-use", "login-delay", "sys-temp", "sys-perm", "drop", "drop-mid", "garbage", "quit"],
)
async def test_fetch_message_server_errors(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    fault: Fault,
    translation_key: str,
) -> None:
    """Server failures become translated HomeAssistantErrors and never start reauth."""
    pop3_server.mailbox.remove("uid-1")  # the full UIDL list is needed
    pop3_server.faults.append(fault)

    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert type(raised.value) is HomeAssistantError
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == translation_key
    assert raised.value.translation_placeholders is not None
    assert raised.value.translation_placeholders["mailbox"] == init_integration.title
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_fetch_message_timeout(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A server slower than the command deadline gives a translated timeout."""
    pop3_server.faults.append(Fault("UIDL", delay(2)))

    with (
        patch("custom_components.pop3_mail.session.COMMAND_TIMEOUT", 0.2),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3")

    assert raised.value.translation_key == "timeout"


@pytest.mark.parametrize(
    ("error", "translation_key"),
    [
        (
            POP3PlaintextRefusedError("Plaintext authentication disallowed", "AUTH"),
            "plaintext_refused",
        ),
        (POP3InUseError("locked", "IN-USE"), "action_mailbox_in_use"),
        (POP3LoginDelayError("wait", "LOGIN-DELAY"), "action_login_delay"),
        (POP3TempError("later", "SYS/TEMP"), "action_server_busy"),
        (POP3PermError("broken", "SYS/PERM"), "action_server_error"),
        (POP3ResponseError("no"), "action_server_error"),
        (POP3TimeoutError("slow"), "timeout"),
        (POP3TLSError("bad certificate"), "tls_error"),
        (POP3ConnectionError("refused"), "cannot_connect"),
        (POP3STLSUnavailableError("no STLS"), "starttls_unavailable"),
        (POP3ProtocolError("garbage"), "protocol_error"),
        (POP3Error("something else"), "action_unknown_error"),
    ],
)
def test_translation_keys(error: POP3Error, translation_key: str) -> None:
    """Every client error has a translation that says what went wrong."""
    assert translation_key_for(error) == translation_key


async def test_auth_error_starts_reauth(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Rejected credentials give a translated error and start reauthentication."""
    # Whichever login the client tries (APOP, then the plain way), the server refuses it.
    pop3_server.faults.extend(login_faults(err("[AUTH] Authentication failed.")))

    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-1")

    assert raised.value.translation_key == "auth_failed"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    assert flows[0]["context"]["source"] == SOURCE_REAUTH
    assert flows[0]["context"]["entry_id"] == init_integration.entry_id
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]


async def test_admin_only(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    hass_admin_user: User,
    hass_read_only_user: User,
) -> None:
    """Reading and deleting mail is for administrators; automations (no user) may too."""
    sessions = len(pop3_server.sessions)
    for service in (SERVICE_FETCH_MESSAGE, SERVICE_DELETE_MESSAGE):
        for user_id in (hass_read_only_user.id, "no-such-user"):
            with pytest.raises(Unauthorized):
                await call(
                    hass, service, init_integration, uid="uid-3", context=Context(user_id=user_id)
                )
    assert len(pop3_server.sessions) == sessions

    admin = Context(user_id=hass_admin_user.id)
    await call(hass, SERVICE_FETCH_MESSAGE, init_integration, uid="uid-3", context=admin)
    await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-3", context=admin)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]


# -- delete_message --------------------------------------------------------------------------


async def test_delete_message(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """DELE then QUIT removes the message; the sensors follow at once and no event fires."""
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    assert sensor_state(hass, init_integration, "messages") == "3"

    await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-2")

    assert after_login(pop3_server) == ["UIDL 2", "LIST 2", "DELE 2", "QUIT"]
    assert pop3_server.sessions[-1].deleted == ["uid-2"]
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-3"]
    assert sensor_state(hass, init_integration, "messages") == "2"
    assert init_integration.runtime_data.data.size == len(INITIAL_MESSAGES[0]) + len(REPORT)

    # The next check agrees with what the action told the sensors, and announces nothing.
    await init_integration.runtime_data.async_refresh()
    await hass.async_block_till_done()
    assert init_integration.runtime_data.last_update_success
    assert sensor_state(hass, init_integration, "messages") == "2"
    assert init_integration.runtime_data.data.size == len(INITIAL_MESSAGES[0]) + len(REPORT)
    assert init_integration.runtime_data.last_check.full_list is False
    assert events == []


async def test_delete_message_quit_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A deletion the server did not commit at QUIT is an error, and the sensors stay."""
    pop3_server.faults.append(Fault("QUIT", err("[SYS/TEMP] Could not update the maildrop.")))

    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-2")

    assert raised.value.translation_key == "action_server_busy"
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert sensor_state(hass, init_integration, "messages") == "3"
    assert init_integration.runtime_data.state.known_uids == ("uid-1", "uid-2", "uid-3")


async def test_delete_message_dropped(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """A connection lost after DELE deletes nothing, and the state keeps the message."""
    pop3_server.faults.append(Fault("QUIT", drop()))

    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-2")

    assert raised.value.translation_key == "cannot_connect"
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]
    assert init_integration.runtime_data.state.known_uids == ("uid-1", "uid-2", "uid-3")


async def test_delete_message_unknown_uid(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Deleting a uid that is not on the server is a validation error; nothing is deleted."""
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-99")

    assert raised.value.translation_key == "unknown_uid"
    assert not any(command.startswith("DELE") for command in pop3_server.sessions[-1].commands)
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2", "uid-3"]


# -- mark_read -------------------------------------------------------------------------------


async def test_mark_read(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """Marking one message and then all read is local: the unread sensor follows, no session."""
    coordinator = init_integration.runtime_data
    first = pop3_server.mailbox.add(mail(4))
    second = pop3_server.mailbox.add(mail(5))
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert sensor_state(hass, init_integration, "unread") == "2"
    sessions = len(pop3_server.sessions)

    await call(hass, SERVICE_MARK_READ, init_integration, uid=first)
    assert sensor_state(hass, init_integration, "unread") == "1"
    assert coordinator.state.unread == {second}

    await call(hass, SERVICE_MARK_READ, init_integration, uid=first)
    assert sensor_state(hass, init_integration, "unread") == "1"

    await call(hass, SERVICE_MARK_READ, init_integration)
    assert sensor_state(hass, init_integration, "unread") == "0"
    assert coordinator.state.unread == frozenset()
    assert len(pop3_server.sessions) == sessions
    assert pop3_server.mailbox.seen == set()


async def test_mark_read_unknown_uid(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Marking a uid the mailbox does not hold read is a validation error."""
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, SERVICE_MARK_READ, init_integration, uid="uid-99")

    assert raised.value.translation_key == "unknown_uid"
    assert raised.value.translation_placeholders == {
        "uid": "uid-99",
        "mailbox": init_integration.title,
    }


# -- Dovecot ---------------------------------------------------------------------------------


async def test_fetch_and_delete_on_dovecot(
    hass: HomeAssistant, dovecot: DovecotServer, dovecot_user: tuple[str, str]
) -> None:
    """Against a real Dovecot: fetch leaves the message unread there, delete removes it."""
    name, password = dovecot_user
    dovecot.deliver(name, mail(1))
    dovecot.deliver(name, REPORT)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{name}@{dovecot.host}",
        unique_id=f"{name}@{dovecot.host}",
        data={
            CONF_HOST: dovecot.host,
            CONF_PORT: dovecot.pop3_port,
            CONF_SECURITY: "none",
            CONF_USERNAME: name,
            CONF_PASSWORD: password,
            "verify_ssl": True,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data
    first, uid = coordinator.state.known_uids

    response = await call(hass, SERVICE_FETCH_MESSAGE, entry, uid=uid)

    assert response == {**REPORT_RESPONSE, "uid": uid}
    maildir = dovecot.maildir(name)
    # Dovecot moved both messages to cur/ at login; TOP left them without the Seen flag.
    flags = [path.name.partition(":2,")[2] for path in (maildir / "cur").iterdir()]
    assert len(flags) == 2
    assert not [flag for flag in flags if "S" in flag]

    await call(hass, SERVICE_DELETE_MESSAGE, entry, uid=uid)

    assert coordinator.state.known_uids == (first,)
    assert sensor_state(hass, entry, "messages") == "1"
    remaining = [*(maildir / "new").iterdir(), *(maildir / "cur").iterdir()]
    assert len(remaining) == 1
    assert b"Message 1" in remaining[0].read_bytes()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_errors_are_translated(
    hass: HomeAssistant, init_integration: MockConfigEntry, pop3_server: FakePOP3Server
) -> None:
    """The errors of the actions read as sentences (their translations exist).

    Home Assistant drops the final period of a translated exception message.
    """
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, SERVICE_MARK_READ, init_integration, uid="uid-99")
    assert (
        str(raised.value) == 'There is no message with UID "uid-99" in the mailbox alice@127.0.0.1'
    )

    pop3_server.faults.append(Fault("APOP", err("[IN-USE] Mailbox is locked.")))
    with pytest.raises(HomeAssistantError) as raised:
        await call(hass, SERVICE_DELETE_MESSAGE, init_integration, uid="uid-1")
    assert str(raised.value) == (
        "The mailbox alice@127.0.0.1 is locked by another POP3 session; try again in a moment"
    )
