"""What an IMAP session is in, and what its handlers share without importing the session:
the states (RFC 9051 3), the state sets of the command table, BYE and raw-line commands."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


class State(enum.Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


# The states a command may be given in (RFC 9051 6.1-6.4: any, not authenticated,
# authenticated (which includes selected), selected).
ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


class Bye(Exception):
    """End the connection after sending BYE with this text."""


@dataclass
class Continuation:
    """A command in progress that reads raw lines (AUTHENTICATE, IDLE)."""

    tag: str
    on_line: Callable[[bytes], Awaitable[None]]
    idle: bool = False
