"""The "Set up your device" page, the phone page behind its QR code and the DNS records
page in a real browser (Playwright + Debian's chromium); screenshots in
test-artifacts/web/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from postel.store.model import Role
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, logon, start

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium (make test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("pages"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test", backup_email="alice@backup.test",
                    display_name="Alice Liddell")
    server.add_user("boss@example.test", role=Role.DOMAIN_ADMIN, backup_email="b@backup.test")
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  # The QR link names the configured host name; it lives on 127.0.0.1.
                  "--host-resolver-rules=MAP mail.example.test 127.0.0.1"],
        )
        yield browser
        browser.close()


def signed_in_context(browser: Browser, server: PostelServer, email: str,
                      **options: Any) -> BrowserContext:
    """A browser context carrying the session the web helpers' logon() made."""
    base = f"https://127.0.0.1:{server.port('https')}"
    with client(server) as http:
        assert logon(http, email, PASSWORD).status_code == 303
        cookies = [{"name": name, "value": value, "url": base}
                   for name, value in http.cookies.items()]
    context = browser.new_context(
        ignore_https_errors=True, base_url=base, accept_downloads=True, **options)
    context.add_cookies(cookies)
    return context


def test_set_up_your_device_page(browser: Browser, server: PostelServer) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = signed_in_context(browser, server, "alice@example.test",
                                viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.goto("/settings")
        page.get_by_role("link", name="Set up your device").click()
        page.wait_for_url("**/settings/device")
        expect(page.get_by_role("heading", name="Set up your device")).to_be_visible()
        table = page.locator("#mail-settings")
        expect(table).to_contain_text("alice@example.test")
        expect(table).to_contain_text("mail.example.test")
        expect(table.locator("tr[data-protocol=imap]")).to_contain_text(
            f"port {server.port('imaps')}, SSL/TLS recommended")
        expect(table.locator("tr[data-protocol=smtp]")).to_contain_text(
            f"port {server.port('submission')}, STARTTLS recommended")
        expect(page.locator("#recommendation")).to_contain_text(
            f"SMTP (port {server.port('submission')})")
        for guide in ("Thunderbird", "Outlook", "Apple Mail", "iPhone and iPad", "Android"):
            heading = page.get_by_role("heading", level=3, name=re.compile("^" + guide))
            expect(heading).to_be_visible()
        qr = page.locator("svg.qr")
        expect(qr).to_be_visible()
        box = qr.bounding_box()
        assert box is not None and box["width"] >= 100 and box["width"] == box["height"]
        page.screenshot(path=str(ARTIFACTS / "autoconfig-set-up-your-device.png"),
                        full_page=True)
        # The profile downloads as a file, password-less.
        with page.expect_download() as download_info:
            page.locator("#download-profile").click()
        download = download_info.value
        assert download.suggested_filename == "alice@example.test.mobileconfig"
        data = Path(download.path()).read_bytes()
        assert b"com.apple.mail.managed" in data and PASSWORD.encode() not in data
        link = page.locator("#device-link").get_attribute("href")
        assert link is not None and "/device/" in link
    finally:
        context.close()
    # The QR code's page on a phone that is not signed in.
    phone = browser.new_context(
        ignore_https_errors=True, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = phone.new_page()
        page.goto(link)
        expect(page.locator("#device-profile")).to_be_visible()
        expect(page.locator("#mail-settings")).to_contain_text(
            "alice@example.test")
        page.screenshot(path=str(ARTIFACTS / "autoconfig-phone-link.png"), full_page=True)
    finally:
        phone.close()


def test_dns_records_page(browser: Browser, server: PostelServer) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = signed_in_context(browser, server, "boss@example.test",
                                viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.goto("/admin/users")
        page.get_by_role("link", name="DNS records").click()
        page.wait_for_url("**/admin/dns?domain=example.test")
        rows = page.locator("#dns-records tr[data-type]")
        assert rows.count() == 14  # MX, A, SPF, DKIM, DMARC, 2 CNAMEs, 7 SRV (no MTA-STS)
        expect(page.locator("#zone")).to_contain_text(
            "postel dkim generate example.test")
        # No [dns] resolvers: the reserved .test names are not sent out, so "unknown".
        page.locator("#check-dns").click()
        page.wait_for_url("**check=1**")
        expect(page.locator("#check-summary")).to_contain_text("unknown")
        page.screenshot(path=str(ARTIFACTS / "autoconfig-dns-records.png"), full_page=True)
    finally:
        context.close()
