"""`scripts/screenshots`: retakes the screenshots in docs/ from a running demo.

Starts the demo headless (like `scripts/demo --check`: a temporary copy of config/,
a free port), delivers a few messages, then drives the system's Chromium with
Playwright (install it yourself: `.venv/bin/pip install playwright`; the browser is
`/usr/bin/chromium` from Debian's `chromium` package, CHROMIUM=path overrides) and
writes docs/config_flow.png (the first step: password or Microsoft), docs/microsoft.png
(Sign in with Microsoft up to the external step), docs/device.png, docs/watch.png (the
Alarm watch's device), docs/dashboard.png (with the watches card) and
docs/notification.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from custom_components.pop3_mail.oauth import MICROSOFT_AUTHORIZE_URL
from demo.bootstrap import ROOT
from demo.run import DEFAULT_INTERVAL, Demo, free_port, scratch_config, wait_for_mail

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

DOCS = ROOT / "docs"
VIEWPORT = {"width": 1280, "height": 860}
# The flags the brief asks for: headless, as root, offline and without first-run noise.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETTLE_MS = 2500


def _tokens_script(demo: Demo) -> str:
    """JavaScript that hands the frontend our tokens, as if the login page had run."""
    tokens = demo.api.tokens
    stored = {
        **tokens,
        "hassUrl": demo.api.base_url,
        "clientId": demo.api.client_id,
        "expires": int(time.time() * 1000) + int(tokens["expires_in"]) * 1000,
    }
    return f"window.localStorage.setItem('hassTokens', {json.dumps(json.dumps(stored))});"


async def _open(page: Page, url: str, selector: str) -> None:
    await page.goto(url)
    await page.wait_for_selector(selector, timeout=60_000)
    # Charts, icons and fonts finish after the element exists.
    await page.wait_for_timeout(SETTLE_MS)


async def _shoot(page: Page, name: str) -> None:
    path = DOCS / name
    await page.screenshot(path=str(path))
    print(f"screenshots: wrote {path.relative_to(ROOT)}")


async def _start_flow(page: Page, base: str) -> None:
    """Open "Add integration → POP3 Mail" and wait for its first step, the menu."""
    await page.goto(f"{base}/config/integrations/dashboard/add?domain=pop3_mail")
    menu = page.get_by_text("Sign in with Microsoft", exact=False)
    # Newer releases ask "Do you want to set up POP3 Mail?" before the flow starts.
    confirm = page.get_by_role("button", name="OK", exact=True)
    await menu.or_(confirm).first.wait_for(timeout=60_000)
    if await confirm.is_visible():
        await confirm.click()
    await menu.first.wait_for(timeout=60_000)


async def config_flow(page: Page, base: str) -> None:
    """The first step of adding a mailbox: the menu, password or Microsoft."""
    await _start_flow(page, base)
    await page.wait_for_timeout(SETTLE_MS)
    await _shoot(page, "config_flow.png")


async def microsoft(page: Page, base: str) -> None:
    """Sign in with Microsoft, as far as it goes offline: the step that opens Microsoft.

    A demo application credential (made-up client ID and secret, added through the
    frontend's own websocket connection) lets the flow reach its external step; the
    browser's attempt to open login.microsoftonline.com fails offline and is ignored.
    """
    await page.evaluate(
        """() => document.querySelector("home-assistant").hass.callWS({
            type: "application_credentials/create",
            domain: "pop3_mail",
            client_id: "00000000-0000-0000-0000-000000000000",
            client_secret: "demo-secret",
            name: "Demo Entra app",
        })"""
    )
    await _start_flow(page, base)
    # The external step opens Microsoft in a new window; offline that load only fails,
    # but its request proves the flow really got as far as Microsoft's sign-in page.
    async with page.context.expect_event(
        "request",
        lambda request: request.url.startswith(MICROSOFT_AUTHORIZE_URL),
        timeout=60_000,
    ):
        await page.get_by_text("Sign in with Microsoft", exact=False).first.click()
    await page.locator("step-flow-external").wait_for(timeout=60_000)
    for other in page.context.pages:
        if other is not page:
            await other.close()
    await page.bring_to_front()
    await page.wait_for_timeout(SETTLE_MS)
    await _shoot(page, "microsoft.png")


async def device(page: Page, base: str, device_id: str) -> None:
    """The demo mailbox's device page: sensors, event, button."""
    await _open(page, f"{base}/config/devices/device/{device_id}", "ha-config-device-page")
    await _shoot(page, "device.png")


async def watch(page: Page, base: str, device_id: str) -> None:
    """A watch's device page: its unread count, last message and event."""
    await _open(page, f"{base}/config/devices/device/{device_id}", "ha-config-device-page")
    await _shoot(page, "watch.png")


async def dashboard(page: Page, base: str) -> None:
    """The demo dashboard after some mail arrived."""
    await _open(page, f"{base}/lovelace/mailbox", "hui-entities-card")
    await _shoot(page, "dashboard.png")


async def notification(page: Page) -> None:
    """The alarm automation's notification, open in the drawer over the dashboard."""
    # Opened on the page already showing the dashboard: a reload would make the
    # logbook card list some entries twice (history and live stream overlap).
    await page.get_by_text("Notifications", exact=True).click()
    await page.wait_for_selector("notification-item", timeout=30_000)
    await page.wait_for_timeout(1000)
    await _shoot(page, "notification.png")


async def _device_id(demo: Demo, entity_id: str) -> str:
    """The device of an entity, asked through a template."""
    answer = await asyncio.to_thread(
        demo.api.post,
        "/api/template",
        {"template": f"{{{{ device_id({entity_id!r}) }}}}"},
    )
    return str(answer).strip()


async def take(demo: Demo) -> None:
    """Start the demo, let mail arrive, take every screenshot, stop."""
    from playwright.async_api import async_playwright  # noqa: PLC0415

    await demo.start()
    count = len(demo.mail.pop3.mailbox)
    # Mail arrives in steps, so the history graph and the logbook have something to show.
    for _ in range(4):
        uid = demo.mail.deliver()
        count += 1
        await wait_for_mail(demo, count, uid)
    sensor = demo.entity("sensor", "messages")
    device_id = await _device_id(demo, sensor)
    watch_id = await _device_id(demo, "sensor.alarm_unread")
    base = demo.api.base_url
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with tempfile.TemporaryDirectory(prefix="pop3_mail_chromium_") as profile:
        async with async_playwright() as playwright:
            context: BrowserContext = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport=VIEWPORT,  # type: ignore[arg-type]
                locale="en-GB",
                timezone_id="Europe/Madrid",
            )
            await context.add_init_script(_tokens_script(demo))
            page = await context.new_page()
            await dashboard(page, base)
            await notification(page)
            await device(page, base, device_id)
            await watch(page, base, watch_id)
            await config_flow(page, base)
            await microsoft(page, base)
            await context.close()


async def run(demo: Demo) -> int:
    """`take`, always stopping the demo; the exit code."""
    try:
        await take(demo)
    except Exception as err:
        print(f"screenshots: FAILED: {err!r}", file=sys.stderr)
        return 1
    finally:
        await demo.stop()
    return 0


def main() -> None:
    """Command line of scripts/screenshots."""
    config_dir = scratch_config()
    demo = Demo(
        config_dir=config_dir,
        http_port=free_port(),
        interval=DEFAULT_INTERVAL,
        scan_interval=10,
        quiet=True,
    )
    code = asyncio.run(run(demo))
    if code == 0:
        shutil.rmtree(config_dir.parent)
    else:
        print(f"screenshots: config folder and logs kept in {config_dir}", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
