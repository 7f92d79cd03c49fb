"""docs/security.md stays true: every test it names as the proof of a limit exists, and
every config key it names is a setting (so a rename that forgets the page fails here)."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatchcase
from pathlib import Path

from postel.config import Config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
TEST_REF = re.compile(r"`(tests/[\w./]+\.py|tests/[\w./]+/)(?:::([\w*]+))?`")
CONFIG_REF = re.compile(r"`([a-z]+)\.([a-z_0-9]+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_named_test_exists() -> None:
    refs = TEST_REF.findall(DOC.read_text())
    assert len(refs) > 30
    for path, name in refs:
        target = ROOT / path
        assert target.exists(), path
        if name:
            assert any(fnmatchcase(n, name) for n in _test_names(target)), f"{path}::{name}"


def test_every_named_config_key_exists() -> None:
    sections = {f: getattr(Config(), f) for f in Config.__dataclass_fields__}
    found = 0
    for section, key in CONFIG_REF.findall(DOC.read_text()):
        if key == "py" or section not in sections or not hasattr(sections[section],
                                                                  "__dataclass_fields__"):
            continue  # a file name such as `tls.py`, not a setting
        found += 1
        assert key in sections[section].__dataclass_fields__, f"{section}.{key}"
    assert found > 30
