"""The one error type of the operations layer."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator

from postel.store.errors import AlreadyExists, NotFound, StoreError


class Kind(enum.IntEnum):
    """What went wrong, numbered like the HTTP status the web answers with (RFC 9110 15)."""

    INVALID = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    NOT_FOUND = 404
    NOT_ACCEPTABLE = 406
    CONFLICT = 409
    GONE = 410
    TOO_LARGE = 413
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


@contextlib.contextmanager
def store_refusals(field: str = "") -> Iterator[None]:
    """The store's refusals as OperationErrors: missing → NOT_FOUND, a duplicate or a rule
    of the store (a domain that still has users) → CONFLICT. The store's message is kept."""
    try:
        yield
    except NotFound as exc:
        raise OperationError(Kind.NOT_FOUND, str(exc)) from None
    except AlreadyExists as exc:
        raise OperationError(Kind.CONFLICT, str(exc), field) from None
    except StoreError as exc:
        raise OperationError(Kind.CONFLICT, str(exc)) from None
