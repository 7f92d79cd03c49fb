"""PROXY protocol v1 and v2 over real sockets (issue 15 item 2): a trusted proxy's header
makes Received headers and the login limiter see the client it names; a header from an
untrusted address, or a malformed one, closes the connection before a word is said."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from postel.proxyproto import V2_SIGNATURE
from tests.harness import PASSWORD, PostelServer
from tests.integration.hardening_helpers import running_server

CONFIG = """
[connections]
trusted_proxies = ["127.0.0.1/32"]
proxy_protocol = ["smtp", "imaps"]
[auth]
max_failures_per_ip = 3
max_failures_per_account = 100
failure_delay = 0.01
failure_delay_max = 0.02
[mailauth]
defer_on_dns_error = false
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    yield from running_server(tmp_path_factory, "proxy", CONFIG, ("alice@example.test",))


def v2_header(client: str, port: int) -> bytes:
    body = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 993)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


class ProxiedSMTP(smtplib.SMTP):
    def __init__(self, header: bytes, *args: Any, **kwargs: Any) -> None:
        self.header = header
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(self.header)
        return sock


class ProxiedIMAP(imaplib.IMAP4_SSL):
    """IMAPS behind a proxy: the header goes first, then the TLS handshake (so the
    server must not read a byte of the ClientHello with the header)."""

    def __init__(self, header: bytes, *args: Any, **kwargs: Any) -> None:
        self.header = header
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout: float | None = None) -> Any:
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.sendall(self.header)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap_login(server: PostelServer, header: bytes, password: str) -> str:
    with ProxiedIMAP(header, "127.0.0.1", server.port("imaps"),
                     ssl_context=server.client_tls(), timeout=30) as imap:
        try:
            imap.login("alice@example.test", password)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def test_v1_header_names_the_client_in_the_received_header(server: PostelServer) -> None:
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\n"
    with ProxiedSMTP(header, "127.0.0.1", server.port("smtp"), timeout=30,
                     local_hostname="client.test") as client:
        client.sendmail("someone@sender.test", ["alice@example.test"],
                        b"From: someone@sender.test\r\nSubject: via proxy\r\n\r\nhi\r\n")
    stored = [m for m in server.inbox("alice@example.test") if b"via proxy" in m]
    assert len(stored) == 1
    assert b"([192.0.2.7])" in stored[0]
    assert b"127.0.0.1" not in stored[0].split(b"\r\n\r\n")[0].split(b"Received:")[1]


def test_v2_header_makes_the_limiter_count_the_client(server: PostelServer) -> None:
    for _ in range(3):
        assert "AUTHENTICATIONFAILED" in imap_login(server, v2_header("192.0.2.50", 1), "bad")
    # 192.0.2.50 is at its limit; the proxy's other clients are not.
    assert "UNAVAILABLE" in imap_login(server, v2_header("192.0.2.50", 2), PASSWORD)
    assert imap_login(server, v2_header("192.0.2.51", 3), PASSWORD) == "OK"
    # LOCAL keeps the proxy's own address (a health check), which has no failures.
    local = V2_SIGNATURE + b"\x20\x00\x00\x00"
    assert imap_login(server, local, PASSWORD) == "OK"
    assert "192.0.2.50" in Path(server.log_path).read_text()  # logs name the client too


def closed_without_a_word(port: int, data: bytes, source: str = "127.0.0.1") -> bool:
    with socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0)) as sock:
        sock.sendall(data)
        try:
            return sock.recv(100) == b""
        except ConnectionResetError:
            return True


def test_untrusted_or_malformed_headers_are_refused(server: PostelServer) -> None:
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 25\r\n"
    assert closed_without_a_word(server.port("smtp"), header, source="127.0.0.2")
    assert closed_without_a_word(server.port("smtp"), b"EHLO x\r\n")
    assert closed_without_a_word(server.port("imaps"), b"PROXY TCP4 nonsense\r\n")
    # Listeners without proxy_protocol greet as ever (the header would be a bad command).
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as client:
        assert client.noop()[0] == 250
    assert "Traceback" not in server.log_path.read_text()


class ImapFrom(imaplib.IMAP4):
    """IMAP on the STARTTLS port from a chosen loopback source address."""

    def __init__(self, source: str, *args: Any, **kwargs: Any) -> None:
        self.source = source
        super().__init__(*args, **kwargs)

    def _create_socket(self, timeout: float | None = None) -> Any:
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def login_with_id(server: PostelServer, source: str, client: str, password: str) -> str:
    with ImapFrom(source, "127.0.0.1", server.port("imap"), timeout=30) as imap:
        imap.starttls(ssl_context=server.client_tls())
        assert imap.xatom("ID", f'("name" "proxy" "x-originating-ip" "{client}")')[0] == "OK"
        try:
            imap.login("alice@example.test", password)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def test_id_x_originating_ip_from_a_trusted_proxy_only(server: PostelServer) -> None:
    for _ in range(3):
        assert "AUTHENTICATIONFAILED" in login_with_id(server, "127.0.0.1", "192.0.2.60", "x")
    assert "UNAVAILABLE" in login_with_id(server, "127.0.0.1", "192.0.2.60", PASSWORD)
    assert login_with_id(server, "127.0.0.1", "192.0.2.61", PASSWORD) == "OK"
    # From an untrusted address the claim is ignored: it is counted as itself.
    assert login_with_id(server, "127.0.0.2", "192.0.2.60", PASSWORD) == "OK"


def scrape(server: PostelServer) -> dict[str, float]:
    answer = httpx.get(f"http://127.0.0.1:{server.port('http')}/metrics", timeout=30)
    assert answer.status_code == 200
    return {name: float(value) for name, value in
            (line.split() for line in answer.text.splitlines() if not line.startswith("#"))}


def test_metrics_show_failures_delays_and_blocked_keys(server: PostelServer) -> None:
    before = scrape(server)
    for _ in range(3):
        assert "AUTHENTICATIONFAILED" in imap_login(server, v2_header("192.0.2.70", 1), "bad")
    assert "UNAVAILABLE" in imap_login(server, v2_header("192.0.2.70", 2), "bad")
    after = scrape(server)
    failures = 'postel_login_failures_total{protocol="imap"}'
    assert after[failures] == before.get(failures, 0) + 3
    assert after["postel_logins_refused_total"] == before["postel_logins_refused_total"] + 1
    assert after["postel_logins_delayed_total"] > before["postel_logins_delayed_total"]
    assert after["postel_login_blocked_keys"] >= 1
    log = server.log_path.read_text()
    assert "login delayed" in log and "login refused" in log


# -- XCLIENT (Postfix) on SMTP --------------------------------------------------------------


def smtp_from(server: PostelServer, source: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30,
                          local_hostname="proxy.test", source_address=(source, 0))
    client.starttls(context=server.client_tls())
    client.ehlo()
    return client


def test_xclient_from_a_trusted_proxy_names_client_and_user(server: PostelServer) -> None:
    with smtp_from(server, "127.0.0.1") as client:
        assert client.esmtp_features["xclient"] == "ADDR NAME PORT PROTO HELO LOGIN"
        code, text = client.docmd(
            "XCLIENT", "ADDR=192.0.2.80 NAME=[UNAVAILABLE] HELO=laptop.test "
            "LOGIN=alice+40example.test")
        assert code == 220 and b"ESMTP" in text  # a new greeting: the session starts over
        client.ehlo("proxy.test")
        assert "auth" not in client.esmtp_features  # logged in already
        client.sendmail("alice@example.test", ["alice@example.test"],
                        b"From: alice@example.test\r\nSubject: via xclient\r\n\r\nhi\r\n")
    stored = [m for m in server.inbox("alice@example.test") if b"via xclient" in m]
    assert len(stored) == 1
    assert b"Received: from laptop.test ([192.0.2.80])" in stored[0]
    assert b"with ESMTPSA" in stored[0]


def test_xclient_is_refused_from_others_and_when_malformed(server: PostelServer) -> None:
    with smtp_from(server, "127.0.0.2") as client:
        assert "xclient" not in client.esmtp_features  # advertised to trusted proxies only
        assert client.docmd("XCLIENT", "ADDR=192.0.2.81")[0] == 550
    with smtp_from(server, "127.0.0.1") as client:
        assert client.docmd("XCLIENT", "ADDR=nonsense")[0] == 501
        assert client.docmd("XCLIENT", "LOGIN=nobody+40example.test")[0] == 550
        client.login("alice@example.test", PASSWORD)
        client.mail("alice@example.test")
        assert client.docmd("XCLIENT", "ADDR=192.0.2.81")[0] == 503  # in a transaction
        assert client.noop()[0] == 250


# -- postel block list / remove on the running server's shared counts ------------------


def test_block_list_and_remove_act_on_the_running_server(server: PostelServer) -> None:
    for _ in range(3):
        assert "AUTHENTICATIONFAILED" in imap_login(server, v2_header("192.0.2.90", 1), "bad")
    assert "UNAVAILABLE" in imap_login(server, v2_header("192.0.2.90", 2), PASSWORD)
    listed = server.cli("block", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith("192.0.2.90 "))
    assert "ip" in line and "blocked" in line and "3 failures" in line and "until 20" in line
    removed = server.cli("block", "remove", "192.0.2.90")
    assert removed.returncode == 0 and "3 failed logins forgotten" in removed.stdout
    assert imap_login(server, v2_header("192.0.2.90", 3), PASSWORD) == "OK"  # at once
    assert "192.0.2.90 " not in server.cli("block", "list").stdout
    again = server.cli("block", "remove", "192.0.2.90")
    assert again.returncode == 1 and "no failed logins" in again.stderr
    bad = server.cli("block", "remove", "not-an-address")
    assert bad.returncode == 1 and "neither an IP address" in bad.stderr


def test_http_believes_x_forwarded_for_from_trusted_proxies_only(server: PostelServer) -> None:
    url = f"http://127.0.0.1:{server.port('http')}/metrics"
    forwarded = {"X-Forwarded-For": "192.0.2.5"}
    # From the trusted proxy the client is 192.0.2.5, outside metrics_allow (loopback).
    assert httpx.get(url, headers=forwarded, timeout=30).status_code == 403
    elsewhere = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with elsewhere:
        assert elsewhere.get(url, headers=forwarded, timeout=30).status_code == 200
