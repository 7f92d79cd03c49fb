"""The webmail in headless chromium (Debian's, through Playwright), against a real server:
mail arrives over SMTP, flags change over IMAP, replies and attachments are checked over
IMAP and on the other side. Screenshots go to test-artifacts/webmail/.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import start
from tests.webmail.helpers import imap, imap_messages, smtp_send

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webmail"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium (make test installs it)")


class Tracker(http.server.BaseHTTPRequestHandler):
    """A "remote image" server: it counts every request (none may arrive)."""

    hits: list[str] = []

    def do_GET(self) -> None:
        Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tracker() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("webmail"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test", display_name="Alice", backup_email="a@backup.test")
    server.add_user("bob@example.test", display_name="Bob", backup_email="b@backup.test")
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser(server: PostelServer) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            # --ignore-certificate-errors besides the context's ignore_https_errors: the
            # download manager's own request (a new TLS connection when the pooled ones are
            # busy, as under load) otherwise meets the self-signed certificate and the
            # download is "canceled".
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--ignore-certificate-errors"],
        )
        yield browser
        browser.close()


def new_context(browser: Browser, server: PostelServer, **kwargs: object) -> BrowserContext:
    options: dict[str, object] = {"ignore_https_errors": True, "accept_downloads": True,
                                  "base_url": f"https://127.0.0.1:{server.port('https')}",
                                  "viewport": {"width": 1280, "height": 800}}
    options.update(kwargs)
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(15000)
    return context


@pytest.fixture
def context(browser: Browser, server: PostelServer) -> Iterator[BrowserContext]:
    context = new_context(browser, server)
    yield context
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def log_on(page: Page, address: str) -> None:
    page.goto("/logon")
    page.get_by_label("Email address").fill(address)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log on").click()
    expect(page.locator("#mail[data-ready=true]")).to_be_attached()








def row(page: Page, subject: str) -> object:
    return page.locator("#message-list li", has_text=subject)


# -- tests ------------------------------------------------------------------------------


def test_inbox_live_mail_html_reading_and_reply(context: BrowserContext,
                                                server: PostelServer, tracker: int) -> None:
    page = context.new_page()
    scripts_ran: list[str] = []
    page.on("console", lambda m: scripts_ran.append(m.text) if "pwned" in m.text else None)
    log_on(page, "alice@example.test")
    expect(page).to_have_url(f"https://127.0.0.1:{server.port('https')}/mail#folder/"
                             + page.url.rsplit("/", 1)[-1])
    expect(page.locator("#list-title")).to_have_text("Inbox")
    expect(page.locator("#folder-tree")).to_contain_text("Sent")
    shot(page, "inbox_empty")
    # Delivered over SMTP while the page is open: it appears without a reload.
    html = (
        "From: Carol <carol@elsewhere.test>\r\nTo: alice@example.test\r\n"
        "Subject: Team dinner\r\nMessage-ID: <dinner-1@elsewhere.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
        "--a\r\nContent-Type: text/plain\r\n\r\nDinner at eight, bring the zucchini.\r\n"
        "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<h2 style=\"color:#1f5fbf\">Dinner at eight</h2><p>Bring the <b>zucchini</b>.</p>"
        "<script>console.log('pwned')</script><img alt=\"tracker\" "
        f"src=\"http://127.0.0.1:{tracker}/pixel.png\">"
        "<p><a href=\"javascript:console.log('pwned')\">details</a></p>\r\n--a--\r\n"
    ).encode()
    smtp_send(server, html)
    expect(row(page, "Team dinner")).to_be_visible()
    expect(row(page, "Team dinner")).to_have_class("message unread")
    expect(page.locator("#folder-tree a[data-role=inbox] .count")).to_have_text("1")
    expect(page).to_have_title("(1) Inbox · Postel")
    shot(page, "inbox")
    row(page, "Team dinner").locator("a.summary").click()
    frame = page.frame_locator("iframe.body-frame")
    expect(frame.locator("h2")).to_have_text("Dinner at eight")
    expect(page.locator(".remote-banner")).to_contain_text("Remote images were blocked")
    expect(page.locator("#folder-tree a[data-role=inbox] .count")).to_have_count(0)  # read
    shot(page, "reading_html")
    assert Tracker.hits == [] and scripts_ran == []
    assert frame.locator("script").count() == 0
    # Reply: threading headers on the other side, checked over IMAP.
    page.keyboard.press("r")
    expect(page.locator("#compose-subject")).to_have_value("Re: Team dinner")
    page.locator("#compose-to").fill("bob@example.test")
    page.locator("#compose-body").press("Control+Home")
    page.locator("#compose-body").type("Count me in. ")
    shot(page, "compose_reply")
    page.locator("#compose-send").click()
    expect(page.locator("#toast")).to_contain_text("Message sent.", timeout=20000)
    (reply,) = [m for m in imap_messages(server, "bob@example.test", "INBOX")
                if m["Subject"] == "Re: Team dinner"]
    assert reply["In-Reply-To"] == "<dinner-1@elsewhere.test>"
    assert reply["References"] == "<dinner-1@elsewhere.test>"
    assert "Count me in." in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "> Dinner at eight" in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # Search by a body word (the full-text index).
    page.locator("#search").fill("zucchini")
    page.locator("#search").press("Enter")
    expect(page.locator("#list-title")).to_have_text("Search: zucchini")
    expect(row(page, "Team dinner")).to_be_visible()
    shot(page, "search")
    assert Tracker.hits == [] and scripts_ran == []


def test_attachment_compose_and_download_identical(browser: Browser, server: PostelServer,
                                                   tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4000 + b"end"  # about 1 MB: several upload chunks
    source = tmp_path / "report.bin"
    source.write_bytes(payload)
    alice = new_context(browser, server)
    page = alice.new_page()
    log_on(page, "alice@example.test")
    page.locator("#compose-button").click()
    page.locator("#compose-to").fill("bob@example.test")
    page.locator("#compose-subject").fill("Quarterly report")
    page.locator("#compose-body").fill("The report is attached.")
    page.locator("#compose-files").set_input_files(str(source))
    expect(page.locator("#compose-attachments")).to_contain_text("report.bin")
    expect(page.locator("#compose-attachments")).not_to_contain_text("%")
    shot(page, "compose")
    page.locator("#compose-send").click()
    expect(page.locator("#toast")).to_contain_text("Message sent.", timeout=20000)
    alice.close()
    bob = new_context(browser, server)
    page = bob.new_page()
    log_on(page, "bob@example.test")
    row(page, "Quarterly report").locator("a.summary").click()
    # Opening marks it read, and the live view re-renders the list and the pane for that
    # change: click the attachment once that has settled, as a person would.
    expect(row(page, "Quarterly report")).not_to_have_class(re.compile(r"\bunread\b"))
    with page.expect_download() as download:
        page.locator("a.attachment", has_text="report.bin").click()
    # Say why, if the browser gives up on it (where the page went tells a navigation away).
    failure = download.value.failure()
    assert failure is None, f"download {failure}; the page is at {page.url}"
    saved = tmp_path / "downloaded.bin"
    download.value.save_as(saved)
    assert saved.read_bytes() == payload
    bob.close()


def test_move_to_folder_and_flag_over_imap(context: BrowserContext,
                                           server: PostelServer) -> None:
    smtp_send(server, b"From: Dan <dan@elsewhere.test>\r\nSubject: Invoice 42\r\n\r\nPay me.\r\n")
    page = context.new_page()
    log_on(page, "alice@example.test")
    page.once("dialog", lambda dialog: dialog.accept("Accounts"))
    page.locator("#new-folder").click()
    expect(page.locator("#folder-tree")).to_contain_text("Accounts")
    target = row(page, "Invoice 42")
    target.locator("input.pick").check()
    page.locator("#move-to").select_option(label="Accounts")
    expect(page.locator("#toast")).to_contain_text("Moved 1 message")
    expect(target).to_have_count(0)
    moved = imap_messages(server, "alice@example.test", "Accounts")
    assert [m["Subject"] for m in moved] == ["Invoice 42"]
    page.locator("#folder-tree a", has_text="Accounts").click()
    star = row(page, "Invoice 42").locator("button.star")
    expect(star).to_have_attribute("aria-pressed", "false")
    # A flag set over IMAP shows in the open page without a reload.
    with imap(server, "alice@example.test") as client:
        client.select("Accounts")
        client.uid("STORE", "1:*", "+FLAGS", "(\\Flagged)")
    expect(star).to_have_attribute("aria-pressed", "true")


def test_draft_survives_a_reload(context: BrowserContext, server: PostelServer) -> None:
    page = context.new_page()
    log_on(page, "alice@example.test")
    page.locator("#compose-button").click()
    page.locator("#compose-to").fill("bob@example.test")
    page.locator("#compose-subject").fill("Half-written thoughts")
    page.locator("#compose-body").fill("These words must not be lost.")
    expect(page.locator("#draft-state")).to_have_text("Draft saved", timeout=20000)
    page.reload()
    expect(page.locator("#mail[data-ready=true]")).to_be_attached()
    page.locator("#folder-tree a[data-role=drafts]").click()
    row(page, "Half-written thoughts").locator("a.summary").click()
    expect(page.locator("#compose-body")).to_have_value("These words must not be lost.")
    expect(page.locator("#compose-to")).to_have_value("bob@example.test")
    page.locator("#compose-discard").click()


def test_phone_layout(browser: Browser, server: PostelServer) -> None:
    context = new_context(browser, server, viewport={"width": 360, "height": 740},
                          is_mobile=True, has_touch=True)
    page = context.new_page()
    log_on(page, "alice@example.test")
    expect(page.locator("#folders-pane")).to_be_hidden()
    expect(page.locator("#message-list")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width  # nothing wider than the screen
    shot(page, "phone_list")
    page.locator("#message-list li a.summary").first.click()
    expect(page.locator("#reader .reader-subject")).to_be_visible()
    expect(page.locator("#list-pane")).to_be_hidden()
    shot(page, "phone_reader")
    page.get_by_role("button", name="← Back").click()
    expect(page.locator("#message-list")).to_be_visible()
    page.locator("#show-folders").click()
    expect(page.locator("#folders-pane")).to_be_visible()
    shot(page, "phone_folders")
    context.close()


def hostile_html(tracker: int) -> bytes:
    remote = f"http://127.0.0.1:{tracker}"
    return (
        "From: Mallory <mallory@evil.test>\r\nTo: alice@example.test\r\n"
        "Subject: Hostile page\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        f"<html><head><meta http-equiv=\"refresh\" content=\"0;url={remote}/refresh\">"
        f"<style>@import url({remote}/import.css); body{{background:url({remote}/bg)}}</style>"
        f"<link rel=stylesheet href=\"{remote}/link.css\"></head>"
        "<body onload=\"alert('onload')\"><h2>Still readable</h2>"
        "<script>alert('script')</script>"
        f"<iframe src=\"{remote}/iframe\"></iframe><object data=\"{remote}/object\"></object>"
        f"<a href=\"javascript:alert('link')\">a javascript: link</a>"
        "<img src=x onerror=\"alert('onerror')\">"
        f"<div style=\"background-image:url({remote}/style)\" onmouseover=\"alert('hover')\">"
        "hover here</div>"
        f"<svg onload=\"alert('svg')\"><script>alert('svg script')</script>"
        f"<image href=\"{remote}/svg.png\"/></svg>"
        f"<img src=\"{remote}/pixel.png\"></body></html>\r\n"
    ).encode()


def test_bad_input_shows_what_it_can_and_runs_nothing(context: BrowserContext,
                                                      server: PostelServer,
                                                      tracker: int) -> None:
    """The issue's "bad input": hostile HTML, malformed MIME, a broken charset and a
    10,000-part message open in the page with no dialog, no console error and no
    request to the sender's server."""
    hits_before = list(Tracker.hits)
    smtp_send(server, hostile_html(tracker))
    smtp_send(server, b"From: <odd@elsewhere.test>\r\nSubject: Broken MIME\r\nNo colon here\r\n"
                      b"Content-Type: multipart/mixed; boundary=never\r\n\r\n"
                      b"caf\xe9 and \x00 but no parts\r\n")
    parts = b"".join(b"--p\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=f%d.bin\r\n\r\n%d\r\n" % (i, i)
                     for i in range(10_000))
    smtp_send(server, b"From: <many@elsewhere.test>\r\nSubject: Ten thousand parts\r\n"
                      b"Content-Type: multipart/mixed; boundary=p\r\n\r\n--p\r\n"
                      b"Content-Type: text/plain; charset=x-unknown\r\n\r\nsee below\r\n"
                      + parts + b"--p--\r\n")
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The logon page (not the webmail's) has no icon link, so chromium asks for
    # /favicon.ico and logs its 404: that one is not the message's doing.
    page.on("console", lambda m: errors.append(f"{m.text} {m.location['url']}")
            if m.type == "error" and not m.location["url"].endswith("/favicon.ico") else None)
    log_on(page, "alice@example.test")

    row(page, "Hostile page").locator("a.summary").click()
    frame = page.frame_locator("iframe.body-frame")
    expect(frame.locator("h2")).to_have_text("Still readable")
    frame.locator("text=hover here").hover()
    frame.get_by_text("a javascript: link").click()  # would run in the frame, if anything
    assert frame.locator("script, iframe, object, svg, meta[http-equiv], link").count() == 0
    shot(page, "bad_input_hostile_html")

    row(page, "Broken MIME").locator("a.summary").click()
    expect(page.locator("#reader")).to_contain_text("café and \ufffd but no parts")

    row(page, "Ten thousand parts").locator("a.summary").click()
    expect(page.locator("#reader .attachments-more")).to_contain_text("9500 more parts")
    expect(page.locator("#reader a.attachment")).to_have_count(500)
    shot(page, "bad_input_ten_thousand_parts")
    assert dialogs == [] and errors == []
    assert Tracker.hits == hits_before
