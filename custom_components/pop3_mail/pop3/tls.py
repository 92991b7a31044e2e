"""The TLS settings of the client: TLS 1.2 at least, Home Assistant's intermediate ciphers."""

from __future__ import annotations

import functools
import ssl
from typing import Final

#: Copied from Home Assistant's `homeassistant/util/ssl.py`, `SSL_CIPHER_LISTS`
#: intermediate (Mozilla's intermediate list); this package must not import Home
#: Assistant. Static-RSA and CBC suites are only used with TLS 1.2 servers that
#: offer nothing better.
INTERMEDIATE_CIPHERS: Final = (
    "ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-AES128-GCM-SHA256:"
    "DHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-SHA256:"
    "ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES256-SHA384:"
    "ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES256-SHA:"
    "ECDHE-RSA-AES256-SHA:"
    "DHE-RSA-AES128-SHA256:"
    "DHE-RSA-AES128-SHA:"
    "DHE-RSA-AES256-SHA256:"
    "DHE-RSA-AES256-SHA:"
    "ECDHE-ECDSA-DES-CBC3-SHA:"
    "ECDHE-RSA-DES-CBC3-SHA:"
    "EDH-RSA-DES-CBC3-SHA:"
    "AES128-GCM-SHA256:"
    "AES256-GCM-SHA384:"
    "AES128-SHA256:"
    "AES256-SHA256:"
    "AES128-SHA:"
    "AES256-SHA:"
    "DES-CBC3-SHA:"
    "!DSS"
)
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2


@functools.cache
def default_ssl_context(*, verify: bool = True) -> ssl.SSLContext:
    """A client context trusting the system CAs (read once), or trusting anything.

    TLS 1.2 at least, with `INTERMEDIATE_CIPHERS` for TLS 1.2.
    """
    context = ssl.create_default_context()
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tighten(context: ssl.SSLContext) -> ssl.SSLContext:
    """Raise a caller's context to TLS 1.2 at least; nothing else is changed (or loosened)."""
    # MINIMUM_SUPPORTED is -2: also below TLS 1.2.
    context.minimum_version = max(context.minimum_version, MINIMUM_VERSION)
    return context
