"""The crash test: a real Home Assistant, SIGKILLed again and again while mail arrives.

    scripts/crash_test [--kills 12] [--duration SECONDS] [--seed N] [--python PATH] [--keep]

Starts Dovecot on 127.0.0.1 (tests/servers/dovecot.py), makes a Home Assistant config
in a temporary folder (a minimal configuration.yaml, a pre-made pop3_mail entry for
Dovecot's `alice`, the integration of this tree linked in, and the probe of
tests/crash/crash_probe), and runs `python -m homeassistant` on it:

1. A first run sets the entry up on the empty mailbox and stops cleanly, so the
   mailbox's baseline is saved before any mail arrives (mail present at the first
   setup counts as read and is never announced, by contract).
2. Mail is delivered continuously (unique Message-IDs) while Home Assistant is
   started and SIGKILLed over and over, each time on one trigger chosen at random:
   `login` (right after Dovecot logs the n-th login of the run, i.e. a check has
   started), `announce` (right after the probe records the n-th announcing check),
   `instant` (the probe kills Home Assistant itself in the n-th announcing check:
   inside its first announcement, or 0.5 to 5 ms after its latest one, i.e. while
   the integration saves) or `random` (a random moment during the startup, or
   within 4 s after the entry loaded).
3. Delivery stops; a last run catches up until every delivered message was
   announced (or a timeout) and stops cleanly; one more run must announce nothing.

After every kill and stop the integration's state files (`.storage/pop3_mail*`) must
be valid JSON documents of Home Assistant's `Store`. At the end the delivered
Message-IDs are compared with the announced ones (tests/crash/verdict.py), and the
logs are searched for tracebacks from the integration. The last line printed is
`delivered N, announced M, missing X, duplicates Y, kills K` (M: distinct messages
announced, Y: announcements beyond the first). Exit code 0 when every rule held,
1 on a violation, 2 when the test itself could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, TYPE_CHECKING

from tests.crash.verdict import Announcement, RunEnd, Verdict, judge, tracebacks_of_integration
from tests.servers.dovecot import DovecotServer, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "crash_probe"
USER, PASSWORD = "alice", "secret"
DEFAULT_KILLS = 12
TRIGGERS = ("login", "announce", "instant", "random")
START_TIMEOUT = 90.0  # until the probe sees the entry loaded
TRIGGER_TIMEOUT = 30.0  # a trigger that does not come by then kills anyway ("timeout")
STOP_TIMEOUT = 60.0
POLL = 0.002  # how often the files are looked at while waiting for a trigger
LOGIN_LINE = f"Login: user=<{USER}>"
PR_SET_PDEATHSIG = 1
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (mkdtemp: a private folder)
BURSTS = (1, 1, 1, 2, 3)  # messages delivered at once (1.6 on average)
# When the probe kills in a check: inside its first announcement, or so many ms after its
# latest one (see tests/crash/crash_probe).
KILL_WHEN = ("during", "0.5", "2", "5")


class HarnessError(RuntimeError):
    """The crash test could not do its job (not a verdict on the integration)."""


@dataclass
class Options:
    """What the command line chose."""

    kills: int
    triggers: tuple[str, ...]
    duration: float | None
    seed: int
    python: str
    integration: Path
    rate: float
    check_interval: float
    catch_up: float
    keep: bool
    verbose: bool


@dataclass
class Run:
    """One Home Assistant process."""

    number: int
    process: subprocess.Popen[bytes]
    console: IO[bytes]
    started: float
    logins_before: int


@dataclass
class Record:
    """What the probe and Dovecot wrote so far, read incrementally."""

    announcements: list[Announcement] = field(default_factory=list)
    announcing_checks: dict[int, set[int]] = field(default_factory=dict)
    loaded: dict[int, float] = field(default_factory=dict)
    self_kills: dict[int, float] = field(default_factory=dict)
    not_loaded: dict[int, str] = field(default_factory=dict)
    logins: int = 0


class Tail:
    """The complete lines appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        """Follow `path` (which may not exist yet)."""
        self.path = path
        self._file: IO[bytes] | None = None
        self._rest = b""

    def lines(self) -> list[str]:
        """New complete lines."""
        if self._file is None:
            try:
                self._file = self.path.open("rb")
            except FileNotFoundError:
                return []
        # Appended data shows up at the end of an open file: no reopening every few ms.
        *complete, self._rest = (self._rest + self._file.read()).split(b"\n")
        return [line.decode(errors="replace") for line in complete]

    def close(self) -> None:
        """Let go of the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class Mailman(threading.Thread):
    """Delivers mail with unique Message-IDs into Dovecot at random moments."""

    def __init__(self, dovecot: DovecotServer, rng: random.Random, rate: float, log: Path) -> None:
        """`rate` messages a second on average, sometimes in bursts."""
        super().__init__(name="crash-test mail", daemon=True)
        self.dovecot = dovecot
        self.rng = rng
        self.rate = rate
        self.log = log
        self.delivered: list[str] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._tag = f"{rng.getrandbits(32):08x}"

    def run(self) -> None:
        """Deliver until stopped."""
        try:
            with self.log.open("a") as log:
                while not self._stop_event.wait(self.rng.expovariate(self.rate / 1.6)):
                    for _ in range(self.rng.choice(BURSTS)):
                        message_id = self._deliver()
                        log.write(message_id + "\n")
                        log.flush()
        except BaseException as error:  # reported by the driver
            self.error = error

    def stop(self) -> None:
        """Stop delivering and wait for the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join()

    def _deliver(self) -> str:
        number = len(self.delivered) + 1
        message_id = f"<{number}.{self._tag}@crash.test>"
        raw = (
            f"From: Sender {number} <sender{number}@crash.test>\r\n"
            f"To: {USER}@127.0.0.1\r\n"
            f"Subject: crash test message {number}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: {message_id}\r\n"
            "\r\n"
            f"Message {number} of the crash test.\r\n"
        ).encode()
        self.dovecot.deliver(USER, raw)
        self.delivered.append(message_id)
        return message_id


class CrashTest:
    """Dovecot, a config folder, and the runs of Home Assistant; see the module docstring."""

    def __init__(self, options: Options, workdir: Path) -> None:
        """Nothing starts before `execute()`."""
        self.options = options
        self.rng = random.Random(options.seed)
        self.workdir = workdir
        self.config = workdir / "config"
        self.logs = workdir / "logs"
        # In memory when possible: the probe fsyncs every record inside the event loop, and a
        # slow disk there would delay the integration's own save, widening what is measured.
        self._shm = Path(tempfile.mkdtemp(prefix="pop3_mail_crash_", dir=SHM)) if SHM else None
        self.probe_file = (self._shm or workdir) / "announced.jsonl"
        self.entry_id = ""
        self.dovecot: DovecotServer | None = None
        self.mailman: Mailman | None = None
        self.run: Run | None = None
        self.runs = 0
        self.ends: list[RunEnd] = []
        self.problems: list[str] = []
        self.record = Record()
        self._probe_tail = Tail(self.probe_file)
        self._login_tail: Tail | None = None
        self._load_time = 10.0  # seconds from start to a loaded entry, measured by the first run

    # - the whole test -

    def execute(self) -> Verdict:
        """Run every phase and judge; processes are stopped by `close()`."""
        self.dovecot = DovecotServer(users={USER: PASSWORD}).start()
        self._login_tail = Tail(self.dovecot.log_path)
        self._write_config()
        self.say(
            f"Dovecot {self.dovecot.version} on 127.0.0.1:{self.dovecot.pop3_port}, "
            f"config in {self.config}, seed {self.options.seed}"
        )

        self._start()
        self._wait_loaded()
        self._stop_cleanly()

        self.mailman = Mailman(
            self.dovecot,
            random.Random(self.rng.getrandbits(64)),
            self.options.rate,
            self.workdir / "delivered.txt",
        )
        self.mailman.start()
        began = time.monotonic()
        kills = 0
        while kills < self.options.kills:
            if (
                self.options.duration is not None
                and time.monotonic() - began > self.options.duration
            ):
                break
            self._kill_cycle()
            kills += 1
            self._mail_ok()
        self.mailman.stop()
        self._mail_ok()

        self._catch_up()
        self._quiet_restart()
        return self._judge()

    def close(self) -> None:
        """Stop whatever still runs: Home Assistant, the mail thread, Dovecot."""
        if self.run is not None:
            self._kill(self.run)
            self.run = None
        if self.mailman is not None:
            self.mailman.stop()
        self._probe_tail.close()
        if self._login_tail is not None:
            self._login_tail.close()
        if self._shm is not None:
            with contextlib.suppress(OSError):
                shutil.copy(self.probe_file, self.workdir / self.probe_file.name)
            shutil.rmtree(self._shm, ignore_errors=True)
        if self.dovecot is not None:
            with contextlib.suppress(OSError):
                shutil.copy(self.dovecot.log_path, self.logs / "dovecot.log")
            self.dovecot.stop()
            self.dovecot = None

    # - phases -

    def _kill_cycle(self) -> None:
        """Start Home Assistant and SIGKILL it on one trigger."""
        trigger = self.rng.choice(self.options.triggers)
        nth = self.rng.randint(1, 3)
        # Half the random kills hit the startup, half a running Home Assistant.
        during_startup = self.rng.random() < 0.5
        delay = self.rng.uniform(0.3, self._load_time) if during_startup else self.rng.uniform(0, 4)
        kill_when = self.rng.choice(KILL_WHEN)
        run = self._start(kill_after=nth if trigger == "instant" else 0, kill_when=kill_when)
        deadline = run.started + TRIGGER_TIMEOUT
        fired = "timeout"
        while time.monotonic() < deadline:
            self._read()
            if run.process.poll() is not None:
                self._read()  # the probe's last records, written just before it died
                self._ended_by_itself(run, trigger, _instant(kill_when, nth))
                return
            if trigger == "login" and self.record.logins - run.logins_before >= nth:
                time.sleep(self.rng.uniform(0, 0.03))
                fired = f"login {nth}"
                break
            if trigger == "announce" and self._announcing_checks(run.number) >= nth:
                time.sleep(self.rng.uniform(0, 0.01))
                fired = f"announce {nth}"
                break
            if trigger == "random":
                since = run.started if during_startup else self.record.loaded.get(run.number)
                if since is not None and time.monotonic() >= since + delay:
                    where = "startup" if during_startup else "loaded"
                    fired = f"random, {where} + {delay:.1f} s"
                    break
            time.sleep(POLL)
        self.ends.append(RunEnd(run.number, killed=True, t=self._kill(run), mode=trigger))
        self.run = None
        self._after_end(run, fired)

    def _ended_by_itself(self, run: Run, trigger: str, instant: str) -> None:
        """The probe's own SIGKILL (`instant`), or Home Assistant dying: a violation."""
        self.run = None
        self._console_closed(run)
        killed = self.record.self_kills.get(run.number)
        if trigger == "instant" and killed is not None:
            self.ends.append(RunEnd(run.number, killed=True, t=killed, mode="instant"))
            self._after_end(run, f"instant, by the probe {instant}")
            return
        self.problems.append(
            f"run {run.number}: Home Assistant exited with code {run.process.returncode} "
            f"on its own; see {self._console_path(run.number)}"
        )
        self.ends.append(RunEnd(run.number, killed=True, t=time.monotonic(), mode="exit"))
        self._after_end(run, f"exit code {run.process.returncode}")

    def _catch_up(self) -> None:
        """A run that lasts until every delivered message was announced, then a clean stop."""
        assert self.mailman is not None
        run = self._start()
        self._wait_loaded()
        delivered = set(self.mailman.delivered)
        deadline = time.monotonic() + self.options.catch_up
        while time.monotonic() < deadline:
            self._read()
            if delivered <= {a.message_id for a in self.record.announcements}:
                break
            time.sleep(0.2)
        # A few more checks: anything announced twice late must show up too.
        self._pause(3 * self.options.check_interval + 1)
        self._stop_cleanly()
        self.say(f"run {run.number}: caught up and stopped cleanly")

    def _quiet_restart(self) -> None:
        """After a clean stop a start announces nothing (the verdict flags any repeat)."""
        run = self._start()
        self._wait_loaded()
        self._pause(3 * self.options.check_interval + 1)
        self._stop_cleanly()
        self.say(f"run {run.number}: restarted after a clean stop and stopped cleanly")

    def _judge(self) -> Verdict:
        assert self.mailman is not None
        self._read()
        for number in range(self.runs):
            console = self._console_path(number)
            text = console.read_text(errors="replace") if console.exists() else ""
            for record in tracebacks_of_integration(text):
                self.problems.append(f"traceback from the integration in run {number}:\n{record}")
        for number, state in self.record.not_loaded.items():
            self.problems.append(f"run {number}: the entry did not load ({state})")
        return judge(
            self.mailman.delivered, self.record.announcements, self.ends, problems=self.problems
        )

    # - Home Assistant -

    def _start(self, *, kill_after: int = 0, kill_when: str = "0") -> Run:
        """Start one Home Assistant on the config folder; returns without waiting."""
        number = self.runs
        self.runs += 1
        self._read()
        self._prepare_start()
        env = {
            **os.environ,
            "CRASH_PROBE_FILE": str(self.probe_file),
            "CRASH_PROBE_RUN": str(number),
            "CRASH_PROBE_ENTRY": self.entry_id,
            "CRASH_PROBE_INTERVAL": str(self.options.check_interval),
            "CRASH_PROBE_KILL_AFTER": str(kill_after),
            "CRASH_PROBE_KILL_WHEN": kill_when,
        }
        console = self._console_path(number).open("wb")
        process = subprocess.Popen(
            [
                self.options.python,
                "-m",
                "homeassistant",
                "--config",
                str(self.config),
                "--skip-pip",
                "--log-no-color",
            ],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            # Own session: Ctrl-C reaches only the driver, which then kills it by its id.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (the mail thread only writes files)
        )
        self.run = Run(number, process, console, time.monotonic(), self.record.logins)
        return self.run

    def _wait_loaded(self) -> None:
        run = self.run
        assert run is not None
        deadline = run.started + START_TIMEOUT
        while run.number not in self.record.loaded:
            if run.number in self.record.not_loaded or run.process.poll() is not None:
                raise HarnessError(
                    f"run {run.number}: the pop3_mail entry did not load; "
                    f"see {self._console_path(run.number)}"
                )
            if time.monotonic() > deadline:
                raise HarnessError(f"run {run.number}: not loaded after {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
            self._read()
        self._load_time = time.monotonic() - run.started
        self.say(f"run {run.number}: loaded in {self._load_time:.1f} s")

    def _stop_cleanly(self) -> None:
        run = self.run
        assert run is not None
        asked = time.monotonic()
        run.process.terminate()
        try:
            code = run.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill(run)
            raise HarnessError(f"run {run.number} did not stop in {STOP_TIMEOUT:.0f} s") from None
        self.run = None
        self._console_closed(run)
        if code != 0:
            self.problems.append(f"run {run.number}: clean stop exited with code {code}")
        self.ends.append(RunEnd(run.number, killed=False, t=asked, mode="stop"))
        self._after_end(run, "clean stop")

    def _kill(self, run: Run) -> float:
        """SIGKILL, wait; returns the moment of the kill."""
        killed = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            run.process.send_signal(signal.SIGKILL)
        run.process.wait()
        self._console_closed(run)
        return killed

    def _console_closed(self, run: Run) -> None:
        if not run.console.closed:
            run.console.close()

    def _after_end(self, run: Run, how: str) -> None:
        """Every state file must be whole after any end of Home Assistant."""
        self._read()
        problems = state_file_problems(self.config / ".storage", self.entry_id)
        self.problems.extend(f"after run {run.number} ({how}): {p}" for p in problems)
        checks = self._announcing_checks(run.number)
        self.say(
            f"run {run.number}: ended by {how} after {time.monotonic() - run.started:.1f} s, "
            f"{checks} announcing checks, {len(self._of_run(run.number))} announcements"
            + (f"; STATE: {'; '.join(problems)}" if problems else "")
        )

    def _console_path(self, number: int) -> Path:
        return self.logs / f"run-{number:03d}.log"

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._read()
            time.sleep(0.1)

    # - records -

    def _read(self) -> None:
        for line in self._probe_tail.lines():
            if not line.strip():
                continue
            record = json.loads(line)
            kind, run = record["kind"], record["run"]
            if kind == "event":
                self.record.announcing_checks.setdefault(run, set()).add(record["check"])
                self.record.announcements.append(
                    Announcement(
                        run,
                        record["check"],
                        record["t"],
                        str(record["uid"]),
                        str(record["message_id"]),
                    )
                )
            elif kind == "loaded":
                self.record.loaded[run] = time.monotonic()
            elif kind == "kill":
                self.record.self_kills[run] = record["t"]
            elif kind == "not_loaded":
                self.record.not_loaded[run] = record["state"]
        if self._login_tail is not None:
            self.record.logins += sum(LOGIN_LINE in line for line in self._login_tail.lines())

    def _of_run(self, number: int) -> list[Announcement]:
        return [a for a in self.record.announcements if a.run == number]

    def _announcing_checks(self, number: int) -> int:
        return len(self.record.announcing_checks.get(number, ()))

    def _mail_ok(self) -> None:
        if self.mailman is not None and self.mailman.error is not None:
            raise HarnessError(f"delivering mail failed: {self.mailman.error!r}")

    # - the config folder -

    def _write_config(self) -> None:
        """The temporary config: YAML, the pre-made entry, the integration and the probe."""
        from homeassistant.util.ulid import ulid_now  # noqa: PLC0415

        from demo.bootstrap import write_http_settings  # noqa: PLC0415 (imports Home Assistant)

        assert self.dovecot is not None
        (self.config / ".storage").mkdir(parents=True)
        (self.config / "packages").mkdir()
        self.logs.mkdir()
        # Without the web UI's package Home Assistant would start in recovery mode (no custom
        # integrations); a development folder of the frontend needs no package.
        frontend = self.workdir / "frontend"
        (frontend / "hass_frontend").mkdir(parents=True)
        (self.config / "configuration.yaml").write_text(
            CONFIGURATION.format(
                frontend=frontend, level="debug" if self.options.verbose else "info"
            )
        )
        custom = self.config / "custom_components"
        custom.mkdir()
        (custom / "pop3_mail").symlink_to(self.options.integration, target_is_directory=True)
        shutil.copytree(PROBE, custom / "crash_probe", ignore=shutil.ignore_patterns("__pycache__"))
        # Home Assistant serves HTTP for its default integrations: loopback, a free port.
        write_http_settings(self.config, free_port("127.0.0.1"))
        self.entry_id = ulid_now()
        version, minor_version = _flow_version()
        entry = {
            "entry_id": self.entry_id,
            "version": version,
            "minor_version": minor_version,
            "domain": "pop3_mail",
            "title": f"{USER}@127.0.0.1",
            "data": {
                "host": "127.0.0.1",
                "security": "none",
                "port": self.dovecot.pop3_port,
                "username": USER,
                "password": PASSWORD,
                "verify_ssl": True,
            },
            "options": {
                "scan_interval": 10,
                "text_length": 200,
                "delete_policy": "keep",
                "keep_days": 14,
            },
            "pref_disable_new_entities": False,
            "pref_disable_polling": False,
            "source": "user",
            "unique_id": f"{USER}@127.0.0.1",
            "disabled_by": None,
        }
        document = {
            "version": 1,
            "minor_version": 1,
            "key": "core.config_entries",
            "data": {"entries": [entry]},
        }
        (self.config / ".storage" / "core.config_entries").write_text(json.dumps(document))

    def _prepare_start(self) -> None:
        """Store the entry disabled (the probe enables it once it listens; see its docstring)."""
        path = self.config / ".storage" / "core.config_entries"
        document = json.loads(path.read_text())
        for entry in document["data"]["entries"]:
            if entry["entry_id"] == self.entry_id:
                entry["disabled_by"] = "user"
        tmp = path.with_name(path.name + ".crash_test")
        tmp.write_text(json.dumps(document))
        tmp.replace(path)

    def say(self, text: str) -> None:
        """A progress line."""
        print(f"crash_test: {text}", flush=True)


CONFIGURATION = """\
# Made by the pop3_mail crash test (tests/crash/driver.py); no default_config.
homeassistant:
  name: pop3_mail crash test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: ES
  currency: EUR
  packages: !include_dir_named packages
frontend:
  development_repo: {frontend}
logger:
  default: warning
  logs:
    custom_components.pop3_mail: {level}
crash_probe:
"""


def state_file_problems(storage: Path, entry_id: str) -> list[str]:
    """What is wrong with the integration's files in `.storage` (empty when all are whole).

    The main state file must exist (the first run saved it) and every file of the
    integration (the state, and a journal or the like beside it) must be a JSON
    document of Home Assistant's `Store`. Temporary files of a write in progress
    (`tmp*`, `*.tmp`) are not state.
    """
    problems = []
    main = storage / f"pop3_mail.{entry_id}"
    if not main.exists():
        problems.append(f"{main.name} is missing")
    for path in sorted(storage.glob("pop3_mail*")):
        if path.name.endswith(".tmp") or not path.is_file():
            continue
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as error:
            problems.append(f"{path.name} is not valid JSON: {error}")
            continue
        if not isinstance(document, dict) or not {"version", "key", "data"} <= document.keys():
            problems.append(f"{path.name} is not a Store document: {str(document)[:200]}")
    return problems


def _instant(kill_when: str, nth: int) -> str:
    if kill_when == "during":
        return f"during announcing check {nth}"
    return f"{kill_when} ms after an announcement of check {nth}"


def _flow_version() -> tuple[int, int]:
    from custom_components.pop3_mail.config_flow import Pop3MailConfigFlow  # noqa: PLC0415

    return Pop3MailConfigFlow.VERSION, Pop3MailConfigFlow.MINOR_VERSION


def _die_with_parent() -> None:
    """In the child: SIGKILL when the driver dies, so Home Assistant never outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def report(verdict: Verdict) -> None:
    """Print the details, then the summary line last."""
    for violation in verdict.violations:
        print(f"VIOLATION: {violation}")
    for run, ms, was_repeated in verdict.last_batch_before_kill:
        print(
            f"run {run}: killed {ms:.1f} ms after its last announcement; "
            f"{'that check was repeated by the next start' if was_repeated else 'nothing repeated'}"
        )
    repeated = [ms for _, ms, was in verdict.last_batch_before_kill if was]
    kept = [ms for _, ms, was in verdict.last_batch_before_kill if not was]
    if repeated:
        print(
            f"duplicate window: {len(verdict.repeats)} announcements repeated after "
            f"{len(repeated)} kills at most {max(repeated):.1f} ms after a check's last "
            f"announcement"
            + (
                f"; the earliest kill that repeated nothing came {min(kept):.1f} ms after"
                if kept
                else ""
            )
        )
    print(verdict.summary(), flush=True)


def parse_args(argv: list[str] | None) -> Options:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/crash_test", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--kills",
        type=int,
        help=f"SIGKILLs (default {DEFAULT_KILLS}, or unlimited with --duration)",
    )
    parser.add_argument(
        "--triggers",
        default=",".join(TRIGGERS),
        help=f"the kill triggers to choose from (default {','.join(TRIGGERS)})",
    )
    parser.add_argument("--duration", type=float, help="stop killing after this many seconds")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument(
        "--python",
        default=os.environ.get("CRASH_TEST_PYTHON", sys.executable),
        help="Python of the venv with Home Assistant (default: $CRASH_TEST_PYTHON, else this one)",
    )
    parser.add_argument(
        "--integration",
        type=Path,
        default=ROOT / "custom_components" / "pop3_mail",
        help="the integration's folder (default: this tree's)",
    )
    parser.add_argument("--rate", type=float, default=3.0, help="messages a second (default 3)")
    parser.add_argument(
        "--check-interval", type=float, default=1.0, help="seconds between forced checks"
    )
    parser.add_argument(
        "--catch-up", type=float, default=90.0, help="seconds the last run may take to catch up"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--verbose", action="store_true", help="log the integration at debug")
    args = parser.parse_args(argv)
    kills = (
        args.kills
        if args.kills is not None
        else (sys.maxsize if args.duration is not None else DEFAULT_KILLS)
    )
    triggers = tuple(args.triggers.split(","))
    if not triggers or not set(triggers) <= set(TRIGGERS):
        parser.error(f"--triggers: choose from {', '.join(TRIGGERS)}")
    return Options(
        kills=kills,
        triggers=triggers,
        duration=args.duration,
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(2**32),
        python=args.python,
        integration=args.integration.resolve(),
        rate=args.rate,
        check_interval=args.check_interval,
        catch_up=args.catch_up,
        keep=args.keep,
        verbose=args.verbose,
    )


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every process is stopped on the way out."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the crash test; returns the exit code."""
    options = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pop3_mail_crash_"))
    test = CrashTest(options, workdir)
    verdict: Verdict | None = None
    code = 2
    try:
        with _terminate_as_interrupt():
            verdict = test.execute()
            code = 0 if verdict.ok else 1
    except HarnessError as error:
        print(f"crash_test: cannot judge: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("crash_test: interrupted", file=sys.stderr)
        code = 130
    finally:
        test.close()
    if verdict is None:
        delivered = test.mailman.delivered if test.mailman else []
        verdict = judge(delivered, test.record.announcements, test.ends)
        verdict.violations.clear()
    keep = options.keep or code != 0
    if keep:
        print(f"crash_test: records and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    report(verdict)
    return code
