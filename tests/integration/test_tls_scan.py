"""Every TLS endpoint scanned with sslyze (Python API, offline, fast): implicit TLS on
993, 995, 465 and 443, STARTTLS on 25, 587, 143 and 110. Policy: TLS 1.2 and 1.3 only;
in TLS 1.2 only forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305),
so no NULL, anonymous, export, RC4, 3DES or CBC; no compression, no insecure
renegotiation, no Heartbleed or CCS injection.

Plus STARTTLS command injection with the plaintext in the *same* segment as STARTTLS
(test_hardening_starttls.py covers the second segment): never executed inside TLS.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from sslyze import (
    ProtocolWithOpportunisticTlsEnum,
    ScanCommand,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

from tests.harness import HOSTNAME, PASSWORD, PostelServer
from tests.integration.test_hardening_starttls import _line
from tests.web.helpers import start

ALICE = "alice@example.test"
STARTTLS = {"smtp": ProtocolWithOpportunisticTlsEnum.SMTP,
            "submission": ProtocolWithOpportunisticTlsEnum.SMTP,
            "imap": ProtocolWithOpportunisticTlsEnum.IMAP,
            "pop3": ProtocolWithOpportunisticTlsEnum.POP3}
IMPLICIT = ("imaps", "pop3s", "submissions", "https")
REFUSED_VERSIONS = (ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
                    ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES)
COMMANDS = {*REFUSED_VERSIONS, ScanCommand.TLS_1_2_CIPHER_SUITES,
            ScanCommand.TLS_1_3_CIPHER_SUITES, ScanCommand.TLS_COMPRESSION,
            ScanCommand.SESSION_RENEGOTIATION, ScanCommand.HEARTBLEED,
            ScanCommand.OPENSSL_CCS_INJECTION}
# TLS 1.2 suites we allow (IANA names, as sslyze reports them): forward secrecy and AEAD.
ALLOWED_TLS12 = ("TLS_ECDHE_", "TLS_DHE_")
AEAD = ("_GCM_", "_CHACHA20_POLY1305_")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    # sslyze opens many connections at once: lift the per-address caps for the scan.
    server = PostelServer(
        tmp_path_factory.mktemp("tls"),
        extra_config="[smtp]\nmax_connections_per_ip = 500\n"
                     "[imap]\nmax_connections_per_ip = 500\n"
                     "[pop3]\nmax_connections_per_ip = 500\n"
                     "[web]\nmax_connections_per_ip = 500\n"
                     "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n")
    server.add_user(ALICE)
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def scans(server: PostelServer) -> dict[str, Any]:
    requests = []
    for name in (*IMPLICIT, *STARTTLS):
        location = ServerNetworkLocation(hostname="localhost", port=server.port(name),
                                         ip_address="127.0.0.1")
        network = ServerNetworkConfiguration(
            tls_server_name_indication=HOSTNAME,
            tls_opportunistic_encryption=STARTTLS.get(name), network_timeout=10,
            smtp_ehlo_hostname="scan.test" if name in ("smtp", "submission") else None)
        requests.append(ServerScanRequest(server_location=location,
                                          network_configuration=network,
                                          scan_commands=COMMANDS))
    names = {server.port(n): n for n in (*IMPLICIT, *STARTTLS)}
    scanner = Scanner(per_server_concurrent_connections_limit=5,
                      concurrent_server_scans_limit=8)
    scanner.queue_scans(requests)
    return {names[r.server_location.port]: r for r in scanner.get_results()}


@pytest.mark.parametrize("name", [*IMPLICIT, *STARTTLS])
def test_tls_policy(scans: dict[str, Any], name: str) -> None:
    result = scans[name]
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    attempts = result.scan_result
    for command in COMMANDS:
        attempt = getattr(attempts, command.value)
        assert attempt.error_trace is None, (name, command, attempt.error_trace)
    for command in REFUSED_VERSIONS:
        accepted = getattr(attempts, command.value).result.accepted_cipher_suites
        assert accepted == [], (name, command, [s.cipher_suite.name for s in accepted])
    tls13 = attempts.tls_1_3_cipher_suites.result.accepted_cipher_suites
    assert tls13, name
    tls12 = [s.cipher_suite for s in attempts.tls_1_2_cipher_suites.result
             .accepted_cipher_suites]
    assert tls12, name  # TLS 1.2 stays for older clients
    for suite in tls12:
        assert suite.name.startswith(ALLOWED_TLS12), (name, suite.name)
        assert any(a in suite.name for a in AEAD), (name, suite.name)
        assert not suite.is_anonymous and suite.key_size >= 128, (name, suite.name)
    assert not attempts.tls_compression.result.supports_compression
    renegotiation = attempts.session_renegotiation.result
    assert not renegotiation.is_vulnerable_to_client_renegotiation_dos, name
    assert not attempts.heartbleed.result.is_vulnerable_to_heartbleed
    assert not attempts.openssl_ccs_injection.result.is_vulnerable_to_ccs_injection


# -- STARTTLS injection in the same segment ----------------------------------------------


def _upgrade(server: PostelServer, sock: socket.socket) -> ssl.SSLSocket | None:
    """The handshake, or None when the server refused to go on (also safe)."""
    try:
        return server.client_tls().wrap_socket(sock, server_hostname="localhost")
    except (ssl.SSLError, ConnectionError):
        return None


def _rest(sock: ssl.SSLSocket, command: bytes) -> list[bytes]:
    """Send one command inside TLS; the lines that follow until the server hangs up."""
    sock.sendall(command)
    sock.settimeout(5)
    lines = []
    try:
        while True:
            lines.append(_line(sock))
    except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
        return lines


def test_smtp_plaintext_behind_starttls_in_one_segment(server: PostelServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port("submission")), timeout=30)
    _line(sock)
    sock.sendall(b"EHLO x\r\n")
    while not _line(sock).startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\n")
    assert _line(sock).startswith(b"220")
    tls = _upgrade(server, sock)
    if tls is None:
        return
    lines = _rest(tls, b"EHLO x\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n")
    replies = [line for line in lines if line[3:4] == b" "]
    # EHLO 250, then RCPT: 503 (no MAIL ran inside TLS) or 530 (not authenticated).
    assert replies[0].startswith(b"250"), lines
    assert replies[1][:3] in (b"503", b"530"), lines


def test_imap_plaintext_behind_starttls_in_one_segment(server: PostelServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port("imap")), timeout=30)
    _line(sock)
    sock.sendall(b"S STARTTLS\r\nX LOGIN " + ALICE.encode() + b' "' + PASSWORD.encode()
                 + b'"\r\n')
    assert _line(sock).startswith(b"S OK")
    tls = _upgrade(server, sock)
    if tls is None:
        return
    lines = _rest(tls, b"A SELECT INBOX\r\nB LOGOUT\r\n")
    assert not any(line.startswith(b"X ") for line in lines), lines
    assert any(line.startswith(b"A BAD") or line.startswith(b"A NO") for line in lines), lines


def test_pop3_plaintext_behind_stls_in_one_segment(server: PostelServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port("pop3")), timeout=30)
    _line(sock)
    sock.sendall(b"STLS\r\nUSER " + ALICE.encode() + b"\r\n")
    assert _line(sock).startswith(b"+OK")
    tls = _upgrade(server, sock)
    if tls is None:
        return
    lines = _rest(tls, b"PASS " + PASSWORD.encode() + b"\r\nQUIT\r\n")
    assert lines and lines[0].startswith(b"-ERR"), lines  # no USER was read inside TLS
