"""The reading pane's data: one message (or a message attached to it) as JSON, its HTML
body as a sanitised iframe document, and its parts as downloads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postel.mail.mime import MimePart, decode_words
from postel.store.webmail_api import WebmailPrefs
from postel.web.mail.mimeview import (
    Section,
    address_list,
    choose_bodies,
    find_section,
    part_text,
    read_part,
)
from postel.web.mail.sanitize import MAX_INLINE_IMAGE, sanitize

PREVIEWABLE = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}


@dataclass(frozen=True)
class Opened:
    """A message row, or a message/rfc822 part inside it, ready to show."""

    row: dict[str, Any]
    blob: Path
    root: MimePart
    envelope: list[Any]
    prefix: str  # section number of the attached message ("" for the message itself)


def open_message(row: dict[str, Any], blob: Path, part: str | None) -> Opened | None:
    root = MimePart.from_json(row["mime"])
    if not part:
        return Opened(row, blob, root, row["envelope"], "")
    found = find_section(root, part)
    if found is None or found.part.message is None:
        return None
    embedded = found.part.message
    return Opened(row, blob, embedded.body, embedded.envelope, part)


def _number(opened: Opened, section: Section) -> str:
    return f"{opened.prefix}.{section.number}" if opened.prefix else section.number


def sender_address(opened: Opened) -> str:
    senders = address_list(opened.envelope, "from")
    return senders[0]["email"].lower() if senders else ""


def remote_allowed(opened: Opened, prefs: WebmailPrefs, asked: bool) -> bool:
    return asked or sender_address(opened) in prefs.trusted_senders


def _header_lines(opened: Opened) -> list[list[str]]:
    if opened.prefix:
        return []
    return [[name, value] for name, value in opened.row["headers"]][:200]


def message_json(opened: Opened, prefs: WebmailPrefs, *, allow_remote: bool) -> dict[str, Any]:
    row = opened.row
    envelope = opened.envelope
    bodies = choose_bodies(opened.root)
    text, cut = ("", False)
    if bodies.text is not None:
        text, cut = part_text(opened.blob, bodies.text)
    base = f"/api/v1/mail/messages/{row['id']}"
    part_arg = f"&part={opened.prefix}" if opened.prefix else ""
    remote_blocked = 0
    if bodies.html is not None and not allow_remote:
        remote_blocked = frame_body(opened, allow_remote=False)[1]
    attachments = []
    for section in bodies.attachments:
        number = _number(opened, section)
        kind = section.mime_type
        attachments.append({
            "part": number,
            "filename": section.filename or _fallback_name(section, number),
            "type": kind,
            "size": _decoded_size(section.part),
            "url": f"{base}/parts/{number}",
            "preview": kind in PREVIEWABLE,
            "message": section.part.message is not None,
        })
    subject = decode_words(envelope[1] or "") if opened.prefix else row["subject"]
    message_id = envelope[9] if opened.prefix else row["message_id"]
    return {
        "id": row["id"],
        "part": opened.prefix or None,
        "mailbox_id": row["mailbox_id"],
        "mailbox": row["mailbox_name"],
        "uid": row["uid"],
        "flags": {"seen": bool(row["seen"]), "flagged": bool(row["flagged"]),
                  "answered": bool(row["answered"]), "draft": bool(row["draft"])},
        "subject": subject,
        "date": envelope[0],
        "internal_date": row["internal_date"].isoformat(),
        "from": address_list(envelope, "from"),
        "to": address_list(envelope, "to"),
        "cc": address_list(envelope, "cc"),
        "bcc": address_list(envelope, "bcc"),
        "reply_to": address_list(envelope, "reply_to"),
        "message_id": message_id,
        "references": row["references"].split() if not opened.prefix else [],
        "size": row["size"],
        "text": text,
        "text_cut": cut,
        "html_url": (f"{base}/html?remote={int(allow_remote)}{part_arg}"
                     if bodies.html is not None else None),
        "remote_blocked": remote_blocked,
        "remote_allowed": allow_remote,
        "sender_trusted": sender_address(opened) in prefs.trusted_senders,
        "attachments": attachments,
        "headers": _header_lines(opened),
        "raw_url": f"{base}/raw",
    }


def _fallback_name(section: Section, number: str) -> str:
    if section.part.message is not None:
        return f"message-{number}.eml"
    return f"part-{number}.{section.part.content_subtype.lower() or 'bin'}"


def _decoded_size(part: MimePart) -> int:
    length = part.end - part.body_start
    return length * 3 // 4 if part.encoding.lower() == "base64" else length


def frame_body(opened: Opened, *, allow_remote: bool) -> tuple[str, int]:
    """(sanitised HTML body, remote URLs blocked) of the message's HTML part."""
    bodies = choose_bodies(opened.root)
    if bodies.html is None:
        return "", 0
    markup, _cut = part_text(opened.blob, bodies.html)

    def inline_image(content_id: str) -> tuple[str, bytes] | None:
        section = bodies.inline_images.get(content_id)
        if section is None:
            return None
        return section.mime_type, read_part(opened.blob, section.part, MAX_INLINE_IMAGE + 1)

    cleaned = sanitize(markup, allow_remote=allow_remote, inline_image=inline_image)
    return cleaned.html, cleaned.remote_blocked
