"""An asyncio POP3 client with a sans-I/O core. Imports nothing of Home Assistant.

    async with connect("pop.example.com", username="alice", password="secret") as session:
        count, size = await session.stat()
        results = await session.pipeline([Uidl(count), Top(count, 0)])

`protocol.POP3Protocol` is the sans-I/O core (bytes in, typed answers out);
`client` is the asyncio transport around it.
"""

from .client import (
    PORT_PLAIN,
    PORT_SSL,
    POP3Session,
    Security,
    SessionStats,
    connect,
    default_ssl_context,
)
from .errors import (
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
)
from .protocol import Capabilities
from .requests import (
    Dele,
    List,
    Noop,
    Request,
    Result,
    Retr,
    Rset,
    Stat,
    StatResult,
    Top,
    Uidl,
)

__all__ = [
    "PORT_PLAIN",
    "PORT_SSL",
    "Capabilities",
    "Dele",
    "List",
    "Noop",
    "POP3AuthError",
    "POP3ConnectionError",
    "POP3Error",
    "POP3InUseError",
    "POP3LoginDelayError",
    "POP3PermError",
    "POP3PlaintextRefusedError",
    "POP3ProtocolError",
    "POP3ResponseError",
    "POP3STLSUnavailableError",
    "POP3Session",
    "POP3TLSError",
    "POP3TempError",
    "POP3TimeoutError",
    "Request",
    "Result",
    "Retr",
    "Rset",
    "Security",
    "SessionStats",
    "Stat",
    "StatResult",
    "Top",
    "Uidl",
    "connect",
    "default_ssl_context",
]
