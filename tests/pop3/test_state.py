"""The state the core tracks is enforced where bytes are produced, with typed errors."""

from __future__ import annotations

import pytest

from custom_components.pop3_mail.pop3 import (
    List,
    POP3ConnectionError,
    POP3Error,
    POP3LocalProtocolError,
    POP3ProtocolError,
    POP3RemoteProtocolError,
    POP3TimeoutError,
    POP3TLSError,
    Request,
    Sizes,
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
    Pass,
    POP3Protocol,
    Quit,
    Reply,
    State,
    Stls,
    User,
    Utf8,
)
from custom_components.pop3_mail.pop3.readers import MAX_LIST_LINE, body_lines, find_terminator
from custom_components.pop3_mail.pop3.sasl import xoauth2_error_status

from .test_protocol import answer, connected, logged_in


def test_errors_are_also_the_builtin_ones() -> None:
    """As in aiosmtplib: `except TimeoutError` / `except ConnectionError` catch ours too."""
    assert issubclass(POP3TimeoutError, TimeoutError)
    assert issubclass(POP3TimeoutError, POP3ConnectionError)
    assert issubclass(POP3ConnectionError, ConnectionError)
    assert issubclass(POP3TLSError, ConnectionError)
    assert issubclass(POP3LocalProtocolError, POP3Error)
    assert not issubclass(POP3LocalProtocolError, ValueError)
    assert POP3RemoteProtocolError is POP3ProtocolError
    assert str(POP3TimeoutError("No answer")) == "No answer"


@pytest.mark.parametrize("command", [Stat(), Sizes(), Uidl(1), Top(1, 0)])
def test_requests_before_login_are_refused(command: Request[object]) -> None:
    proto = connected()
    with pytest.raises(POP3LocalProtocolError, match="before login"):
        proto.send(command)
    assert proto.pending == 0  # nothing was queued: no answer is expected for it


@pytest.mark.parametrize("command", [User("a"), Pass("b"), Apop("a", "d"), Stls(), Utf8()])
def test_login_commands_after_login_are_refused(command: object) -> None:
    with pytest.raises(POP3LocalProtocolError, match="after login"):
        logged_in().send(command)  # type: ignore[arg-type]


def test_nothing_before_the_greeting_nor_after_quit() -> None:
    with pytest.raises(POP3LocalProtocolError, match="greeting"):
        POP3Protocol().send(Capa())
    proto = logged_in()
    proto.send(Quit())
    for command in (Stat(), Quit(), Capa()):
        with pytest.raises(POP3LocalProtocolError, match="after QUIT"):
            proto.send(command)
    proto.receive_data(b"+OK bye\r\n")
    assert isinstance(proto.next_event(), Reply)
    assert proto.state is State.UPDATE


def test_capa_and_quit_in_every_state() -> None:
    assert connected().send(Capa()) == b"CAPA\r\n"
    assert logged_in().send(Capa()) == b"CAPA\r\n"
    assert connected().send(Quit()) == b"QUIT\r\n"


def test_nothing_is_sent_in_the_middle_of_auth() -> None:
    proto = connected()
    proto.send(Auth("XOAUTH2"))
    with pytest.raises(POP3LocalProtocolError, match="middle of AUTH"):
        proto.send(Capa())
    with pytest.raises(POP3LocalProtocolError, match="challenge"):
        proto.send(AuthReply(b"early"))  # no challenge came yet
    proto.receive_data(b"+ \r\n")
    proto.next_event()
    proto.send(AuthReply(b"payload"))
    with pytest.raises(POP3LocalProtocolError, match="challenge"):
        proto.send(AuthReply(b"twice"))


def test_stls_holds_everything_until_the_handshake() -> None:
    """Between STLS's +OK and `tls_started()` nothing is sent and any byte is an attack."""
    proto = connected()
    answer(proto, Stls(), b"+OK Begin TLS\r\n")
    assert proto.state is State.STARTING_TLS
    with pytest.raises(POP3LocalProtocolError, match="TLS handshake"):
        proto.send(Capa())
    proto.tls_started()
    assert proto.state is State.AUTHORIZATION
    assert proto.send(Capa()) == b"CAPA\r\n"
    with pytest.raises(POP3LocalProtocolError, match="No STLS"):
        proto.tls_started()
    injected = connected()
    answer(injected, Stls(), b"+OK Begin TLS\r\n")
    with pytest.raises(POP3ProtocolError, match="after agreeing to start TLS"):
        injected.receive_data(b"+OK forged\r\n")
    with pytest.raises(POP3ProtocolError):  # and it stays failed
        injected.next_event()


def test_refused_stls_stays_in_authorization() -> None:
    proto = connected()
    assert not answer(proto, Stls(), b"-ERR not now\r\n").ok
    assert proto.state is State.AUTHORIZATION


def test_unparsed_bytes_before_a_command_are_refused_when_it_is_sent() -> None:
    proto = logged_in()
    proto.receive_data(b"+OK 1 120\r\n")  # STAT's answer, before STAT was sent
    with pytest.raises(POP3ProtocolError, match="nobody asked"):
        proto.send(Stat())
    assert proto.buffered == len(b"+OK 1 120\r\n")


def test_typed_requests_and_the_list_alias() -> None:
    """`List` is `Sizes` (old callers); a request knows the type of its result."""
    assert List is Sizes
    assert List(3) == Sizes(3)
    assert Sizes(3) != Uidl(3)
    assert Sizes().msg is None
    assert Stat().result(StatResult(1, 2)) == (1, 2)
    assert repr(Sizes(2)) == "Sizes(msg=2)"
    assert logged_in().send(List()) == b"LIST\r\n"


def test_apop_digest_is_not_in_reprs() -> None:
    assert "c4c9" not in repr(Apop("mrose", "c4c9334bac560ecc979e58001b3e22fb"))
    assert "mrose" in repr(Apop("mrose", "c4c9334bac560ecc979e58001b3e22fb"))


def test_the_password_is_redacted_from_server_texts() -> None:
    proto = connected()
    answer(proto, User("alice"), b"+OK\r\n")
    reply = answer(proto, Pass("s3cret-pw"), b"-ERR [AUTH] bad: s3cret-pw (czNjcmV0LXB3)\r\n")
    assert reply.text == "bad: *** (***)"
    assert "s3cret" not in str(reply.error())
    # Too short to redact without eating the server's words.
    short = connected()
    assert answer(short, Pass("x"), b"-ERR Plaintext refused\r\n").text == "Plaintext refused"


def test_capa_lines_over_512_octets() -> None:
    proto = connected()
    proto.send(Capa())
    proto.receive_data(b"+OK\r\nX-" + b"y" * MAX_LIST_LINE + b"\r\n.\r\n")
    with pytest.raises(POP3ProtocolError, match="512"):
        proto.next_event()


def test_listing_size_is_bounded() -> None:
    proto = POP3Protocol(max_listing=3)
    proto.receive_data(b"+OK\r\n")
    proto.next_event()
    answer(proto, Pass("secret"), b"+OK\r\n")
    assert answer(proto, Uidl(), b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n").value == {
        1: "a",
        2: "b",
        3: "c",
    }
    proto.send(Uidl())
    proto.receive_data(b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n4 d\r\n.\r\n")
    with pytest.raises(POP3ProtocolError, match="over 3 messages"):
        proto.next_event()


def test_a_line_without_end_is_held_within_the_cap() -> None:
    """A body line is only parsed once whole; the part held counts against the cap."""
    proto = POP3Protocol(max_response_bytes=1000)
    proto.receive_data(b"+OK\r\n")
    proto.next_event()
    answer(proto, Pass("secret"), b"+OK\r\n")
    proto.send(Top(1, 0))
    proto.receive_data(b"+OK\r\nline one\r\n.stuffed, no end yet")
    assert proto.next_event() is NEED_DATA
    proto.receive_data(b"\r\n.\r\n")
    event = proto.next_event()
    assert isinstance(event, Reply)
    assert event.value == b"line one\r\nstuffed, no end yet\r\n"
    proto.send(Top(1, 0))
    proto.receive_data(b"+OK\r\n" + b"z" * 2000)
    with pytest.raises(POP3ProtocolError, match="larger than 1000"):
        proto.next_event()


def test_body_lines_and_terminator_search() -> None:
    assert body_lines(b"a\r\n..b\r\n") == b"a\r\n.b\r\n"
    assert body_lines(b"a\n..b\n") == b"a\r\n.b\r\n"
    assert body_lines(b"..\r\n") == b".\r\n"
    assert body_lines(b"x\r\r\n") == b"x\r\r\n"
    assert body_lines(b"") == b""
    buf = bytearray(b"a\r\n..\r\n.\r\n")
    assert find_terminator(buf, 0, len(buf)) == 7
    assert find_terminator(bytearray(b".\n"), 0, 2) == 0
    assert find_terminator(bytearray(b"a\n..\n"), 0, 5) == -1


def test_xoauth2_error_status_is_bounded_printable_and_tokenless() -> None:
    assert xoauth2_error_status(b'{"status":"401","schemes":"bearer"}', "tok") == "401"
    assert xoauth2_error_status(b'{"status":"400","error":"invalid_token"}', None) == (
        "400 invalid_token"
    )
    assert xoauth2_error_status(b"not json", "tok") == "unknown"
    assert xoauth2_error_status(b'["401"]', "tok") == "unknown"
    assert xoauth2_error_status(b'{"schemes":"bearer"}', "tok") == "unknown"
    echoed = xoauth2_error_status(b'{"status":"401 ya29.secret\\u0007"}', "ya29.secret")
    assert echoed == "401 ***?"
    assert len(xoauth2_error_status(('{"status":"' + "9" * 500 + '"}').encode(), None)) == 100
