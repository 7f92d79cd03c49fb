"""The webmail on a mailbox of 100,000 messages: time to the first list page, to open a
message and to run a body search, read from the browser's performance timings.

    .venv/bin/python bench/webmail_timings.py [--messages 100000] [--rounds 5]
                                              [--storage postgresql://postgres@127.0.0.1/db]

The mailbox is filled quickly through the store's tables (not SMTP): 1,000 distinct
messages (random words, distinct subjects and senders) repeated as rows, each row its own
message with its own UID and date, their text rows written with the indexer's
extraction, and one message with a unique word ("needle") delivered through
store.mail.deliver and indexed by the real indexer. Then Postel runs as `postel serve` and
headless chromium (Debian's) logs on and measures (median of the rounds):

* list: GET /api/v1/mail/folders/{inbox}/messages (the first 50), network + render
  ("postel-list" measure) and the request alone (Resource Timing);
* open: GET /api/v1/mail/messages/{id} + render ("postel-open") and the request alone;
* search: GET /api/v1/mail/search?q=needle + render ("postel-search") and the request.

Kept out of `make test`; writes test-artifacts/webmail/timings.json.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import insert, update

from postel.app import open_store
from postel.auth.passwords import hash_password
from postel.config import SERVICES, load_config
from postel.mail.mime import parse_message_bytes
from postel.store.model import Flags
from postel.store.sql import schema as t
from postel.store.sql.store import SqlStore
from postel.store.webmail_api import MessageText, UnindexedMessage
from postel.web.mail.state import extract_text

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-artifacts" / "webmail"
USER = "bench@example.test"
PASSWORD = "correct horse battery"
TEMPLATES = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(root: Path, storage: str) -> tuple[Path, int]:
    https = free_port()
    listen = "\n".join(f'{name} = "127.0.0.1:{https}"' if name == "https" else f'{name} = ""'
                       for name in SERVICES)
    store = f'[storage]\nurl = "{storage}"\n' if storage else ""
    path = root / "postel.toml"
    path.write_text(f'hostname = "mail.example.test"\ndata_dir = "{root / "data"}"\n'
                    f"[web]\nlogin_backoff_base = 0.0\n[listen]\n{listen}\n{store}")
    return path, https


def template(index: int, words: list[str], rng: random.Random) -> bytes:
    body = " ".join(rng.choice(words) for _ in range(rng.randint(60, 400)))
    subject = " ".join(rng.choice(words) for _ in range(rng.randint(2, 7))).capitalize()
    return (f"From: Sender {index} <sender{index % 300}@example.org>\r\n"
            f"To: {USER}\r\nSubject: {subject}\r\n"
            f"Message-ID: <t{index}@example.org>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def fill(store: SqlStore, count: int) -> int:
    """Bulk rows into the INBOX; returns its mailbox id."""
    rng = random.Random(13)
    words = ["".join(rng.choice("abcdefghijklmnoprstuvwy") for _ in range(rng.randint(3, 9)))
             for _ in range(5000)]
    store.directory.add_domain("example.test")
    # With a backup address: no first-logon prompt before the Inbox.
    account = store.directory.add_account(
        USER, hash_password(PASSWORD), backup_email="b@backup.test")
    box = store.mail.get_mailbox(account.id, "INBOX")
    assert box is not None
    prepared = []
    for index in range(TEMPLATES):
        raw = template(index, words, rng)
        blob = store.blobs.put(raw)
        parsed = parse_message_bytes(raw)
        values = store._message_values(parsed)
        item = UnindexedMessage(0, blob.sha256, parsed.body.to_json(), parsed.envelope,
                                parsed.subject)
        text = extract_text(store.blobs.path(blob.sha256), item)
        prepared.append((blob, values, text))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    flags = store._flag_values(Flags(seen=True))
    unread = store._flag_values(Flags(seen=False))
    batch = 5000
    for first in range(0, count, batch):
        rows, texts = [], []
        for n in range(first, min(count, first + batch)):
            blob, values, _ = prepared[n % TEMPLATES]
            rows.append({"mailbox_id": box.id, "uid": n + 1, "modseq": 1,
                         "internal_date": start + timedelta(minutes=n),
                         "saved_date": start + timedelta(minutes=n), "size": blob.size,
                         "blob_sha256": blob.sha256, **(unread if n % 7 == 0 else flags),
                         **values})
        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), rows)
            ids = conn.execute(
                t.messages.select().with_only_columns(t.messages.c.id, t.messages.c.uid)
                .where(t.messages.c.mailbox_id == box.id)
                .where(t.messages.c.uid > first)).all()
        for row in ids:
            text = prepared[(row.uid - 1) % TEMPLATES][2]
            texts.append(MessageText(row.id, text.subject, text.from_text, text.to_text,
                                     text.body))
        store.webmail.save_texts(texts)
        print(f"  {min(count, first + batch)} messages", file=sys.stderr)
    with store.engine.begin() as conn:
        conn.execute(update(t.mailboxes).where(t.mailboxes.c.id == box.id)
                     .values(uidnext=count + 1, highestmodseq=2))
    needle = (f"From: Nina <nina@example.org>\r\nTo: {USER}\r\nSubject: The needle\r\n\r\n"
              "Somewhere in this haystack is one needle.\r\n").encode()
    store.mail.deliver(
        store.blobs.put(needle), parse_message_bytes(needle), [(account.id, "INBOX")])
    return box.id


def measure(page: Page, name: str) -> float:
    value = page.evaluate(
        "(n) => { const m = performance.getEntriesByName(n); return m.length ? "
        "m[m.length - 1].duration : -1; }", name)
    return float(value)


def request_time(page: Page, fragment: str) -> float:
    value = page.evaluate(
        "(f) => { const r = performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes(f)); return r.length ? "
        "r[r.length - 1].responseEnd - r[r.length - 1].startTime : -1; }", fragment)
    return float(value)


def run_browser(port: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {k: [] for k in (
        "list", "list_request", "open", "open_request", "search", "search_request")}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(ignore_https_errors=True,
                                      base_url=f"https://127.0.0.1:{port}",
                                      viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto("/logon")
        page.get_by_label("Email address").fill(USER)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log on").click()
        page.wait_for_selector("#mail[data-ready=true]", state="attached", timeout=60000)
        for round_number in range(rounds + 1):  # round 0 warms caches and is dropped
            page.reload()
            page.wait_for_selector("#mail[data-ready=true]", state="attached", timeout=60000)
            page.wait_for_selector("#message-list li")
            list_ms = measure(page, "postel-list")
            list_request = request_time(page, "/messages?")
            page.locator("#message-list li a.summary").nth(3).click()
            page.wait_for_selector("#reader .reader-subject")
            open_ms = measure(page, "postel-open")
            open_request = request_time(page, "/api/v1/mail/messages/")
            page.locator("#search").fill("needle")
            page.locator("#search").press("Enter")
            page.wait_for_selector("#list-title:has-text('Search: needle')")
            page.wait_for_function("() => document.querySelectorAll('#message-list li')"
                                   ".length === 1"
                                   " && performance.getEntriesByName('postel-search').length")
            search_ms = measure(page, "postel-search")
            search_request = request_time(page, "/search?")
            if round_number:
                for key, value in (("list", list_ms), ("list_request", list_request),
                                   ("open", open_ms), ("open_request", open_request),
                                   ("search", search_ms), ("search_request", search_request)):
                    results[key].append(value)
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT / "bench_100k_search.png"))
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--storage", default="", help="database URL (default SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postel-webmail-bench-") as tmp:
        root = Path(tmp)
        config_path, port = write_config(root, args.storage)
        store = open_store(load_config(config_path))
        started = time.monotonic()
        fill(store, args.messages)
        print(f"filled {args.messages} messages in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        store.close()
        log = (root / "postel.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "postel", "serve", "--config",
                                   str(config_path)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while b" is serving " not in (root / "postel.log").read_bytes():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((root / "postel.log").read_text())
                time.sleep(0.1)
            results = run_browser(port, args.rounds)
        finally:
            server.terminate()
            server.wait(60)
    summary = {key: round(statistics.median(values), 1) for key, values in results.items()}
    report = {"messages": args.messages, "rounds": args.rounds,
              "storage": args.storage or "sqlite", "median_ms": summary, "all_ms": results}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "timings.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["median_ms"], indent=2))


if __name__ == "__main__":
    main()
