"""Password hashing with Argon2id (argon2-cffi), and the checks a new password must pass."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults are RFC 9106's second recommended option (Argon2id, t=3,
# m=64 MiB, p=4). One verification costs 0.155 s of CPU and 0.29 s of wall time on the
# 2-core bench machine (median of 10, time.process_time / perf_counter; its 4 lanes run
# on 2 cores): one core checks about 6 passwords a second, which is why a verified
# password is cached (auth/cache.py). [auth] argon2_* change the parameters; see
# configure().
_hasher = PasswordHasher()

# Verified against when an account does not exist, so a login for an unknown address costs
# the same time as one for a real address (no enumeration by timing). Made with the
# configured parameters, so it costs what a real check costs.
_dummy_hash: str | None = None

MIN_PASSWORD_LENGTH = 10


class WeakPassword(ValueError):
    pass


def configure(time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Use these Argon2id parameters for new hashes (the process-wide setting: the server
    and the CLI call it once after reading the config)."""
    global _hasher, _dummy_hash
    if (time_cost, memory_kib, parallelism) != (
        _hasher.time_cost, _hasher.memory_cost, _hasher.parallelism
    ):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                 parallelism=parallelism)
        _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a None hash still spends the time of a real check."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("postel-dummy-password-for-timing")
    try:
        return _hasher.verify(password_hash or _dummy_hash, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when a stored hash was made with other parameters than the configured ones
    (argon2-cffi compares the encoded $argon2id$v=..$m=..,t=..,p=.. prefix)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
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
