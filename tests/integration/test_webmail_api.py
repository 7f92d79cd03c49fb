"""The webmail's JSON API against a real server: mail arrives over SMTP, is read, searched,
moved and answered through /api/v1/mail, and the results are checked over IMAP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from postel.web.openapi import document
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import CSRF, client, start
from tests.webmail.helpers import imap_messages, smtp_send

EVIL_HTML = (
    b"From: Mallory <mallory@evil.test>\r\nTo: alice@example.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= with a script\r\nMessage-ID: <evil@x>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n"
    b"<p onclick=\"steal()\">Gr\xfc\xdfe<script>steal()</script>"
    b"<img src=\"http://127.0.0.1:9/tracker.png\"><img src=\"cid:logo@x\">"
    b"<a href=\"javascript:steal()\">click</a><iframe src=\"https://evil.test/\"></iframe></p>\r\n"
    b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''%C3%A4rger.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("webmail"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("alice@example.test", display_name="Alice Liddell",
                    backup_email="alice@backup.test")
    server.add_user("bob@example.test", backup_email="bob@backup.test")
    start(server)
    yield server
    server.close()


class Api:
    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http, self.token = http, token

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get("/api/v1/mail" + path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        answer = self.http.post("/api/v1/mail" + path, json=body,
                                headers={"X-CSRF-Token": self.token})
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None


def logon(http: httpx.Client, email_address: str) -> Api:
    token = http.get("/api/v1/session").json()["csrf_token"]
    answer = http.post("/api/v1/session", json={"email": email_address, "password": PASSWORD},
                       headers={"X-CSRF-Token": token})
    assert answer.status_code == 200, answer.text
    return Api(http, answer.json()["csrf_token"])




def folder(api: Api, role: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in api.get("/folders")["folders"] if f["role"] == role)
    return found




def test_landing_and_unauthenticated(server: PostelServer) -> None:
    with client(server) as http:
        assert http.get("/api/v1/mail/folders").status_code == 401
        assert http.get("/mail").headers["location"].startswith("/logon")
    with client(server) as http:
        api = logon(http, "alice@example.test")
        assert http.get("/").headers["location"] == "/mail"
        page = http.get("/mail")
        assert page.status_code == 200 and 'src="/static/mail/app.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        roles = [f["role"] for f in api.get("/folders")["folders"]]
        assert roles == ["inbox", "drafts", "sent", "archive", "junk", "trash"]
        # Unsafe calls need the CSRF header.
        assert http.post("/api/v1/mail/folders", json={"name": "x"}).status_code == 403


def test_read_hostile_html_safely(server: PostelServer) -> None:
    smtp_send(server, EVIL_HTML)
    with client(server) as http:
        api = logon(http, "alice@example.test")
        inbox = folder(api, "inbox")
        assert inbox["unseen"] >= 1
        listed = api.get(f"/folders/{inbox['id']}/messages")["messages"]
        item = next(m for m in listed if "script" in m["subject"])
        assert item["subject"] == "Grüße with a script" and item["attachment"]
        view = api.get(f"/messages/{item['id']}")
        assert view["from"] == [{"name": "Mallory", "email": "mallory@evil.test"}]
        assert view["remote_blocked"] == 1 and not view["remote_allowed"]
        assert [a["filename"] for a in view["attachments"]] == ["ärger.bin"]
        frame = http.get(view["html_url"])
        assert frame.status_code == 200
        body = frame.text
        for bad in ("<script", "steal()", "onclick", "javascript:", "<iframe", "tracker.png"):
            assert bad not in body, bad
        assert "Grüße" in body and 'src="data:image/png;base64,iVBORw0KGgo="' in body
        csp = frame.headers["content-security-policy"]
        assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
        assert "http:" not in csp  # remote images blocked by the policy too
        assert frame.headers["x-frame-options"] == "SAMEORIGIN"
        allowed = http.get(view["html_url"].replace("remote=0", "remote=1"))
        assert "tracker.png" in allowed.text and "http:" in allowed.headers[
            "content-security-policy"]
        download = http.get(view["attachments"][0]["url"])
        assert download.content == b"\x00\x01\x02\x03\x04"
        assert "filename*=UTF-8''%C3%A4rger.bin" in download.headers["content-disposition"]
        assert download.headers["content-type"] == "application/octet-stream"
        raw = http.get(view["raw_url"])
        assert raw.status_code == 200 and b"<script>steal()" in raw.content
        assert "sandbox" in raw.headers["content-security-policy"]


def test_malformed_and_huge_part_counts_never_error(server: PostelServer) -> None:
    parts = b"".join(b"--p\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff%d\r\n" % i
                     for i in range(3000))
    smtp_send(server, b"From: <>\r\nSubject: many\r\nContent-Type: multipart/mixed; "
                      b"boundary=p\r\n\r\n" + parts + b"--p--\r\n")
    smtp_send(server, b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=\"\r\n"
                      b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n")
    with client(server) as http:
        api = logon(http, "alice@example.test")
        inbox = folder(api, "inbox")
        listed = api.get(f"/folders/{inbox['id']}/messages", limit=200)["messages"]
        for subject in ("many", "broken"):
            item = next(m for m in listed if m["subject"] == subject)
            view = api.get(f"/messages/{item['id']}")
            assert isinstance(view["text"], str)
        many = next(m for m in listed if m["subject"] == "many")
        assert len(api.get(f"/messages/{many['id']}")["attachments"]) == 500  # capped
        assert http.get("/api/v1/mail/messages/999999").status_code == 404
        assert http.get("/api/v1/mail/messages/abc").status_code == 400
        assert http.get(f"/api/v1/mail/folders/{inbox['id']}/messages",
                        params={"after": "bogus"}).status_code == 400


def test_search_move_and_flags_seen_over_imap(server: PostelServer) -> None:
    smtp_send(server, b"From: Carol <carol@x.test>\r\nTo: alice@example.test\r\n"
                      b"Subject: Quarterly numbers\r\n\r\nThe aubergine budget is attached.\r\n")
    with client(server) as http:
        api = logon(http, "alice@example.test")
        found = api.get("/search", q="aubergine")["messages"]
        assert [m["subject"] for m in found] == ["Quarterly numbers"]
        assert api.get("/search", q="from:carol subject:quarterly")["messages"]
        assert api.get("/search", q="has:attachment aubergine")["messages"] == []
        message_id = found[0]["id"]
        created = api.post("/folders", {"name": "Projects"}, 201)
        api.post("/messages/actions", {"action": "flag", "ids": [message_id]})
        api.post("/messages/actions", {"action": "move", "ids": [message_id],
                                       "folder": created["id"]})
        moved = imap_messages(server, "alice@example.test", "Projects")
        assert [m["Subject"] for m in moved] == ["Quarterly numbers"]
        listed = api.get(f"/folders/{created['id']}/messages")["messages"]
        assert listed[0]["flagged"]
        # Search sees the move at once (the index follows the message's new row).
        again = api.get("/search", q="aubergine", folder=str(created["id"]))["messages"]
        assert len(again) == 1


def test_reply_threads_and_lands_over_imap_and_in_sent(server: PostelServer) -> None:
    smtp_send(server, b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
                      b"Subject: Lunch?\r\nMessage-ID: <lunch-1@example.test>\r\n"
                      b"References: <older@example.test>\r\n\r\nNoon at the usual place?\r\n")
    with client(server) as http:
        api = logon(http, "alice@example.test")
        item = api.get("/search", q="usual place")["messages"][0]
        prefilled = api.get("/compose", mode="reply", id=str(item["id"]))
        draft = prefilled["draft"]
        assert draft["to"] == ["Bob <bob@example.test>"] and draft["subject"] == "Re: Lunch?"
        assert draft["references"] == ["<older@example.test>", "<lunch-1@example.test>"]
        assert "> Noon at the usual place?" in draft["text"]
        draft["text"] = "Yes!\n" + draft["text"]
        sent = api.post("/send", {**draft, "reply_to_id": prefilled["reply_to_id"]})
        assert sent["local"] == ["bob@example.test"]
        (reply,) = [m for m in imap_messages(server, "bob@example.test", "INBOX")
                    if m["Subject"] == "Re: Lunch?"]
        assert reply["In-Reply-To"] == "<lunch-1@example.test>"
        assert reply["References"] == "<older@example.test> <lunch-1@example.test>"
        assert reply["From"] == "Alice Liddell <alice@example.test>"
        assert "Yes!" in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        sent_box = folder(api, "sent")
        assert api.get(f"/folders/{sent_box['id']}/messages")["messages"][0]["subject"] == \
            "Re: Lunch?"
        answered = api.get(f"/messages/{item['id']}")
        assert answered["flags"]["answered"]


def test_sender_rules_of_port_587_apply(server: PostelServer) -> None:
    with client(server) as http:
        api = logon(http, "alice@example.test")
        refused = api.post("/send", {"from": "bob@example.test", "to": ["bob@example.test"],
                                     "subject": "x", "text": "x"}, 400)
        assert refused["field"] == "from"
        unknown = api.post("/send", {"to": ["nobody@example.test"], "subject": "x",
                                     "text": "x"}, 400)
        assert "nobody@example.test" in unknown["error"]


def test_attachment_upload_send_and_download_identical(server: PostelServer) -> None:
    payload = bytes(range(256)) * 5000  # 1.28 MB: three chunks
    with client(server) as http:
        api = logon(http, "alice@example.test")
        chunk = api.get("/identities")["upload_chunk_bytes"]
        first = http.post("/api/v1/mail/uploads", params={"name": "dätä.bin",
                                                          "type": "application/x-test"},
                          content=payload[:chunk], headers={"X-CSRF-Token": api.token})
        assert first.status_code == 201, first.text
        upload = first.json()["upload"]
        for offset in range(chunk, len(payload), chunk):
            more = http.post(f"/api/v1/mail/uploads/{upload}",
                             content=payload[offset:offset + chunk],
                             headers={"X-CSRF-Token": api.token})
            assert more.status_code == 200, more.text
        assert more.json()["size"] == len(payload)
        api.post("/send", {"to": ["bob@example.test"], "subject": "the file", "text": "here",
                           "attachments": [{"upload": upload}]})
    with client(server) as http:
        bob = logon(http, "bob@example.test")
        item = bob.get("/search", q="subject:file")["messages"][0]
        view = bob.get(f"/messages/{item['id']}")
        (attachment,) = view["attachments"]
        assert attachment["filename"] == "dätä.bin"
        assert http.get(attachment["url"]).content == payload


def test_drafts_save_replace_and_resume(server: PostelServer) -> None:
    with client(server) as http:
        api = logon(http, "alice@example.test")
        drafts = folder(api, "drafts")
        saved = api.post("/drafts", {"to": ["bob@example.test", "half-typ"], "subject": "plan",
                                     "text": "first words"})
        again = api.post("/drafts", {"to": ["bob@example.test"], "subject": "plan",
                                     "text": "more words", "draft_id": saved["draft_id"]})
        listed = api.get(f"/folders/{drafts['id']}/messages")["messages"]
        assert [m["id"] for m in listed] == [again["draft_id"]]
        resumed = api.get("/compose", mode="draft", id=str(again["draft_id"]))
        assert resumed["draft"]["text"].strip() == "more words"
        assert resumed["draft"]["to"] == ["bob@example.test"]


def test_live_events_on_delivery(server: PostelServer) -> None:
    http = client(server)
    api = logon(http, "alice@example.test")
    inbox = folder(api, "inbox")
    received: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with http.stream("GET", "/api/v1/mail/events",
                         headers={"Accept": "text/event-stream"}) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: hello"):
                    ready.set()
                if line.startswith("data:") and ready.is_set() and "folders" in line:
                    received.append(line)
                    return

    assert http.get("/api/v1/mail/events").status_code == 406  # not a stream request
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(20)
    smtp_send(server, b"Subject: live\r\n\r\nnew\r\n")
    listener.join(20)
    http.close()
    assert received and f"{inbox['id']}" in received[0]


def test_openapi_documents_the_mail_endpoints() -> None:
    paths = document()["paths"]
    for path in ("/mail/folders", "/mail/folders/{folder}/messages", "/mail/search",
                 "/mail/messages/{message}", "/mail/messages/actions", "/mail/send",
                 "/mail/drafts", "/mail/uploads", "/mail/events"):
        assert path in paths, path


def test_mail_settings_inside_my_settings(server: PostelServer) -> None:
    with client(server) as http:
        api = logon(http, "alice@example.test")
        page = http.get("/settings/mail")
        assert page.status_code == 200 and "alice@example.test" in page.text
        token = CSRF.search(page.text)
        assert token
        saved = http.post("/settings/mail", data={"csrf_token": token.group(1),
                                                  "signature": "Alice\r\nExample Ltd"})
        assert saved.headers["location"] == "/settings/mail?saved=1"
        prefs = api.get("/prefs")
        assert prefs == {"signature": "Alice\nExample Ltd", "mark_read_on_open": False,
                         "trusted_senders": []}
        new = api.get("/compose", mode="new")["draft"]
        assert new["text"].endswith("-- \nAlice\nExample Ltd")
        assert 'href="/settings/mail"' in http.get("/settings").text
