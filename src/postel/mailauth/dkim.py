"""DKIM (RFC 6376) signing and verification that stream the body from a file.

Only the header section is held in memory; the body is canonicalized and hashed in chunks,
so a 30 MB message costs 64 KiB of memory. Algorithms: rsa-sha256 and ed25519-sha256
(RFC 8463); rsa-sha1 is refused (RFC 8301 3.1). Keys are checked with ``cryptography``.

Why not dkimpy: it signs and verifies a message given whole as bytes, which breaks the rule
that a message is never held whole in memory (30 MB bodies), and its Ed25519 support needs
PyNaCl. The unit tests check this code against dkimpy in both directions, so the two agree.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from postel.mailauth.dns import DnsTemporaryError, Resolver
from postel.mailauth.headers import HeaderTooLarge, RawHeader, read_headers

CHUNK = 64 * 1024
# RFC 8301 3.2: RSA keys shorter than 1024 bits must not be considered valid.
MIN_RSA_BITS = 1024
# Signatures looked at per message; more are reported as not checked.
MAX_SIGNATURES = 5

# Header fields signed when present (RFC 6376 5.4.1's list, trimmed to what readers see).
SIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive",
    "list-unsubscribe-post",
)
# Signed once more than they occur, so nobody can add another instance later
# (RFC 6376 8.15); From above all, because DMARC and readers trust it.
OVERSIGNED = ("from", "sender", "reply-to", "subject", "date", "to", "cc", "message-id",
              "mime-version", "content-type", "content-transfer-encoding")


class DkimResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    POLICY = "policy"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True)
class DkimVerdict:
    result: DkimResult
    domain: str  # d=
    selector: str  # s=
    signature_prefix: str  # first characters of b=, for header.b (RFC 6008)
    reason: str = ""


class DkimError(Exception):
    pass


# -- tag lists and canonicalization -----------------------------------------------------


def parse_tags(text: str) -> dict[str, str]:
    """RFC 6376 3.2 tag=value list; a repeated tag is an error."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise DkimError(f"bad tag {part.strip()!r}")
        if name in tags:
            raise DkimError(f"tag {name} appears twice")
        tags[name] = re.sub(r"[ \t\r\n]+", " ", value).strip()
    return tags


def canonical_header(header: bytes, method: str) -> bytes:
    """RFC 6376 3.4.1 (simple) and 3.4.2 (relaxed) header canonicalization."""
    if method == "simple":
        return header
    name, _, value = header.partition(b":")
    value = re.sub(rb"\r?\n", b"", value)
    value = re.sub(rb"[ \t]+", b" ", value).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


class BodyHasher:
    """RFC 6376 3.4.3/3.4.4 body canonicalization, fed in chunks, with an optional l=."""

    def __init__(self, method: str, limit: int | None = None) -> None:
        self.method = method
        self.limit = limit
        self.hash = hashlib.sha256()
        self.hashed = 0
        self._partial = b""
        self._empty_lines = 0  # held back: trailing empty lines are not part of the body
        self._any = False

    def _emit(self, data: bytes) -> None:
        if self.limit is not None:
            data = data[: max(0, self.limit - self.hashed)]
        self.hash.update(data)
        self.hashed += len(data)

    def _line(self, line: bytes) -> None:
        if self.method == "relaxed":
            line = re.sub(rb"[ \t]+", b" ", line).rstrip(b" ")
        if not line:
            self._empty_lines += 1
            return
        if self._empty_lines:
            self._emit(b"\r\n" * self._empty_lines)
            self._empty_lines = 0
        self._emit(line + b"\r\n")
        self._any = True

    def update(self, data: bytes) -> None:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.removesuffix(b"\r"))

    def digest(self) -> bytes:
        if self._partial:
            self._line(self._partial.removesuffix(b"\r"))
            self._partial = b""
        if not self._any and self.method == "simple":
            self._emit(b"\r\n")  # RFC 6376 3.4.3: an empty body is one CRLF
        return self.hash.digest()


def _select_headers(headers: Sequence[RawHeader], names: Sequence[str]) -> list[bytes]:
    """RFC 6376 5.4.2: each name picks the last not yet used instance, bottom up; a name
    with no instance left contributes nothing."""
    used: set[int] = set()
    picked: list[bytes] = []
    for name in names:
        for index in range(len(headers) - 1, -1, -1):
            if index not in used and headers[index].lower == name:
                used.add(index)
                picked.append(headers[index].raw)
                break
    return picked


_B_VALUE = re.compile(rb"((?:^|;)[ \t\r\n]*b[ \t\r\n]*=)[^;]*")


def _header_hash_input(
    headers: Sequence[RawHeader], names: Sequence[str], signature: bytes, method: str
) -> bytes:
    data = b"".join(canonical_header(h, method) for h in _select_headers(headers, names))
    name, _, value = signature.partition(b":")
    emptied = name + b":" + _B_VALUE.sub(rb"\1", value)
    return data + canonical_header(emptied, method).removesuffix(b"\r\n")


# -- signing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    private_key_pem: str


def _fold(tags: list[tuple[str, str]]) -> str:
    """The header with tags folded to short lines; the last tag (b=) has no semicolon."""
    lines: list[str] = []
    current = "DKIM-Signature:"
    for index, (name, value) in enumerate(tags):
        piece = f" {name}={value}" + (";" if index < len(tags) - 1 else "")
        if len(current) + len(piece) > 76 or name == "b":
            lines.append(current)
            current = "\t" + piece.strip()
        else:
            current += piece
    lines.append(current)
    return "\r\n".join(lines)


def sign(
    path: Path,
    key: SigningKey,
    *,
    offset: int = 0,
    now: float | None = None,
) -> bytes:
    """A DKIM-Signature header field (CRLF-terminated) for the message in `path` from byte
    `offset`, relaxed/relaxed, signing the headers present and oversigning the singletons."""
    with path.open("rb") as handle:
        handle.seek(offset)
        headers = read_headers(handle)
        body = BodyHasher("relaxed")
        while chunk := handle.read(CHUNK):
            body.update(chunk)
    present = [h.lower for h in headers]
    if "from" not in present:
        raise DkimError("the message has no From header (RFC 6376 5.4 requires signing it)")
    names: list[str] = []
    for name in SIGNED_HEADERS:
        count = present.count(name)
        names += [name] * (count + (1 if name in OVERSIGNED and count else 0))
    bh = base64.b64encode(body.digest()).decode()
    tags = [
        ("v", "1"), ("a", key.algorithm), ("c", "relaxed/relaxed"), ("d", key.domain),
        ("s", key.selector), ("t", str(int(now if now is not None else time.time()))),
        ("h", ":".join(names)), ("bh", bh), ("b", ""),
    ]
    unsigned = _fold(tags)
    data = _header_hash_input(headers, names, unsigned.encode(), "relaxed")
    private = serialization.load_pem_private_key(key.private_key_pem.encode(), password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        if key.algorithm != "rsa-sha256":
            raise DkimError(f"an RSA key cannot sign {key.algorithm}")
        signature = private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        if key.algorithm != "ed25519-sha256":
            raise DkimError(f"an Ed25519 key cannot sign {key.algorithm}")
        signature = private.sign(hashlib.sha256(data).digest())  # RFC 8463 3
    else:
        raise DkimError("unsupported private key type")
    encoded = base64.b64encode(signature).decode()
    folded = "\r\n\t ".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))
    return (unsigned + folded + "\r\n").encode()


# -- verification ---------------------------------------------------------------------


@dataclass
class _Pending:
    header: RawHeader
    tags: dict[str, str]
    body: BodyHasher
    canon_header: str


async def verify(resolver: Resolver, path: Path, *, offset: int = 0) -> list[DkimVerdict]:
    """Check every DKIM-Signature (up to MAX_SIGNATURES) of the message in `path`.

    The file is read in a worker thread's worth of small chunks; DNS goes through the
    resolver. No signature: an empty list (RFC 8601 reports that as dkim=none).
    """
    try:
        headers, pending, verdicts = await asyncio.to_thread(_hash_file, path, offset)
    except HeaderTooLarge as exc:
        return [DkimVerdict(DkimResult.PERMERROR, "", "", "", str(exc))]
    for item in pending:
        verdicts.append(await _verify_one(resolver, headers, item))
    return verdicts


def _hash_file(
    path: Path, offset: int
) -> tuple[list[RawHeader], list[_Pending], list[DkimVerdict]]:
    with path.open("rb") as handle:
        handle.seek(offset)
        headers = read_headers(handle)
        pending, verdicts = _prepare(headers)
        if pending:
            _hash_body(handle, [p.body for p in pending])
    return headers, pending, verdicts


def _hash_body(handle: BinaryIO, hashers: list[BodyHasher]) -> None:
    while chunk := handle.read(CHUNK):
        for hasher in hashers:
            hasher.update(chunk)


def _prepare(headers: list[RawHeader]) -> tuple[list[_Pending], list[DkimVerdict]]:
    pending: list[_Pending] = []
    verdicts: list[DkimVerdict] = []
    signatures = [h for h in headers if h.lower == "dkim-signature"][:MAX_SIGNATURES]
    for header in signatures:
        try:
            tags = parse_tags(header.value)
        except DkimError as exc:
            verdicts.append(DkimVerdict(DkimResult.PERMERROR, "", "", "", str(exc)))
            continue
        domain, selector = tags.get("d", "").lower(), tags.get("s", "")
        prefix = re.sub(r"\s", "", tags.get("b", ""))[:8]

        def bad(reason: str, result: DkimResult = DkimResult.PERMERROR) -> None:
            verdicts.append(DkimVerdict(result, domain, selector, prefix, reason))  # noqa: B023

        missing = [t for t in ("v", "a", "b", "bh", "d", "h", "s") if t not in tags]
        if missing:
            bad(f"missing tags {', '.join(missing)}")
            continue
        if tags["v"] != "1":
            bad(f"unknown version v={tags['v']}")
            continue
        if tags["a"] not in ("rsa-sha256", "ed25519-sha256"):
            bad(f"algorithm {tags['a']} not accepted (RFC 8301)", DkimResult.POLICY)
            continue
        header_canon, _, body_canon = tags.get("c", "simple/simple").lower().partition("/")
        body_canon = body_canon or "simple"
        if header_canon not in ("simple", "relaxed") or body_canon not in ("simple", "relaxed"):
            bad(f"unknown canonicalization {tags.get('c')}")
            continue
        signed = [n.strip().lower() for n in tags["h"].split(":")]
        if "from" not in signed:
            bad("From is not signed (RFC 6376 5.4)")
            continue
        if "i" in tags:
            identity_domain = tags["i"].rpartition("@")[2].lower()
            if identity_domain != domain and not identity_domain.endswith("." + domain):
                bad("i= is not within d= (RFC 6376 3.5)")
                continue
        if "x" in tags and tags["x"].isdigit() and int(tags["x"]) < time.time():
            bad("signature expired", DkimResult.FAIL)
            continue
        limit = int(tags["l"]) if tags.get("l", "").isdigit() else None
        pending.append(_Pending(header, tags, BodyHasher(body_canon, limit), header_canon))
    return pending, verdicts


async def _verify_one(
    resolver: Resolver, headers: list[RawHeader], item: _Pending
) -> DkimVerdict:
    tags = item.tags
    domain, selector = tags["d"].lower(), tags["s"]
    prefix = re.sub(r"\s", "", tags["b"])[:8]

    def verdict(result: DkimResult, reason: str = "") -> DkimVerdict:
        return DkimVerdict(result, domain, selector, prefix, reason)

    expected = base64.b64decode(re.sub(r"\s", "", tags["bh"]) + "==")
    if item.body.digest() != expected:
        return verdict(DkimResult.FAIL, "body hash did not verify")
    try:
        records = await resolver.lookup(f"{selector}._domainkey.{domain}", "TXT")
    except DnsTemporaryError as exc:
        return verdict(DkimResult.TEMPERROR, str(exc))
    if not records:
        return verdict(DkimResult.PERMERROR, "no key published")
    try:
        key = parse_tags(records[0])
    except DkimError as exc:
        return verdict(DkimResult.PERMERROR, f"bad key record: {exc}")
    key_type = key.get("k", "rsa").lower()
    if key.get("v", "DKIM1") != "DKIM1" or not key.get("p"):
        return verdict(DkimResult.PERMERROR, "key revoked or malformed")
    if key_type != tags["a"].partition("-")[0]:
        return verdict(DkimResult.PERMERROR, f"key type {key_type} does not match a=")
    names = [n.strip().lower() for n in tags["h"].split(":")]
    data = _header_hash_input(headers, names, item.header.raw, item.canon_header)
    signature = base64.b64decode(re.sub(r"\s", "", tags["b"]) + "==")
    public = base64.b64decode(re.sub(r"\s", "", key["p"]) + "==")
    try:
        if key_type == "rsa":
            loaded = serialization.load_der_public_key(public)
            if not isinstance(loaded, rsa.RSAPublicKey):
                return verdict(DkimResult.PERMERROR, "k=rsa but not an RSA key")
            if loaded.key_size < MIN_RSA_BITS:
                return verdict(DkimResult.POLICY, f"RSA key of {loaded.key_size} bits")
            loaded.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif key_type == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(public).verify(
                signature, hashlib.sha256(data).digest()
            )
        else:
            return verdict(DkimResult.PERMERROR, f"unknown key type {key_type}")
    except InvalidSignature:
        return verdict(DkimResult.FAIL, "signature did not verify")
    except ValueError as exc:
        return verdict(DkimResult.PERMERROR, f"bad key: {exc}")
    return verdict(DkimResult.PASS)


# -- keys -------------------------------------------------------------------------------


def generate_key(algorithm: str = "rsa-sha256", bits: int = 2048) -> str:
    """A new private key, PEM (PKCS#8)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ed25519-sha256":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def dns_record(private_key_pem: str) -> str:
    """The TXT record value to publish at <selector>._domainkey.<domain>."""
    private = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    if not isinstance(private, rsa.RSAPrivateKey):
        raise DkimError("unsupported private key type")
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
