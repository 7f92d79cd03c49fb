"""Every finding of the atheris targets (fuzz/), kept: the input that failed, fed to the
code that was wrong. Each input is also a seed under fuzz/corpus/<target>/finding_*."""

from __future__ import annotations

from pathlib import Path

import pytest

from postel.mail.mime import parse_message_bytes
from tests.unit.imap_wire import check_message

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


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
