"""The webmail's pure parts: search operators, sanitising, MIME views of hostile or odd
messages, and building replies and messages."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from postel.mail.mime import parse_message_bytes
from postel.web.mail.compose import Attachment, Draft, build_message, header_text
from postel.web.mail.mimeview import (
    MAX_TEXT_BYTES,
    choose_bodies,
    decode_text,
    find_section,
    index_text,
    part_text,
    read_part,
    sections,
)
from postel.web.mail.sanitize import frame_csp, sanitize
from postel.web.mail.search import parse_query


def stored(tmp_path: Path, raw: bytes) -> tuple[Path, object]:
    path = tmp_path / "blob"
    path.write_bytes(raw)
    return path, parse_message_bytes(raw).body


def test_search_operators() -> None:
    terms = parse_query('invoice from:alice "big deal" subject:"q3 plan" has:attachment '
                        "is:unread before:2026-02-01 after:2026-01-01 weird:thing before:nope")
    assert terms.words == ("invoice", "big deal", "weird:thing", "before:nope")
    assert terms.from_ == ("alice",) and terms.subject == ("q3 plan",)
    assert terms.has_attachment and terms.unread and not terms.flagged
    assert terms.before == datetime(2026, 2, 1, tzinfo=UTC)
    assert terms.after == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_query("").empty and parse_query("   ").empty
    assert len(parse_query("a " * 1000).words) == 20  # bounded


def test_sanitize_removes_code_and_blocks_remote_content() -> None:
    markup = ('<div onmouseover="x()" style="color: red; background: url(https://t/x)">'
              '<script>x()</script><img src="https://t/p.gif"><img src="//t/q.gif">'
              '<a href="javascript:x()">a</a><a href="https://ok.test/">b</a>'
              '<form action="https://t"><input name="p"></form><object data="x"></object>'
              '<img src="data:text/html;base64,PHNjcmlwdD4=">'
              '<table background="https://t/bg.png"><tr><td>c</td></tr></table></div>')
    cleaned = sanitize(markup, allow_remote=False, inline_image=lambda _c: None)
    for bad in ("script", "onmouseover", "javascript", "t/p.gif", "t/q.gif", "<form",
                "<input", "<object", "url(", "data:text/html", "bg.png"):
        assert bad not in cleaned.html, bad
    assert cleaned.remote_blocked == 3
    assert 'href="https://ok.test/"' in cleaned.html and "color:red" in cleaned.html
    allowed = sanitize(markup, allow_remote=True, inline_image=lambda _c: None)
    assert "https://t/p.gif" in allowed.html and "script" not in allowed.html
    assert "img-src data:;" in frame_csp(False) and "https:" in frame_csp(True)
    assert "sandbox" in frame_csp(True) and "script" not in frame_csp(True)


def test_charsets_encodings_and_filenames(tmp_path: Path) -> None:
    raw = (b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=koi8-r\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=F0=D2=C9=D7=C5=D4\r\n"
           b"--b\r\nContent-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRi0=\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
           b"Content-Type: text/plain; charset=bogus-charset\r\n\r\ncaf\xe9\r\n--b--\r\n")
    blob, root = stored(tmp_path, raw)
    bodies = choose_bodies(root)  # type: ignore[arg-type]
    assert bodies.text is not None
    assert part_text(blob, bodies.text)[0].strip() == "Привет"
    names = [(s.number, s.filename) for s in bodies.attachments]
    assert names == [("2", "résumé.pdf"), ("3", "")]
    assert read_part(blob, bodies.attachments[0].part) == b"%PDF-"
    inner = find_section(root, "3.1")  # type: ignore[arg-type]
    assert inner is not None and part_text(blob, inner)[0].strip() == "café"
    assert decode_text(b"\xff\xfe", "no-such-charset") == "ÿþ"


def test_huge_text_is_cut_and_deep_nesting_is_walked(tmp_path: Path) -> None:
    big = b"word " * (MAX_TEXT_BYTES // 5 + 1000)
    blob, root = stored(tmp_path, b"Subject: big\r\n\r\n" + big)
    bodies = choose_bodies(root)  # type: ignore[arg-type]
    assert bodies.text is not None
    text, cut = part_text(blob, bodies.text)
    assert cut and len(text) == MAX_TEXT_BYTES
    assert len(index_text(blob, root)) <= 64 * 1024  # type: ignore[arg-type]
    nested = b"".join(b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
                      for i in range(300))
    blob, root = stored(tmp_path, b"Subject: deep\r\n" + nested + b"\r\ndeep text\r\n")
    assert len(list(sections(root))) >= 1  # type: ignore[arg-type]


def test_build_message_with_html_alternative_and_attachment() -> None:
    draft = Draft(sender="alice@example.test", to=['"Bob, B." <bob@example.test>'],
                  cc=["carol@example.test"], bcc=["dave@example.test"],
                  subject="Grüße\u2028Bcc: evil@x", text="plain words",
                  html="<p>rich <b>words</b><script>x()</script></p>",
                  in_reply_to="<a@x>", references=["<a@x>", "bad ref"])
    built = build_message(draft, "Alice", [Attachment("ä.bin", "application/x-y", b"\x00\x01")],
                          keep_bcc=False)
    assert built.recipients == ["bob@example.test", "carol@example.test", "dave@example.test"]
    message = message_from_bytes(built.message, policy=default)
    assert message["Bcc"] is None and message["Subject"] == "Grüße Bcc: evil@x"
    assert message["References"] == "<a@x>" and message["In-Reply-To"] == "<a@x>"
    assert message["To"] == '"Bob, B." <bob@example.test>'
    html = message.get_body(("html",))
    assert html is not None and "script" not in html.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "ä.bin"
    assert attachment.get_content() == b"\x00\x01"
    assert header_text("a\r\nb\x0bc") == "a  b c"
