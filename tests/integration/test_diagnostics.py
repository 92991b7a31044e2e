"""Tests of the diagnostics of a POP3 Mail entry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from syrupy.filters import props

from custom_components.pop3_mail.archiver import UNVERIFIED_RETRY_SECONDS
from custom_components.pop3_mail.const import CONF_ARCHIVE_FOLDER, CONF_DELETE_POLICY
from custom_components.pop3_mail.diagnostics import async_get_config_entry_diagnostics
from tests.integration.conftest import PASSWORD, USERNAME, mail
from tests.servers.fake_pop3 import Fault, err

if TYPE_CHECKING:
    from freezegun.api import FrozenDateTimeFactory
    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.common import MockConfigEntry
    from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
    from syrupy.assertion import SnapshotAssertion

    from tests.servers.fake_pop3 import FakePOP3Server

REDACTED = "**REDACTED**"


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    snapshot: SnapshotAssertion,
) -> None:
    """Options, capabilities, figures of the last check and the state, credentials redacted."""
    pop3_server.mailbox.add(mail(3))
    await init_integration.runtime_data.async_refresh()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    # The port of the fake server and the timing change with every run.
    assert diagnostics == snapshot(exclude=props("port", "started", "duration_s"))
    text = repr(diagnostics)
    assert USERNAME not in text
    assert PASSWORD not in text
    last_check = diagnostics["last_check"]
    assert isinstance(last_check, dict)
    assert last_check["bytes_in"] > 0
    assert isinstance(last_check["duration_s"], float)


@pytest.fixture
def entry_options(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """No options, or (parametrized) an archive folder of the test, with a delete policy or not."""
    match getattr(request, "param", None):
        case "archive":
            return {CONF_ARCHIVE_FOLDER: str(tmp_path / "archive")}
        case "archive_delete":
            return {
                CONF_ARCHIVE_FOLDER: str(tmp_path / "archive"),
                CONF_DELETE_POLICY: "after_archive",
            }
    return {}


@pytest.mark.parametrize("entry_options", ["archive"], indirect=True)
async def test_diagnostics_archive_backlog(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """With an archive folder, diagnostics tell how many new messages still wait to be archived.

    The mail already there when archiving started is never archived, so it is no backlog.
    """
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics["archive"] == {"backlog": 0, "unverified": 0}
    state = diagnostics["state"]
    assert isinstance(state, dict)
    assert state["archive_baseline"] == 2

    pop3_server.mailbox.add(mail(3))
    pop3_server.mailbox.add(mail(4))
    await init_integration.runtime_data.async_refresh()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics["archive"] == {"backlog": 2, "unverified": 0}

    # The next update archives what the last check found.
    await init_integration.runtime_data.async_refresh()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics["archive"] == {"backlog": 0, "unverified": 0}
    state = diagnostics["state"]
    assert isinstance(state, dict)
    assert (state["archived"], state["archive_baseline"]) == (2, 2)


@pytest.mark.parametrize("entry_options", ["archive_delete"], indirect=True)
async def test_diagnostics_archive_unverified(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Archived mail kept on the server because its file no longer matches is counted."""
    coordinator = init_integration.runtime_data
    pop3_server.mailbox.add(mail(3))
    await coordinator.async_refresh()
    # QUIT refused: uid-3 is archived and recorded, but not deleted.
    pop3_server.faults.append(Fault("QUIT", err("[SYS/TEMP] could not commit")))
    await coordinator.async_refresh()
    assert set(coordinator.state.archived) == {"uid-3"}
    (path,) = (Path(init_integration.options[CONF_ARCHIVE_FOLDER]) / "new").iterdir()
    original = path.read_bytes()
    path.write_bytes(original + b"edited\r\n")

    await coordinator.async_refresh()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics["archive"] == {"backlog": 0, "unverified": 1}
    assert "uid-3" in pop3_server.mailbox.uids()

    # Nothing else to archive: the next checks do not log in again just to retry uid-3.
    path.write_bytes(original)
    sessions = len(pop3_server.sessions)
    await coordinator.async_refresh()
    assert len(pop3_server.sessions) == sessions + 1  # the check's session only
    assert "uid-3" in pop3_server.mailbox.uids()

    # An hour later it is retried on its own, verified and deleted.
    freezer.tick(timedelta(seconds=UNVERIFIED_RETRY_SECONDS))
    await coordinator.async_refresh()
    # Straight from the module: an hour on, the test client's access token has expired.
    diagnostics = await async_get_config_entry_diagnostics(hass, init_integration)
    assert diagnostics["archive"] == {"backlog": 0, "unverified": 0}
    assert pop3_server.mailbox.uids() == ["uid-1", "uid-2"]


async def test_diagnostics_after_failed_check(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """After a failed check, diagnostics tell why and how long the backoff is."""
    pop3_server.faults.append(Fault("UIDL", err("[IN-USE] Mailbox is locked."), repeat=True))
    await init_integration.runtime_data.async_refresh()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    assert diagnostics["coordinator"] == {"last_update_success": False, "update_interval_s": 120.0}
    last_check = diagnostics["last_check"]
    assert isinstance(last_check, dict)
    assert last_check["error"] == "The server refused to UIDL: [IN-USE] Mailbox is locked."
    assert last_check["new"] == 0


async def test_diagnostics_error_text_hides_the_username(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    pop3_server: FakePOP3Server,
) -> None:
    """A server that names the user in its error does not leak it through diagnostics."""
    pop3_server.faults.append(
        Fault("STAT", err(f"[SYS/TEMP] Maildrop of {USERNAME} is busy"), repeat=True)
    )
    await init_integration.runtime_data.async_refresh()
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert diagnostics["last_check"]["error"].endswith("Maildrop of **REDACTED** is busy")
    assert USERNAME not in str(diagnostics)
