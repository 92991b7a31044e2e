"""A small blocking client for the running demo's HTTP API (standard library only).

api = HomeAssistantAPI("http://127.0.0.1:8123")
api.wait_until_up(timeout=120)
api.login("demo", "demo-pop3")           # the login flow a browser uses; keeps the tokens
api.get("/api/states/sensor.demo_127_0_0_1_messages")
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen


class HomeAssistantAPI:
    """Logs in like the frontend does and calls the REST API with the access token."""

    def __init__(self, base_url: str) -> None:
        """`base_url` like http://127.0.0.1:8123 (no trailing slash)."""
        self.base_url = base_url.rstrip("/")
        self.client_id = f"{self.base_url}/"
        self.tokens: dict[str, Any] = {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
        # Always http://127.0.0.1 (our own instance), never a URL from outside.
        request = Request(self.base_url + path, data=data, headers=headers, method=method)  # noqa: S310
        with urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode()
            is_json = response.headers.get_content_type() == "application/json"
        if not text:
            return None
        # Most answers are JSON; /api/template answers plain text.
        return json.loads(text) if is_json else text

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Any method on an API path with the access token, `body` sent as JSON; the answer."""
        return self._request(method, path, body=body)

    def get(self, path: str) -> Any:
        """GET an API path with the access token; the decoded JSON."""
        return self._request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST JSON to an API path with the access token; the decoded JSON."""
        return self._request("POST", path, body=body or {})

    def wait_until_up(self, timeout: float) -> None:
        """Wait until the HTTP server answers (the frontend's manifest is served)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", "/manifest.json", auth=False)
            except (URLError, ConnectionError, HTTPError, TimeoutError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.base_url} did not answer in {timeout:.0f} s"
                    ) from None
                time.sleep(0.5)
            else:
                return

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in through the login flow (as the login page does); returns the tokens."""
        flow = self._request(
            "POST",
            "/auth/login_flow",
            body={
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.base_url}/?auth_callback=1",
            },
            auth=False,
        )
        result = self._request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            body={"client_id": self.client_id, "username": username, "password": password},
            auth=False,
        )
        if result.get("type") != "create_entry":
            raise PermissionError(f"login as {username} failed: {result.get('errors')}")
        self.tokens = self._request(
            "POST",
            "/auth/token",
            form={
                "grant_type": "authorization_code",
                "code": result["result"],
                "client_id": self.client_id,
            },
            auth=False,
        )
        return self.tokens

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """The state object of an entity, or None when it does not exist (yet)."""
        try:
            result: dict[str, Any] = self.get(f"/api/states/{entity_id}")
        except HTTPError as err:
            if err.code == 404:
                return None
            raise
        return result

    def config_entries(self, domain: str) -> list[dict[str, Any]]:
        """The config entries of an integration, with their `state` (e.g. "loaded")."""
        entries: list[dict[str, Any]] = self.get("/api/config/config_entries/entry")
        return [entry for entry in entries if entry["domain"] == domain]
