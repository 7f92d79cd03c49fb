"""The one error type of the operations layer."""

from __future__ import annotations

import enum


class Kind(enum.IntEnum):
    """What went wrong, numbered like the HTTP status the web answers with (RFC 9110 15)."""

    INVALID = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    CONFLICT = 409
    GONE = 410
    TOO_MANY = 429


class OperationError(Exception):
    """An operation refused; `message` is fit to show to the person, `field` names the
    input it is about ("" when none)."""

    def __init__(self, kind: Kind, message: str, field: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return int(self.kind)
