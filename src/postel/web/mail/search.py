"""The quick search box: words and operators (from: to: subject: has:attachment
is:unread is:flagged before:YYYY-MM-DD after:YYYY-MM-DD), quotes group words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from postel.store.webmail_api import SearchTerms

_TOKEN = re.compile(r'(\w+:)?"([^"]*)"?|(\S+)')
MAX_TERMS = 20


def _date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_query(query: str) -> SearchTerms:
    """Unknown operators and bad dates are searched for as words, never an error."""
    words: list[str] = []
    fields: dict[str, list[str]] = {"from": [], "to": [], "subject": []}
    flags = {"has_attachment": False, "unread": False, "flagged": False}
    before = after = None
    for match in list(_TOKEN.finditer(query[:1000]))[:MAX_TERMS]:
        if match.group(2) is not None:  # [op:]"quoted words"
            operator, value = (match.group(1) or "").rstrip(":").lower(), match.group(2)
        else:
            token = match.group(3)
            operator, _, value = token.partition(":") if ":" in token else ("", "", token)
            operator = operator.lower()
            if not value:
                operator, value = "", token
        if operator in fields and value:
            fields[operator].append(value)
        elif operator == "has" and value.lower() in ("attachment", "attachments"):
            flags["has_attachment"] = True
        elif operator == "is" and value.lower() in ("unread", "flagged"):
            flags[value.lower()] = True
        elif operator in ("before", "after") and _date(value) is not None:
            day = _date(value)
            assert day is not None
            if operator == "before":
                before = day
            else:
                after = day
        elif operator == "on" and _date(value) is not None:
            after = _date(value)
            assert after is not None
            before = after + timedelta(days=1)
        elif value.strip():
            words.append(f"{operator}:{value}" if operator else value)
    return SearchTerms(
        words=tuple(words), from_=tuple(fields["from"]), to=tuple(fields["to"]),
        subject=tuple(fields["subject"]), before=before, after=after, **flags,
    )
