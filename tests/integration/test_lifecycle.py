"""Start-up errors, certificate reload on SIGHUP, graceful stop on SIGTERM, first admin."""

from __future__ import annotations

import errno
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from postel.app import _bind_error
from postel.tls import generate_self_signed
from tests.harness import PostelServer
from tests.integration.smtp_helpers import RawSmtp


def serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postel", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unknown_key_stops_startup_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[smtp]\nmax_mesage_size = 10\n")
    result = serve(config)
    assert result.returncode == 2
    assert "smtp.max_mesage_size: unknown setting" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_stops_startup_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[listen]\nsmtp = "127.0.0.1:99999"\n')
    result = serve(config)
    assert result.returncode == 2 and "listen.smtp" in result.stderr


def test_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'data_dir = "{tmp_path}/data"\n[tls]\ncert = "/nonexistent/cert.pem"\n'
        'key = "/nonexistent/key.pem"\n'
    )
    result = serve(config)
    assert result.returncode == 2
    assert "tls.cert: /nonexistent/cert.pem does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel(services=("smtp",))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", server.port("smtp")))
    blocker.listen()
    try:
        result = serve(server.config_path)
    finally:
        blocker.close()
    assert result.returncode == 2
    assert f"listen.smtp: cannot bind 127.0.0.1:{server.port('smtp')}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_privileged_port_message_says_how_to_fix_it() -> None:
    message = str(_bind_error("smtp", "0.0.0.0:25", OSError(errno.EACCES, "Permission denied")))
    assert "permission denied" in message
    assert "--dev" in message and "setcap" in message


def test_first_start_prints_services_and_a_first_admin(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(services=("smtp", "submission", "submissions"))
    server.start()
    server.stop()
    output = server.log_path.read_text()
    assert f"smtp         127.0.0.1:{server.port('smtp')}" in output
    assert f"submissions  127.0.0.1:{server.port('submissions')}" in output
    assert "First admin: admin@mail.example.test  password: " in output
    admin = server.store.directory.get_account("admin@mail.example.test")
    assert admin is not None and admin.role.value == "admin"


def _served_common_name(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.rfc4514_string())


def test_sighup_reloads_the_certificate_without_dropping_connections(
    make_postel: Callable[..., PostelServer], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed("first.example.test", cert, key)
    server = make_postel(extra_config=f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    server.start()
    port = server.port("submissions")
    assert _served_common_name(port) == "CN=first.example.test"
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    held = RawSmtp(port, tls=context)  # an encrypted session open across the reload

    generate_self_signed("second.example.test", cert, key)
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while _served_common_name(port) != "CN=second.example.test":
        assert time.monotonic() < deadline, "certificate was not reloaded"
        time.sleep(0.05)
    assert held.command("NOOP")[0] == 250
    held.close()
    # STARTTLS on 587 uses the new certificate too.
    raw = RawSmtp(server.port("submission"))
    raw.command("EHLO x")
    assert raw.command("STARTTLS")[0] == 220
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    wrapped = tls.wrap_socket(raw.sock)
    der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    assert "second.example.test" in x509.load_der_x509_certificate(der).subject.rfc4514_string()
    wrapped.close()


def test_sigterm_lets_a_transaction_in_flight_finish(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(services=("smtp",))
    server.add_user("alice@example.test")
    server.start()
    idle = RawSmtp(server.port("smtp"))
    busy = RawSmtp(server.port("smtp"))
    busy.command("EHLO busy.test")
    busy.command("MAIL FROM:<a@remote.test>")
    busy.command("RCPT TO:<alice@example.test>")
    assert busy.command("DATA")[0] == 354
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # The idle session is told the service is shutting down.
    assert idle.reply()[0] == 421
    busy.send(b"second half\r\n.\r\n")
    assert busy.reply()[0] == 250
    assert busy.reply()[0] == 421  # then it is closed too
    assert server.process.wait(30) == 0
    assert server.inbox("alice@example.test")[-1].endswith(b"first half\r\nsecond half\r\n")


def test_a_failed_start_creates_no_admin_whose_password_nobody_saw(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(services=("smtp",))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", server.port("smtp")))
    blocker.listen()
    try:
        assert serve(server.config_path).returncode == 2
    finally:
        blocker.close()
    server.start()
    server.stop()
    assert "First admin: admin@mail.example.test" in server.log_path.read_text()


def test_sigterm_does_not_wait_for_idle_tls_clients(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(services=("submissions",))
    server.start()
    held = RawSmtp(server.port("submissions"), tls=server.client_tls())
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert held.reply()[0] == 421
    # The client never answers the TLS goodbye; the server must not wait 30 s for it.
    assert server.process.wait(20) == 0
    assert time.monotonic() - started < 20
    held.close()
