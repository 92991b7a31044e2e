"""The sans-I/O core on literal bytes: what servers really send, and what they should not."""

from __future__ import annotations

import pytest

from custom_components.pop3_mail.pop3 import (
    Capabilities,
    Dele,
    List,
    Noop,
    POP3AuthError,
    POP3ConnectionError,
    POP3InUseError,
    POP3LocalProtocolError,
    POP3LoginDelayError,
    POP3PermError,
    POP3PlaintextRefusedError,
    POP3ProtocolError,
    POP3ResponseError,
    POP3TempError,
    Retr,
    Rset,
    Stat,
    StatResult,
    Top,
    Uidl,
)
from custom_components.pop3_mail.pop3.protocol import (
    NEED_DATA,
    Apop,
    Auth,
    AuthReply,
    Capa,
    Challenge,
    Greeting,
    Pass,
    POP3Protocol,
    Quit,
    Reply,
    State,
    Stls,
    User,
    Utf8,
    apop_timestamp,
    encode,
    parse_capabilities,
    response_error,
)

GMAIL_GREETING = b"+OK Gpop ready for requests from 1.2.3.4 x1mb12345\r\n"
GMAIL_CAPA = (
    b"+OK Capability list follows\r\n"
    b"USER\r\nRESP-CODES\r\nEXPIRE 0\r\nLOGIN-DELAY 300\r\nTOP\r\nUIDL\r\n"
    b"X-GOOGLE-RICO\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n"
)
OUTLOOK_GREETING = (
    b"+OK The Microsoft Exchange POP3 service is ready. "
    b"[QgBZADAAUABSADAAMgBDAEEAMAAwADEAOQAuAGEAcABjAHAAcgBkADAAMgAuAHAAcgBvAGQA]\r\n"
)
OUTLOOK_CAPA = (
    b"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\nUSER\r\nSTLS\r\n.\r\n"  # the order Outlook uses
)
COURIER_UIDL = (
    b"+OK POP3 clients that break here, they violate STD53.\r\n"
    b"1 UID1-1234567890\r\n2 UID2-1234567891\r\n.\r\n"
)


def connected(*greeting: bytes) -> POP3Protocol:
    """A protocol that has read the greeting (default: a plain one)."""
    proto = POP3Protocol()
    proto.receive_data(greeting[0] if greeting else b"+OK ready\r\n")
    event = proto.next_event()
    assert isinstance(event, Reply)
    assert event.ok
    return proto


def logged_in(*greeting: bytes) -> POP3Protocol:
    """A protocol in the TRANSACTION state, where requests may be sent."""
    proto = connected(*greeting)
    answer(proto, User("alice"), b"+OK\r\n")
    answer(proto, Pass("secret"), b"+OK logged in\r\n")
    assert proto.state is State.TRANSACTION
    return proto


def answer(proto: POP3Protocol, command: object, data: bytes) -> Reply:
    """Send `command`, feed `data` as the server's answer, return the single reply."""
    proto.send(command)  # type: ignore[arg-type]
    proto.receive_data(data)
    event = proto.next_event()
    assert isinstance(event, Reply), event
    return event


def test_gmail_greeting_and_capabilities() -> None:
    """Gmail: no APOP timestamp; LOGIN-DELAY, EXPIRE, SASL list, unknown X- capability kept raw."""
    proto = POP3Protocol()
    proto.receive_data(GMAIL_GREETING)
    greeting = proto.next_event()
    assert greeting == Reply(
        Greeting(), ok=True, text="Gpop ready for requests from 1.2.3.4 x1mb12345"
    )
    assert apop_timestamp(greeting.text) is None
    caps = answer(proto, Capa(), GMAIL_CAPA).value
    assert caps == Capabilities(
        top=True,
        uidl=True,
        user=True,
        resp_codes=True,
        sasl=("PLAIN", "XOAUTH2", "OAUTHBEARER"),
        login_delay=300,
        expire="0",
        raw=(
            "USER",
            "RESP-CODES",
            "EXPIRE 0",
            "LOGIN-DELAY 300",
            "TOP",
            "UIDL",
            "X-GOOGLE-RICO",
            "SASL PLAIN XOAUTH2 OAUTHBEARER",
        ),
    )
    assert proto.next_event() is NEED_DATA


def test_outlook_greeting_and_capabilities() -> None:
    """Outlook: the bracketed blob ends the greeting, so it is not a response code."""
    proto = connected(OUTLOOK_GREETING)
    caps = answer(proto, Capa(), OUTLOOK_CAPA).value
    assert isinstance(caps, Capabilities)
    assert (caps.top, caps.uidl, caps.user, caps.stls) == (True, True, True, True)
    assert (caps.pipelining, caps.resp_codes, caps.utf8) == (False, False, False)
    assert caps.sasl == ("PLAIN", "XOAUTH2")
    proto2 = POP3Protocol()
    proto2.receive_data(OUTLOOK_GREETING)
    reply = proto2.next_event()
    assert isinstance(reply, Reply)
    assert reply.code is None
    assert reply.text.startswith("The Microsoft Exchange POP3 service is ready. [QgBZ")


def test_dovecot_capabilities_and_per_user_values() -> None:
    """LOGIN-DELAY/EXPIRE in the USER form ask for CAPA again after login."""
    caps = parse_capabilities(
        [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "AUTH-RESP-CODE",
            "STLS",
            "USER",
            "SASL PLAIN LOGIN",
            "LOGIN-DELAY 900 USER",
            "EXPIRE NEVER",
            "IMPLEMENTATION Dovecot 2.3",
            "UTF8 USER",
        ]
    )
    assert caps.pipelining
    assert caps.stls
    assert caps.utf8
    assert caps.login_delay == 900
    assert caps.expire == "NEVER"
    assert caps.implementation == "Dovecot 2.3"
    assert caps.per_user
    assert not parse_capabilities(["LOGIN-DELAY 60", "EXPIRE 5"]).per_user
    assert parse_capabilities(["EXPIRE 5 USER"]).per_user
    # A malformed value is ignored, not fatal: capabilities are advice.
    assert parse_capabilities(["LOGIN-DELAY soon", "IMPLEMENTATION", "EXPIRE"]) == Capabilities(
        raw=("LOGIN-DELAY soon", "IMPLEMENTATION", "EXPIRE")
    )
    assert Capabilities.assumed() == Capabilities(top=True, uidl=True, user=True)


def test_apop_timestamp_from_greeting() -> None:
    """The RFC 1939 example greeting carries the timestamp APOP hashes."""
    text = "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
    assert apop_timestamp(text) == "<1896.697170952@dbc.mtview.ca.us>"
    assert apop_timestamp("ready <no-at-sign>") is None


def test_status_lines_with_and_without_codes() -> None:
    """+OK/-ERR, with RFC 2449 codes (upper-cased, hierarchical), and bare +OK."""
    proto = logged_in()
    assert answer(proto, Noop(), b"+OK\r\n") == Reply(Noop(), ok=True, text="")
    assert answer(proto, Noop(), b"+ok fine\r\n") == Reply(Noop(), ok=True, text="fine")
    assert answer(proto, Rset(), b"+OK [UTF8] reset\r\n") == Reply(
        Rset(), ok=True, text="reset", code="UTF8"
    )
    reply = answer(proto, Dele(9), b"-ERR [sys/temp] disk busy\r\n")
    assert reply == Reply(Dele(9), ok=False, text="disk busy", code="SYS/TEMP")
    assert isinstance(reply.error(), POP3TempError)
    assert answer(proto, Noop(), b"-ERR\r\n") == Reply(Noop(), ok=False, text="")
    text_not_code = answer(proto, Noop(), b"-ERR [not a code] x\r\n")
    assert (text_not_code.code, text_not_code.text) == (None, "[not a code] x")


@pytest.mark.parametrize(
    ("command", "code", "text", "expected"),
    [
        (Pass(), "IN-USE", "locked", POP3InUseError),
        (Pass(), "LOGIN-DELAY", "wait", POP3LoginDelayError),
        (Apop("a", "d"), "SYS/TEMP", "later", POP3TempError),
        (Auth("PLAIN"), "SYS/PERM", "gone", POP3PermError),
        (Pass(), "AUTH", "Authentication failed.", POP3AuthError),
        (Pass(), None, "invalid password", POP3AuthError),
        (Apop("a", "d"), None, "permission denied", POP3AuthError),
        (Auth("XOAUTH2"), None, "no", POP3AuthError),
        (
            User("a"),
            "AUTH",
            "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            POP3PlaintextRefusedError,
        ),
        (Pass(), None, "Cleartext logins not allowed", POP3PlaintextRefusedError),
        (Pass(), None, "Please use TLS", POP3PlaintextRefusedError),
        (Stat(), "AUTH", "session expired", POP3AuthError),
        (Stat(), None, "Please use TLS", POP3ResponseError),
        (Retr(1), None, "no such message", POP3ResponseError),
        (Greeting(), "IN-USE", "busy", POP3InUseError),
    ],
)
def test_error_classes(
    command: object, code: str | None, text: str, expected: type[POP3ResponseError]
) -> None:
    """The class comes from the response code, else from the command it answers."""
    error = response_error(command, code, text)  # type: ignore[arg-type]
    assert type(error) is expected
    assert (error.code, error.text) == (code, text)


def test_error_message_names_the_command_never_the_password() -> None:
    """A person reads which command was refused; secrets stay out of messages and reprs."""
    error = Reply(Pass("hunter2"), ok=False, text="Authentication failed.", code="AUTH").error()
    assert str(error) == "The server refused to PASS: [AUTH] Authentication failed."
    assert "hunter2" not in repr(Pass("hunter2"))
    assert b"hunter2" not in repr(Auth("PLAIN", b"\0a\0hunter2")).encode()
    assert "hunter2" not in repr(AuthReply(b"hunter2"))
    assert str(response_error(Greeting(), None, "go away")) == "The server refused: go away"


def test_encode_every_command() -> None:
    """Commands become the lines RFC 1939, 2449, 2595, 5034 and 6856 define."""
    assert encode(Stat()) == b"STAT\r\n"
    assert encode(List()) == b"LIST\r\n"
    assert encode(List(3)) == b"LIST 3\r\n"
    assert encode(Uidl()) == b"UIDL\r\n"
    assert encode(Uidl(4)) == b"UIDL 4\r\n"
    assert encode(Top(5, 0)) == b"TOP 5 0\r\n"
    assert encode(Retr(6)) == b"RETR 6\r\n"
    assert encode(Dele(7)) == b"DELE 7\r\n"
    assert encode(Noop()) == b"NOOP\r\n"
    assert encode(Rset()) == b"RSET\r\n"
    assert encode(Capa()) == b"CAPA\r\n"
    assert encode(Stls()) == b"STLS\r\n"
    assert encode(Utf8()) == b"UTF8\r\n"
    assert encode(Quit()) == b"QUIT\r\n"
    assert encode(User("alice")) == b"USER alice\r\n"
    assert encode(Pass("pässword")) == "PASS pässword\r\n".encode()
    assert encode(Apop("mrose", "c4c9334bac560ecc979e58001b3e22fb")) == (
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    )
    assert encode(Auth("XOAUTH2")) == b"AUTH XOAUTH2\r\n"
    assert encode(Auth("PLAIN", b"\0a\0b")) == b"AUTH PLAIN AGEAYg==\r\n"
    assert encode(Auth("EXTERNAL", b"")) == b"AUTH EXTERNAL =\r\n"
    assert encode(AuthReply(b"\0a\0b")) == b"AGEAYg==\r\n"
    assert encode(AuthReply()) == b"\r\n"


@pytest.mark.parametrize(
    "command",
    [
        User("a\r\nDELE 1"),
        Pass("x\ny"),
        Apop("a\0", "d"),
        Retr(0),
        Top(1, -1),
        Dele(True),  # noqa: FBT003  (a bool is not a message number)
        Retr(2**64),
        Greeting(),
    ],
)
def test_encode_refuses_injection_and_nonsense(command: object) -> None:
    """CR/LF/NUL in arguments could smuggle commands; numbers start at 1 (lines at 0)."""
    with pytest.raises(POP3LocalProtocolError):
        encode(command)  # type: ignore[arg-type]


def test_stat_list_uidl_single_line() -> None:
    """STAT, LIST n and UIDL n values; extra words after them are allowed."""
    proto = logged_in()
    assert answer(proto, Stat(), b"+OK 2 320\r\n").value == StatResult(2, 320)
    assert answer(proto, Stat(), b"+OK 0 0 empty\r\n").value == StatResult(0, 0)
    assert answer(proto, List(2), b"+OK 2 200\r\n").value == 200
    assert answer(proto, Uidl(2), b"+OK 2 QhdPYR:00WBw1Ph7x7\r\n").value == "QhdPYR:00WBw1Ph7x7"
    assert answer(proto, List(9), b"-ERR no such message\r\n").value is None


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (Stat(), b"+OK\r\n"),
        (Stat(), b"+OK two 320\r\n"),
        (List(2), b"+OK 3 200\r\n"),  # another message's answer: out of sync
        (Uidl(2), b"+OK 2\r\n"),
    ],
)
def test_malformed_single_line_values(command: object, line: bytes) -> None:
    """A value that does not parse, or answers another message, is a protocol error."""
    proto = logged_in()
    proto.send(command)  # type: ignore[arg-type]
    proto.receive_data(line)
    with pytest.raises(POP3ProtocolError):
        proto.next_event()
    with pytest.raises(POP3ProtocolError):  # and the connection stays failed
        proto.next_event()


def test_list_and_uidl_multi_line_with_courier_header_text() -> None:
    """Courier puts prose after +OK on multi-line answers; it is only text."""
    proto = logged_in()
    assert answer(proto, Uidl(), COURIER_UIDL).value == {
        1: "UID1-1234567890",
        2: "UID2-1234567891",
    }
    listing = answer(proto, List(), b"+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n")
    assert listing.value == {1: 120, 2: 200}
    assert answer(proto, List(), b"+OK\r\n.\r\n").value == {}
    proto.send(Uidl())
    proto.receive_data(b"+OK\r\n1 a\r\ngarbage\r\n.\r\n")
    with pytest.raises(POP3ProtocolError, match="garbage"):
        proto.next_event()


def test_retr_dot_stuffing_and_bare_lf() -> None:
    """Dot-stuffed lines lose one dot; bare LF lines come back with CRLF."""
    proto = logged_in()
    raw = b"+OK 5 octets\nSubject: x\n\n..hidden dot\n...\n\r\nlast\r\n.\n"
    assert answer(proto, Retr(1), raw).value == (
        b"Subject: x\r\n\r\n.hidden dot\r\n..\r\n\r\nlast\r\n"
    )
    assert answer(proto, Top(1, 0), b"+OK\r\n.\r\n").value == b""
    assert answer(proto, Top(1, 0), b"+OK\r\n..\r\n.\r\n").value == b".\r\n"


def test_long_lines_are_not_a_problem() -> None:
    """poplib breaks on lines over 2,048 bytes; here 5,000 (and 1 MB) pass byte-exact."""
    long_line = b"x" * 5000
    big_line = b"y" * 2**20
    proto = logged_in()
    raw = b"Subject: long\r\n\r\n" + long_line + b"\r\n" + big_line + b"\r\n"
    assert answer(proto, Retr(1), b"+OK\r\n" + raw + b".\r\n").value == raw
    # A status text is kept to 512 characters: a 20 MB -ERR line must not reach the logs.
    assert answer(proto, Noop(), b"+OK " + long_line + b"\r\n").text == "x" * 512 + "…"


def test_pipelined_answers_in_one_chunk_and_dribbled() -> None:
    """Answers to a pipelined batch are matched to their commands in order."""
    batch = [Stat(), Uidl(2), Top(2, 0), Uidl(3), List()]
    answers = (
        b"+OK 2 320\r\n+OK 2 uid-2\r\n+OK\r\nSubject: two\r\n\r\n.\r\n"
        b"-ERR no such message\r\n+OK\r\n1 120\r\n2 200\r\n.\r\n"
    )
    for chunk_size in (len(answers), 1, 7):
        proto = logged_in()
        assert b"".join(proto.send(c) for c in batch) == (
            b"STAT\r\nUIDL 2\r\nTOP 2 0\r\nUIDL 3\r\nLIST\r\n"
        )
        assert proto.pending == 5
        events = []
        for start in range(0, len(answers), chunk_size):
            proto.receive_data(answers[start : start + chunk_size])
            while (event := proto.next_event()) is not NEED_DATA:
                events.append(event)
        assert [e.command for e in events] == batch
        assert [e.value for e in events] == [
            StatResult(2, 320),
            "uid-2",
            b"Subject: two\r\n\r\n",
            None,
            {1: 120, 2: 200},
        ]
        assert proto.pending == 0


def test_state_follows_login_and_quit() -> None:
    """AUTHORIZATION until a login succeeds, UPDATE after QUIT's +OK."""
    proto = connected()
    assert proto.state is State.AUTHORIZATION
    answer(proto, User("a"), b"+OK\r\n")
    answer(proto, Pass("b"), b"-ERR [AUTH] no\r\n")
    assert proto.state is State.AUTHORIZATION
    answer(proto, Apop("a", "d"), b"+OK maildrop locked\r\n")
    assert proto.state is State.TRANSACTION
    answer(proto, Quit(), b"+OK bye\r\n")
    assert proto.state is State.UPDATE


def test_sasl_challenges() -> None:
    """'+ base64' during AUTH is a challenge; Gmail's XOAUTH2 error comes that way."""
    proto = connected()
    proto.send(Auth("XOAUTH2"))
    proto.receive_data(b"+ \r\n")
    assert proto.next_event() == Challenge(b"")
    assert proto.send(AuthReply(b"token")) == b"dG9rZW4=\r\n"
    proto.receive_data(b"+ eyJzdGF0dXMiOiI0MDAifQ==\r\n")
    assert proto.next_event() == Challenge(b'{"status":"400"}')
    proto.send(AuthReply())
    proto.receive_data(b"-ERR [AUTH] Invalid credentials\r\n")
    reply = proto.next_event()
    assert isinstance(reply, Reply)
    assert isinstance(reply.error(), POP3AuthError)
    proto.send(Auth("PLAIN"))
    proto.receive_data(b"+\r\n")
    assert proto.next_event() == Challenge(b"")
    proto.receive_data(b"+ not base64!\r\n")
    with pytest.raises(POP3ProtocolError, match="SASL"):
        proto.next_event()


def test_auth_reply_only_during_auth() -> None:
    """Answering a challenge nobody sent is a programming error."""
    with pytest.raises(POP3LocalProtocolError, match="AUTH"):
        connected().send(AuthReply(b"x"))


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 400 Bad Request\r\n",
        b"+OKAY\r\n",
        b"+ challenge outside AUTH\r\n",
        b"\r\n",
    ],
)
def test_not_pop3_at_all(data: bytes) -> None:
    """A status line that is not +OK/-ERR is a protocol error."""
    proto = POP3Protocol()
    proto.receive_data(data)
    with pytest.raises(POP3ProtocolError):
        proto.next_event()


def test_unsolicited_data() -> None:
    """Bytes nobody asked for mean the stream cannot be trusted."""
    proto = connected(b"+OK hi\r\n+OK surprise\r\n")
    with pytest.raises(POP3ProtocolError, match="nobody asked"):
        proto.next_event()
    assert connected().next_event() is NEED_DATA


def test_data_after_stls_ok_is_refused() -> None:
    """Plain-text bytes after STLS's +OK would pass as protected ones (STARTTLS injection)."""
    proto = connected()
    proto.send(Stls())
    proto.receive_data(b"+OK Begin TLS\r\n+OK [AUTH] fake\r\n")
    with pytest.raises(POP3ProtocolError, match="TLS"):
        proto.next_event()
    assert answer(connected(), Stls(), b"+OK Begin TLS\r\n").ok


def test_max_response_bytes() -> None:
    """One answer larger than the cap fails cleanly, complete or not, line end or not."""
    for data in (
        b"+OK\r\n" + b"x" * 200 + b"\r\n.\r\n",  # complete but too large
        b"+OK\r\n" + b"x" * 200,  # incomplete and already too large
        b"+OK " + b"x" * 200,  # a status line without end
        b"+OK " + b"x" * 200 + b"\r\n",
    ):
        proto = POP3Protocol(max_response_bytes=100)
        proto.receive_data(b"+OK hi\r\n")
        proto.next_event()
        answer(proto, Pass("secret"), b"+OK\r\n")
        proto.send(Retr(1))
        proto.receive_data(data)
        with pytest.raises(POP3ProtocolError, match="larger than 100 bytes"):
            proto.next_event()
    proto = POP3Protocol(max_response_bytes=100)
    proto.receive_data(b"+OK hi\r\n")
    proto.next_event()
    answer(proto, Pass("secret"), b"+OK\r\n")
    exact = b"+OK\r\n" + b"x" * 90 + b"\r\n.\r\n"
    assert len(exact) == 100
    assert answer(proto, Retr(1), exact).value == b"x" * 90 + b"\r\n"


def test_connection_closed() -> None:
    """End of stream mid-answer, or while waiting, is a lost connection, not a parse error."""
    proto = logged_in()
    proto.send(Retr(1))
    proto.receive_data(b"+OK\r\npartial")
    assert proto.next_event() is NEED_DATA
    proto.receive_data(b"")
    with pytest.raises(POP3ConnectionError, match="middle of an answer"):
        proto.next_event()
    idle = logged_in()
    idle.receive_data(b"")
    with pytest.raises(POP3ConnectionError, match=r"closed the connection$"):
        idle.next_event()


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (Stat(), b"+OK " + b"9" * 5000 + b" 10\r\n"),
        (List(1), b"+OK 1 " + b"9" * 5000 + b"\r\n"),
        (List(), b"+OK\r\n1 " + b"9" * 5000 + b"\r\n.\r\n"),
        (Uidl(), b"+OK\r\n" + b"9" * 5000 + b" uid\r\n.\r\n"),
    ],
    ids=["STAT", "LIST n", "LIST", "UIDL"],
)
def test_numbers_too_long_are_our_protocol_error(command: object, data: bytes) -> None:
    """int() refuses numbers of over 4,300 digits with a ValueError: never let one escape."""
    proto = logged_in()
    proto.send(command)  # type: ignore[arg-type]
    proto.receive_data(data)
    with pytest.raises(POP3ProtocolError):
        proto.next_event()


def test_absurd_login_delay_reads_as_never() -> None:
    caps = parse_capabilities(["LOGIN-DELAY " + "9" * 5000, "TOP"])
    assert caps.login_delay == 10**12
    assert caps.top
    assert parse_capabilities(["LOGIN-DELAY ٣٠٠"]).login_delay is None  # not ASCII digits
