"""Every finding of the atheris targets (fuzz/), kept: the input that failed, fed to the
code that was wrong. Each input is also a seed under fuzz/corpus/<target>/finding_*."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postel.imap.proto.receiver import LiteralLimits, Receiver, TooLong
from postel.mail.mime import parse_message_bytes
from tests.unit.imap_wire import check_message
from tests.unit.test_fuzz_properties import drain, post_form

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


def _post(content_type: bytes, body: bytes) -> dict[str, str] | int:
    loop = asyncio.new_event_loop()
    try:
        return post_form(loop, content_type, [body])
    finally:
        loop.close()


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


@pytest.mark.parametrize("name", ["finding_nul_in_disposition", "finding_nul_encoded"])
def test_mime_header_nul_never_reaches_the_store_or_imap(name: str) -> None:
    # fuzz/mime.py, 2026-12-04: "attac\x00hment" in Content-Disposition came out of
    # BODYSTRUCTURE in a literal (RFC 9051 4.3: CHAR8 excludes NUL), and a Subject
    # "=?utf-8?q?before=00after?=" failed the delivery on PostgreSQL (text refuses NUL).
    data = (CORPUS / "mime" / name).read_bytes()
    parsed = parse_message_bytes(data)
    stored = parsed.to_json()
    assert not [s for s in _strings(stored) if "\x00" in s]
    check_message(parsed)


def test_mime_header_nul_becomes_the_replacement_character() -> None:
    parsed = parse_message_bytes((CORPUS / "mime" / "finding_nul_encoded").read_bytes())
    assert parsed.subject == "before\ufffdafter"
    assert parsed.display_from == "A\ufffdB"
    assert parsed.body.disposition is not None
    assert parsed.body.disposition[0] == "attac\ufffdhment"
    assert dict(parsed.body.params)["name"] == "a\ufffdb.txt"


@pytest.mark.parametrize("path", sorted((CORPUS / "mime").iterdir()), ids=lambda p: p.name)
def test_every_mime_seed_gives_well_formed_imap(path: Path) -> None:
    check_message(parse_message_bytes(path.read_bytes()))


@pytest.mark.parametrize("charset", [b'"utf-8\x00"', b"unicode_escape", b"punycode", b"rot13",
                                     b"x-no-such"])
def test_a_multipart_form_in_no_text_charset_is_415(charset: bytes) -> None:
    # fuzz/web.py, 2026-12-04 (fuzz/corpus/web/finding_nul_in_charset): Starlette looked
    # the charset parameter up as a codec; a NUL in it raised ValueError (a 500), and
    # unicode_escape turned "\\ud800" into a lone surrogate.
    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\\ud800\r\n--b--\r\n'
    assert _post(b"multipart/form-data; charset=" + charset + b"; boundary=b", body) == 415


def test_a_multipart_form_in_a_text_charset_is_read() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xe9\r\n--b--\r\n'
    assert _post(b"multipart/form-data; charset=iso-8859-1; boundary=b", body) == {"a": "\xe9"}


def test_the_web_fuzz_finding_itself_is_415() -> None:
    # The input as fuzz/web.py reads it: a kind byte (0: "multipart/form-data;
    # boundary=" + what follows), a length byte, then that much more Content-Type.
    data = (CORPUS / "web" / "finding_nul_in_charset").read_bytes()
    assert data[0] % 4 == 0
    n = data[1] % 64
    content_type = b"multipart/form-data; boundary=" + data[2 : 2 + n]
    assert b"charset=utf-8\x00" in content_type
    assert _post(content_type, data[2 + n :]) == 415


def _imap_events(pieces: list[bytes]) -> list[object]:
    # The limits of fuzz/imap.py, which the finding's input was shaped by.
    return drain(Receiver(max_line_length=256, max_literal_size=2048, max_command_size=4096,
                          spool_threshold=512, pre_login=LiteralLimits(64, 128),
                          logged_in=lambda: True), pieces)


def test_the_imap_fuzz_finding_frames_the_same_whatever_the_split() -> None:
    # fuzz/imap.py, 2026-12-04: a tag longer than max_line_length was answered with as
    # much of it as had arrived when the line was refused; it is untagged now.
    data = (CORPUS / "imap" / "finding_tag_longer_than_a_line").read_bytes()[1:]
    count = data[0] % 8  # fuzz/common.py split(): chunk lengths, then the payload
    lengths, payload = data[1 : 1 + count], data[1 + count :]
    pieces, at = [], 0
    for n in lengths:
        pieces.append(payload[at : at + n])
        at += n
    pieces.append(payload[at:])
    split, whole = _imap_events(pieces), _imap_events([payload])
    assert split == whole
    assert [e.tag for e in whole if isinstance(e, TooLong)] == ["*"]


@pytest.mark.parametrize("tag_length", [255, 256, 300])
def test_an_imap_tag_that_fills_a_line_is_untagged(tag_length: int) -> None:
    line = b"T" * tag_length + b" NOOP " + b"x" * 300 + b"\r\n"
    expected = "*" if tag_length >= 256 else "T" * tag_length
    for pieces in ([line], [line[:100], line[100:]], [bytes([b]) for b in line]):
        assert _imap_events(pieces) == [TooLong(expected)]
