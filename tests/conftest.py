"""Shared test configuration.

The integration is imported first: Home Assistant's own testing config would
otherwise put its `custom_components` package ahead of ours.
"""

from __future__ import annotations

import custom_components.pop3_mail  # noqa: F401  (must come before Home Assistant's test helpers)

pytest_plugins = ["tests.servers.fixtures"]
