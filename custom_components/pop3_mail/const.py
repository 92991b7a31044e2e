"""Constants of the POP3 Mail integration (public names are fixed by the contract)."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

from .pop3 import Security
from .sync.message import EVENT_LIMIT
from .sync.retention import DeletePolicy

DOMAIN: Final = "pop3_mail"
LOGGER: Final = logging.getLogger(__package__)

# Keys of entry.data beyond Home Assistant's own host/port/username/password/verify_ssl.
CONF_SECURITY: Final = "security"
# The same strings as Home Assistant's own constants, so every key can be imported from here.
CONF_VERIFY_SSL: Final = "verify_ssl"
CONF_SCAN_INTERVAL: Final = "scan_interval"

# Keys of entry.options.
CONF_TEXT_LENGTH: Final = "text_length"
CONF_ARCHIVE_FOLDER: Final = "archive_folder"
CONF_DELETE_POLICY: Final = "delete_policy"
CONF_KEEP_DAYS: Final = "keep_days"


DEFAULT_SECURITY: Final = Security.SSL
DEFAULT_VERIFY_SSL: Final = True

DEFAULT_SCAN_INTERVAL: Final = 60
MIN_SCAN_INTERVAL: Final = 10
MAX_SCAN_INTERVAL: Final = 86_400
DEFAULT_TEXT_LENGTH: Final = 0
MAX_TEXT_LENGTH: Final = 8_000
DEFAULT_DELETE_POLICY: Final = DeletePolicy.KEEP
DEFAULT_KEEP_DAYS: Final = 14
MIN_KEEP_DAYS: Final = 1
MAX_KEEP_DAYS: Final = 3_650

EVENT_NEW_MESSAGE: Final = "pop3_mail_new_message"
# The JSON of one bus event never exceeds this (the recorder and websocket clients choke on more);
# one source: the pure layer that cuts events.
MAX_EVENT_BYTES: Final = EVENT_LIMIT

# Deadlines of one POP3 session; a check that runs past them fails and is retried later.
COMMAND_TIMEOUT: Final = 30.0
SESSION_TIMEOUT: Final = 300.0

# Consecutive failed checks double the interval up to this: a locked or sick server is not hammered.
MAX_BACKOFF: Final = timedelta(minutes=30)


ISSUE_ARCHIVE_FAILED: Final = "archive_failed"

# Watches: config subentries of this type, with these fields.
SUBENTRY_WATCH: Final = "watch"
CONF_WATCH_NAME: Final = "name"
CONF_WATCH_SENDER: Final = "sender"
CONF_WATCH_SUBJECT: Final = "subject"
