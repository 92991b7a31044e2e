"""A small OAuth2 token introspection endpoint (RFC 7662) for Dovecot's oauth2 passdb.

Dovecot, configured with `introspection_mode = post`, POSTs `token=<access token>`
here for every XOAUTH2 or OAUTHBEARER login. The server answers `{"active": true,
"username": <user>}` for exactly the tokens in `tokens` (token -> user), and
`{"active": false}` for any other, so a test revokes a token by removing it.
It runs in a thread on 127.0.0.1 (Dovecot and the tests' event loops both reach it).

    with IntrospectionServer() as introspection:
        introspection.url                   # for dovecot's introspection_url
        introspection.tokens["access-1"] = "alice"
        introspection.requests              # the tokens asked about, in order
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import socketserver
import threading
from typing import Any, Self
from urllib.parse import parse_qs

from tests.servers.dovecot import _raw_socket

# A token endpoint's answer is small; a bigger body is a broken client, not a token.
_MAX_BODY = 64 * 1024


class _HTTPServer(ThreadingHTTPServer):
    """An HTTP server whose listening socket bypasses pytest-socket's guard.

    It is started by a session fixture, where the current test may not allow sockets;
    only Dovecot connects to it.
    """

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        socketserver.BaseServer.__init__(self, address, handler)
        raw_socket, _connect = _raw_socket()
        self.socket = raw_socket(self.address_family, self.socket_type)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise


class IntrospectionServer:
    """The introspection endpoint; see the module docstring."""

    def __init__(self) -> None:
        """Configure; nothing listens before `start()`."""
        self.tokens: dict[str, str] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The introspection URL."""
        if self._server is None:
            raise RuntimeError("start() the server first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/introspect"

    def answer(self, token: str) -> dict[str, Any]:
        """The introspection response for `token` (also records the request)."""
        with self._lock:
            self.requests.append(token)
            user = self.tokens.get(token)
        if user is None:
            return {"active": False}
        return {"active": True, "username": user, "scope": "POP.AccessAsUser.All"}

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/introspect" or not 0 < length <= _MAX_BODY:
                    self.send_error(400)
                    return
                form = parse_qs(self.rfile.read(length).decode(errors="replace"))
                body = json.dumps(server.answer(form.get("token", [""])[0])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # the tests read `requests`; stderr stays quiet

        self._server = _HTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="introspection", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and wait for the thread."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        """Start."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop."""
        self.stop()
