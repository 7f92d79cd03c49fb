"""Delivery status notifications (RFC 3464): a multipart/report telling the sender which
recipients failed (or are delayed) and why, with the original message's headers attached
(text/rfc822-headers, RFC 6522) so the sender can tell which message it was.

Sent with the null reverse-path (RFC 5321 4.5.5), so a DSN is never itself bounced.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from postel.mailauth.headers import HeaderTooLarge, read_header_section

# Original headers beyond this size are cut in the attachment.
MAX_ATTACHED_HEADERS = 64 * 1024
# RET=FULL returns messages up to this size; bigger ones get their headers only, which
# RFC 3461 4.3 allows.
MAX_RETURNED_MESSAGE = 1024 * 1024


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    status: str  # RFC 3463, e.g. "5.1.1"
    diagnostic: str  # the remote reply, or our own explanation
    remote_mta: str = ""
    original_recipient: str = ""  # ORCPT as given, "rfc822;addr" (RFC 3461 4.2)


def _original_headers(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            headers, _ = read_header_section(handle)
    except (HeaderTooLarge, OSError):
        return b""
    data = b"".join(h.raw for h in headers)
    return data[:MAX_ATTACHED_HEADERS]


def _original_message(path: Path, offset: int) -> bytes | None:
    """The whole message for RET=FULL, or None when it is too big to return."""
    try:
        if path.stat().st_size - offset > MAX_RETURNED_MESSAGE:
            return None
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return None


def _returned(path: Path, offset: int, boundary: str, *, full: bool) -> list[bytes]:
    """The third part: the whole message for RET=FULL (RFC 3461 4.3, message/rfc822),
    else, and by default, its headers (text/rfc822-headers, RFC 6522)."""
    message = _original_message(path, offset) if full else None
    if message is not None:
        return [f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode(),
                message.removesuffix(b"\r\n")]
    return [f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n".encode(),
            _original_headers(path, offset)]


def _clean(text: str) -> str:
    return " ".join(text.split())


def build_dsn(
    *,
    hostname: str,
    sender: str,
    queue_id: str,
    arrival: datetime,
    statuses: Sequence[RecipientStatus],
    original: Path,
    original_offset: int,
    delayed: bool = False,
    retry_until: datetime | None = None,
    now: datetime | None = None,
    envid: str | None = None,
    full: bool = False,
    success: str = "",
) -> bytes:
    """The whole DSN message, CRLF line endings. `success` ("delivered" or "relayed",
    RFC 3464 2.3.3) makes it a success report, which returns headers only."""
    now = now or datetime.now(UTC)
    boundary = f"postel-dsn-{secrets.token_hex(12)}"
    action = success or ("delayed" if delayed else "failed")
    if success:
        full = False  # RFC 3461 4.3: RET applies to failure DSNs
        subject = "Successful Mail Delivery Report"
        intro = (
            "Your message was delivered to the recipients below."
            if success == "delivered" else
            "Your message was passed on to the recipients' mail server below, which does "
            "not send delivery reports: you will hear no more of it from there."
        )
    elif delayed:
        subject = "Delayed Mail (still being retried)"
        intro = (
            "Your message has not been delivered yet to the recipients below. Postel "
            "keeps trying; you will be told if it finally fails. You do not need to resend."
        )
    else:
        subject = "Undelivered Mail Returned to Sender"
        intro = (
            "Your message could not be delivered to the recipients below. This is "
            "permanent: Postel will not try again."
        )
    lines = [intro, ""]
    for status in statuses:
        lines.append(f"<{status.recipient}>: {_clean(status.diagnostic)}")
    human = "\r\n".join(lines) + "\r\n"

    report = []
    if envid:
        report.append(f"Original-Envelope-Id: {envid}")  # RFC 3464 2.2.1, RFC 3461 6.3
    report += [
        f"Reporting-MTA: dns; {hostname}",
        f"X-Postel-Queue-ID: {queue_id}",
        f"Arrival-Date: {format_datetime(arrival)}",
        "",
    ]
    for status in statuses:
        address_type = "rfc822" if status.recipient.isascii() else "utf-8"
        if status.original_recipient:
            # RFC 3464 2.3.1: the ORCPT the sender gave, "addr-type; address".
            addr_type, _, address = status.original_recipient.partition(";")
            report.append(f"Original-Recipient: {addr_type}; {address}")
        report += [
            f"Final-Recipient: {address_type}; {status.recipient}",
            f"Action: {action}",
            f"Status: {status.status}",
        ]
        if status.remote_mta:
            report.append(f"Remote-MTA: dns; {status.remote_mta}")
        diagnostic = _clean(status.diagnostic)
        if diagnostic[:3].isdigit():
            report.append(f"Diagnostic-Code: smtp; {diagnostic}")
        else:
            report.append(f"Diagnostic-Code: x-postel; {diagnostic}")
        report.append(f"Last-Attempt-Date: {format_datetime(now)}")
        if delayed and retry_until is not None:
            report.append(f"Will-Retry-Until: {format_datetime(retry_until)}")
        report.append("")
    # RFC 6533: a report with UTF-8 addresses is message/global-delivery-status.
    report_type = "message/delivery-status"
    if not all(s.recipient.isascii() for s in statuses):
        report_type = "message/global-delivery-status"
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{sender}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{secrets.token_hex(12)}.dsn@{hostname}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 5: no automatic answers to this
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    parts = [
        "\r\n".join(headers).encode("utf-8"),
        b"\r\n\r\nThis is a delivery status notification in MIME format.\r\n",
        f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        human.encode("utf-8"),
        f"\r\n--{boundary}\r\nContent-Type: {report_type}\r\n\r\n".encode(),
        "\r\n".join(report).encode("utf-8"),
        *_returned(original, original_offset, boundary, full=full),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
