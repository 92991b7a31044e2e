"""`scripts/demo`: the demo POP3 server and Home Assistant, started and stopped together.

    scripts/demo                 # http://127.0.0.1:8123, login demo / demo-pop3; Ctrl-C stops both
    scripts/demo --interval 10   # new mail every 10 s instead of 30 s
    scripts/demo --check         # headless self-test in a temporary copy of config/: exit code 0/1

The POP3 server (demo.mailserver) runs in this process; Home Assistant is a child
process (`hass -c config --skip-pip`) in its own session that dies with this one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import homeassistant
from homeassistant.const import __version__ as ha_version

from demo.bootstrap import (
    CONFIG_DIR,
    DEFAULT_HTTP_PORT,
    LOGIN_PASSWORD,
    LOGIN_USERNAME,
    ROOT,
    mailbox_name,
)
from demo.content import ALARM_SUBJECT
from demo.ha_api import HomeAssistantAPI
from demo.mailserver import DEMO_PASSWORD, DEMO_USERNAME, MAX_MESSAGES, DemoMailServer
from demo.smoke import smoke

_LOGGER = logging.getLogger("demo")

DEFAULT_INTERVAL = 30.0
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
CHECK_TIMEOUT = 60.0
ALARM_AUTOMATION = "automation.alarm_mail_notification"
# Copied for --check; everything else in config/ is made at start.
CONFIG_FILES = ("configuration.yaml", "automations.yaml", "dashboards")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the demo process dies, so Home Assistant never lingers."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def scratch_config() -> Path:
    """A copy of the committed config/ in a new temporary folder, for a headless run."""
    config_dir = Path(tempfile.mkdtemp(prefix="pop3_mail_demo_")) / "config"
    config_dir.mkdir()
    for name in CONFIG_FILES:
        source = CONFIG_DIR / name
        if source.is_dir():
            shutil.copytree(source, config_dir / name)
        else:
            shutil.copy(source, config_dir / name)
    return config_dir


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Integrations the demo's configuration.yaml sets up (besides Home Assistant's defaults).
CONFIGURED = (
    "frontend",
    "config",
    "automation",
    "persistent_notification",
    "recorder",
    "history",
    "logbook",
)


# Requirements this environment got in another version than pinned (see ensure_requirements).
FALLBACKS = Path(sys.prefix) / "pop3_mail_demo_fallbacks.txt"


def missing_requirements() -> list[str]:
    """Python packages of the integrations Home Assistant will load that are not installed.

    The test environment has Home Assistant's core packages only; the web UI and, on
    newer releases, the entity platforms loaded by default need a few more.
    """
    from homeassistant import bootstrap  # noqa: PLC0415
    from homeassistant.util.package import is_installed  # noqa: PLC0415

    components = Path(homeassistant.__file__).parent / "components"
    todo = [*bootstrap.CORE_INTEGRATIONS, *bootstrap.DEFAULT_INTEGRATIONS, *CONFIGURED]
    todo += ["http", "logger", "network", "system_log"]
    seen: set[str] = set()
    missing: list[str] = []
    while todo:
        domain = todo.pop()
        manifest = components / domain / "manifest.json"
        if domain in seen or not manifest.exists():
            continue
        seen.add(domain)
        data = json.loads(manifest.read_text())
        todo += data.get("dependencies", []) + data.get("after_dependencies", [])
        missing += [req for req in data.get("requirements", []) if not is_installed(req)]
    replaced = set(FALLBACKS.read_text().split()) if FALLBACKS.exists() else set()
    return sorted(set(missing) - replaced)


def ready_message(hass_seconds: float, total_seconds: float, install_seconds: float) -> str:
    """What the start took: Home Assistant's own start, and in all when packages were installed.

    The one-time install takes about a minute; a bare "ready in 5 s" after it misleads.
    """
    message = f"Home Assistant started and loaded the demo mailbox in {hass_seconds:.1f} s"
    if install_seconds > 0:
        message += (
            f"; {total_seconds:.0f} s in all, of which {install_seconds:.0f} s installing "
            "packages once (later starts skip this)"
        )
    return message


def ensure_requirements(python: Path) -> float:
    """Install what `missing_requirements` finds, once, within Home Assistant's constraints.

    Home Assistant then runs with --skip-pip, so every later start is offline. A
    package that cannot be installed here (a C extension without a wheel for this
    Python) is skipped: only the default integration that needs it fails to load.
    Returns the seconds it spent installing (0 when nothing was missing).
    """
    missing = missing_requirements()
    if not missing:
        return 0.0
    started = time.monotonic()
    print(
        f"demo: installing {len(missing)} package{'s' if len(missing) > 1 else ''} of the web UI "
        "and of the integrations Home Assistant loads by default (first start only; about a "
        "minute)…",
        flush=True,
    )
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    # Python compiles what Home Assistant imports; compiling every file would take longer.
    pip = [str(python), "-m", "pip", "install", "-q", "--no-compile"]
    failed = []
    for requirement in missing:
        command = [*pip, requirement]
        if constraints.exists():
            command += ["-c", str(constraints)]
        if not subprocess.run(command, check=False, capture_output=True).returncode:
            continue
        # No wheel of the pinned version for this Python and no compiler headers: the
        # newest wheel still imports, which is all the web UI needs (it validates every
        # loaded integration's services.yaml, and one selector imports assist_pipeline).
        name = requirement.split("==")[0]
        fallback = [*pip, "--only-binary", ":all:", "--no-deps", name]
        if subprocess.run(fallback, check=False, capture_output=True).returncode:
            failed.append(requirement)
            continue
        with FALLBACKS.open("a") as file:
            file.write(f"{requirement}\n")
        print(f"demo: {requirement} has no wheel for this Python; installed the newest {name}")
    if failed:
        print(
            f"demo: could not install {', '.join(failed)}; the integrations needing them stay off"
        )
    return time.monotonic() - started


class Demo:
    """One run: the mail server, a seeded config folder and Home Assistant."""

    def __init__(
        self, *, config_dir: Path, http_port: int, interval: float, scan_interval: int, quiet: bool
    ) -> None:
        """Nothing starts before `start()`."""
        self.config_dir = config_dir
        self.http_port = http_port
        self.interval = interval
        self.scan_interval = scan_interval
        self.quiet = quiet
        self.mail = DemoMailServer()
        self.hass: subprocess.Popen[bytes] | None = None
        self.api = HomeAssistantAPI(f"http://127.0.0.1:{http_port}")
        self.entry_id = ""
        self._delivery: asyncio.Task[None] | None = None
        self._console: Any = None

    @property
    def mailbox(self) -> str:
        """The demo entry's title, which is also its device name."""
        return mailbox_name(self.mail.host)

    def entity(self, platform: str, key: str) -> str:
        """Entity id of one of the demo mailbox's entities."""
        slug = self.mailbox.replace("@", "_").replace(".", "_")
        return f"{platform}.{slug}_{key}"

    async def start(self) -> None:
        """Mail server, config folder, Home Assistant; returns when the entry is loaded."""
        python = Path(sys.executable)
        if not port_is_free(self.http_port):
            raise RuntimeError(f"port {self.http_port} is in use; choose another with --port")
        started = time.monotonic()
        installing = await asyncio.to_thread(ensure_requirements, python)
        await self.mail.start()
        print(f"demo: preparing {self.config_dir} (owner user, dashboard, demo mailbox)")
        bootstrap = [
            str(python),
            "-m",
            "demo.bootstrap",
            "--config",
            str(self.config_dir),
            "--pop3-host",
            self.mail.host,
            "--pop3-port",
            str(self.mail.port),
            "--http-port",
            str(self.http_port),
            "--scan-interval",
            str(self.scan_interval),
        ]
        await asyncio.to_thread(
            subprocess.run, bootstrap, check=True, cwd=ROOT, stdout=subprocess.DEVNULL
        )
        print(f"demo: starting Home Assistant {ha_version} on http://127.0.0.1:{self.http_port}")
        self._console = (self.config_dir / "home-assistant.console.log").open("wb")
        launched = time.monotonic()
        self.hass = subprocess.Popen(
            [str(python.parent / "hass"), "-c", str(self.config_dir), "--skip-pip"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            # Own session: Ctrl-C reaches only us, and we stop Home Assistant cleanly.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads exist yet)
        )
        await asyncio.to_thread(self._wait_until_ready)
        now = time.monotonic()
        print(f"demo: {ready_message(now - launched, now - started, installing)}", flush=True)

    def _wait_until_ready(self) -> None:
        started = time.monotonic()
        self.api.wait_until_up(START_TIMEOUT)
        self.api.login(LOGIN_USERNAME, LOGIN_PASSWORD)
        while True:
            self._ensure_running()
            entries = self.api.config_entries("pop3_mail")
            states = {entry["entry_id"]: entry["state"] for entry in entries}
            if states and all(state == "loaded" for state in states.values()):
                self.entry_id = next(iter(states))
                break
            if set(states.values()) & {"setup_error", "migration_error", "failed_unload"}:
                raise RuntimeError(f"the demo mailbox did not load: {states}")
            if time.monotonic() - started > START_TIMEOUT:
                raise TimeoutError(f"the demo mailbox did not load in time: {states}")
            time.sleep(0.5)

    def _ensure_running(self) -> None:
        if self.hass is not None and self.hass.poll() is not None:
            raise RuntimeError(
                f"Home Assistant exited with code {self.hass.returncode}; "
                f"see {self.config_dir / 'home-assistant.log'}"
            )

    def start_delivery(self) -> None:
        """New mail every `interval` seconds from now on."""
        self._delivery = asyncio.create_task(self.mail.deliver_forever(self.interval))

    async def stop(self) -> None:
        """Stop delivering, stop Home Assistant (TERM, then KILL), stop the mail server."""
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        if self.hass is not None and self.hass.poll() is None:
            started = time.monotonic()
            self.hass.terminate()
            try:
                code = await asyncio.to_thread(self.hass.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("Home Assistant did not stop in %.0f s; killing it", STOP_TIMEOUT)
                self.hass.kill()
                code = await asyncio.to_thread(self.hass.wait)
            _LOGGER.info(
                "Home Assistant stopped in %.1f s (exit code %s)", time.monotonic() - started, code
            )
        if self._console is not None:
            self._console.close()
        await self.mail.stop()

    async def watch(self) -> None:
        """Return when Home Assistant exits on its own (it should not)."""
        while self.hass is not None and self.hass.poll() is None:
            await asyncio.sleep(1)


def banner(demo: Demo) -> str:
    """What the person who started the demo needs to know."""
    return (
        "\n"
        f"  POP3 Mail demo is running\n"
        f"    Home Assistant  http://127.0.0.1:{demo.http_port}   login: "
        f"{LOGIN_USERNAME} / {LOGIN_PASSWORD}\n"
        f"    POP3 server     {demo.mail.host}:{demo.mail.port} (no TLS)   user: "
        f"{DEMO_USERNAME} / {DEMO_PASSWORD}\n"
        f"    New mail every {demo.interval:g} s; an alarm from alarm@demo.example every "
        f"{demo.interval * 4:g} s notifies.\n"
        f"    The mailbox keeps the newest {MAX_MESSAGES} messages: each new one then removes the\n"
        f"    oldest (as a mail client that deletes old mail would), so the count stays at "
        f"{MAX_MESSAGES}.\n"
        f"    Logs: {demo.config_dir / 'home-assistant.log'}\n"
        "  Press Ctrl-C to stop both.\n"
    )


async def interactive(demo: Demo) -> int:
    """Run until Ctrl-C (or SIGTERM); returns the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        starting = asyncio.create_task(demo.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        starting.result()
        demo.start_delivery()
        print(banner(demo), flush=True)
        watching = asyncio.create_task(demo.watch())
        await asyncio.wait({watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            print("demo: Home Assistant stopped on its own; see its log", file=sys.stderr)
            code = 1
        watching.cancel()
        stopping.cancel()
    except Exception as err:
        print(f"demo: {err}", file=sys.stderr)
        code = 1
    finally:
        print("demo: stopping…", flush=True)
        await demo.stop()
        print("demo: stopped", flush=True)
    return code


# Errors of default integrations about programs or libraries missing on this machine.
ENVIRONMENT_NOISE = (
    "[haffmpeg.core] FFmpeg fails",
    "[homeassistant.components.camera.img_util] Error loading libturbojpeg",
)


# How Home Assistant reports our use of something deprecated, which a later release breaks.
DEPRECATION_REPORT = "Detected that custom integration 'pop3_mail'"


def errors_in_log(log: Path) -> tuple[list[str], list[str]]:
    """ERROR lines of Home Assistant's log: (errors, import failures of default integrations).

    Reports of our use of deprecated APIs count as errors whatever their level: CI runs
    the newest release to hear of a break before users do. Newer releases load every
    entity platform by default; one whose Python package is missing in this environment
    fails to import, which says nothing about the demo.
    """
    if not log.exists():
        return [], []
    errors: list[str] = []
    unavailable: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        if DEPRECATION_REPORT in line:
            errors.append(line)
            continue
        if " ERROR " not in line:
            continue
        if any(noise in line for noise in ENVIRONMENT_NOISE) or (
            "[homeassistant.setup]" in line
            and not any(f"'{name}'" in line for name in CONFIGURED)
            and ("Unable to import component" in line or "dependencies" in line)
        ):
            unavailable.append(line)
        else:
            errors.append(line)
    return errors, unavailable


async def wait_for_mail(demo: Demo, count: int, uid: str) -> dict[str, Any]:
    """Wait until the sensors show `count` messages, the newest being `uid`; its state."""
    messages = demo.entity("sensor", "messages")
    last = demo.entity("sensor", "last_message")
    deadline = time.monotonic() + CHECK_TIMEOUT
    while True:
        now_count = await asyncio.to_thread(demo.api.state, messages)
        now_last = await asyncio.to_thread(demo.api.state, last)
        if (
            now_count is not None
            and now_last is not None
            and now_count["state"] == str(count)
            and now_last["attributes"].get("uid") == uid
        ):
            return now_last
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the sensors did not follow the delivered mail in {CHECK_TIMEOUT:.0f} s: "
                f"{messages} = {now_count and now_count['state']} (expected {count}), "
                f"{last} = {now_last}"
            )
        await asyncio.sleep(0.5)


async def check_steps(demo: Demo) -> None:
    """The self-test's steps; raises on the first that fails."""
    started = time.monotonic()
    await demo.start()
    messages = demo.entity("sensor", "messages")
    before = await asyncio.to_thread(demo.api.state, messages)
    if before is None:
        raise RuntimeError(f"{messages} does not exist")
    if not before["state"].isdigit():
        raise RuntimeError(f"{messages} is {before['state']!r} right after loading")
    count = int(before["state"])
    print(f"check: entry loaded in {time.monotonic() - started:.1f} s; {messages} = {count}")
    if count != (held := len(demo.mail.pop3.mailbox)):
        raise RuntimeError(f"{messages} is {count}, the mailbox holds {held}")
    # The demo's first delivery is the alarm; the next three are ordinary mail.
    for batch in (1, 3):
        uids = [demo.mail.deliver() for _ in range(batch)]
        count += batch
        now_last = await wait_for_mail(demo, count, uids[-1])
        if batch == 1 and now_last["attributes"].get("subject") != ALARM_SUBJECT:
            raise RuntimeError(f"the alarm is not the last message: {now_last}")
        print(
            f"check: {batch} delivered -> {messages} = {count}, last message "
            f"{now_last['attributes']['sender']!r} {now_last['attributes']['subject']!r}"
        )
    alarm = await asyncio.to_thread(demo.api.state, ALARM_AUTOMATION)
    if alarm is None or not alarm["attributes"].get("last_triggered"):
        raise RuntimeError(f"{ALARM_AUTOMATION} did not run for the alarm: {alarm}")
    print(f"check: {ALARM_AUTOMATION} ran at {alarm['attributes']['last_triggered']}")
    await smoke(demo)


async def check(demo: Demo) -> int:
    """Headless self-test: the entry loads and the sensors follow delivered mail; 0 or 1."""
    ok = True
    started = time.monotonic()
    try:
        await check_steps(demo)
    except Exception as err:
        print(f"check: FAILED: {err}", file=sys.stderr)
        ok = False
    finally:
        await demo.stop()
    errors, unavailable = errors_in_log(demo.config_dir / "home-assistant.log")
    for line in unavailable:
        print(f"check: note (not the demo's: this machine lacks a package): {line}")
    for line in errors:
        print(f"check: log: {line}", file=sys.stderr)
    if errors:
        ok = False
    print(f"check: {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


def main() -> None:
    """Command line of scripts/demo."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo", description="POP3 Mail demo: a mailbox and Home Assistant."
    )
    parser.add_argument("--check", action="store_true", help="headless self-test; exit code 0/1")
    parser.add_argument("--port", type=int, default=None, help="Home Assistant's HTTP port")
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds between new messages (default 30)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    logging.getLogger("demo.mailserver").setLevel(logging.WARNING)
    os.umask(0o022)
    if args.check:
        # A copy of config/ on a free port, so a demo already running is not disturbed.
        config_dir = scratch_config()
        demo = Demo(
            config_dir=config_dir,
            http_port=args.port or free_port(),
            interval=args.interval or DEFAULT_INTERVAL,
            scan_interval=10,
            quiet=True,
        )
        code = asyncio.run(check(demo))
        if code == 0:
            shutil.rmtree(config_dir.parent)
        else:
            print(f"check: config folder and logs kept in {config_dir}", file=sys.stderr)
        sys.exit(code)
    demo = Demo(
        config_dir=CONFIG_DIR,
        http_port=args.port or DEFAULT_HTTP_PORT,
        interval=args.interval or DEFAULT_INTERVAL,
        scan_interval=10,
        quiet=False,
    )
    sys.exit(asyncio.run(interactive(demo)))
