"""Thunderbird's autoconfig document (the "clientConfig" v1.1 format).

Thunderbird asks http(s)://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDR and
https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml, and offers the first server of
each kind as its choice, so the order of MailSettings (the recommended first) matters.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from postel.autoconfig.settings import Endpoint, MailSettings


def _server(parent: ET.Element, tag: str, hostname: str, endpoint: Endpoint) -> None:
    server = ET.SubElement(parent, tag, type=endpoint.protocol)
    ET.SubElement(server, "hostname").text = hostname
    ET.SubElement(server, "port").text = str(endpoint.port)
    ET.SubElement(server, "socketType").text = endpoint.security.value
    # Thunderbird replaces %EMAILADDRESS% with what the user typed: the login is the full
    # address everywhere in Postel.
    ET.SubElement(server, "username").text = "%EMAILADDRESS%"
    # The password travels in clear text inside TLS: every listed port is TLS-protected
    # (implicit or STARTTLS) and Postel refuses AUTH before TLS.
    ET.SubElement(server, "authentication").text = "password-cleartext"


def client_config(settings: MailSettings, domain: str) -> bytes:
    """The clientConfig XML for `domain` (an ASCII domain name)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = f"{domain} mail ({settings.hostname})"
    ET.SubElement(provider, "displayShortName").text = domain
    for endpoint in settings.of("imap") + settings.of("pop3"):
        _server(provider, "incomingServer", settings.hostname, endpoint)
    for endpoint in settings.of("smtp"):
        _server(provider, "outgoingServer", settings.hostname, endpoint)
    if settings.https_port is not None:
        docs = ET.SubElement(provider, "documentation", url=f"{settings.web_url}/settings/device")
        ET.SubElement(docs, "descr", lang="en").text = "Set up your device"
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n").encode()
