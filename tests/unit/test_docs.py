"""docs/config.md is generated from config.py's comments and must match it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

from postel.config import Config
from postel.config_docs import _comments, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_config_page_is_up_to_date() -> None:
    assert DOCS.read_text() == render(), (
        "docs/config.md is stale: run `.venv/bin/python -m postel.config_docs > docs/config.md`"
    )


def test_every_setting_has_a_comment() -> None:
    missing = []
    for field in fields(Config):
        value = getattr(Config(), field.name)
        cls = type(value) if is_dataclass(value) else Config
        names = [f.name for f in fields(cls)] if is_dataclass(value) else [field.name]
        comments = _comments(cls)
        missing += [f"{field.name}.{n}" for n in names if not comments.get(n)]
    assert not missing, f"settings without a documenting comment in config.py: {missing}"
