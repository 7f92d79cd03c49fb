"""The account flows of the service page, driven in headless chromium (Debian's, through
Playwright; no browser download). Each test saves a screenshot under test-artifacts/web/.

One Postel server and one browser serve the whole module; each test gets a fresh
browser context (its own cookies).
"""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import update

from postel.store.model import Role
from postel.store.sql import schema
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import reset_link, start, wait_for_mail

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
NEW_PASSWORD = "brand new browser pass 7"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium (make test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("web"),
                          extra_config="[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test", display_name="Alice",
                    backup_email="alice.backup@backup.test")
    server.add_user("alice.backup@backup.test")
    server.add_user("erin@example.test", backup_email="erin.backup@backup.test")
    server.add_user("erin.backup@backup.test")
    server.add_user("bob@example.test", backup_email="bob@old.test")
    server.add_user("boss@a.example", role=Role.DOMAIN_ADMIN, backup_email="boss@x.test")
    server.add_user("ann@a.example", backup_email="ann@x.test")
    server.add_user("zed@b.example", backup_email="zed@x.test")
    server.add_user("root@example.test", role=Role.ADMIN, backup_email="root@x.test")
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(server: PostelServer) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                # Reset links name the configured host name; it lives on 127.0.0.1 here.
                "--host-resolver-rules=MAP mail.example.test 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, server: PostelServer) -> Iterator[BrowserContext]:
    context = browser.new_context(
        ignore_https_errors=True,
        base_url=f"https://127.0.0.1:{server.port('https')}",
        viewport={"width": 1000, "height": 760},
    )
    context.set_default_timeout(15000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = context.new_page()
    yield page
    shot(page, request.node.name)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_on(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/logon")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log on").click()


def ask_for_reset(page: Page, email: str) -> None:
    page.goto("/logon")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("Email address").fill(email)
    challenge = page.locator("#challenge").input_value()
    # The test-only hook (web.test_hooks, loopback servers only) reads the answer.
    answer = page.request.get(f"/__test__/captcha/{challenge}").text()
    page.get_by_label("Code shown in the picture").fill(answer)
    shot(page, f"forgot_password_form_{email.split('@')[0]}")
    page.get_by_role("button", name="Send the reset link").click()
    expect(page.locator("#reset-sent")).to_be_visible()


# -- tests ------------------------------------------------------------------------------


def test_logon_failure_then_success(page: Page) -> None:
    log_on(page, "alice@example.test", "this is not it")
    expect(page.get_by_role("alert")).to_have_text("The email address or password is incorrect.")
    shot(page, "logon_failure")
    log_on(page, "alice@example.test")
    # Logon lands in the webmail's Inbox; My Settings is one click away.
    expect(page.locator("#list-title")).to_have_text("Inbox")
    page.get_by_role("link", name="My Settings").click()
    expect(page.get_by_role("heading", name="My Settings")).to_be_visible()
    expect(page.get_by_label("Backup Email Address")).to_have_value("alice.backup@backup.test")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log on")).to_be_visible()


def test_forgot_password_end_to_end(page: Page, server: PostelServer) -> None:
    ask_for_reset(page, "alice@example.test")
    mail = wait_for_mail(server, "alice.backup@backup.test", 1)[0]
    assert mail["From"] == "postmaster@mail.example.test"
    page.goto(reset_link(mail))  # the link exactly as mailed
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("New password again").fill("short")
    page.get_by_role("button", name="Set the new password").click()
    # The browser's own minlength check, or the server's message: either way no change.
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    # The user is told at the backup address.
    notice = wait_for_mail(server, "alice.backup@backup.test", 2)[1]
    assert "was changed" in str(notice["Subject"])
    # The new password works at once: in the browser and over the mail protocols.
    page.get_by_role("link", name="Log on").click()
    log_on(page, "alice@example.test", NEW_PASSWORD)
    expect(page.locator("#list-title")).to_have_text("Inbox")
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=server.client_tls())
        smtp.login("alice@example.test", NEW_PASSWORD)
    with imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30) as imap:
        imap.starttls(ssl_context=server.client_tls())
        assert imap.login("alice@example.test", NEW_PASSWORD)[0] == "OK"
    with imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30) as imap:
        imap.starttls(ssl_context=server.client_tls())
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.test", PASSWORD)
    # The link was single-use.
    page.goto(reset_link(mail))
    expect(page.get_by_text("has expired or has already been used")).to_be_visible()


def test_expired_reset_link_is_refused(page: Page, server: PostelServer) -> None:
    ask_for_reset(page, "erin@example.test")
    mail = wait_for_mail(server, "erin.backup@backup.test", 1)[0]
    with server.store.engine.begin() as conn:
        conn.execute(update(schema.password_reset_tokens).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    page.goto(reset_link(mail))
    expect(page.get_by_text("has expired or has already been used")).to_be_visible()


def test_my_settings_backup_address(page: Page, server: PostelServer) -> None:
    log_on(page, "bob@example.test")
    page.get_by_role("link", name="My Settings").click()
    field = page.get_by_label("Backup Email Address")
    expect(field).to_have_value("bob@old.test")
    field.fill("bob@new.test")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Your settings were saved.")
    expect(page.get_by_label("Backup Email Address")).to_have_value("bob@new.test")
    account = server.store.directory.get_account("bob@example.test")
    assert account is not None and account.backup_email == "bob@new.test"


def test_domain_admin_edits_backup_and_resets_password(page: Page,
                                                       server: PostelServer) -> None:
    log_on(page, "boss@a.example")
    page.get_by_role("link", name="Domain Settings").click()
    page.get_by_role("link", name="Edit ann@a.example").click()
    expect(page.get_by_role("link", name="User", exact=True)).to_be_visible()
    backup = page.get_by_label("Backup Email Address")
    expect(backup).to_have_value("ann@x.test")
    backup.fill("ann@elsewhere.test")
    page.get_by_label("New password").fill("reset by the boss 1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The user was saved.")
    shot(page, "domain_admin_user_tab")
    account = server.store.directory.get_account("ann@a.example")
    assert account is not None and account.backup_email == "ann@elsewhere.test"
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=server.client_tls())
        smtp.login("ann@a.example", "reset by the boss 1")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="user.update")).to_be_visible()


def test_domain_admin_refused_on_other_domain(page: Page, server: PostelServer) -> None:
    log_on(page, "boss@a.example")
    page.goto("/admin/users/zed@b.example/edit")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    page.goto("/admin/users?domain=b.example")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    # The API behind the pages refuses too, with the browser's own session.
    token = page.request.get("/api/v1/session").json()["csrf_token"]
    assert page.request.get("/api/v1/users/zed@b.example").status == 403
    patched = page.request.patch("/api/v1/users/zed@b.example",
                                 data={"backup_email": "evil@x.test"},
                                 headers={"X-CSRF-Token": token})
    assert patched.status == 403
    account = server.store.directory.get_account("zed@b.example")
    assert account is not None and account.backup_email == "zed@x.test"


def test_system_admin_adds_domain(page: Page, server: PostelServer) -> None:
    log_on(page, "root@example.test")
    page.get_by_role("link", name="System").click()
    page.get_by_label("Domain name").fill("new.example")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("status")).to_have_text("Added the domain new.example.")
    expect(page.get_by_role("cell", name="new.example")).to_be_visible()
    assert server.store.directory.get_domain("new.example") is not None


def test_logon_page_on_a_phone(browser: Browser, server: PostelServer) -> None:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 375,
                                                                     "height": 740})
    page = context.new_page()
    page.goto(f"https://127.0.0.1:{server.port('https')}/forgot-password")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # no sideways scrolling
    shot(page, "test_logon_page_on_a_phone")
    context.close()
