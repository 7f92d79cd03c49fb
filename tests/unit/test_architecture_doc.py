"""docs/architecture.md stays true: every file and code name it mentions exists.

The page names code in three forms, always in backticks:

- a file, relative to ``src/postel/`` (``smtp/session.py``, ``store/sql/``), or to the
  repository for ``tests/``, ``bench/`` and ``fuzz/`` paths;
- ``file.py:name`` or ``file.py:Class.method``: a function, class or method in that file;
- ``Class.method``: a method of a class defined somewhere under ``src/postel/``.

A rename that forgets the page fails here, so a newcomer following the page never meets a
name that is not in the code.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "postel"
DOC = ROOT / "docs" / "architecture.md"

TICKED = re.compile(r"`([^`\n]+)`")
FILE_REF = re.compile(r"^(?P<path>[\w./]+?\.py|[\w./]+/)(?::(?P<name>[\w.]+))?$")
METHOD_REF = re.compile(r"^(?P<cls>[A-Z]\w+)\.(?P<attr>_{0,2}[a-z]\w*)$")


def _resolve(path: str) -> Path:
    if path.startswith(("tests/", "bench/", "docs/", "scripts/", "fuzz/")):
        return ROOT / path
    return SRC / path


@cache
def _definitions(path: Path) -> dict[str, set[str]]:
    """Top-level names of a module, and for each class the names defined in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[""].add(node.name)
        if isinstance(node, ast.ClassDef):
            members = names.setdefault(node.name, set())
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names[""].update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _defined_in(path: Path, dotted: str) -> bool:
    defs = _definitions(path)
    head, _, rest = dotted.partition(".")
    if not rest:
        return head in defs[""]
    return head in defs and rest in defs[head]


def _class_has(cls: str, attr: str) -> bool:
    return any(
        cls in defs and attr in defs[cls]
        for path in SRC.rglob("*.py")
        for defs in [_definitions(path)]
    )


def _references() -> list[str]:
    """Every ticked name, with a bare file name completed by the folder of the path
    before it on the same line (`store/sql/mail.py`, `queue.py` → store/sql/queue.py),
    unless a top-level module has that name."""
    refs: list[str] = []
    for line in DOC.read_text().splitlines():
        folder = ""
        for ref in TICKED.findall(line):
            match = FILE_REF.match(ref)
            if match and match["path"].endswith("/"):
                folder = match["path"]
            elif match and "/" in match["path"]:
                folder = match["path"].rpartition("/")[0] + "/"
            elif match and folder and "/" not in match["path"] \
                    and not _resolve(match["path"]).exists():
                ref = folder + ref
            refs.append(ref)
    return refs


def test_every_named_file_and_function_exists() -> None:
    missing: list[str] = []
    checked = 0
    for ref in _references():
        file_match = FILE_REF.match(ref)
        if file_match:
            path = _resolve(file_match["path"])
            checked += 1
            if not path.exists():
                missing.append(f"{ref}: no such file or folder")
            elif file_match["name"] and not _defined_in(path, file_match["name"]):
                missing.append(f"{ref}: {file_match['name']} is not defined there")
            continue
        method_match = METHOD_REF.match(ref)
        if method_match:
            checked += 1
            if not _class_has(method_match["cls"], method_match["attr"]):
                missing.append(f"{ref}: no class defines it")
    assert checked > 50, "the page should name the code it describes"
    assert not missing, "docs/architecture.md names code that does not exist:\n" + "\n".join(
        missing
    )


def test_every_package_is_on_the_page() -> None:
    """A new package is drawn on the page before it lands."""
    text = DOC.read_text()
    packages = sorted(
        p.parent.relative_to(SRC).as_posix()
        for p in SRC.glob("*/__init__.py")
    )
    absent = [name for name in packages if f"`{name}/" not in text]
    assert not absent, f"packages missing from docs/architecture.md: {absent}"


def test_smtp_to_idle_path_is_listed_step_by_step() -> None:
    """The walk from SMTP DATA to an IDLE client is written as file:function steps."""
    text = DOC.read_text()
    section = text.split("## Path: SMTP DATA to an IDLE client", 1)
    assert len(section) == 2, "the SMTP→IDLE path section is missing"
    steps = [
        ref for ref in TICKED.findall(section[1].split("\n## ", 1)[0])
        if FILE_REF.match(ref) and ":" in ref
    ]
    assert len(steps) >= 10, steps
