"""TLS contexts: certificate from the config or a generated self-signed one; reloadable."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postel.config import Config

log = logging.getLogger("postel.tls")

# OpenSSL cipher string for TLS 1.2 (tests/integration/test_tls_scan.py checks the result).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"


class TlsSetupError(Exception):
    pass


def generate_self_signed(hostname: str, cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def certificate_paths(config: Config) -> tuple[Path, Path]:
    """The configured pair, or the self-signed pair in data_dir (created when missing)."""
    if config.tls.cert is not None and config.tls.key is not None:
        for label, path in (("tls.cert", config.tls.cert), ("tls.key", config.tls.key)):
            if not path.is_file():
                raise TlsSetupError(f"{label}: {path} does not exist or is not a file")
        return config.tls.cert, config.tls.key
    cert_path = config.data_dir / "tls" / "selfsigned.crt"
    key_path = config.data_dir / "tls" / "selfsigned.key"
    if not cert_path.exists() or not key_path.exists():
        log.info("generating a self-signed certificate for %s in %s", config.hostname, cert_path)
        generate_self_signed(config.hostname, cert_path, key_path)
    return cert_path, key_path


class TlsContexts:
    """The server SSLContext, reloadable on SIGHUP without dropping connections.

    Listening sockets keep the one `context` object they were given; its SNI callback
    (which OpenSSL runs on every ClientHello, with or without a server name) switches each
    new handshake to the newest loaded context. Connections already encrypted keep theirs.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._current = self._build()
        self.context = self._build()
        self.context.sni_callback = self._select

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext
    ) -> None:
        connection.context = self._current

    def _build(self) -> ssl.SSLContext:
        cert, key = certificate_paths(self.config)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # TLS 1.2: forward-secret AEAD suites only (RFC 9325 4.2; Mozilla "intermediate").
        # Python's default list also has ECDHE with CBC, which every client that speaks
        # TLS 1.2 can do without. TLS 1.3's suites are all AEAD and set apart by OpenSSL.
        context.set_ciphers(TLS12_CIPHERS)
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise TlsSetupError(f"cannot load certificate {cert} / key {key}: {exc}") from None
        return context

    def reload(self) -> None:
        self._current = self._build()
        log.info("TLS certificate reloaded")
