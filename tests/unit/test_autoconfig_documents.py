"""The autoconfig documents, built from a config without any server: Thunderbird's
clientConfig, Autodiscover POX/JSON, the Apple profile, the MTA-STS policy."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from postel.autoconfig import autodiscover, mobileconfig, mtasts, thunderbird
from postel.autoconfig.settings import Security, mail_settings
from postel.config import ConfigError, parse_config
from postel.tls import generate_self_signed

AD = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
OL = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>{email}</EMailAddress>'
    "<AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>"
)


def config(**raw: Any) -> Any:
    return parse_config({"hostname": "mail.example.test", **raw})


def request_body(email: str = "Alice@Example.TEST", schema: str = OL[1:-1]) -> bytes:
    return REQUEST.format(email=email, schema=schema).encode()


def servers(root: ET.Element, tag: str) -> list[dict[str, str]]:
    return [
        {"type": s.get("type", ""), **{child.tag: child.text or "" for child in s}}
        for s in root.iter(tag)
    ]


def test_thunderbird_lists_every_enabled_service_recommended_first() -> None:
    root = ET.fromstring(thunderbird.client_config(mail_settings(config()), "example.test"))
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.test"
    assert provider.findtext("domain") == "example.test"
    incoming = servers(root, "incomingServer")
    assert [(s["type"], s["port"], s["socketType"]) for s in incoming] == [
        ("imap", "993", "SSL"), ("imap", "143", "STARTTLS"),
        ("pop3", "995", "SSL"), ("pop3", "110", "STARTTLS"),
    ]
    outgoing = servers(root, "outgoingServer")
    # The recommended SMTP port (587, STARTTLS) comes first: Thunderbird takes the first.
    assert [(s["type"], s["port"], s["socketType"]) for s in outgoing] == [
        ("smtp", "587", "STARTTLS"), ("smtp", "465", "SSL"),
    ]
    for server in incoming + outgoing:
        assert server["hostname"] == "mail.example.test"
        assert server["username"] == "%EMAILADDRESS%"
        assert server["authentication"] == "password-cleartext"


def test_documents_follow_the_configured_ports_and_hostname() -> None:
    changed = parse_config({
        "hostname": "imap.other.test",
        "listen": {"imaps": "0.0.0.0:10993", "imap": "", "pop3": "", "pop3s": "",
                   "submission": "0.0.0.0:2587", "https": "0.0.0.0:8443"},
    })
    settings = mail_settings(changed)
    root = ET.fromstring(thunderbird.client_config(settings, "example.test"))
    assert [(s["hostname"], s["port"]) for s in servers(root, "incomingServer")] == [
        ("imap.other.test", "10993")]
    assert [(s["port"], s["socketType"]) for s in servers(root, "outgoingServer")] == [
        ("2587", "STARTTLS"), ("465", "SSL")]
    docs = root.find("emailProvider/documentation")
    assert docs is not None and docs.get("url") == "https://imap.other.test:8443/settings/device"
    pox = ET.fromstring(autodiscover.response_xml(
        settings, autodiscover.parse_request(request_body())))
    ports = [(p.findtext(f"{OL}Type"), p.findtext(f"{OL}Server"), p.findtext(f"{OL}Port"))
             for p in pox.iter(f"{OL}Protocol")]
    assert ports == [("IMAP", "imap.other.test", "10993"), ("SMTP", "imap.other.test", "2587")]
    profile = plistlib.loads(mobileconfig.profile(settings, "alice@example.test"))
    mail = profile["PayloadContent"][0]
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["OutgoingMailServerPortNumber"]) == ("imap.other.test", 10993, 2587)


def test_autodiscover_answers_the_outlook_schema() -> None:
    requested = autodiscover.parse_request(request_body())
    assert (requested.email, requested.domain) == ("alice@example.test", "example.test")
    root = ET.fromstring(autodiscover.response_xml(mail_settings(config()), requested))
    assert root.tag == f"{AD}Autodiscover"
    account = root.find(f"{OL}Response/{OL}Account")
    assert account is not None
    assert account.findtext(f"{OL}AccountType") == "email"
    assert account.findtext(f"{OL}Action") == "settings"
    protocols = {p.findtext(f"{OL}Type"): {c.tag.removeprefix(OL): c.text for c in p}
                 for p in account.iter(f"{OL}Protocol")}
    assert protocols["IMAP"] == {
        "Type": "IMAP", "Server": "mail.example.test", "Port": "993", "DomainRequired": "off",
        "LoginName": "alice@example.test", "SPA": "off", "SSL": "on", "Encryption": "SSL",
        "AuthRequired": "on"}
    assert protocols["SMTP"]["Port"] == "587"
    assert protocols["SMTP"]["Encryption"] == "TLS"  # Outlook's word for STARTTLS
    assert protocols["SMTP"]["LoginName"] == "alice@example.test"


def test_autodiscover_pop3_only_server() -> None:
    settings = mail_settings(config(listen={"imap": "", "imaps": ""}))
    root = ET.fromstring(autodiscover.response_xml(
        settings, autodiscover.parse_request(request_body())))
    assert [p.findtext(f"{OL}Type") for p in root.iter(f"{OL}Protocol")] == ["POP3", "SMTP"]


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"", 400, 600),
    (b"not xml at all", 400, 600),
    (b"<Autodiscover><Request></Request></Autodiscover>", 400, 600),
    (b"<Other><EMailAddress>a@example.test</EMailAddress></Other>", 400, 600),
    (request_body(email="not an address"), 400, 600),
    (request_body(email="a@[127.0.0.1]"), 400, 600),
    (request_body(schema="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/"
                         "responseschema/2006"), 400, 601),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]>'
     b"<Autodiscover><EMailAddress>&y;</EMailAddress></Autodiscover>", 400, 600),
    (b"<Autodiscover>" + b" " * autodiscover.MAX_REQUEST + b"</Autodiscover>", 413, 600),
])
def test_autodiscover_refuses_bad_requests(body: bytes, status: int, code: int) -> None:
    with pytest.raises(autodiscover.AutodiscoverError) as caught:
        autodiscover.parse_request(body)
    assert (caught.value.status, caught.value.code) == (status, code)
    error = ET.fromstring(autodiscover.error_xml(caught.value))
    assert error.findtext(f"{AD}Response/{AD}Error/{AD}ErrorCode") == str(code)


def test_autodiscover_json_points_at_the_pox_service() -> None:
    settings = mail_settings(config(listen={"https": "0.0.0.0:8443"}))
    assert autodiscover.json_response(settings, "alice@example.test", "AutodiscoverV1") == {
        "Protocol": "AutodiscoverV1",
        "Url": "https://mail.example.test:8443/autodiscover/autodiscover.xml",
    }
    with pytest.raises(autodiscover.AutodiscoverError) as caught:
        autodiscover.json_response(settings, "alice@example.test", "ActiveSync")
    assert caught.value.status == 400 and "protocol" in caught.value.message
    with pytest.raises(autodiscover.AutodiscoverError):
        autodiscover.json_response(settings, "nobody", "AutodiscoverV1")


def test_profile_payload_without_and_with_password() -> None:
    settings = mail_settings(config())
    data = plistlib.loads(mobileconfig.profile(settings, "alice@example.test", "Alice A."))
    assert data["PayloadType"] == "Configuration" and data["PayloadVersion"] == 1
    assert data["PayloadIdentifier"].startswith("test.example.mail.postel.")
    [mail] = data["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == "alice@example.test"
    assert mail["EmailAccountName"] == "Alice A."
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["IncomingMailServerUseSSL"]) == ("mail.example.test", 993, True)
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"],
            mail["OutgoingMailServerUseSSL"]) == ("mail.example.test", 587, True)
    assert mail["IncomingMailServerUsername"] == mail["OutgoingMailServerUsername"] == \
        "alice@example.test"
    assert mail["IncomingMailServerAuthentication"] == "EmailAuthPassword"
    assert mail["OutgoingPasswordSameAsIncomingPassword"] is True
    assert "IncomingPassword" not in mail and "OutgoingPassword" not in mail
    again = plistlib.loads(mobileconfig.profile(settings, "alice@example.test"))
    # Same identifiers every time: a new download replaces the installed account.
    assert again["PayloadUUID"] == data["PayloadUUID"]
    assert again["PayloadContent"][0]["PayloadUUID"] == mail["PayloadUUID"]
    other = plistlib.loads(mobileconfig.profile(settings, "bob@example.test"))
    assert other["PayloadUUID"] != data["PayloadUUID"]
    secret = plistlib.loads(mobileconfig.profile(settings, "alice@example.test",
                                                 password="pw 1234567"))
    assert secret["PayloadContent"][0]["IncomingPassword"] == "pw 1234567"


def test_profile_needs_incoming_and_outgoing_service() -> None:
    settings = mail_settings(config(listen={"submission": "", "submissions": ""}))
    with pytest.raises(mobileconfig.NoMailService):
        mobileconfig.profile(settings, "alice@example.test")


def test_profile_is_signed_with_the_tls_certificate(tmp_path: Any) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed("mail.example.test", cert, key)
    signer = mobileconfig.load_signer(cert, key)
    assert signer is not None
    data = mobileconfig.profile(mail_settings(config()), "alice@example.test")
    signed = signer.sign(data)
    assert signed[:1] == b"\x30"  # DER SEQUENCE: a CMS ContentInfo
    [embedded] = pkcs7.load_der_pkcs7_certificates(signed)
    assert embedded == x509.load_pem_x509_certificate(cert.read_bytes())
    assert data in signed  # the profile travels inside, unchanged
    assert mobileconfig.load_signer(tmp_path / "missing.pem", key) is None


def test_mta_sts_policy_and_id() -> None:
    text = mtasts.policy_text("enforce", ["mail.example.test"], 86400)
    assert text == ("version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\n"
                    "max_age: 86400\r\n")
    ident = mtasts.policy_id(text)
    assert ident.isalnum() and 1 <= len(ident) <= 32
    assert mtasts.policy_id(text.replace("enforce", "testing")) != ident


@pytest.mark.parametrize("raw", [
    {"autoconfig": {"mta_sts_mode": "strict"}},
    {"autoconfig": {"mta_sts_max_age": 0}},
    {"autoconfig": {"mta_sts_max_age": 40000000}},
    {"autoconfig": {"unknown": 1}},
])
def test_autoconfig_settings_are_validated(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="autoconfig"):
        parse_config(raw)


def test_settings_order_and_security() -> None:
    settings = mail_settings(config())
    assert [(e.service, e.security) for e in settings.endpoints] == [
        ("imaps", Security.SSL), ("imap", Security.STARTTLS), ("pop3s", Security.SSL),
        ("pop3", Security.STARTTLS), ("submission", Security.STARTTLS),
        ("submissions", Security.SSL)]
    assert settings.disabled_services() == ()


def test_device_link_token_is_signed_and_expires() -> None:
    from postel.autoconfig import device

    secret = b"k" * 32
    token = device.make_token(secret, 42, expires=1000)
    assert device.read_token(secret, token, now=999.0) == 42
    assert device.read_token(secret, token, now=1001.0) is None
    assert device.read_token(b"x" * 32, token, now=999.0) is None
    forged = token.replace("42.", "43.", 1)
    assert device.read_token(secret, forged, now=999.0) is None
    for junk in ("", "...", "a.b.c", "42.1000", "4²." + token[3:], "x" * 200):
        assert device.read_token(secret, junk, now=0.0) is None
    svg = device.qr_svg("https://mail.example.test/device/" + token, "Set up <alice>")
    assert svg.startswith("<svg") and "&lt;alice&gt;" in svg
