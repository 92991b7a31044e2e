"""The demo, end to end in Home Assistant's test harness.

The demo's mail server (demo/mailserver.py: the fake POP3 server with the sample
mailbox) serves a config entry made exactly as scripts/demo seeds it
(demo/bootstrap.py), next to the demo's own automations (config/automations.yaml,
one of them through the repository's blueprint). Delivering the demo's mail must
move the sensors, fire one event per message and run the example automations.
"""

from __future__ import annotations

from datetime import timedelta
import json
import os
from pathlib import Path
import shutil
from typing import TYPE_CHECKING, Any

from homeassistant.components.onboarding.const import STEPS as ONBOARDING_STEPS
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.pop3_mail.config_flow import Pop3MailConfigFlow
from custom_components.pop3_mail.const import DOMAIN, EVENT_NEW_MESSAGE
from demo.bootstrap import (
    CONFIG_DIR,
    DEMO_TEXT_LENGTH,
    entry_data,
    entry_options,
    mailbox_name,
    reset,
    watches,
    write_http_settings,
    write_seed_files,
)
from demo.content import ALARM_SENDER, ALARM_SUBJECT, initial_messages
from demo.mailserver import MAX_MESSAGES, DemoMailServer
from demo.run import Demo, banner, errors_in_log, ready_message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from homeassistant.core import HomeAssistant
    from pytest_homeassistant_custom_component.typing import WebSocketGenerator

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "demo_127_0_0_1"
MESSAGES = f"sensor.{PREFIX}_messages"
UNREAD = f"sensor.{PREFIX}_unread"
SIZE = f"sensor.{PREFIX}_mailbox_size"
LAST = f"sensor.{PREFIX}_last_message"
NEW_MESSAGE = f"event.{PREFIX}_new_message"
ALARM_AUTOMATION = "automation.alarm_mail_notification"
INVOICE_AUTOMATION = "automation.invoice_mail_notification_blueprint"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let the harness load custom_components.pop3_mail."""


@pytest.fixture
async def demo_server(socket_enabled: None) -> AsyncIterator[DemoMailServer]:
    """The demo's POP3 server with its sample mailbox, started on 127.0.0.1."""
    server = DemoMailServer()
    await server.start()
    yield server
    await server.stop()


async def _check_now(hass: HomeAssistant, seconds: int) -> None:
    """Let the scan interval pass, so the coordinator checks the mailbox as in the demo."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done(wait_background_tasks=True)


async def _notifications(hass: HomeAssistant, client_factory: WebSocketGenerator) -> dict[str, Any]:
    client = await client_factory()
    await client.send_json_auto_id({"type": "persistent_notification/get"})
    response = await client.receive_json()
    assert response["success"]
    return {item["notification_id"]: item for item in response["result"]}


async def test_demo_mailbox_drives_sensors_events_and_automations(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    demo_server: DemoMailServer,
    tmp_path: Path,
) -> None:
    # The demo's config folder, as scripts/demo links it: automations and the blueprint.
    hass.config.config_dir = str(tmp_path)
    blueprints = tmp_path / "blueprints" / "automation" / DOMAIN
    blueprints.mkdir(parents=True)
    shutil.copy(ROOT / "blueprints" / "automation" / DOMAIN / "notify_on_new_mail.yaml", blueprints)
    automations = load_yaml(CONFIG_DIR / "automations.yaml")
    assert await async_setup_component(hass, "persistent_notification", {})
    assert await async_setup_component(hass, "automation", {"automation": automations})

    scan_interval = entry_options()["scan_interval"]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=mailbox_name(demo_server.host),
        unique_id=mailbox_name(demo_server.host),
        data=entry_data(demo_server.host, demo_server.port),
        options=entry_options(),
        version=Pop3MailConfigFlow.VERSION,
        minor_version=Pop3MailConfigFlow.MINOR_VERSION,
        subentries_data=[
            ConfigSubentryData(
                data=watch, subentry_type="watch", title=watch["name"], unique_id=None
            )
            for watch in watches()
        ],
    )
    entry.add_to_hass(hass)
    events = async_capture_events(hass, EVENT_NEW_MESSAGE)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    for automation in (ALARM_AUTOMATION, INVOICE_AUTOMATION):
        state = hass.states.get(automation)
        assert state is not None
        assert state.state == "on", automation

    # The sample mailbox is the baseline: counted, all read, nothing announced.
    initial = len(initial_messages(dt_util.utcnow()))
    assert hass.states.get(MESSAGES).state == str(initial)
    assert hass.states.get(UNREAD).state == "0"
    assert float(hass.states.get(SIZE).state) > 0
    assert events == []

    # The demo's first delivery is the alarm the example automation reacts to.
    uid = demo_server.deliver()
    await _check_now(hass, scan_interval)
    assert hass.states.get(MESSAGES).state == str(initial + 1)
    assert hass.states.get(UNREAD).state == "1"
    last = hass.states.get(LAST)
    assert last.attributes["sender"] == ALARM_SENDER.addr_spec
    assert last.attributes["subject"] == ALARM_SUBJECT
    assert last.attributes["uid"] == uid
    assert [event.data["uid"] for event in events] == [uid]
    alarm = events[0].data
    assert alarm["sender"] == "alarm@demo.example"
    assert alarm["sender_name"] == "Central de alarmas"
    assert alarm["mailbox"] == "demo@127.0.0.1"
    assert "Sensor: Salón" in alarm["text"]
    assert len(alarm["text"]) <= DEMO_TEXT_LENGTH
    assert hass.states.get(NEW_MESSAGE).attributes["subject"] == ALARM_SUBJECT
    assert alarm["watches"] == ["Alarm"]
    assert hass.states.get("sensor.alarm_unread").state == "1"
    assert hass.states.get("event.alarm_new_message").attributes["uid"] == uid
    notifications = await _notifications(hass, hass_ws_client)
    assert notifications["pop3_mail_demo_alarm"]["title"] == f"🚨 {ALARM_SUBJECT}"
    assert "Sensor: Salón" in notifications["pop3_mail_demo_alarm"]["message"]
    assert "pop3_mail_demo_invoice" not in notifications

    # The next three (parcel with a picture, water invoice with a PDF, backup report)
    # arrive within one interval: three events in order, the blueprint sees the invoice.
    uids = [demo_server.deliver() for _ in range(3)]
    await _check_now(hass, scan_interval)
    assert hass.states.get(MESSAGES).state == str(initial + 4)
    assert hass.states.get(UNREAD).state == "4"
    assert [event.data["uid"] for event in events] == [uid, *uids]
    subjects = [event.data["subject"] for event in events[1:]]
    assert subjects[0].startswith("Your parcel PX")
    assert subjects[1].startswith("Factura de agua n.º ")
    assert subjects[2].startswith("Nightly backup #")
    assert hass.states.get(LAST).attributes["uid"] == uids[-1]
    notifications = await _notifications(hass, hass_ws_client)
    assert notifications["pop3_mail_demo_invoice"]["title"] == f"🧾 {subjects[1]}"
    assert "facturas@aguas.example" in notifications["pop3_mail_demo_invoice"]["message"]
    assert [event.data["watches"] for event in events[1:]] == [[], ["Facturas"], []]
    # Every watch entity on the demo's dashboard exists.
    dashboard = load_yaml(CONFIG_DIR / "dashboards" / "pop3_mail.yaml")
    (watch_card,) = (
        card for card in dashboard["views"][0]["cards"] if card.get("title") == "Watches"
    )
    for row in watch_card["entities"]:
        assert hass.states.get(row["entity"]) is not None, row["entity"]
    assert hass.states.get("sensor.facturas_unread").state == "1"

    # A check with nothing new changes nothing and announces nothing.
    await _check_now(hass, scan_interval)
    assert hass.states.get(MESSAGES).state == str(initial + 4)
    assert len(events) == 4

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def test_bootstrap_seeds_a_ready_config_folder(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR / "dashboards", config_dir / "dashboards")
    # Leftovers of an earlier run are removed.
    (config_dir / ".storage").mkdir()
    (config_dir / ".storage" / "pop3_mail.old").write_text("{}")
    (config_dir / "home-assistant.log").write_text("old")

    reset(config_dir)
    write_http_settings(config_dir, 8125)
    entry_id = write_seed_files(config_dir, host="127.0.0.1", port=10110, scan_interval=10)

    assert not (config_dir / "home-assistant.log").exists()
    storage = config_dir / ".storage"
    link = config_dir / "custom_components" / DOMAIN
    assert link.is_symlink()
    assert not Path(os.readlink(link)).is_absolute()
    assert link.resolve() == (ROOT / "custom_components" / DOMAIN).resolve()
    blueprint = config_dir / "blueprints" / "automation" / DOMAIN / "notify_on_new_mail.yaml"
    assert blueprint.resolve() == (ROOT / "blueprints" / "automation" / DOMAIN / blueprint.name)

    onboarding = json.loads((storage / "onboarding").read_text())
    assert set(onboarding["data"]["done"]) == set(ONBOARDING_STEPS)
    lovelace = json.loads((storage / "lovelace").read_text())
    assert lovelace["data"]["config"]["title"] == "POP3 Mail"

    entries = json.loads((storage / "core.config_entries").read_text())["data"]["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["entry_id"] == entry_id
    assert entry["domain"] == DOMAIN
    assert entry["unique_id"] == entry["title"] == "demo@127.0.0.1"
    assert entry["data"] == {
        "host": "127.0.0.1",
        "security": "none",
        "port": 10110,
        "username": "demo",
        "password": "demo-pop3",
        "verify_ssl": True,
    }
    assert entry["options"]["scan_interval"] == 10
    assert [(sub["subentry_type"], sub["title"], sub["data"]) for sub in entry["subentries"]] == [
        ("watch", "Alarm", {"name": "Alarm", "sender": "alarm@demo.example"}),
        ("watch", "Facturas", {"name": "Facturas", "subject": "factura"}),
    ]
    assert (entry["version"], entry["minor_version"]) == (
        Pop3MailConfigFlow.VERSION,
        Pop3MailConfigFlow.MINOR_VERSION,
    )
    assert oct((storage / "core.config_entries").stat().st_mode & 0o777) == oct(0o600)

    # The HTTP settings land where this release keeps them.
    if (storage / "http").exists():
        stable = json.loads((storage / "http").read_text())["data"]["stable"]
        assert (stable["server_host"], stable["server_port"]) == (["127.0.0.1"], 8125)
    else:
        package = json.loads((config_dir / "packages" / "demo_http.yaml").read_text())
        assert package == {"http": {"server_host": ["127.0.0.1"], "server_port": 8125}}


def test_log_check_tells_missing_packages_from_real_errors(tmp_path: Path) -> None:
    log = tmp_path / "home-assistant.log"
    lines = [
        "2026-11-27 08:00:00.000 WARNING (MainThread) [homeassistant.loader] custom integration",
        (
            "2026-11-27 08:00:01.000 ERROR (MainThread) [homeassistant.setup] Setup failed for "
            "'assist_pipeline': Unable to import component: No module named 'pymicro_vad'"
        ),
        "2026-11-27 08:00:02.000 ERROR (MainThread) [haffmpeg.core] FFmpeg fails [Errno 2]",
        (
            "2026-11-27 08:00:03.000 ERROR (MainThread) [homeassistant.setup] Setup failed for "
            "'recorder': Unable to import component: No module named 'sqlalchemy'"
        ),
        "2026-11-27 08:00:04.000 ERROR (MainThread) [custom_components.pop3_mail] Unexpected",
        (
            "2026-11-27 08:00:05.000 WARNING (MainThread) [homeassistant.helpers.frame] Detected "
            "that custom integration 'pop3_mail' calls a deprecated helper. This will stop "
            "working in Home Assistant 2027.5"
        ),
    ]
    log.write_text("\n".join(lines) + "\n")
    errors, unavailable = errors_in_log(log)
    assert errors == lines[3:]
    assert unavailable == lines[1:3]


def test_alarm_notification_names_the_real_option() -> None:
    """Without body text the notification says which option to raise, by its label in the UI."""
    translations = ROOT / "custom_components" / DOMAIN / "translations" / "en.json"
    label = json.loads(translations.read_text(encoding="utf-8"))["options"]["step"]["init"]["data"][
        "text_length"
    ]
    automations = load_yaml(CONFIG_DIR / "automations.yaml")
    alarm = next(item for item in automations if item["id"] == "pop3_mail_demo_alarm")
    message = alarm["actions"][0]["data"]["message"]
    assert f'raise the "{label}" option' in message


def test_demo_mailbox_rolls_over_and_says_so() -> None:
    """The mailbox keeps the newest MAX_MESSAGES; the banner tells the person watching."""
    server = DemoMailServer(max_messages=len(initial_messages(dt_util.utcnow())) + 2)
    uids = [server.deliver() for _ in range(5)]
    assert len(server.pop3.mailbox) == server.max_messages
    assert server.pop3.mailbox.uids()[-5:] == uids

    demo = Demo(config_dir=CONFIG_DIR, http_port=8123, interval=30, scan_interval=10, quiet=True)
    text = " ".join(banner(demo).split())
    assert f"keeps the newest {MAX_MESSAGES} messages" in text
    assert f"the count stays at {MAX_MESSAGES}" in text


def test_ready_message_tells_install_time_apart() -> None:
    """A first start names the one-time install and the total; later starts only the start."""
    first = ready_message(4.6, 64.2, 58.9)
    assert "4.6 s" in first
    assert "64 s in all" in first
    assert "59 s installing packages once" in first
    later = ready_message(4.6, 4.7, 0.0)
    assert "4.6 s" in later
    assert "install" not in later
