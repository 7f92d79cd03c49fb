"""A mail client's discovery from the address alone, against Postel on loopback, with a
test-only DNS server (dnslib) that makes the domain's names point at 127.0.0.1; then the
DNS records `postel dns` and the DNS records page suggest, checked against that server."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from urllib.parse import quote, urlsplit

import dns.resolver
import httpx
import pytest
from dnslib import QTYPE, RR
from dnslib.server import DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver

from postel.mailauth.dkim import generate_key
from postel.store.model import Role
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, logon, start

DOMAIN = "example.test"
OL = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
POX_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>{}</EMailAddress>'
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
)


class ZoneServer:
    """dnslib on a free loopback port (UDP and TCP) answering from a replaceable zone."""

    def __init__(self) -> None:
        self.resolver = ZoneResolver("")
        quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", False)
        for _ in range(20):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
            probe.close()
            try:
                self.udp = DNSServer(self.resolver, port=self.port, address="127.0.0.1",
                                     logger=quiet)
                self.tcp = DNSServer(self.resolver, port=self.port, address="127.0.0.1",
                                     tcp=True, logger=quiet)
                break
            except OSError:
                continue
        else:  # pragma: no cover
            raise RuntimeError("no free port for the test DNS server")
        self.udp.start_thread()
        self.tcp.start_thread()

    def publish(self, zone: str) -> None:
        self.resolver.zone = [(rr.rname, QTYPE[rr.rtype], rr) for rr in RR.fromZone(zone)]

    def resolve(self, name: str) -> str | None:
        """What a client on this machine would get for `name` (IPv4), or None."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 5
        try:
            return str(resolver.resolve(name, "A", search=False)[0])
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None

    def stop(self) -> None:
        self.udp.stop()
        self.tcp.stop()


@pytest.fixture(scope="module")
def zone() -> Iterator[ZoneServer]:
    server = ZoneServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, zone: ZoneServer) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("discovery"),
        extra_config=f'[dns]\nnameservers = ["127.0.0.1:{zone.port}"]\ntimeout = 3.0\n'
                     "[web]\nlogin_backoff_base = 0.0\n",
    )
    server.add_user("alice@example.test", backup_email="alice@backup.test")
    server.add_user("boss@example.test", role=Role.DOMAIN_ADMIN, backup_email="b@backup.test")
    server.add_user("boss@other.test", role=Role.DOMAIN_ADMIN, backup_email="o@backup.test")
    start(server)
    yield server
    server.close()


# -- a client's discovery --------------------------------------------------------------


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Found:
    imap: tuple[str, int, str]  # host, port, "SSL" or "STARTTLS"
    smtp: tuple[str, int, str]
    username: str


class Client:
    """Fetches URLs the way a mail client would, but resolves names with the test DNS
    server and maps the standard ports 80/443 to this Postel's HTTP/HTTPS ports."""

    def __init__(self, server: PostelServer, zone: ZoneServer) -> None:
        self.server = server
        self.zone = zone
        self.attempts: list[str] = []

    def request(self, method: str, url: str, content: str | None = None) -> httpx.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        address = self.zone.resolve(host)
        if address is None:
            self.attempts.append(f"{host}: no such name")
            raise NotFound(host)
        port = self.server.port("https" if parts.scheme == "https" else "http")
        target = f"{parts.scheme}://{address}:{port}{parts.path}"
        if parts.query:
            target += "?" + parts.query
        with httpx.Client(verify=False, timeout=30) as http:
            response = http.request(
                method, target, content=content, headers={"host": host},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
        self.attempts.append(f"{method} {url}: {response.status_code}")
        if response.status_code != 200:
            raise NotFound(url)
        return response


def from_clientconfig(body: bytes, email: str) -> Found:
    root = ET.fromstring(body)
    imap = next(s for s in root.iter("incomingServer") if s.get("type") == "imap")
    smtp = next(iter(root.iter("outgoingServer")))

    def endpoint(node: ET.Element) -> tuple[str, int, str]:
        return (node.findtext("hostname") or "", int(node.findtext("port") or 0),
                node.findtext("socketType") or "")

    username = (imap.findtext("username") or "").replace("%EMAILADDRESS%", email)
    return Found(endpoint(imap), endpoint(smtp), username)


def from_autodiscover(body: bytes) -> Found:
    root = ET.fromstring(body)
    found = {}
    for proto in root.iter(f"{OL}Protocol"):
        security = {"SSL": "SSL", "TLS": "STARTTLS"}[proto.findtext(f"{OL}Encryption") or ""]
        found[proto.findtext(f"{OL}Type")] = (
            (proto.findtext(f"{OL}Server") or "", int(proto.findtext(f"{OL}Port") or 0),
             security), proto.findtext(f"{OL}LoginName") or "")
    return Found(found["IMAP"][0], found["SMTP"][0], found["IMAP"][1])


def discover(client: Client, email: str) -> tuple[str, Found]:
    """Thunderbird's order, then Outlook's: autoconfig.DOMAIN, the well-known URL on the
    domain, then Autodiscover. The first that answers wins."""
    domain = email.rpartition("@")[2]
    query = f"emailaddress={quote(email)}"
    try:
        answer = client.request("GET", f"http://autoconfig.{domain}/mail/config-v1.1.xml?{query}")
        return "autoconfig", from_clientconfig(answer.content, email)
    except NotFound:
        pass
    try:
        answer = client.request(
            "GET", f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml?{query}")
        return "well-known", from_clientconfig(answer.content, email)
    except NotFound:
        pass
    answer = client.request("POST", f"https://autodiscover.{domain}/autodiscover/autodiscover.xml",
                            POX_REQUEST.format(email))
    return "autodiscover", from_autodiscover(answer.content)


def send_and_read(server: PostelServer, zone: ZoneServer, found: Found) -> None:
    """Log in with the discovered settings (imaplib, smtplib), send, and read it back."""
    tls = server.client_tls()
    smtp_host, smtp_port, smtp_security = found.smtp
    smtp_address = zone.resolve(smtp_host)
    assert smtp_address is not None
    subject = f"discovered {uuid.uuid4().hex}"
    message = EmailMessage()
    message["From"] = message["To"] = found.username
    message["Subject"] = subject
    message.set_content("Sent with the settings the client found by itself.\n")
    smtp: smtplib.SMTP
    if smtp_security == "SSL":
        smtp = smtplib.SMTP_SSL(smtp_address, smtp_port, context=tls, timeout=30)
    else:
        smtp = smtplib.SMTP(smtp_address, smtp_port, timeout=30)
        smtp.starttls(context=tls)
    with smtp:
        smtp.login(found.username, PASSWORD)
        smtp.send_message(message)
    imap_host, imap_port, imap_security = found.imap
    imap_address = zone.resolve(imap_host)
    assert imap_address is not None
    imap: imaplib.IMAP4
    if imap_security == "SSL":
        imap = imaplib.IMAP4_SSL(imap_address, imap_port, ssl_context=tls, timeout=30)
    else:
        imap = imaplib.IMAP4(imap_address, imap_port, timeout=30)
        imap.starttls(tls)
    try:
        imap.login(found.username, PASSWORD)
        imap.select("INBOX")
        status, data = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
        assert status == "OK" and data[0], data
        uid = data[0].split()[-1]
        status, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        assert status == "OK"
        raw = next(part[1] for part in fetched if isinstance(part, tuple))
        read = BytesParser(policy=default).parsebytes(raw)
        assert read["Subject"] == subject
        body = read.get_body(("plain",))
        assert body is not None and "found by itself" in body.get_content()
        imap.logout()
    finally:
        if imap.state != "LOGOUT":
            imap.shutdown()


ALL_NAMES = ("autoconfig.example.test", "example.test", "autodiscover.example.test")


@pytest.mark.parametrize(("published", "source", "failed"), [
    (ALL_NAMES, "autoconfig", 0),
    (("example.test", "autodiscover.example.test"), "well-known", 1),
    (("autodiscover.example.test",), "autodiscover", 2),
])
def test_discovery_from_the_address_alone(server: PostelServer, zone: ZoneServer,
                                          published: tuple[str, ...], source: str,
                                          failed: int) -> None:
    names = ("mail.example.test", *published)
    zone.publish("\n".join(f"{name}. 60 IN A 127.0.0.1" for name in names))
    client = Client(server, zone)
    found_by, found = discover(client, "alice@example.test")
    assert found_by == source, client.attempts
    # The earlier steps failed the way a client sees it (no such name), then one answered.
    assert len(client.attempts) == failed + 1, client.attempts
    assert all("no such name" in attempt for attempt in client.attempts[:failed])
    assert found.username == "alice@example.test"
    assert found.imap == ("mail.example.test", server.port("imaps"), "SSL")
    assert found.smtp == ("mail.example.test", server.port("submission"), "STARTTLS")
    send_and_read(server, zone, found)


def test_every_discovery_source_agrees(server: PostelServer, zone: ZoneServer) -> None:
    zone.publish("\n".join(f"{name}. 60 IN A 127.0.0.1"
                           for name in ("mail.example.test", *ALL_NAMES)))
    client = Client(server, zone)
    email = "alice@example.test"
    answers = [
        from_clientconfig(client.request(
            "GET", f"http://autoconfig.{DOMAIN}/mail/config-v1.1.xml?emailaddress={email}"
        ).content, email),
        from_clientconfig(client.request(
            "GET", f"https://{DOMAIN}/.well-known/autoconfig/mail/config-v1.1.xml").content,
            email),
        from_autodiscover(client.request(
            "POST", f"https://autodiscover.{DOMAIN}/autodiscover/autodiscover.xml",
            POX_REQUEST.format(email)).content),
    ]
    assert answers[0] == answers[1] == answers[2]


def test_unknown_address_domain_is_not_discovered(server: PostelServer,
                                                  zone: ZoneServer) -> None:
    zone.publish("\n".join(f"{name}. 60 IN A 127.0.0.1" for name in (
        "autoconfig.elsewhere.test", "elsewhere.test", "autodiscover.elsewhere.test")))
    client = Client(server, zone)
    with pytest.raises(NotFound):
        discover(client, "alice@elsewhere.test")
    assert [a.rsplit(": ", 1)[1] for a in client.attempts] == ["404", "404", "404"]


# -- the records to publish, and the check ---------------------------------------------


def published_zone(server: PostelServer) -> str:
    """What `postel dns` prints, plus the server's address it cannot know."""
    printed = server.cli("dns", DOMAIN)
    assert printed.returncode == 0, printed.stderr
    return printed.stdout + "mail.example.test. 60 IN A 127.0.0.1\n"


def test_postel_dns_prints_and_checks(server: PostelServer, zone: ZoneServer) -> None:
    if not server.store.dkim.signing_keys(DOMAIN):
        server.store.dkim.add_key(DOMAIN, "sel1", "rsa-sha256", generate_key())
    text = published_zone(server)
    for needed in (f"{DOMAIN}.", "IN MX    10 mail.example.test.", '"v=spf1 mx ~all"',
                   "sel1._domainkey.example.test.", "v=DKIM1; k=rsa; p=", "_dmarc.example.test.",
                   "autoconfig.example.test.", "autodiscover.example.test.",
                   f"_imaps._tcp.example.test.                IN SRV   0 1 {server.port('imaps')} "
                   "mail.example.test.",
                   f"_submission._tcp.example.test.           IN SRV   0 1 "
                   f"{server.port('submission')} mail.example.test.",
                   "_submissions._tcp.example.test.", "_pop3._tcp.example.test.",
                   "_pop3s._tcp.example.test.", "_imap._tcp.example.test.",
                   f"_autodiscover._tcp.example.test.         IN SRV   0 1 "
                   f"{server.port('https')} mail.example.test."):
        assert needed in text, needed
    zone.publish(text)
    checked = server.cli("dns", DOMAIN, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = [line for line in checked.stdout.splitlines() if not line.startswith(" ")]
    assert lines and all(line.startswith("found ") for line in lines), checked.stdout
    # Remove the MX and publish another SPF: the check says so and fails.
    changed = "\n".join(line for line in text.splitlines() if " IN MX " not in line)
    zone.publish(changed.replace("v=spf1 mx ~all", "v=spf1 a -all"))
    checked = server.cli("dns", DOMAIN, "--check")
    assert checked.returncode == 1
    mx_line = next(line for line in checked.stdout.splitlines() if " IN MX " in line)
    spf_line = next(line for line in checked.stdout.splitlines() if '"v=spf1' in line)
    assert mx_line.startswith("missing ")
    assert spf_line.startswith("different ")
    assert '; DNS has: v=spf1 a -all' in checked.stdout


def test_dns_records_page_with_live_check(server: PostelServer, zone: ZoneServer) -> None:
    text = published_zone(server)
    zone.publish("\n".join(line for line in text.splitlines() if "_dmarc" not in line))
    with client(server) as boss:
        assert logon(boss, "boss@example.test", PASSWORD).status_code == 303
        page = boss.get("/admin/dns")
        assert page.status_code == 200
        assert 'data-name="_dmarc.example.test"' in page.text
        assert "data-status=" not in page.text  # the check runs only when asked
        assert 'href="/admin/dns?domain=example.test"' in page.text
        checked = boss.get("/admin/dns", params={"domain": DOMAIN, "check": "1"})
        assert checked.status_code == 200
        assert 'data-name="_dmarc.example.test" data-type="TXT" data-status="missing"' in \
            checked.text
        assert ('data-name="example.test" data-type="MX" data-status="found"'
                in checked.text)
        assert ('data-name="_imaps._tcp.example.test" data-type="SRV" data-status="found"'
                in checked.text)
        assert "data-status=\"different\"" not in checked.text
        # A domain admin sees only their own domain.
        assert boss.get("/admin/dns", params={"domain": "other.test"}).status_code == 403
    with client(server) as alice:
        assert logon(alice, "alice@example.test", PASSWORD).status_code == 303
        assert alice.get("/admin/dns").status_code == 403
