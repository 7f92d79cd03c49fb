"""Password hashing with Argon2id (argon2-cffi), and the checks a new password must pass."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults are RFC 9106's second recommended option (Argon2id, t=3,
# m=64 MiB, p=4): roughly 50 ms here, slow enough for an attacker with the database.
_hasher = PasswordHasher()

# Verified against when an account does not exist, so a login for an unknown address costs
# the same time as one for a real address (no enumeration by timing).
_DUMMY_HASH = _hasher.hash("postel-dummy-password-for-timing")

MIN_PASSWORD_LENGTH = 10


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a None hash still spends the time of a real check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False




def check_strength(password: str, email: str = "") -> None:
    """Raise WeakPassword with a message a person can act on."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password.encode()) > 1024:
        raise WeakPassword("the password must be at most 1024 bytes long")
    if email and email.split("@")[0].lower() in password.lower() and len(email) > 3:
        raise WeakPassword("the password must not contain the name of the account")
    if len(set(password)) < 4:
        raise WeakPassword("the password needs more different characters")
