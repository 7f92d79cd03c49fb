"""DKIM signing and verification, checked against dkimpy in both directions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import dkim as dkimpy
import pytest

from postel.mailauth import dkim
from postel.mailauth.dkim import BodyHasher, DkimResult, SigningKey
from postel.mailauth.dns import FakeResolver

MESSAGE = (
    b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject:  hello   there \r\n"
    b"\tfolded\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@a.test>\r\n\r\n"
    b"body  line \t\r\n\r\n.dot\r\nlast line without newline"
)

RSA_KEY = dkim.generate_key("rsa-sha256", 2048)
ED_KEY = dkim.generate_key("ed25519-sha256")


def resolver_for(*keys: tuple[str, str]) -> FakeResolver:
    resolver = FakeResolver()
    for selector, pem in keys:
        resolver.add(f"{selector}._domainkey.a.test", "TXT", dkim.dns_record(pem))
    return resolver


def verify(path: Path, resolver: FakeResolver) -> list[dkim.DkimVerdict]:
    return asyncio.run(dkim.verify(resolver, path))


def test_our_rsa_signature_verifies_with_dkimpy_and_with_us(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(MESSAGE)
    header = dkim.sign(path, SigningKey("a.test", "sel", "rsa-sha256", RSA_KEY))
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    record = dkim.dns_record(RSA_KEY).encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.a.test."
        return record

    assert dkimpy.verify(header + MESSAGE, dnsfunc=dnsfunc)
    path.write_bytes(header + MESSAGE)
    [verdict] = verify(path, resolver_for(("sel", RSA_KEY)))
    assert verdict.result is DkimResult.PASS and verdict.domain == "a.test"


def test_from_is_oversigned(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(MESSAGE)
    header = dkim.sign(path, SigningKey("a.test", "sel", "rsa-sha256", RSA_KEY))
    tags = dkim.parse_tags(header.decode().partition(":")[2])
    signed = tags["h"].replace(" ", "").split(":")
    assert signed.count("from") == 2
    # A second From added later breaks the signature.
    path.write_bytes(header + b"From: mallory@evil.test\r\n" + MESSAGE)
    [verdict] = verify(path, resolver_for(("sel", RSA_KEY)))
    assert verdict.result is DkimResult.FAIL


@pytest.mark.parametrize(
    "canon", [b"relaxed/relaxed", b"simple/simple", b"relaxed/simple", b"simple/relaxed"]
)
def test_dkimpy_signatures_verify(tmp_path: Path, canon: bytes) -> None:
    header_canon, body_canon = canon.split(b"/")
    signature = dkimpy.sign(
        MESSAGE, b"sel", b"a.test", RSA_KEY.encode(), canonicalize=(header_canon, body_canon)
    )
    path = tmp_path / "m"
    path.write_bytes(signature + MESSAGE)
    [verdict] = verify(path, resolver_for(("sel", RSA_KEY)))
    assert verdict.result is DkimResult.PASS, verdict.reason


def test_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(MESSAGE)
    header = dkim.sign(path, SigningKey("a.test", "ed", "ed25519-sha256", ED_KEY))
    path.write_bytes(header + MESSAGE)
    assert dkim.dns_record(ED_KEY).startswith("v=DKIM1; k=ed25519; p=")
    [verdict] = verify(path, resolver_for(("ed", ED_KEY)))
    assert verdict.result is DkimResult.PASS, verdict.reason


def test_tampering_and_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_bytes(MESSAGE)
    header = dkim.sign(path, SigningKey("a.test", "sel", "rsa-sha256", RSA_KEY))
    resolver = resolver_for(("sel", RSA_KEY))
    path.write_bytes(header + MESSAGE.replace(b"body", b"bodY"))
    [verdict] = verify(path, resolver)
    assert verdict.result is DkimResult.FAIL and "body hash" in verdict.reason
    path.write_bytes(header + MESSAGE.replace(b"hello", b"HELLO"))
    assert verify(path, resolver)[0].result is DkimResult.FAIL
    path.write_bytes(header + MESSAGE)
    assert verify(path, FakeResolver())[0].result is DkimResult.PERMERROR
    failing = FakeResolver()
    failing.fail("sel._domainkey.a.test")
    assert verify(path, failing)[0].result is DkimResult.TEMPERROR
    path.write_bytes(MESSAGE)
    assert verify(path, resolver) == []


def test_body_canonicalization_in_any_chunking() -> None:
    body = b"a  b \t\r\n\r\n c\r\n\r\n\r\n"
    expected = {}
    for method in ("simple", "relaxed"):
        whole = BodyHasher(method)
        whole.update(body)
        expected[method] = whole.digest()
        for size in (1, 2, 3, 5):
            hasher = BodyHasher(method)
            for start in range(0, len(body), size):
                hasher.update(body[start : start + size])
            assert hasher.digest() == expected[method]


    assert expected["relaxed"] == hashlib.sha256(b"a b\r\n\r\n c\r\n").digest()
    assert expected["simple"] == hashlib.sha256(b"a  b \t\r\n\r\n c\r\n").digest()
    empty = BodyHasher("simple")
    assert empty.digest() == hashlib.sha256(b"\r\n").digest()  # RFC 6376 3.4.3
    empty_relaxed = BodyHasher("relaxed")
    assert empty_relaxed.digest() == hashlib.sha256(b"").digest()  # RFC 6376 3.4.4


def test_length_limit() -> None:
    hasher = BodyHasher("simple", limit=3)
    hasher.update(b"abcdef\r\n")


    assert hasher.digest() == hashlib.sha256(b"abc").digest()
    assert base64.b64encode(hasher.digest())


def test_rsa_sha1_is_refused(tmp_path: Path) -> None:
    signature = dkimpy.sign(
        MESSAGE, b"sel", b"a.test", RSA_KEY.encode(), signature_algorithm=b"rsa-sha1"
    )
    path = tmp_path / "m"
    path.write_bytes(signature + MESSAGE)
    assert verify(path, resolver_for(("sel", RSA_KEY)))[0].result is DkimResult.POLICY
