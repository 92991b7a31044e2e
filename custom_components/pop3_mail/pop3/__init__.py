"""An asyncio POP3 client with a sans-I/O core. Imports nothing of Home Assistant.

    async with connect("pop.example.com", username="alice", password="secret") as session:
        count, size = await session.stat()
        results = await session.pipeline([Uidl(count), Top(count, 0)])

The layers, each a module: `events` (the commands and answers as values),
`readers` (parsing what the server sends), `writers` (encoding commands),
`protocol` (`POP3Protocol`, the sans-I/O state machine: bytes in, typed answers
out), `sasl` (login choices), `tls` (TLS settings) and `client` (the asyncio
transport around it all). See README.md.
"""

from .client import PORT_PLAIN, PORT_SSL, POP3Session, Security, SessionStats, connect
from .errors import (
    POP3AnswerTooLargeError,
    POP3AuthError,
    POP3ConnectionError,
    POP3Error,
    POP3InUseError,
    POP3LocalProtocolError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3RemoteProtocolError,
    POP3ResponseError,
    POP3STLSUnavailableError,
    POP3TempError,
    POP3TimeoutError,
    POP3TLSError,
)
from .events import Capabilities
from .protocol import POP3Protocol
from .requests import (
    Dele,
    List,
    Noop,
    Request,
    Result,
    Retr,
    Rset,
    Sizes,
    Stat,
    StatResult,
    Top,
    Uidl,
)
from .tls import default_ssl_context

__all__ = [
    "PORT_PLAIN",
    "PORT_SSL",
    "Capabilities",
    "Dele",
    "List",
    "Noop",
    "POP3AnswerTooLargeError",
    "POP3AuthError",
    "POP3ConnectionError",
    "POP3Error",
    "POP3InUseError",
    "POP3LocalProtocolError",
    "POP3LoginDelayError",
    "POP3PermError",
    "POP3PlaintextRefusedError",
    "POP3Protocol",
    "POP3ProtocolError",
    "POP3RemoteProtocolError",
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
    "Sizes",
    "Stat",
    "StatResult",
    "Top",
    "Uidl",
    "connect",
    "default_ssl_context",
]
