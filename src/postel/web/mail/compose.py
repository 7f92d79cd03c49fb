"""Writing mail: replies and forwards prefilled from the original (quoting, In-Reply-To
and References per RFC 5322 3.6.4), and the MIME message built from what was written
(text/plain, or HTML with a text/plain alternative, plus attachments)."""

from __future__ import annotations

import email.utils
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from postel.mail.address import AddressError, parse_email
from postel.store.model import Account
from postel.web.mail.mimeview import address_list, find_section, read_part
from postel.web.mail.reading import Opened
from postel.web.mail.sanitize import sanitize

_ADDRESS_SPLIT = re.compile(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)")  # commas outside quotes
_PREFIX = re.compile(r"^\s*((re|aw|fwd?|wg)\s*(\[\d+\])?\s*:\s*)+", re.I)
MAX_RECIPIENTS = 100


class ComposeError(ValueError):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


@dataclass
class Attachment:
    filename: str
    mime_type: str
    data: bytes


@dataclass
class Draft:
    """What the compose form holds; also what a saved draft turns back into."""

    sender: str = ""
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.sender, "to": self.to, "cc": self.cc, "bcc": self.bcc,
                "subject": self.subject, "text": self.text, "html": self.html,
                "in_reply_to": self.in_reply_to, "references": self.references,
                "attachments": self.attachments}


def split_addresses(value: str | list[str]) -> list[str]:
    items = value if isinstance(value, list) else _ADDRESS_SPLIT.split(value)
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def addr_spec(item: str) -> str:
    """The address of "Name <addr>" or "addr", checked; ComposeError if it is not one."""
    # parseaddr stops at a line break or a second address and returns the first one, so
    # "bob@x\r\nBcc: eve@y" or "bob@x, eve@y" would be sent to bob alone without a word:
    # one field is one address (RFC 5322 3.4 mailbox), with no control characters.
    if not item.isprintable() or len(email.utils.getaddresses([item])) != 1:
        raise ComposeError(f"{header_text(item)} is not a valid email address.", "to")
    _name, address = email.utils.parseaddr(item)
    try:
        return str(parse_email(address or item))
    except AddressError:
        raise ComposeError(f"{item} is not a valid email address.", "to") from None


def _formatted(person: dict[str, str]) -> str:
    return email.utils.formataddr((person["name"], person["email"])) if person["name"] \
        else person["email"]


def _prefixed(prefix: str, subject: str) -> str:
    return f"{prefix} {_PREFIX.sub('', subject).strip()}".strip()


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def _signature(signature: str) -> str:
    return f"\n\n-- \n{signature}" if signature.strip() else ""


def _identity(opened: Opened, own: set[str], default: str) -> str:
    """Reply from the address the message was sent to, when it is one of ours."""
    for field_name in ("to", "cc"):
        for person in address_list(opened.envelope, field_name):
            if person["email"].lower() in own:
                return person["email"].lower()
    return default


def prefill(opened: Opened, mode: str, account: Account, own: set[str], text: str,
            attachments: Sequence[dict[str, Any]], signature: str) -> Draft:
    """A reply (mode reply / all), a forward (inline, re-attaching the attachments) or a
    forward as attachment (the whole message as message/rfc822)."""
    row, envelope = opened.row, opened.envelope
    subject = row["subject"]
    sender = address_list(envelope, "from")
    who = _formatted(sender[0]) if sender else "someone"
    date = envelope[0] or ""
    message_id = row["message_id"] or ""
    draft = Draft(sender=_identity(opened, own, account.email))
    if mode in ("reply", "all"):
        reply_to = address_list(envelope, "reply_to") or sender
        draft.to = [_formatted(p) for p in reply_to]
        if mode == "all":
            taken = {p["email"].lower() for p in reply_to} | own
            for field_name, target in (("to", draft.to), ("cc", draft.cc)):
                for person in address_list(envelope, field_name):
                    if person["email"].lower() not in taken:
                        taken.add(person["email"].lower())
                        target.append(_formatted(person))
        draft.subject = _prefixed("Re:", subject)
        draft.in_reply_to = message_id
        # RFC 5322 3.6.4: the parent's References (or In-Reply-To), then its Message-ID.
        parents = row["references"].split() or ([row["in_reply_to"]]
                                                if row["in_reply_to"] else [])
        draft.references = [*parents, message_id] if message_id else parents
        draft.text = f"{_signature(signature)}\n\nOn {date}, {who} wrote:\n{_quote(text)}\n"
        return draft
    draft.subject = _prefixed("Fwd:", subject)
    if mode == "forward_attachment":
        draft.attachments = [{"message": row["id"], "filename": "forwarded.eml",
                              "type": "message/rfc822", "size": row["size"]}]
        draft.text = _signature(signature)
        return draft
    lines = [f"From: {who}", f"Date: {date}", f"Subject: {subject}"]
    recipients = ", ".join(_formatted(p) for p in address_list(envelope, "to"))
    if recipients:
        lines.append(f"To: {recipients}")
    draft.text = (f"{_signature(signature)}\n\n---------- Forwarded message ----------\n"
                  + "\n".join(lines) + f"\n\n{text}\n")
    draft.attachments = [dict(a) for a in attachments]
    return draft


def from_saved_draft(opened: Opened, text: str, html: str,
                     attachments: Sequence[dict[str, Any]]) -> Draft:
    row, envelope = opened.row, opened.envelope
    sender = address_list(envelope, "from")
    return Draft(
        sender=sender[0]["email"] if sender else "",
        to=[_formatted(p) for p in address_list(envelope, "to")],
        cc=[_formatted(p) for p in address_list(envelope, "cc")],
        bcc=[_formatted(p) for p in address_list(envelope, "bcc")],
        subject=row["subject"], text=text, html=html,
        in_reply_to=row["in_reply_to"] or "", references=row["references"].split(),
        attachments=[dict(a) for a in attachments],
    )


# -- uploads ------------------------------------------------------------------------------


def upload_dir(root: Path, account_id: int) -> Path:
    return root / str(account_id)


def new_upload(root: Path, account_id: int, filename: str, mime_type: str) -> str:
    folder = upload_dir(root, account_id)
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(16)
    safe_name = filename.replace("/", "_").replace("\\", "_").strip()[:200] or "attachment"
    (folder / f"{token}.json").write_text(json.dumps({"name": safe_name,
                                                      "type": mime_type[:100]}))
    (folder / token).write_bytes(b"")
    return token


def upload_path(root: Path, account_id: int, token: str) -> Path | None:
    if not re.fullmatch(r"[A-Za-z0-9_\-]{10,40}", token):
        return None
    path = upload_dir(root, account_id) / token
    return path if path.exists() else None


def upload_meta(root: Path, account_id: int, token: str) -> dict[str, Any] | None:
    path = upload_path(root, account_id, token)
    if path is None:
        return None
    meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    meta["size"] = path.stat().st_size
    meta["upload"] = token
    return meta


# -- building the message -----------------------------------------------------------------


@dataclass
class Built:
    message: bytes
    message_id: str
    recipients: list[str]


_MSG_ID = re.compile(r"<[!-~]{1,900}>")  # RFC 5322 3.6.4 msg-id, printable ASCII


def header_text(value: str) -> str:
    """Text fit for a header: control and line-breaking characters (Python's splitlines
    breaks on more than CR and LF) become spaces, so nothing can inject a header."""
    return "".join(c if c.isprintable() else " " for c in value).strip()


def _msg_ids(values: Sequence[str]) -> list[str]:
    return [v.strip() for v in values if _MSG_ID.fullmatch(v.strip())]


def _mime_type(value: str) -> tuple[str, str]:
    main, _, sub = value.lower().partition("/")
    if not re.fullmatch(r"[a-z0-9.+\-]+", main or "-") or not re.fullmatch(
            r"[a-z0-9.+\-]+", sub or "-"):
        return "application", "octet-stream"
    return main, sub


def build_message(draft: Draft, display_name: str, attachments: Sequence[Attachment],
                  *, keep_bcc: bool, max_recipients: int = MAX_RECIPIENTS) -> Built:
    """The RFC 5322 message; Bcc is kept only in a draft (RFC 5322 3.6.3 lets the
    submitter drop it, which hides blind recipients from the others)."""
    sender = addr_spec(draft.sender)
    groups = {"to": draft.to, "cc": draft.cc, "bcc": draft.bcc}
    formatted: dict[str, list[str]] = {}
    recipients: list[str] = []
    for name, items in groups.items():
        formatted[name] = []
        for item in items:
            address = addr_spec(item)
            display, _ = email.utils.parseaddr(item)
            formatted[name].append(email.utils.formataddr((header_text(display), address)))
            if address.lower() not in (r.lower() for r in recipients):
                recipients.append(address)
    if len(recipients) > max_recipients:  # the same limit as SMTP submission's RCPTs
        raise ComposeError(f"At most {max_recipients} recipients.", "to")
    message = EmailMessage(policy=SMTP)
    message["From"] = email.utils.formataddr((header_text(display_name), sender))
    for name in ("to", "cc") + (("bcc",) if keep_bcc else ()):
        if formatted[name]:
            message[name.capitalize()] = ", ".join(formatted[name])
    message["Subject"] = header_text(draft.subject)[:998]
    message["Date"] = email.utils.formatdate(localtime=False)
    message_id = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    message["Message-ID"] = message_id
    if _msg_ids([draft.in_reply_to]):
        message["In-Reply-To"] = draft.in_reply_to.strip()
    if _msg_ids(draft.references):
        message["References"] = " ".join(_msg_ids(draft.references))
    message.set_content(draft.text or "")
    if draft.html.strip():
        cleaned = sanitize(draft.html, allow_remote=True, inline_image=lambda _cid: None)
        message.add_alternative(cleaned.html, subtype="html")
    for attachment in attachments:
        main, sub = _mime_type(attachment.mime_type)
        if (main, sub) == ("message", "rfc822"):
            inner = email.message_from_bytes(attachment.data, policy=SMTP)
            message.add_attachment(inner, filename=header_text(attachment.filename))
        else:
            message.add_attachment(attachment.data, maintype=main, subtype=sub,
                                   filename=header_text(attachment.filename) or "attachment")
    return Built(message.as_bytes(), message_id, recipients)


def attachment_from_part(opened: Opened, number: str) -> Attachment | None:
    """An attachment of a stored message (forwarding it, or resuming a draft)."""
    section = find_section(opened.root, number)
    if section is None:
        return None
    return Attachment(section.filename or f"part-{number}", section.mime_type,
                      read_part(opened.blob, section.part))


def whole_message(row: dict[str, Any], blob: Path) -> Attachment:
    return Attachment(f"{(row['subject'] or 'message')[:60]}.eml".replace("/", "_"),
                      "message/rfc822", _skip_return_path(blob.read_bytes()))


def _skip_return_path(data: bytes) -> bytes:
    # The Return-Path of final delivery is not part of the message as written.
    if data.startswith(b"Return-Path:"):
        end = data.find(b"\n")
        return data[end + 1:] if end >= 0 else data
    return data
