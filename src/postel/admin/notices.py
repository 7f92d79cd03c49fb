"""System mail from Postel itself (reset links, notices), sent as the configured
system sender (`web.system_from`, default postmaster@<hostname>).

Local backup addresses get the message in their INBOX at once; remote ones go into the
outbound queue (postel.delivery), which the queue workers deliver.
"""

from __future__ import annotations

import email.utils
import logging
import secrets
from email.message import EmailMessage

from postel.delivery import Envelope, deliver
from postel.mail.address import AddressError, parse_email
from postel.mail.mime import parse_message_bytes
from postel.store.api import Store
from postel.store.model import Account

log = logging.getLogger("postel.admin")


def build_message(sender: str, to: str, subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    # RFC 3834 5: machine-generated, so autoresponders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return bytes(message).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send_system_mail(store: Store, sender: str, to: str, subject: str, body: str) -> bool:
    """Blocking. Deliver locally or queue; False when the address leads nowhere."""
    try:
        key = parse_email(to).key
    except AddressError:
        log.warning("system mail to an invalid address dropped", extra={"fields": {"to": to}})
        return False
    domain = key.rpartition("@")[2]
    local: list[Account] = []
    remote: list[str] = []
    if store.directory.is_local_domain(domain):
        found = store.directory.resolve(key)
        if found is None:
            log.warning("system mail to an unknown local address dropped",
                        extra={"fields": {"to": key}})
            return False
        local, remote = found
    else:
        remote = [to]
    message = build_message(sender, to, subject, body)
    return_path = f"Return-Path: <{sender}>\r\n".encode()
    blob = store.blobs.put(return_path + message)
    parsed = parse_message_bytes(return_path + message)
    deliver(
        store,
        blob,
        parsed,
        Envelope(
            queue_id=secrets.token_hex(6).upper(),
            mail_from=sender,
            local=local,
            remote=remote,
            account_id=None,
            smtputf8=not to.isascii(),
            body_8bit=False,
        ),
        return_path_length=len(return_path),
    )
    return True
