"""Shared test configuration.

The integration is imported first: Home Assistant's own testing config would
otherwise put its `custom_components` package ahead of ours.
"""

from __future__ import annotations

import os

from hypothesis import settings

import custom_components.pop3_mail  # noqa: F401  (must come before Home Assistant's test helpers)

# In CI the property tests replay the same examples every run (a verdict on the change, not
# on the dice); developers' runs keep exploring new ones and report any failure they find.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

pytest_plugins = ["tests.servers.fixtures"]
