"""What the store refuses, whatever the backend: protocol code catches these alone."""

from __future__ import annotations


class StoreError(Exception):
    """A request the store refuses, with a message fit for an operator or a user."""


class NotFound(StoreError):
    """The named domain, account, alias, mailbox or message does not exist."""


class AlreadyExists(StoreError):
    """The name is taken (also when a concurrent writer took it a moment ago)."""


class LimitReached(StoreError):
    """A write would pass a configured limit (e.g. entries per METADATA target)."""
