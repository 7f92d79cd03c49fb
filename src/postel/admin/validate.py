"""Checks of what people type, shared by every operation; each failure names its field."""

from __future__ import annotations

from postel.admin.errors import Kind, OperationError
from postel.auth.passwords import WeakPassword, check_strength, hash_password
from postel.mail.address import AddressError, parse_email

MAX_NAME = 200


def email_key(text: str, field: str = "email") -> str:
    try:
        return parse_email(text.strip()).key
    except AddressError as exc:
        raise OperationError(Kind.INVALID, f"{text.strip() or 'The address'} is not a valid "
                                           f"email address: {exc}", field) from None


def display_name(text: str) -> str:
    name = text.strip()
    if len(name) > MAX_NAME:
        raise OperationError(Kind.INVALID,
                             f"The display name is longer than {MAX_NAME} characters.",
                             "display_name")
    return name


def backup_address(text: str, own: str) -> str | None:
    """A validated backup address, or None to clear it."""
    text = text.strip()
    if not text:
        return None
    if email_key(text, "backup_email") == own:
        raise OperationError(Kind.INVALID,
                             "The backup address must be another mailbox than this account "
                             "itself: it is where you get back in when you cannot log on.",
                             "backup_email")
    return text


def strong_password_hash(password: str, email: str, field: str = "password") -> str:
    try:
        check_strength(password, email)
    except WeakPassword as exc:
        raise OperationError(Kind.INVALID, f"Please choose another password: {exc}.",
                             field) from None
    return hash_password(password)
