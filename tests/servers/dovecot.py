"""A real Dovecot POP3 server for tests and benchmarks (Dovecot 2.3 or 2.4).

Follows /work/shared/dovecot.md: the config matching `dovecot --version`, POP3
(with STLS) and POP3S on free ports of 127.0.0.1, a passwd-file of users with a
Maildir each, and the test PKI's certificate. As root, Dovecot runs as uid/gid
65534 through `setpriv`; otherwise as the current user.

    with DovecotServer() as dovecot:                    # or .start() / .stop()
        dovecot.host, dovecot.pop3_port, dovecot.pop3s_port, dovecot.version
        dovecot.pki.client_context()                    # trusts the server's certificate
        dovecot.add_user("dave", "pw")                  # users: alice/secret, bob/hunter2, ...
        name, password = dovecot.new_user()             # a fresh user, random password
        dovecot.deliver("dave", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        dovecot.deliver_many("dave", messages)         # fast bulk delivery (benchmarks)
        dovecot.clear("dave")                           # empty Maildir and Dovecot's indexes

Dovecot's auth penalty is switched off (the documented `anvil-auth-penalty`
`mode = 0`): otherwise one wrong-password test delays the next login from
127.0.0.1 by up to 4 s. The ~2 s delay before answering a wrong password stays.

Variants: `pop3_lock_session=True` (a second concurrent login waits ~10 s, then
gets [IN-USE]); `plaintext_refused=True` listens on 127.0.0.2 with `ssl = required`
and clear-text auth disabled, so a client on 127.0.0.1 is refused USER/PASS without
TLS (Dovecot counts a connection as secured when both ends have the same address).
Its refusal says "Plaintext" in 2.3 and "Cleartext" in 2.4: `plaintext_refused_reply`.
`oauth2_introspection_url=url` adds SASL XOAUTH2 and OAUTHBEARER, whose tokens Dovecot
checks by POSTing them to `url` (RFC 7662 introspection, `tests/servers/introspection.py`):
in 2.3 an oauth2 passdb for those mechanisms (`dovecot-oauth2.conf.ext`), in 2.4 the
`oauth2 {}` settings (2.4 no longer uses a passdb for tokens). Passwords work as before.

The working directory must be reachable by uid 65534 when running as root, so by
default a fresh one is made with `tempfile.mkdtemp()` and removed by `stop()`;
`in_memory=True` makes it under /dev/shm (tmpfs), for benchmarks with 100,000
messages (`deliver_many`), where the disk would dominate the figures.
The binary is `dovecot` from PATH (or /usr/sbin), unless the environment variable
POP3_MAIL_DOVECOT names another one (see `find_dovecot`).
In pytest use the fixtures `dovecot`, `dovecot_user`, `dovecot_factory`
(tests/servers/fixtures.py).
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import itertools
import os
from pathlib import Path
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Self

from tests.servers.certs import TestPKI, make_test_pki

if TYPE_CHECKING:
    from collections.abc import Iterable

NOBODY = 65534
DOVECOT_ENV = "POP3_MAIL_DOVECOT"
POOL = 400
DEFAULT_USERS = {"alice": "secret", "bob": "hunter2", "carol": "w0nderland"}
# dovecot-uidvalidity* stays: the next UIDVALIDITY is then the last one + 1, so uids never repeat.
_INDEX_FILES = ("dovecot.index", "dovecot-uidlist", "dovecot-keywords")
_names = itertools.count(1)
_TMPFS = Path("/dev/shm")  # noqa: S108  (mkdtemp makes a private directory in it)


def find_dovecot() -> str | None:
    """Path of the dovecot binary, or None when it is not installed.

    `POP3_MAIL_DOVECOT` names another binary, or a script taking dovecot's arguments
    (scripts/dovecot24 makes one for Dovecot 2.4); it must then be executable, so that
    a typo fails instead of quietly testing the system's Dovecot.
    """
    chosen = os.environ.get(DOVECOT_ENV)
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise FileNotFoundError(f"{DOVECOT_ENV}={chosen}: no such executable")
        return os.path.abspath(path)
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def dovecot_version(binary: str) -> str:
    """The version `dovecot --version` reports, e.g. "2.3.19.1"."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def _raw_socket() -> tuple[type[socket.socket], Any]:
    """The socket class and connect function, bypassing pytest-socket's guards.

    Readiness probes run in session fixtures, where pytest-socket (and Home
    Assistant's host allow-list) may be active for the current test.
    """
    guard = sys.modules.get("pytest_socket")
    cls = getattr(guard, "_true_socket", socket.socket)
    return cls, getattr(guard, "_true_connect", cls.connect)


def free_port(host: str) -> int:
    """A TCP port nobody listens on right now at `host`."""
    cls, _ = _raw_socket()
    with cls(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    cls, connect = _raw_socket()
    with cls(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            connect(sock, (host, port))
        except OSError:
            return False
        return True


class DovecotServer:
    """One Dovecot instance in its own directory; see the module docstring."""

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        pki: TestPKI | None = None,
        users: dict[str, str] | None = None,
        pop3_lock_session: bool = False,
        plaintext_refused: bool = False,
        oauth2_introspection_url: str | None = None,
        binary: str | None = None,
        extra_config: str = "",
        startup_timeout: float = 20.0,
        in_memory: bool = False,
    ) -> None:
        """Configure; nothing runs before `start()`."""
        self.binary = binary or find_dovecot() or "dovecot"
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self._pki = pki
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.pop3_lock_session = pop3_lock_session
        self.plaintext_refused = plaintext_refused
        self.oauth2_introspection_url = oauth2_introspection_url
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self.in_memory = in_memory
        self.host = "127.0.0.2" if plaintext_refused else "127.0.0.1"
        self.pop3_port = 0
        self.pop3s_port = 0
        self.version = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        # Users made before start, so that handing one out needs no reload of the users file.
        self._pool = [
            (f"pool{i}x{secrets.token_hex(3)}", secrets.token_urlsafe(12)) for i in range(POOL)
        ]

    # - lifecycle -

    @property
    def pki(self) -> TestPKI:
        """The PKI whose server certificate Dovecot presents."""
        if self._pki is None:
            raise RuntimeError("start() the server first")
        return self._pki

    @property
    def root(self) -> Path:
        """The working directory (config, run, logs, mail)."""
        if self.directory is None:
            raise RuntimeError("start() the server first")
        return self.directory

    @property
    def plaintext_refused_reply(self) -> str:
        """The -ERR line of the `plaintext_refused` variant to USER/PASS without TLS."""
        if not self.version:
            raise RuntimeError("start() the server first")
        word = "Cleartext" if _version_tuple(self.version) >= (2, 4) else "Plaintext"
        return f"-ERR [AUTH] {word} authentication disallowed on non-secure (SSL/TLS) connections."

    @property
    def log_path(self) -> Path:
        """Dovecot's log file."""
        return self.root / "log" / "dovecot.log"

    def start(self) -> Self:
        """Write the configuration, start Dovecot and wait until both ports accept."""
        self.version = dovecot_version(self.binary)
        if self.directory is None:
            base = _TMPFS if self.in_memory and _TMPFS.is_dir() else None
            self.directory = Path(tempfile.mkdtemp(prefix="pop3-dovecot-", dir=base))
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            _check_reachable(self.directory)
        if self._pki is None:
            self._pki = make_test_pki(self.directory / "pki")
        for sub in ("run", "state", "log", "mail", "ssl"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.copyfile(self.pki.cert, self.root / "ssl" / "cert.pem")
        shutil.copyfile(self.pki.key, self.root / "ssl" / "key.pem")
        self._write_users()
        for user in self.users:
            self._make_maildir(user)
        try:
            for attempt in range(3):
                self.pop3_port = free_port(self.host)
                self.pop3s_port = free_port(self.host)
                (self.root / "dovecot.conf").write_text(self._config())
                self._chown_tree(self.root)
                try:
                    self._launch()
                except _PortTakenError:
                    if attempt == 2:
                        raise
                else:
                    return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop Dovecot by the PID in run/master.pid, wait for it to exit, remove our directory."""
        process, self._process = self._process, None
        if process is not None:
            pid_file = self.root / "run" / "master.pid"
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        """Start."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop."""
        self.stop()

    def _launch(self) -> None:
        command = [self.binary, "-F", "-c", str(self.root / "dovecot.conf")]
        if self._as_root:
            # Without dropping to an unprivileged uid, logins fail with "User is missing UID".
            ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            command = ["setpriv", *ids, *command]
        with (self.root / "log" / "stderr.log").open("ab") as stderr:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                log = self._log_tail()
                if "Address already in use" in log:
                    raise _PortTakenError(log)
                raise RuntimeError(f"dovecot exited at start:\n{log}")
            if port_open(self.host, self.pop3_port) and port_open(self.host, self.pop3s_port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not open its ports in time:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        parts = []
        for name in ("stderr.log", "dovecot.log"):
            with contextlib.suppress(OSError):
                parts.append((self.root / "log" / name).read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    # - configuration -

    def _config(self) -> str:
        d = self.root
        if self._as_root:
            user, group = "nobody", "nogroup"
        else:
            user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
        is_24 = _version_tuple(self.version) >= (2, 4)
        head = "dovecot_config_version = 2.4.0\ndovecot_storage_version = 2.4.0\n" if is_24 else ""
        common = f"""protocols = pop3
listen = {self.host}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log
default_internal_user = {user}
default_login_user = {user}
default_internal_group = {group}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
"""
        ssl_mode = "required" if self.plaintext_refused else "yes"
        mechanisms = (
            "plain login xoauth2 oauthbearer" if self.oauth2_introspection_url else "plain login"
        )
        if is_24:
            cleartext = "no" if self.plaintext_refused else "yes"
            rest = f"""ssl = {ssl_mode}
ssl_server_cert_file = {d}/ssl/cert.pem
ssl_server_key_file = {d}/ssl/key.pem
auth_allow_cleartext = {cleartext}
auth_mechanisms = {mechanisms}
passdb passwd-file {{
  passwd_file_path = {d}/users
}}
userdb passwd-file {{
  passwd_file_path = {d}/users
}}
mail_driver = maildir
mail_path = ~/Maildir
"""
        else:
            disable = "yes" if self.plaintext_refused else "no"
            rest = f"""ssl = {ssl_mode}
ssl_cert = <{d}/ssl/cert.pem
ssl_key = <{d}/ssl/key.pem
disable_plaintext_auth = {disable}
auth_mechanisms = {mechanisms}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
mail_location = maildir:~/Maildir
"""
        lock = "pop3_lock_session = yes\n" if self.pop3_lock_session else ""
        oauth2 = self._oauth2_config(is_24) if self.oauth2_introspection_url else ""
        return head + common + rest + lock + oauth2 + self.extra_config

    def _oauth2_config(self, is_24: bool) -> str:
        """XOAUTH2 and OAUTHBEARER checked against the introspection URL (see the docstring)."""
        # The user in the XOAUTH2 message must be the `username` the endpoint returns for the
        # token (username_validation_format, %u by default); `active` must be true.
        settings = f"""introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
username_attribute = username
active_attribute = active
active_value = true
"""
        if is_24:
            indented = "".join(f"  {line}\n" for line in settings.splitlines())
            return f"oauth2 {{\n{indented}}}\n"
        path = self.root / "dovecot-oauth2.conf.ext"
        path.write_text(settings)
        self._chown(path)
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {path}
}}
"""

    def _write_users(self) -> None:
        lines = [
            f"{name}:{{PLAIN}}{password}::::{self.root}/mail/{name}::\n"
            for name, password in (*self.users.items(), *self._pool)
        ]
        path = self.root / "users"
        # Write then rename, so Dovecot never reads a half-written file.
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        self._chown(tmp)
        tmp.replace(path)

    # - mailboxes -

    def maildir(self, user: str) -> Path:
        """The user's Maildir (with cur/, new/, tmp/)."""
        return self.root / "mail" / user / "Maildir"

    def add_user(self, name: str, password: str) -> str:
        """Add a user with an empty Maildir; return the name.

        Dovecot re-reads its users file at most once a second, so this waits up to 1 s;
        `new_user()` is instant.
        """
        if name in self.users:
            raise ValueError(f"user {name!r} exists")
        self.users[name] = password
        self._make_maildir(name)
        self._write_users()
        # Dovecot re-reads the users file at most once per wall-clock second.
        time.sleep(1.01 - time.time() % 1)
        return name

    def new_user(self) -> tuple[str, str]:
        """A fresh user (random password, empty Maildir) from the pool made at start."""
        if not self._pool:
            name, password = f"user{next(_names)}x{secrets.token_hex(3)}", secrets.token_urlsafe(12)
            return self.add_user(name, password), password
        name, password = self._pool.pop(0)
        self.users[name] = password
        self._make_maildir(name)
        return name, password

    def deliver(self, user: str, raw: bytes) -> Path:
        """Deliver one message into the user's Maildir/new; return the file."""
        return self._deliver(self.maildir(user), raw)

    def deliver_many(self, user: str, messages: Iterable[bytes]) -> int:
        """Deliver many messages fast (benchmarks); return how many were written."""
        maildir = self.maildir(user)
        count = 0
        for raw in messages:
            self._deliver(maildir, raw)
            count += 1
        return count

    def clear(self, user: str) -> None:
        """Empty the user's Maildir and Dovecot's indexes; new mail gets a new UIDVALIDITY.

        Uids (`%08Xu%08Xv`) therefore never repeat, even within the same second.
        """
        maildir = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            for path in (maildir / sub).iterdir():
                path.unlink()
        for path in maildir.iterdir():
            if path.is_file() and path.name.startswith(_INDEX_FILES):
                path.unlink()

    def _deliver(self, maildir: Path, raw: bytes) -> Path:
        # <epoch>.M<n>P<pid>: Dovecot assigns uids in this name order, so delivery order holds.
        name = f"{int(time.time())}.M{next(_names)}P{os.getpid()}.pop3test"
        tmp = maildir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            if self._as_root:
                os.fchown(fd, NOBODY, NOBODY)
        finally:
            os.close(fd)
        final = maildir / "new" / name
        tmp.rename(final)
        return final

    def _make_maildir(self, user: str) -> None:
        home = self.root / "mail" / user
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        self._chown_tree(home)

    # - ownership -

    def _chown(self, path: Path) -> None:
        if self._as_root:
            os.chown(path, NOBODY, NOBODY)

    def _chown_tree(self, top: Path) -> None:
        if not self._as_root:
            return
        self._chown(top)
        for base, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                os.chown(os.path.join(base, name), NOBODY, NOBODY, follow_symlinks=False)


class _PortTakenError(RuntimeError):
    """Someone took a port between choosing it and Dovecot binding it."""


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def _check_reachable(directory: Path) -> None:
    """Fail early when uid 65534 could not reach `directory` (e.g. under a 0700 pytest tmp)."""
    for parent in directory.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(
                f"{directory}: {parent} is not searchable by others; Dovecot runs as uid "
                f"{NOBODY} and could not reach it (use a directory under /tmp)"
            )
