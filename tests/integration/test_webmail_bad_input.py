"""The webmail's "bad input" promise over real HTTPS: a 50 MB message, a 10,000-part
message, malformed MIME, broken charsets and hostile HTML are each delivered over SMTP and
opened through /api/v1/mail. The page shows what it can, never the sender's code, and
never an error; big bodies stream instead of filling the server's memory."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import PostelServer
from tests.integration.test_webmail_api import Api, folder, logon
from tests.web.helpers import client, start
from tests.webmail.helpers import smtp_send

BIG_TEXT = 6 * 1024 * 1024  # bytes of the big message's text part (cut at 2 MB on show)
BIG_ATTACHMENT = 30 * 1024 * 1024  # decoded bytes of its attachment (40 MB as base64)
MEMORY_SLACK = 24 * 1024 * 1024  # peak RSS the server may gain while serving it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("webmail-bad"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test", backup_email="alice@backup.test")
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(server: PostelServer) -> Iterator[Api]:
    with client(server) as http:
        yield logon(http, "alice@example.test")


def opened(api: Api, subject: str) -> dict[str, Any]:
    """The message with this subject as the reading pane gets it."""
    listed = api.get(f"/folders/{folder(api, 'inbox')['id']}/messages", limit=200)
    item = next(m for m in listed["messages"] if m["subject"] == subject)
    view: dict[str, Any] = api.get(f"/messages/{item['id']}")
    return view


def big_attachment() -> bytes:
    return bytes(range(256)) * (BIG_ATTACHMENT // 256)


def big_message() -> bytes:
    encoded = base64.encodebytes(big_attachment()).replace(b"\n", b"\r\n")
    return (b"From: <big@elsewhere.test>\r\nSubject: huge\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + (b"0123456789abcdef" * 4 + b"\r\n") * (BIG_TEXT // 66)
            + b"--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=big.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--B--\r\n")


def server_pid(server: PostelServer) -> int:
    assert server.process is not None
    return server.process.pid


def reset_peak_memory(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # proc(5): resets VmHWM to VmRSS


def peak_memory(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def streamed_size(http: httpx.Client, url: str) -> tuple[int, bytes]:
    """(bytes, last 64 bytes) of a download, read in chunks as a browser would."""
    total, tail = 0, b""
    with http.stream("GET", url) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_bytes():
            tail = (tail + chunk)[-64:]
            total += len(chunk)
    return total, tail


def test_a_50_mb_message_opens_cut_and_streams(server: PostelServer, api: Api) -> None:
    raw = big_message()
    assert 45 * 1024 * 1024 < len(raw) < server.config.smtp.max_message_size
    smtp_send(server, raw)
    pid = server_pid(server)
    reset_peak_memory(pid)
    baseline = rss(pid)
    view = opened(api, "huge")
    assert view["text_cut"] and len(view["text"]) == 2 * 1024 * 1024
    (attachment,) = view["attachments"]
    assert attachment["filename"] == "big.bin"
    size, tail = streamed_size(api.http, attachment["url"])
    assert size == BIG_ATTACHMENT and tail == bytes(range(192, 256))
    size, tail = streamed_size(api.http, view["raw_url"])  # Received: lines come first
    assert size > len(raw) and tail == raw[-64:]
    grown = peak_memory(pid) - baseline
    assert grown < MEMORY_SLACK, f"the server grew by {grown >> 20} MB"


def test_a_10000_part_message_lists_a_capped_page(server: PostelServer, api: Api) -> None:
    parts = b"".join(b"--p\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=f%d.bin\r\n\r\n%d\r\n" % (i, i)
                     for i in range(10_000))
    smtp_send(server, b"From: <many@elsewhere.test>\r\nSubject: ten thousand\r\n"
                      b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n"
                      b"--p\r\nContent-Type: text/plain\r\n\r\nsee the parts\r\n"
                      + parts + b"--p--\r\n")
    answer = api.http.get(f"/api/v1/mail/messages/{opened(api, 'ten thousand')['id']}")
    view = answer.json()
    assert view["text"].strip() == "see the parts"
    assert len(view["attachments"]) == 500 and view["attachments"][0]["filename"] == "f0.bin"
    assert view["attachments_total"] == 10_000  # the page says how many it left out
    assert len(answer.content) < 256 * 1024, len(answer.content)
    last = api.http.get(f"/api/v1/mail/messages/{view['id']}/parts/10001")
    assert last.status_code == 200 and last.content == b"9999"


MALFORMED = {
    # A multipart whose boundary never appears, and a nested one that never closes.
    "no boundaries": b"Content-Type: multipart/mixed; boundary=never\r\n\r\n"
                     b"just text, no parts\r\n",
    "unclosed": b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
                b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
                b"Content-Type: text/plain\r\n\r\ninner text, never closed\r\n",
    # Header lines without a colon, an empty name, garbage parameters, NUL bytes.
    "bad headers": b"This line has no colon\r\n: empty name\r\nX-\x00Nul: a\x00b\r\n"
                   b"Content-Type: text/plain; charset=; ;;=x; format*0*=''%ZZ\r\n"
                   b"Content-Transfer-Encoding: x-uuencode-ish\r\n\r\nbody \x00 with NUL\r\n",
    "bad mime": b"MIME-Version: 1.0\r\nContent-Type: /\r\nContent-Disposition: ;;;\r\n"
                b"Content-Type: multipart/\r\n\r\n\x00\x00\x00\r\n",
}
CHARSETS = {
    "unknown charset": (b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n"
                        b"caf\xc3\xa9\r\n", "café"),
    "lying charset": (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                      b"caf\xe9 \xff\xfe\r\n", "caf"),
    "bad encoded word": (b"Content-Type: text/plain; charset=\"shift_jis\"\r\n\r\n"
                         b"\x82\xa0\x82\xff\x81\r\n", ""),
}


def deliver(server: PostelServer, subject: str, rest: bytes) -> None:
    smtp_send(server, b"From: <odd@elsewhere.test>\r\nSubject: " + subject.encode()
              + b"\r\n" + rest)


def test_malformed_mime_shows_what_it_can(server: PostelServer, api: Api) -> None:
    for subject, rest in MALFORMED.items():
        deliver(server, subject, rest)
    for subject in MALFORMED:
        view = opened(api, subject)
        assert isinstance(view["text"], str), subject
        for attachment in view["attachments"]:
            assert api.http.get(attachment["url"]).status_code == 200, subject
        if view["html_url"]:
            assert api.http.get(view["html_url"]).status_code == 200, subject
        assert api.http.get(view["raw_url"]).status_code == 200, subject
    assert "just text" in opened(api, "no boundaries")["text"]
    assert "inner text" in opened(api, "unclosed")["text"]
    # NUL is no text: shown (and indexed, which PostgreSQL needs) as U+FFFD.
    assert opened(api, "bad headers")["text"].startswith("body \ufffd with NUL")
    assert opened(api, "bad mime")["text"].startswith("\ufffd" * 3)


def test_broken_charsets_decode_with_replacements(server: PostelServer, api: Api) -> None:
    for subject, (rest, _) in CHARSETS.items():
        deliver(server, subject, rest)
    deliver(server, "=?x-bogus?q?caf=E9?= =?utf-8?b?!!!?= =?utf-8?q?caf=C3=A9?=",
            b"\r\nsubject of broken encoded words\r\n")
    for subject, (_, expected) in CHARSETS.items():
        view = opened(api, subject)
        assert expected in view["text"], (subject, view["text"])
    listed = api.get("/search", q="broken encoded words")["messages"]
    assert listed and "café" in listed[0]["subject"]
    assert "café" in api.get(f"/messages/{listed[0]['id']}")["subject"]


HOSTILE_HTML = (
    b"From: <mallory@evil.test>\r\nSubject: hostile page\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=h\r\n\r\n"
    b"--h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><meta http-equiv=\"refresh\" content=\"0;url=http://127.0.0.1:9/r\">"
    b"<style>@import url(http://127.0.0.1:9/i.css); body{background:url(http://127.0.0.1:9/b)}"
    b"</style><base href=\"http://127.0.0.1:9/\"></head>"
    b"<body onload=\"alert(1)\"><p>Visible words</p><script>alert(2)</script>"
    b"<iframe src=\"http://127.0.0.1:9/f\"></iframe><object data=\"http://127.0.0.1:9/o\">"
    b"</object><embed src=\"http://127.0.0.1:9/e\"><form action=\"http://127.0.0.1:9/p\">"
    b"<input name=q></form><a href=\"javascript:alert(3)\">js</a>"
    b"<a href=\"  JaVaScRiPt:alert(4)\">js2</a><a href=\"data:text/html,<script>alert(5)"
    b"</script>\">data</a><a href=\"vbscript:x\">vb</a>"
    b"<img src=x onerror=\"alert(6)\"><div onmouseover=\"alert(7)\" "
    b"style=\"background-image:url(http://127.0.0.1:9/s);color:red\">styled</div>"
    b"<svg><script>alert(8)</script><image href=\"http://127.0.0.1:9/v\"/></svg>"
    b"<math><a xlink:href=\"javascript:alert(9)\">m</a></math>"
    b"<link rel=stylesheet href=\"http://127.0.0.1:9/l.css\"></body></html>\r\n"
    b"--h\r\nContent-Type: image/svg+xml\r\nContent-Disposition: attachment; filename=x.svg"
    b"\r\n\r\n<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(10)\">"
    b"<script>alert(11)</script></svg>\r\n--h--\r\n"
)


def test_hostile_html_keeps_its_words_and_loses_its_code(server: PostelServer,
                                                         api: Api) -> None:
    smtp_send(server, HOSTILE_HTML)
    view = opened(api, "hostile page")
    frame = api.http.get(view["html_url"])
    body = frame.text.lower()
    assert "visible words" in body and "styled" in body and "color:red" in body
    for bad in ("alert(", "javascript:", "vbscript:", "data:text", "<script", "<iframe",
                "<object", "<embed", "<form", "<svg", "<meta http", "<link", "<base href",
                "onload", "onerror", "onmouseover", "url(", "@import", "127.0.0.1:9"):
        assert bad not in body, bad
    csp = frame.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script-src" not in csp
    # The SVG attachment (script inside) downloads, never renders as a page of ours.
    (svg,) = view["attachments"]
    for url in (svg["url"], svg["url"] + "?inline=1"):
        answer = api.http.get(url)
        assert answer.headers["content-type"] == "application/octet-stream", url
        assert answer.headers["content-disposition"].startswith("attachment")
        assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_more_recipients_than_submission_allows_are_refused(api: Api) -> None:
    """The webmail's recipient limit is SMTP submission's (`smtp.max_recipients`, 100)."""
    many = [f"r{n}@remote.test" for n in range(101)]
    answer = api.post("/send", {"to": many, "subject": "too many", "text": "x"}, status=400)
    assert "At most 100 recipients." in str(answer)
