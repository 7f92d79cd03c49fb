"""Messages whose ENVELOPE and BODYSTRUCTURE must keep their bytes: nested multipart,
message/rfc822 and message/global, groups, source routes, encoded words, broken input."""

from __future__ import annotations

from tests.unit.test_mail_mime import ALTERNATIVE, ATTACHMENT, DIGEST, NESTED, SIMPLE, _rfc822


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


GROUPS = crlf(
    "From: =?utf-8?q?J=C3=B6rg?= <j@x.de>, \"Q \\\"uoted\\\"\" <q@x.de>\n"
    "To: Team: a@x.org, B <b@x.org>;, undisclosed-recipients:;\n"
    "Cc: <@route.example:c@x.org>, nodomain\n"
    "Bcc: (comment only)\n"
    "Reply-To:\n"
    "Subject: =?UTF-8?B?w6lsw6h2ZQ==?= and =?iso-8859-1?q?caf=E9?=\n"
    "Date: Tue, 2 Jan 2024 10:00:00 +0100\n"
    "Message-ID: <m1@x.de>\n"
    "In-Reply-To: <p1@x.org> (comment)\n"
    "\n"
    "body\n"
)
FORWARD = crlf(
    "From: Fwd <f@x.org>\n"
    "Subject: fwd\n"
    "Content-Type: multipart/mixed; boundary=o\n"
    "\n"
    "--o\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Language: en, de\n"
    "Content-Location: http://x.org/a\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "\n"
    "see below\n"
    "--o\n"
    "Content-Type: message/rfc822; name=\"in.eml\"\n"
    "Content-Disposition: attachment; filename=\"in.eml\"\n"
    "Content-Description: the \"original\"\n"
    "\n"
    "From: Inner <i@y.org>\n"
    "Sender: s@y.org\n"
    "To: group: ;\n"
    "Subject: ✓ utf8 inside\n"
    "Content-Type: multipart/alternative; boundary=i\n"
    "\n"
    "--i\n"
    "Content-Type: text/plain\n"
    "Content-Language: fr\n"
    "\n"
    "bonjour\n"
    "--i\n"
    "Content-Type: text/html; charset=\"us-ascii\"\n"
    "Content-ID: <h@y.org>\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<p>bonjour</p>\n"
    "--i--\n"
    "--o\n"
    "Content-Type: message/global\n"
    "\n"
    "Subject: global\n"
    "\n"
    "x\n"
    "--o\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAEC\n"
    "--o--\n"
)
CORPUS = [
    SIMPLE, ALTERNATIVE, ATTACHMENT, NESTED, DIGEST, crlf(_rfc822("S: x\n\ny", 3)), GROUPS,
    FORWARD, b"", b"no header at all", b"garbage\x00\xff\r\n\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Subject: " + b"long " * 300 + b"\r\n\r\n",
]
