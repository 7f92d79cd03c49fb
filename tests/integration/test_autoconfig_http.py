"""Thunderbird autoconfig, Autodiscover (XML and JSON), the Apple profile, MTA-STS and the
"Set up your device" page, fetched over real HTTP and HTTPS from a running Postel."""

from __future__ import annotations

import plistlib
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, csrf, logon, start

OL = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
AD = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
POX_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?>\r\n'
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>{}</EMailAddress>'
    "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("autoconfig"),
        extra_config='[web]\nlogin_backoff_base = 0.0\n[autoconfig]\nmta_sts_mode = "testing"\n'
                     "mta_sts_max_age = 86400\n",
    )
    server.add_user("alice@example.test", backup_email="alice@backup.test",
                    display_name="Alice Liddell")
    server.add_user("bob@example.test", backup_email="bob@backup.test")
    start(server)
    yield server
    server.close()


@pytest.fixture
def https(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as c:
        yield c


@pytest.fixture
def http(server: PostelServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port('http')}", timeout=30) as c:
        yield c


@pytest.fixture
def alice(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as c:
        assert logon(c, "alice@example.test", PASSWORD).status_code == 303
        yield c


def expected_servers(server: PostelServer) -> dict[str, list[tuple[str, str, str]]]:
    """What the documents must list: this server's configured (random) ports."""
    host = "mail.example.test"
    return {
        "incomingServer": [
            ("imap", str(server.port("imaps")), "SSL"),
            ("imap", str(server.port("imap")), "STARTTLS"),
            ("pop3", str(server.port("pop3s")), "SSL"),
            ("pop3", str(server.port("pop3")), "STARTTLS"),
        ],
        "outgoingServer": [
            ("smtp", str(server.port("submission")), "STARTTLS"),
            ("smtp", str(server.port("submissions")), "SSL"),
        ],
        "hostname": [(host, host, host)],
    }


def check_clientconfig(server: PostelServer, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "example.test"
    assert provider.findtext("domain") == "example.test"
    want = expected_servers(server)
    for tag in ("incomingServer", "outgoingServer"):
        found = root.findall(f"emailProvider/{tag}")
        assert [(s.get("type"), s.findtext("port"), s.findtext("socketType"))
                for s in found] == want[tag]
        for s in found:
            assert s.findtext("hostname") == "mail.example.test"
            assert s.findtext("username") == "%EMAILADDRESS%"
            assert s.findtext("authentication") == "password-cleartext"


def test_thunderbird_autoconfig_on_http_and_https(server: PostelServer, http: httpx.Client,
                                                  https: httpx.Client) -> None:
    # autoconfig.DOMAIN over plain HTTP stays on HTTP (no redirect), as Thunderbird asks it.
    plain = http.get("/mail/config-v1.1.xml",
                     params={"emailaddress": "alice@example.test"},
                     headers={"host": "autoconfig.example.test"})
    check_clientconfig(server, plain)
    check_clientconfig(server, https.get("/mail/config-v1.1.xml",
                                         params={"emailaddress": "Alice@EXAMPLE.test"}))
    # The well-known location on the domain itself, with and without the address.
    check_clientconfig(server, https.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                                         headers={"host": "example.test"}))
    check_clientconfig(server, http.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                                        params={"emailaddress": "bob@example.test"}))


def test_thunderbird_autoconfig_unknown_domain_and_bad_address(http: httpx.Client,
                                                               https: httpx.Client) -> None:
    unknown = http.get("/mail/config-v1.1.xml",
                       params={"emailaddress": "alice@elsewhere.test"})
    assert unknown.status_code == 404
    by_host = https.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                        headers={"host": "elsewhere.test"})
    assert by_host.status_code == 404
    bad = http.get("/mail/config-v1.1.xml", params={"emailaddress": "no address<>"})
    assert bad.status_code == 400
    # Everything else on port 80 still moves to HTTPS.
    assert http.get("/settings/device").status_code == 301


def test_autodiscover_pox(server: PostelServer, https: httpx.Client) -> None:
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        answer = https.post(path, content=POX_REQUEST.format("alice@example.test"),
                            headers={"content-type": "text/xml"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/xml")
        root = ET.fromstring(answer.content)
        assert root.tag == f"{AD}Autodiscover"
        account = root.find(f"{OL}Response/{OL}Account")
        assert account is not None
        assert account.findtext(f"{OL}AccountType") == "email"
        assert account.findtext(f"{OL}Action") == "settings"
        protocols = {p.findtext(f"{OL}Type"): p for p in account.findall(f"{OL}Protocol")}
        assert set(protocols) == {"IMAP", "SMTP"}
        imap, smtp = protocols["IMAP"], protocols["SMTP"]
        assert (imap.findtext(f"{OL}Server"), imap.findtext(f"{OL}Port"),
                imap.findtext(f"{OL}SSL"), imap.findtext(f"{OL}Encryption")) == (
            "mail.example.test", str(server.port("imaps")), "on", "SSL")
        assert (smtp.findtext(f"{OL}Server"), smtp.findtext(f"{OL}Port"),
                smtp.findtext(f"{OL}Encryption")) == (
            "mail.example.test", str(server.port("submission")), "TLS")
        for proto in (imap, smtp):
            assert proto.findtext(f"{OL}LoginName") == "alice@example.test"
            assert proto.findtext(f"{OL}AuthRequired") == "on"
            assert proto.findtext(f"{OL}SPA") == "off"


def error_code(response: httpx.Response) -> str | None:
    return ET.fromstring(response.content).findtext(f"{AD}Response/{AD}Error/{AD}ErrorCode")


def test_autodiscover_pox_errors_are_clean_4xx(https: httpx.Client) -> None:
    path = "/autodiscover/autodiscover.xml"
    unknown = https.post(path, content=POX_REQUEST.format("alice@elsewhere.test"))
    assert unknown.status_code == 404 and error_code(unknown) == "500"
    for body in (b"", b"<Autodiscover><Request>", b"\xff\xfe garbage",
                 POX_REQUEST.format("not an address").encode(),
                 b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                 b"<Autodiscover><EMailAddress>&e;</EMailAddress></Autodiscover>"):
        malformed = https.post(path, content=body)
        assert malformed.status_code == 400, body
        assert error_code(malformed) == "600"
    # Bigger than any request: refused by the view (16 KiB) ...
    big = https.post(path, content=b"<Autodiscover>" + b" " * 100_000 + b"</Autodiscover>")
    assert big.status_code == 413
    # ... also when it arrives chunked, without a length ...
    chunked = https.post(path, content=iter([b"<Autodiscover>"] + [b" " * 65536] * 8))
    assert chunked.status_code == 413
    # ... and a huge one is refused by its Content-Length before it is read.
    huge = https.post(path, content=b"x" * (3 * 1024 * 1024))
    assert huge.status_code == 413
    assert https.get(path).status_code == 405


def test_autodiscover_json(https: httpx.Client, server: PostelServer) -> None:
    base = f"https://mail.example.test:{server.port('https')}"
    answer = https.get("/autodiscover/autodiscover.json",
                       params={"Email": "alice@example.test", "Protocol": "AutodiscoverV1"})
    assert answer.status_code == 200
    assert answer.json() == {"Protocol": "AutodiscoverV1",
                             "Url": f"{base}/autodiscover/autodiscover.xml"}
    path_form = https.get("/autodiscover/autodiscover.json/v1.0/alice@example.test",
                          params={"Protocol": "autodiscoverv1"})
    assert path_form.status_code == 200 and path_form.json() == answer.json()
    unknown = https.get("/autodiscover/autodiscover.json",
                        params={"Email": "a@elsewhere.test", "Protocol": "AutodiscoverV1"})
    assert unknown.status_code == 404 and unknown.json()["ErrorCode"] == "InvalidUser"
    other = https.get("/autodiscover/autodiscover.json",
                      params={"Email": "alice@example.test", "Protocol": "ActiveSync"})
    assert other.status_code == 400 and other.json()["ErrorCode"] == "InvalidProtocol"
    missing = https.get("/autodiscover/autodiscover.json")
    assert missing.status_code == 400
    bad = https.get("/autodiscover/autodiscover.json",
                    params={"Email": "nobody", "Protocol": "AutodiscoverV1"})
    assert bad.status_code == 400


def unwrap_signed(server: PostelServer, data: bytes) -> bytes:
    """Verify the CMS signature against the server's certificate and return the content."""
    signed = server.root / "profile.p7"
    signed.write_bytes(data)
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed),
         "-CAfile", str(server.cert_path), "-purpose", "any"],
        capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Verification successful" in result.stderr
    return result.stdout


def test_profile_download_is_signed_and_has_no_password(server: PostelServer,
                                                        alice: httpx.Client) -> None:
    answer = alice.get("/settings/device/profile.mobileconfig")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-apple-aspen-config"
    assert "attachment" in answer.headers["content-disposition"]
    assert "alice%40example.test.mobileconfig" in answer.headers["content-disposition"]
    profile = plistlib.loads(unwrap_signed(server, answer.content))
    assert profile["PayloadType"] == "Configuration"
    [mail] = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAddress"] == "alice@example.test"
    assert mail["EmailAccountName"] == "Alice Liddell"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "mail.example.test", server.port("imaps"))
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (
        "mail.example.test", server.port("submission"))
    assert mail["IncomingMailServerUsername"] == "alice@example.test"
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"]
    assert "IncomingPassword" not in mail
    assert PASSWORD.encode() not in answer.content


def test_profile_with_password_only_when_asked_and_correct(server: PostelServer,
                                                           alice: httpx.Client) -> None:
    page = alice.get("/settings/device")
    token = csrf(page.text)
    path = "/settings/device/profile.mobileconfig"
    wrong = alice.post(path, data={"csrf_token": token, "include_password": "on",
                                   "password": "not my password"})
    assert wrong.status_code == 400
    assert "not your current password" in wrong.text
    assert wrong.headers["content-type"].startswith("text/html")
    forged = alice.post(path, data={"include_password": "on", "password": PASSWORD})
    assert forged.status_code == 403
    asked = alice.post(path, data={"csrf_token": token, "include_password": "on",
                                   "password": PASSWORD})
    assert asked.status_code == 200
    [mail] = plistlib.loads(unwrap_signed(server, asked.content))["PayloadContent"]
    assert mail["IncomingPassword"] == PASSWORD
    not_asked = alice.post(path, data={"csrf_token": token, "password": PASSWORD})
    [mail] = plistlib.loads(unwrap_signed(server, not_asked.content))["PayloadContent"]
    assert "IncomingPassword" not in mail


def test_profile_and_setup_page_need_a_logon(https: httpx.Client) -> None:
    for path in ("/settings/device", "/settings/device/profile.mobileconfig"):
        answer = https.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/logon?next=")


def test_setup_page_shows_this_accounts_settings(server: PostelServer,
                                                 alice: httpx.Client) -> None:
    page = alice.get("/settings/device")
    assert page.status_code == 200
    text = page.text
    assert "alice@example.test" in text and "mail.example.test" in text
    assert f"with email sent using <strong>SMTP (port {server.port('submission')})" in text
    for service in ("imaps", "imap", "pop3s", "pop3", "submission", "submissions"):
        assert f"port <strong>{server.port(service)}</strong>" in text
    for guide in ("thunderbird", "outlook", "apple-mail", "iphone", "android"):
        assert f'id="guide-{guide}"' in text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in text and 'class="qr"' in text
    # My Settings links to it.
    assert 'href="/settings/device"' in alice.get("/settings").text


def test_qr_link_opens_settings_and_profile_without_logon(server: PostelServer,
                                                          alice: httpx.Client) -> None:
    page = alice.get("/settings/device").text
    found = re.search(r'href="(https://[^"]+/device/([^"/]+))" id="device-link"', page)
    assert found, page
    link, token = found.groups()
    assert link.startswith(f"https://mail.example.test:{server.port('https')}/device/")
    with client(server) as phone:
        opened = phone.get(f"/device/{token}")
        assert opened.status_code == 200
        assert "alice@example.test" in opened.text
        assert f"port <strong>{server.port('imaps')}</strong>" in opened.text
        profile = phone.get(f"/device/{token}/profile.mobileconfig")
        assert profile.status_code == 200
        [mail] = plistlib.loads(unwrap_signed(server, profile.content))["PayloadContent"]
        assert mail["EmailAddress"] == "alice@example.test"
        assert "IncomingPassword" not in mail
        account_id, expires, mac = token.split(".")
        for bad in (f"{int(account_id) + 1}.{expires}.{mac}",
                    f"{account_id}.{int(expires) + 1}.{mac}", "junk"):
            assert phone.get(f"/device/{bad}").status_code == 404
            assert phone.get(f"/device/{bad}/profile.mobileconfig").status_code == 404


def test_mta_sts_policy(https: httpx.Client, http: httpx.Client) -> None:
    answer = https.get("/.well-known/mta-sts.txt", headers={"host": "mta-sts.example.test"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == ("version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\n"
                           "max_age: 86400\r\n")
    assert https.get("/.well-known/mta-sts.txt",
                     headers={"host": "mta-sts.elsewhere.test"}).status_code == 404
    assert https.get("/.well-known/mta-sts.txt",
                     headers={"host": "example.test"}).status_code == 404
    # RFC 8461 3.3: HTTPS only; port 80 redirects like every other page.
    assert http.get("/.well-known/mta-sts.txt",
                    headers={"host": "mta-sts.example.test"}).status_code == 301


def test_mta_sts_is_not_served_when_off(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel()
    server.add_domain("example.test")
    start(server)
    with client(server) as c:
        assert c.get("/.well-known/mta-sts.txt",
                     headers={"host": "mta-sts.example.test"}).status_code == 404


def test_documents_follow_a_changed_config(make_postel: Callable[..., PostelServer]) -> None:
    """Change the hostname and turn POP3 off, restart: every document says so."""
    server = make_postel()
    server.add_domain("example.test")
    start(server)
    with client(server) as c:
        before = ET.fromstring(c.get("/mail/config-v1.1.xml",
                                     params={"emailaddress": "a@example.test"}).content)
    assert {s.findtext("hostname") for s in before.iter("incomingServer")} == {
        "mail.example.test"}
    assert "pop3" in {s.get("type") for s in before.iter("incomingServer")}
    server.stop()
    text = server.config_path.read_text()
    text = text.replace('hostname = "mail.example.test"', 'hostname = "mx.example.test"')
    text = re.sub(r'(?m)^pop3s? = "[^"]*"$', lambda m: m.group(0).split(" =")[0] + ' = ""',
                  text)
    server.config_path.write_text(text)
    start(server)
    with client(server) as c:
        after = ET.fromstring(c.get("/mail/config-v1.1.xml",
                                    params={"emailaddress": "a@example.test"}).content)
        pox = ET.fromstring(c.post("/autodiscover/autodiscover.xml",
                                   content=POX_REQUEST.format("a@example.test")).content)
        assert c.get("/autodiscover/autodiscover.json", params={
            "Email": "a@example.test", "Protocol": "AutodiscoverV1"}).json()["Url"] == (
            f"https://mx.example.test:{server.port('https')}/autodiscover/autodiscover.xml")
    assert [(s.get("type"), s.findtext("hostname"), s.findtext("port"))
            for s in after.iter("incomingServer")] == [
        ("imap", "mx.example.test", str(server.port("imaps"))),
        ("imap", "mx.example.test", str(server.port("imap")))]
    assert {s.findtext("hostname") for s in after.iter("outgoingServer")} == {"mx.example.test"}
    assert {p.findtext(f"{OL}Server") for p in pox.iter(f"{OL}Protocol")} == {"mx.example.test"}
    printed = server.cli("dns", "example.test")
    assert printed.returncode == 0, printed.stderr
    assert "IN MX    10 mx.example.test." in printed.stdout
    assert re.search(r"_pop3\._tcp\.example\.test\. +IN SRV +0 0 0 \.", printed.stdout)
    assert re.search(rf"_imaps\._tcp\.example\.test\. +IN SRV +0 1 {server.port('imaps')} "
                     r"mx\.example\.test\.", printed.stdout)
