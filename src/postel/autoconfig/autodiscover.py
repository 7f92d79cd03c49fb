"""Microsoft Autodiscover: the "POX" XML exchange Outlook uses for IMAP/SMTP accounts, and
the JSON (v2) redirect form newer Outlook versions ask first.

POX: Outlook POSTs a request naming the address and the response schema it accepts
(``.../outlook/responseschema/2006a``) to /autodiscover/autodiscover.xml and reads one
Protocol element per server. JSON: ``GET /autodiscover/autodiscover.json?Email=ADDR&
Protocol=AutodiscoverV1`` answers with the URL of the POX service.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from postel.autoconfig.settings import Endpoint, MailSettings, Security
from postel.mail.address import AddressError, parse_email

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

# A real request is a few hundred bytes; anything longer is refused before parsing.
MAX_REQUEST = 16 * 1024


class AutodiscoverError(Exception):
    """A request we cannot answer; `status` is the HTTP status, `code` Microsoft's POX
    ErrorCode (500 "cannot be found", 600 "Invalid Request", 601 "Requested schema version
    not supported") and `json_code` the ErrorCode of the JSON form."""

    def __init__(self, status: int, code: int, message: str,
                 json_code: str = "InvalidUser") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.json_code = json_code


@dataclass(frozen=True)
class Requested:
    email: str  # lookup form, Unicode domain
    domain: str  # ASCII (A-label) domain


def requested_address(text: str) -> Requested:
    try:
        address = parse_email(text)
    except AddressError as exc:
        raise AutodiscoverError(400, 600, f"Invalid Request: bad address ({exc})") from None
    if address.domain.startswith("["):
        raise AutodiscoverError(400, 600, "Invalid Request: an address literal has no domain")
    return Requested(address.key, address.ascii_domain())


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_request(body: bytes) -> Requested:
    """The address of a POX request; AutodiscoverError when the body is not one."""
    if len(body) > MAX_REQUEST:
        raise AutodiscoverError(413, 600, "Invalid Request: the request is too large")
    # No DTDs at all: entity expansion ("billion laughs") and external entities are never
    # part of a real request, so refuse them before the parser sees them.
    if b"<!" in body.replace(b"<![CDATA[", b""):
        raise AutodiscoverError(400, 600, "Invalid Request: DTDs are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise AutodiscoverError(400, 600, "Invalid Request: the body is not XML") from None
    if _local(root.tag) != "Autodiscover":
        raise AutodiscoverError(400, 600, "Invalid Request: not an Autodiscover request")
    email = schema = None
    for element in root.iter():
        name = _local(element.tag)
        if name == "EMailAddress":
            email = (element.text or "").strip()
        elif name == "AcceptableResponseSchema":
            schema = (element.text or "").strip()
    if not email:
        raise AutodiscoverError(400, 600, "Invalid Request: no EMailAddress")
    # Only the Outlook schema carries IMAP/SMTP settings; mobilesync (ActiveSync) and
    # others are not offered here.
    if schema is not None and schema != OUTLOOK_NS:
        raise AutodiscoverError(
            400, 601, "Requested schema version not supported: only " + OUTLOOK_NS
        )
    return requested_address(email)


def _protocol(account: ET.Element, hostname: str, endpoint: Endpoint, login: str) -> None:
    node = ET.SubElement(account, "Protocol")
    ET.SubElement(node, "Type").text = endpoint.label
    ET.SubElement(node, "Server").text = hostname
    ET.SubElement(node, "Port").text = str(endpoint.port)
    ET.SubElement(node, "DomainRequired").text = "off"
    ET.SubElement(node, "LoginName").text = login
    ET.SubElement(node, "SPA").text = "off"
    ET.SubElement(node, "SSL").text = "on"
    # Encryption overrides SSL in Outlook 2010 and later: "SSL" is implicit TLS, "TLS" is
    # STARTTLS (what Outlook's account dialog calls the two).
    ET.SubElement(node, "Encryption").text = (
        "SSL" if endpoint.security is Security.SSL else "TLS"
    )
    ET.SubElement(node, "AuthRequired").text = "on"
    if endpoint.protocol == "smtp":
        ET.SubElement(node, "UsePOPAuth").text = "on"
        ET.SubElement(node, "SMTPLast").text = "off"


def response_xml(settings: MailSettings, requested: Requested) -> bytes:
    """The Outlook-schema answer: the preferred IMAP (else POP3) and SMTP servers."""
    # Plain tags with literal xmlns attributes give Microsoft's exact form (a default
    # namespace on Autodiscover, another on Response) instead of generated prefixes.
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    user = ET.SubElement(response, "User")
    ET.SubElement(user, "DisplayName").text = requested.email
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    # Outlook uses the first Protocol of each type: one IMAP (or POP3) and one SMTP.
    incoming = settings.preferred("imap") or settings.preferred("pop3")
    outgoing = settings.preferred("smtp")
    for endpoint in (incoming, outgoing):
        if endpoint is not None:
            _protocol(account, settings.hostname, endpoint, requested.email)
    ET.indent(root)
    return _declared(ET.tostring(root, encoding="unicode"))


def _declared(text: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n").encode()


def error_xml(error: AutodiscoverError, now: datetime | None = None) -> bytes:
    """Microsoft's error response (ErrorCode 600/601/602) for a request we refuse."""
    stamp = (now or datetime.now(UTC)).strftime("%H:%M:%S.%f")[:12]
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response")
    node = ET.SubElement(response, "Error", Time=stamp, Id="0")
    ET.SubElement(node, "ErrorCode").text = str(error.code)
    ET.SubElement(node, "Message").text = error.message
    ET.SubElement(node, "DebugData").text = ""
    ET.indent(root)
    return _declared(ET.tostring(root, encoding="unicode"))


# -- JSON (Autodiscover v2) ------------------------------------------------------------

SUPPORTED_JSON = ("autodiscoverv1",)


def json_response(settings: MailSettings, email: str, protocol: str) -> dict[str, Any]:
    """{"Protocol": "AutodiscoverV1", "Url": ...} for the POX service; only that protocol
    exists here (Exchange's EWS, ActiveSync, REST do not)."""
    requested_address(email)
    if protocol.lower() not in SUPPORTED_JSON:
        raise AutodiscoverError(
            400, 600, f"The given protocol value {protocol!r} is invalid. Supported values "
            "are 'AutodiscoverV1'.", json_code="InvalidProtocol",
        )
    return {
        "Protocol": "AutodiscoverV1",
        "Url": f"{settings.web_url}/autodiscover/autodiscover.xml",
    }
