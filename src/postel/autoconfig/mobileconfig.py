"""Apple configuration profiles (.mobileconfig) with one com.apple.mail.managed payload,
for the Mail app on iPhone, iPad and Mac.

The profile is an XML property list. When the server's certificate and key can be read it
is wrapped in a CMS SignedData (what Apple calls a signed profile): the device then shows
who issued it, "Verified" when the certificate chains to a trusted root. The password is
included only when the user asks for it; otherwise the device asks at installation.
"""

from __future__ import annotations

import logging
import plistlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from postel.autoconfig.settings import MailSettings

log = logging.getLogger("postel.autoconfig")

MAIL_PAYLOAD = "com.apple.mail.managed"
MEDIA_TYPE = "application/x-apple-aspen-config"


class NoMailService(Exception):
    """No IMAP/POP3 or no SMTP submission listener is enabled: nothing to configure."""


def _reverse(hostname: str) -> str:
    return ".".join(reversed(hostname.split(".")))


def profile(settings: MailSettings, email: str, display_name: str = "", *,
            password: str | None = None) -> bytes:
    """The unsigned profile (XML plist) for `email`; `password` only when asked for."""
    incoming = settings.preferred("imap") or settings.preferred("pop3")
    outgoing = settings.preferred("smtp")
    if incoming is None or outgoing is None:
        raise NoMailService("no IMAP/POP3 or SMTP submission service is enabled")
    # Stable identifiers: installing a newer profile for the same account replaces the old
    # one instead of adding a second account.
    account_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email}")
    identifier = f"{_reverse(settings.hostname)}.postel.{account_uuid}"
    account = {
        "PayloadType": MAIL_PAYLOAD,
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier + ".mail",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"postel-mail:{identifier}")).upper(),
        "PayloadDisplayName": f"Mail: {email}",
        "PayloadDescription": f"Mail settings for {email}",
        "EmailAccountDescription": email,
        "EmailAccountName": display_name or email,
        "EmailAccountType": "EmailTypeIMAP" if incoming.protocol == "imap" else "EmailTypePOP",
        "EmailAddress": email,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": settings.hostname,
        "IncomingMailServerPortNumber": incoming.port,
        # Apple's UseSSL means "use TLS": implicit on 993/995/465, STARTTLS on the others.
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": email,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.hostname,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": email,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    if password is not None:
        account["IncomingPassword"] = password
    document = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"postel:{identifier}")).upper(),
        "PayloadDisplayName": f"{email} ({settings.hostname})",
        "PayloadDescription": f"Adds the mail account {email} on {settings.hostname} "
                              "to the Mail app.",
        "PayloadOrganization": settings.hostname,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(document, fmt=plistlib.FMT_XML)


@dataclass(frozen=True)
class Signer:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]  # intermediates sent along

    def sign(self, data: bytes) -> bytes:
        """CMS SignedData (DER) with the content attached."""
        builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
            self.certificate, self.key, hashes.SHA256()
        )
        for extra in self.chain:
            builder = builder.add_certificate(extra)
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def load_signer(cert_path: Path, key_path: Path) -> Signer | None:
    """The TLS certificate (chain) and key as a profile signer; None when they cannot be
    read or the key type cannot sign CMS (the profile is then served unsigned)."""
    try:
        certificates = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        log.warning("profiles are served unsigned: cannot read %s / %s: %s",
                    cert_path, key_path, exc)
        return None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        log.warning("profiles are served unsigned: the %s key cannot sign them",
                    type(key).__name__)
        return None
    return Signer(certificates[0], key, tuple(certificates[1:]))
