"""The automation blueprint, loaded through Home Assistant's own blueprint machinery.

The file from the repository is placed in the test instance's `blueprints/automation/`
folder and used by an automation with `use_blueprint`; events are fired on the bus
and a stand-in notify action records what the blueprint's actions did.
"""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import TYPE_CHECKING, Any

from homeassistant.const import STATE_ON
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import Input, load_yaml
import pytest
from pytest_homeassistant_custom_component.common import async_mock_service

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant, ServiceCall

BLUEPRINT = (
    Path(__file__).resolve().parent.parent
    / "blueprints"
    / "automation"
    / "pop3_mail"
    / "notify_on_new_mail.yaml"
)
EVENT = "pop3_mail_new_message"
ENTRY_ID = "01JDEMOENTRY0000000000000"


def _event(**overrides: Any) -> dict[str, Any]:
    """Data of a `pop3_mail_new_message` event as the integration fires it."""
    data: dict[str, Any] = {
        "entry_id": ENTRY_ID,
        "device_id": "device-1",
        "mailbox": "demo@127.0.0.1",
        "uid": "uid-1",
        "sender": "alarm@demo.example",
        "sender_name": "Central de alarmas",
        "to": ["demo@demo.example"],
        "cc": [],
        "subject": "Alarma: movimiento detectado",
        "date": "2026-11-27T08:00:00+01:00",
        "message_id": "<1@demo.example>",
        "size": 812,
        "headers": {"From": "Central de alarmas <alarm@demo.example>"},
    }
    return data | overrides


async def _setup(hass: HomeAssistant, tmp_path: Path, **inputs: Any) -> list[ServiceCall]:
    """Install the blueprint, an automation using it, and a recording notify action."""
    hass.config.config_dir = str(tmp_path)
    folder = tmp_path / "blueprints" / "automation" / "pop3_mail"
    folder.mkdir(parents=True)
    shutil.copy(BLUEPRINT, folder / BLUEPRINT.name)
    calls = async_mock_service(hass, "notify", "test_phone")
    notify = [
        {
            "action": "notify.test_phone",
            "data": {
                "title": "{{ mailbox }}",
                "message": "{{ sender_name }} <{{ sender }}>: {{ subject }} [{{ uid }}] {{ text }}",
            },
        }
    ]
    config = {
        "automation": {
            "id": "pop3_mail_blueprint_test",
            "alias": "Mail notifier",
            "use_blueprint": {
                "path": "pop3_mail/notify_on_new_mail.yaml",
                "input": {"notify_action": notify, **inputs},
            },
        }
    }
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    # A blueprint that fails validation still creates the entity, but unavailable.
    state = hass.states.get("automation.mail_notifier")
    assert state is not None
    assert state.state == STATE_ON
    return calls


async def _fire(hass: HomeAssistant, **overrides: Any) -> None:
    hass.bus.async_fire(EVENT, _event(**overrides))
    await hass.async_block_till_done()


def test_blueprint_metadata() -> None:
    data = load_yaml(BLUEPRINT)
    meta = data["blueprint"]
    assert meta["domain"] == "automation"
    assert set(meta["input"]) == {"mailbox", "sender", "subject_keyword", "notify_action"}
    # Every filter is optional; only the actions must be chosen.
    assert [name for name, spec in meta["input"].items() if "default" not in spec] == [
        "notify_action"
    ]
    assert meta["input"]["mailbox"]["selector"] == {"config_entry": {"integration": "pop3_mail"}}
    assert meta["input"]["notify_action"]["selector"] == {"action": {}}
    assert data["triggers"] == [{"trigger": "event", "event_type": EVENT}]
    assert data["actions"] == Input("notify_action")


async def test_without_filters_every_message_notifies(hass: HomeAssistant, tmp_path: Path) -> None:
    calls = await _setup(hass, tmp_path)
    await _fire(hass, uid="uid-1")
    await _fire(hass, uid="uid-2", sender="ana@example.com", sender_name="Ana", subject="Hola")
    assert [call.data["message"] for call in calls] == [
        "Central de alarmas <alarm@demo.example>: Alarma: movimiento detectado [uid-1]",
        "Ana <ana@example.com>: Hola [uid-2]",
    ]
    assert all(call.data["title"] == "demo@127.0.0.1" for call in calls)


async def test_other_events_do_not_trigger(hass: HomeAssistant, tmp_path: Path) -> None:
    calls = await _setup(hass, tmp_path)
    hass.bus.async_fire("imap_content", _event())
    await hass.async_block_till_done()
    assert calls == []


@pytest.mark.parametrize(
    ("inputs", "event", "matches"),
    [
        ({"sender": "alarm@demo.example"}, {}, True),
        ({"sender": "ALARM@demo.example"}, {}, True),
        ({"sender": "@demo.example"}, {}, True),
        ({"sender": "central de alarmas"}, {}, True),
        ({"sender": "alarm@demo.example"}, {"sender": "newsletter@shop.example"}, False),
        ({"sender": "alarm@demo.example"}, {"sender": "", "sender_name": ""}, False),
        ({"subject_keyword": "alarma"}, {}, True),
        ({"subject_keyword": "MOVIMIENTO"}, {}, True),
        ({"subject_keyword": "factura"}, {}, False),
        ({"subject_keyword": "alarma"}, {"subject": ""}, False),
        ({"mailbox": ENTRY_ID}, {}, True),
        ({"mailbox": ENTRY_ID}, {"entry_id": "some-other-entry"}, False),
        ({"sender": "alarm@", "subject_keyword": "movimiento", "mailbox": ENTRY_ID}, {}, True),
        ({"sender": "alarm@", "subject_keyword": "puerta"}, {}, False),
        ({"sender": "ana@", "subject_keyword": "movimiento"}, {}, False),
        ({"sender": "  ", "subject_keyword": ""}, {"sender": "x@y.example"}, True),
    ],
)
async def test_filters(
    hass: HomeAssistant,
    tmp_path: Path,
    inputs: dict[str, str],
    event: dict[str, Any],
    matches: bool,
) -> None:
    calls = await _setup(hass, tmp_path, **inputs)
    await _fire(hass, **event)
    assert len(calls) == (1 if matches else 0)


async def test_burst_notifies_every_match_in_order(hass: HomeAssistant, tmp_path: Path) -> None:
    calls = await _setup(hass, tmp_path, sender="alarm@demo.example")
    for n in range(1, 6):
        hass.bus.async_fire(EVENT, _event(uid=f"uid-{n}"))
        hass.bus.async_fire(EVENT, _event(uid=f"other-{n}", sender="ana@example.com"))
    await hass.async_block_till_done()
    assert [call.data["message"].split("[")[1].split("]")[0] for call in calls] == [
        f"uid-{n}" for n in range(1, 6)
    ]


async def test_body_text_reaches_the_actions(hass: HomeAssistant, tmp_path: Path) -> None:
    calls = await _setup(hass, tmp_path, subject_keyword="alarma")
    await _fire(hass, text="Sensor: salón")
    assert len(calls) == 1
    assert calls[0].data["message"].endswith("[uid-1] Sensor: salón")


# -- the watch-based variant ---------------------------------------------------------------

WATCH_BLUEPRINT = BLUEPRINT.with_name("notify_on_watch.yaml")
WATCH_EVENT = "event.alarm_new_message"


def _watch_attributes(**overrides: Any) -> dict[str, Any]:
    """The attributes of a watch's event entity after it fired, as the integration sets them."""
    return {
        "event_types": ["new_message"],
        "event_type": "new_message",
        "uid": "uid-1",
        "sender": "alarm@demo.example",
        "sender_name": "Central de alarmas",
        "subject": "Alarma: movimiento detectado",
        "date": "2026-11-27T08:00:00+01:00",
        "friendly_name": "Alarm New message",
    } | overrides


async def _setup_watch(hass: HomeAssistant, tmp_path: Path) -> list[ServiceCall]:
    """Install the watch blueprint and an automation on the watch's event entity."""
    hass.config.config_dir = str(tmp_path)
    folder = tmp_path / "blueprints" / "automation" / "pop3_mail"
    folder.mkdir(parents=True)
    shutil.copy(WATCH_BLUEPRINT, folder / WATCH_BLUEPRINT.name)
    calls = async_mock_service(hass, "notify", "test_phone")
    notify = [
        {
            "action": "notify.test_phone",
            "data": {
                "message": "{{ watch }}: {{ sender_name }} <{{ sender }}> {{ subject }} [{{ uid }}]"
            },
        }
    ]
    hass.states.async_set(WATCH_EVENT, "unknown", {"friendly_name": "Alarm New message"})
    config = {
        "automation": {
            "id": "pop3_mail_watch_blueprint_test",
            "alias": "Watch notifier",
            "use_blueprint": {
                "path": "pop3_mail/notify_on_watch.yaml",
                "input": {"watch_event": WATCH_EVENT, "notify_action": notify},
            },
        }
    }
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    state = hass.states.get("automation.watch_notifier")
    assert state is not None
    assert state.state == STATE_ON
    return calls


def _watch_fired(hass: HomeAssistant, when: str, **overrides: Any) -> None:
    hass.states.async_set(WATCH_EVENT, when, _watch_attributes(**overrides))


def test_watch_blueprint_metadata() -> None:
    data = load_yaml(WATCH_BLUEPRINT)
    meta = data["blueprint"]
    assert set(meta["input"]) == {"watch_event", "notify_action"}
    assert meta["input"]["watch_event"]["selector"] == {
        "entity": {"filter": [{"integration": "pop3_mail", "domain": "event"}]}
    }
    assert data["triggers"] == [{"trigger": "state", "entity_id": Input("watch_event")}]


async def test_watch_blueprint_notifies_each_message(hass: HomeAssistant, tmp_path: Path) -> None:
    """The first event, and each later one, even two at the same instant, notify once."""
    calls = await _setup_watch(hass, tmp_path)
    _watch_fired(hass, "2026-11-27T07:00:00.000+00:00", uid="uid-1")
    _watch_fired(hass, "2026-11-27T07:05:00.000+00:00", uid="uid-2", subject="Alarma: puerta")
    _watch_fired(hass, "2026-11-27T07:05:00.000+00:00", uid="uid-3", subject="Alarma: ventana")
    await hass.async_block_till_done()
    prefix = "Alarm New message: Central de alarmas <alarm@demo.example> "
    assert [call.data["message"] for call in calls] == [
        f"{prefix}Alarma: movimiento detectado [uid-1]",
        f"{prefix}Alarma: puerta [uid-2]",
        f"{prefix}Alarma: ventana [uid-3]",
    ]


async def test_watch_blueprint_ignores_restarts_and_renames(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Unavailable and back (a reload), or an attribute change alone, is not new mail."""
    calls = await _setup_watch(hass, tmp_path)
    _watch_fired(hass, "2026-11-27T07:00:00.000+00:00", uid="uid-1")
    await hass.async_block_till_done()
    hass.states.async_set(WATCH_EVENT, "unavailable", {"friendly_name": "Alarm New message"})
    await hass.async_block_till_done()
    _watch_fired(hass, "2026-11-27T07:00:00.000+00:00", uid="uid-1")
    _watch_fired(hass, "2026-11-27T07:00:00.000+00:00", uid="uid-1", friendly_name="Renamed")
    await hass.async_block_till_done()
    assert len(calls) == 1
