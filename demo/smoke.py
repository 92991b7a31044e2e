"""Smoke test of the integration through a running Home Assistant's HTTP and WebSocket API.

`scripts/demo --check` runs it after the demo's own steps, against the demo's Home
Assistant process and mailbox, so it works on a release that has no test harness yet
(CI runs it on the newest one). It uses only what a browser or a client app uses:

- the config flow: a duplicate of the demo mailbox aborts; a wrong password shows
  `invalid_auth`, and a new try for that mailbox (the first one abandoned) creates it;
- the options flow: an out-of-range value is our translated error under the field;
  valid options are saved;
- the actions `fetch_message` (with its response), `mark_read` and `delete_message`;
- the diagnostics download, with the credentials redacted.

Each step prints what it checked; the first that fails raises `SmokeError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError

import aiohttp

from demo.bootstrap import DOMAIN, entry_data, entry_options
from demo.mailserver import DEMO_PASSWORD, DEMO_USERNAME

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.run import Demo

WAIT_TIMEOUT = 60.0
# A name for the demo server that is not the demo entry's 127.0.0.1: a second mailbox.
SECOND_HOST = "localhost"
REDACTED = "**REDACTED**"


class SmokeError(AssertionError):
    """A smoke step found Home Assistant or the integration misbehaving."""


def say(text: str) -> None:
    """One line of what was checked."""
    print(f"smoke: {text}", flush=True)


def expect(condition: object, message: str) -> None:
    """Raise `SmokeError(message)` unless `condition` holds."""
    if not condition:
        raise SmokeError(message)


async def call(demo: Demo, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A REST call of the running instance; an HTTP error raises with the server's answer."""
    try:
        return await asyncio.to_thread(demo.api.request, method, path, body)
    except HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise SmokeError(f"{method} {path} answered HTTP {err.code}: {detail}") from None


async def websocket(demo: Demo, commands: list[dict[str, Any]]) -> list[Any]:
    """Send `commands` over the WebSocket API (as the frontend does); their results."""
    url = demo.api.base_url.replace("http", "ws", 1) + "/api/websocket"
    results = []
    timeout = aiohttp.ClientTimeout(total=WAIT_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.ws_connect(url) as ws,
    ):
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": demo.api.tokens["access_token"]})
        expect((await ws.receive_json())["type"] == "auth_ok", "WebSocket login failed")
        for number, command in enumerate(commands, start=1):
            await ws.send_json({"id": number, **command})
            while (answer := await ws.receive_json()).get("id") != number:
                pass
            expect(answer.get("success"), f"{command['type']} failed: {answer.get('error')}")
            results.append(answer["result"])
    return results


async def wait_for(what: str, probe: Callable[[], Any]) -> Any:
    """Poll the blocking `probe` until it returns something truthy; that value."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not (value := await asyncio.to_thread(probe)):
        if time.monotonic() > deadline:
            raise SmokeError(f"{what}: not within {WAIT_TIMEOUT:.0f} s")
        await asyncio.sleep(0.5)
    return value


async def start_password_flow(demo: Demo) -> dict[str, Any]:
    """A new add-mailbox flow at its password form (through the menu, where there is one)."""
    flow = await call(demo, "POST", "/api/config/config_entries/flow", {"handler": DOMAIN})
    if flow["type"] == "menu":
        expect("password" in flow["menu_options"], f"no password step in {flow}")
        flow = await call(
            demo,
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"next_step_id": "password"},
        )
    expect(flow["type"] == "form", f"the add-mailbox flow shows no form: {flow}")
    return dict(flow)


async def submit(demo: Demo, flow: dict[str, Any], user_input: dict[str, Any]) -> dict[str, Any]:
    """Submit a config flow's form; the next step."""
    result: dict[str, Any] = await call(
        demo, "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", user_input
    )
    return result


async def config_flow(demo: Demo) -> None:
    """Add a mailbox through the config flow, as the add-mailbox dialog does."""
    demo_data = {**entry_data(demo.mail.host, demo.mail.port), "security": "none"}
    flow = await start_password_flow(demo)
    result = await submit(demo, flow, demo_data)
    expect(
        (result["type"], result.get("reason")) == ("abort", "already_configured"),
        f"adding the demo mailbox again did not abort already_configured: {result}",
    )
    say(f"config flow: {demo.mailbox} again aborts already_configured")

    second = {**demo_data, "host": SECOND_HOST}
    mailbox = f"{DEMO_USERNAME}@{SECOND_HOST}"
    flow = await start_password_flow(demo)
    result = await submit(demo, flow, {**second, "password": "not-the-password"})
    expect(
        result["type"] == "form" and result.get("errors") == {"base": "invalid_auth"},
        f"a wrong password did not show invalid_auth: {result}",
    )
    say(f"config flow: a wrong password for {mailbox} shows invalid_auth (flow left open)")
    # The dialog was closed without cancelling: the next try must not be blocked by it.
    flow = await start_password_flow(demo)
    result = await submit(demo, flow, {**second, "password": DEMO_PASSWORD})
    expect(
        result["type"] == "create_entry" and result["title"] == mailbox,
        f"a second try for {mailbox} did not create it: {result}",
    )
    entry_id = result["result"]["entry_id"]

    def loaded() -> bool:
        entries = demo.api.config_entries(DOMAIN)
        return any(e["entry_id"] == entry_id and e["state"] == "loaded" for e in entries)

    await wait_for(f"{mailbox} loaded", loaded)
    (issues,) = await websocket(demo, [{"type": "repairs/list_issues"}])
    insecure = [
        issue["issue_id"]
        for issue in issues["issues"]
        if issue["domain"] == DOMAIN and issue["issue_id"].startswith("insecure_connection")
    ]
    expect(not insecure, f"a loopback mailbox without TLS raised {insecure}")
    say(f"config flow: second try created {mailbox}; loaded, no insecure_connection repair")
    await call(demo, "DELETE", f"/api/config/config_entries/entry/{entry_id}")
    say(f"config flow: {mailbox} removed again")


async def options_flow(demo: Demo) -> None:
    """Out-of-range options show our translated error; valid ones are saved."""
    base = "/api/config/config_entries/options/flow"
    valid = {key: value for key, value in entry_options(10).items() if value is not None}
    flow = await call(demo, "POST", base, {"handler": demo.entry_id})
    expect(flow["type"] == "form", f"the options flow shows no form: {flow}")
    result = await call(demo, "POST", f"{base}/{flow['flow_id']}", {**valid, "scan_interval": 5})
    errors = result.get("errors") or {}
    expect(
        result["type"] == "form" and set(errors) == {"scan_interval"},
        f"scan_interval 5 did not give an error under the field: {result}",
    )
    key = f"component.{DOMAIN}.options.error.{errors['scan_interval']}"
    texts = await websocket(
        demo,
        [
            {
                "type": "frontend/get_translations",
                "language": language,
                "category": "options",
                "integration": [DOMAIN],
            }
            for language in ("en", "es")
        ],
    )
    for language, text in zip(("en", "es"), texts, strict=True):
        message = text["resources"].get(key, "")
        expect("10" in message and "86400" in message, f"{key} ({language}) is {message!r}")
        say(f"options flow: scan_interval 5 -> {errors['scan_interval']} ({language}: {message!r})")
    result = await call(demo, "POST", f"{base}/{flow['flow_id']}", valid)
    expect(result["type"] == "create_entry", f"valid options were not saved: {result}")
    say(f"options flow: valid options saved {valid}")


async def actions(demo: Demo) -> None:
    """fetch_message returns the newest message; mark_read and delete_message act on it."""
    last = await asyncio.to_thread(demo.api.state, demo.entity("sensor", "last_message"))
    expect(last is not None and last["attributes"].get("uid"), f"no last message: {last}")
    assert last is not None  # noqa: S101 (for the type checker; checked above)
    uid = last["attributes"]["uid"]
    target = {"config_entry_id": demo.entry_id, "uid": uid}
    answer = await call(
        demo, "POST", f"/api/services/{DOMAIN}/fetch_message?return_response", target
    )
    message = answer["service_response"]
    expect(
        message["uid"] == uid and message["subject"] == last["attributes"]["subject"],
        f"fetch_message returned another message: {json.dumps(message)[:300]}",
    )
    expect(message["text"] and isinstance(message["attachments"], list), f"{message}")
    say(f"action fetch_message {uid}: {message['subject']!r}, {len(message['text'])} chars")

    unread = demo.entity("sensor", "unread")
    before = int(await asyncio.to_thread(lambda: demo.api.state(unread)["state"]))  # type: ignore[index]
    await call(demo, "POST", f"/api/services/{DOMAIN}/mark_read", target)
    await wait_for(
        f"{unread} below {before} after mark_read",
        lambda: int(demo.api.state(unread)["state"]) == before - 1,  # type: ignore[index]
    )
    say(f"action mark_read {uid}: {unread} {before} -> {before - 1}")

    messages = demo.entity("sensor", "messages")
    count = int(await asyncio.to_thread(lambda: demo.api.state(messages)["state"]))  # type: ignore[index]
    await call(demo, "POST", f"/api/services/{DOMAIN}/delete_message", target)
    expect(uid not in demo.mail.pop3.mailbox.uids(), f"{uid} is still on the server")
    await wait_for(
        f"{messages} below {count} after delete_message",
        lambda: int(demo.api.state(messages)["state"]) == count - 1,  # type: ignore[index]
    )
    say(f"action delete_message {uid}: gone from the server, {messages} {count} -> {count - 1}")


async def diagnostics(demo: Demo) -> None:
    """The diagnostics download: options, capabilities, last check; credentials redacted."""
    document = await call(demo, "GET", f"/api/diagnostics/config_entry/{demo.entry_id}")
    data = document["data"]
    entry = data["entry"]
    expect(
        entry["data"]["password"] == REDACTED and entry["data"]["username"] == REDACTED,
        f"credentials not redacted: {entry['data']}",
    )
    expect(DEMO_PASSWORD not in json.dumps(document), "the password appears in diagnostics")
    expect(data["capabilities"] and data["last_check"], f"no server figures: {data}")
    say(
        f"diagnostics: {len(json.dumps(document))} bytes, credentials redacted, "
        f"last check {data['last_check'].get('duration_s')} s, "
        f"{data['last_check'].get('bytes_in')} bytes in"
    )


async def smoke(demo: Demo) -> None:
    """Every step above, in order."""
    await config_flow(demo)
    await options_flow(demo)
    await actions(demo)
    await diagnostics(demo)
