"""Submission's header check in SMTP terms; the rule itself is `submission.author_refusal`,
shared with the webmail's send."""

from __future__ import annotations

from collections.abc import Set

from postel.mail.mime import ParsedMessage
from postel.smtp.replies import Reply
from postel.submission import author_refusal as author_problem


def author_refusal(parsed: ParsedMessage, own_addresses: Set[str]) -> Reply | None:
    """None when the message may go out as this user, else the reply refusing it."""
    problem = author_problem(parsed, own_addresses)
    if problem is None:
        return None
    if problem.repeated:
        return Reply(554, "5.6.0", problem.text)  # RFC 3463 3.6.0: bad message content
    return Reply(550, "5.7.1", problem.text)
