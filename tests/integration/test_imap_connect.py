"""Connecting and logging in: greeting, CAPABILITY, STARTTLS/LOGINDISABLED on 143, implicit
TLS on 993, LOGIN, AUTHENTICATE PLAIN with SASL-IR, ID, ENABLE, NAMESPACE, COMPRESS."""

from __future__ import annotations

import base64
import imaplib
import socket
import zlib

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_imap_support import Raw, new_user, starttls_client, tls_client


def test_port_143_requires_starttls_before_login(postel: PostelServer) -> None:
    client = imaplib.IMAP4("127.0.0.1", postel.port("imap"), timeout=30)
    try:
        caps = client.capabilities
        assert "STARTTLS" in caps and "LOGINDISABLED" in caps
        assert "IMAP4REV2" in caps and "IMAP4REV1" in caps
        assert "AUTH=PLAIN" not in caps
        typ, data = client._simple_command("LOGIN", "alice@example.test", '"x"')  # type: ignore[attr-defined]
        assert typ == "NO"
        client.starttls(ssl_context=postel.client_tls())
        typ, data = client.capability()
        caps2 = data[0].split()
        assert b"AUTH=PLAIN" in caps2 and b"LOGINDISABLED" not in caps2
        assert b"STARTTLS" not in caps2
        client.login("alice@example.test", PASSWORD)
        typ, data = client.capability()
        after = data[0].split()
        for cap in (b"IDLE", b"LITERAL+", b"LIST-EXTENDED", b"COMPRESS=DEFLATE"):
            assert cap in after
    finally:
        client.logout()


def test_port_993_is_implicit_tls_and_login_works(postel: PostelServer) -> None:
    user = new_user(postel)
    client = tls_client(postel)
    assert "AUTH=PLAIN" in client.capabilities
    assert client.login(user, PASSWORD)[0] == "OK"
    assert client.noop()[0] == "OK"
    assert client.logout()[0] == "BYE"


def test_wrong_password_is_no_and_connection_closes_after_limit(postel: PostelServer) -> None:
    raw = Raw(postel)
    for i in range(3):
        lines = raw.cmd(b"a%d" % i, b'LOGIN "nobody@example.test" "wrong"')
        assert lines[-1].startswith(b"a%d NO [AUTHENTICATIONFAILED]" % i)
    assert raw.line().startswith(b"* BYE")
    with pytest.raises((EOFError, ConnectionError)):
        raw.line()
    raw.close()


def test_authenticate_plain_with_initial_response(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    lines = raw.cmd(b"a1", b"AUTHENTICATE PLAIN " + token)
    assert lines[-1].startswith(b"a1 OK [CAPABILITY ")
    raw.close()


def test_authenticate_plain_with_continuation(postel: PostelServer) -> None:
    user = new_user(postel)
    client = starttls_client(postel)
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{user}\0{PASSWORD}".encode())
    assert typ == "OK"
    client.logout()


def test_authenticate_cancel(postel: PostelServer) -> None:
    raw = Raw(postel)
    raw.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(b"*\r\n")
    assert raw.until(b"a1")[-1].startswith(b"a1 BAD")
    raw.close()


def test_id_enable_namespace(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    lines = raw.cmd(b"a1", b'ID ("name" "test" "version" "1")')
    assert lines[0].startswith(b'* ID ("name" "Postel"')
    raw.login(user)
    lines = raw.cmd(b"a2", b"ENABLE UTF8=ACCEPT X-UNKNOWN")
    assert lines[0] == b"* ENABLED UTF8=ACCEPT"
    lines = raw.cmd(b"a3", b"ENABLE IMAP4rev2")
    assert lines[0] == b"* ENABLED IMAP4rev2"
    lines = raw.cmd(b"a4", b"NAMESPACE")
    assert lines[0] == b'* NAMESPACE (("" "/")) NIL NIL'
    raw.close()


def test_bad_commands_and_states(postel: PostelServer) -> None:
    raw = Raw(postel)
    assert raw.cmd(b"a1", b"SELECT INBOX")[-1].startswith(b"a1 BAD")
    assert raw.cmd(b"a2", b"FROBNICATE")[-1].startswith(b"a2 BAD")
    assert raw.cmd(b"a3", b"LOGIN onlyone")[-1].startswith(b"a3 BAD")
    raw.send(b"\r\n")
    assert raw.line().startswith(b"* BAD")
    raw.close()


def test_pipelined_commands_are_answered_in_order(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.send(f'p1 LOGIN "{user}" "{PASSWORD}"\r\np2 SELECT INBOX\r\np3 NOOP\r\n'
             "p4 LOGOUT\r\n".encode())
    lines = raw.until(b"p4")
    tags = [line.split()[0] for line in lines if not line.startswith(b"*")]
    assert tags == [b"p1", b"p2", b"p3", b"p4"]
    raw.close()


def test_literal_continuation_and_literal_plus(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.send(b"a1 LOGIN {%d}\r\n" % len(user))
    assert raw.line().startswith(b"+ ")
    raw.send(user.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    assert raw.until(b"a1")[-1].startswith(b"a1 OK")
    raw.close()


def test_limits_answer_instead_of_crashing(make_postel: object) -> None:
    server = make_postel(extra_config=(  # type: ignore[operator]
        "[imap]\nmax_line_length = 200\nmax_literal_size = 1000\nmax_nesting = 4\n"
        "max_connections_per_ip = 3\n"))
    server.add_user("carol@example.test")
    server.start()
    raw = Raw(server)
    raw.login("carol@example.test")
    lines = raw.cmd(b"a1", b"NOOP " + b"x" * 500)
    assert lines[-1].startswith(b"a1 BAD")
    lines = raw.cmd(b"a2", b"APPEND INBOX {5000}")
    assert lines[-1].startswith(b"a2 NO [TOOBIG]")
    raw.send(b"a3 APPEND INBOX {5000+}\r\n" + b"z" * 5000 + b"\r\n")
    assert raw.until(b"a3")[-1].startswith(b"a3 NO [TOOBIG]")
    assert raw.cmd(b"a4", b"NOOP")[-1].startswith(b"a4 OK")
    raw.cmd(b"a5", b"SELECT INBOX")
    assert raw.cmd(b"a6", b"SEARCH ((((ALL))))")[-1].startswith(b"a6 OK")
    lines = raw.cmd(b"a7", b"SEARCH " + b"(" * 6 + b"ALL" + b")" * 6)
    assert lines[-1].startswith(b"a7 BAD")
    others = [Raw(server), Raw(server)]
    with socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30) as sock:
        assert sock.recv(200).startswith(b"* BYE Too many connections")
    for other in others:
        other.close()
    raw.close()


def test_compress_deflate(postel: PostelServer) -> None:
    user = new_user(postel)
    raw = Raw(postel)
    raw.login(user)
    assert raw.cmd(b"c1", b"COMPRESS DEFLATE")[-1].startswith(b"c1 OK")
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    raw.send(deflate.compress(b"c2 NOOP\r\nc3 CAPABILITY\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
    got = b""
    while b"c3 OK" not in got:
        got += inflate.decompress(raw.sock.recv(65536))
    assert b"c2 OK" in got and b"COMPRESS=DEFLATE" not in got.split(b"c2 OK")[1]
    raw.close()


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_logout(postel: PostelServer, mode: str) -> None:
    user = new_user(postel)
    client = starttls_client(postel, user) if mode == "starttls" else tls_client(postel, user)
    assert client.logout()[0] == "BYE"


def test_shutdown_says_bye_to_idle_clients(make_postel: object) -> None:
    server = make_postel()  # type: ignore[operator]
    server.add_user("dave@example.test")
    server.start()
    raw = Raw(server)
    raw.login("dave@example.test")
    raw.cmd(b"s", b"SELECT INBOX")
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    assert server.stop() == 0
    assert raw.line() == b"* BYE Server shutting down"
    raw.close()
