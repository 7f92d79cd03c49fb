"""Random tokens handed out (session cookies, reset links), stored only hashed."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the store keeps: a copy of the database opens no session and no account."""
    return hashlib.sha256(token.encode()).hexdigest()
