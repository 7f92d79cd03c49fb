"""Submission's header check: the author and sender fields name the user's own addresses.

RFC 6409 8.1 lets a submission server check that the message is from the user; MAIL FROM
alone proves nothing to the reader, who sees the From and Sender fields. Every address in
every author field is checked (a second From, a Sender or a Resent-From naming someone
else would otherwise pass), and a message with more than one From field is refused
outright (RFC 5322 3.6: From occurs exactly once, Sender at most once).
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from postel.mail.address import AddressError, parse_email
from postel.mail.mime import HeaderAddress, ParsedMessage, parse_addresses
from postel.smtp.replies import Reply

# RFC 5322 3.6.2 (originator fields) and 3.6.6 (resent fields that name a person).
AUTHOR_FIELDS = frozenset({"from", "sender", "resent-from", "resent-sender"})
SINGLE_FIELDS = ("from", "sender")  # RFC 5322 3.6: at most once each


def author_refusal(parsed: ParsedMessage, own_addresses: Set[str]) -> Reply | None:
    """None when the message may go out as this user, else the reply refusing it."""
    names = [name.lower() for name, _ in parsed.headers]
    for single in SINGLE_FIELDS:
        if names.count(single) > 1:
            return Reply(554, "5.6.0", f"more than one {single.title()} field "
                                       f"(RFC 5322 3.6)")
    # The stored ENVELOPE form is parsed from the raw field, the header list from its
    # decoded text: checking both leaves an encoded word nothing to hide behind.
    candidates: list[HeaderAddress] = [*parsed.from_, *parsed.sender]
    for name, value in parsed.headers:
        if name.lower() in AUTHOR_FIELDS:
            candidates.extend(parse_addresses(value))
    for address in _mailboxes(candidates):
        if _key(address) not in own_addresses:
            return Reply(550, "5.7.1", f"{address.mailbox}@{address.host} in the header "
                                       f"is not one of your addresses")
    return None


def _mailboxes(addresses: Iterable[HeaderAddress]) -> Iterable[HeaderAddress]:
    return (a for a in addresses if not a.is_group_marker)


def _key(address: HeaderAddress) -> str:
    try:
        return parse_email(f"{address.mailbox}@{address.host}").key
    except AddressError:
        return ""
