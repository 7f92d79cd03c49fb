"""The layering rules of docs/architecture.md, enforced.

`make test` runs import-linter over the contracts in pyproject.toml (layers, only the
composition root picks a store backend, protocol packages independent). This file adds
what import-linter does not say directly: no import cycles anywhere, the sans-IO cores
import only the standard library and `postel.mail`, and a proof that the contracts really
fail when a layer is crossed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The protocol cores that must stay sans-IO: bytes in, typed events out.
SANS_IO = ("postel.smtp.proto", "postel.pop3.proto", "postel.imap.proto", "postel.mail")


def _graph() -> grimp.ImportGraph:
    # Imports under `if TYPE_CHECKING:` exist only for annotations (a handler naming the
    # session type it receives) and never run, so they make no cycle.
    return grimp.build_graph(
        "postel", include_external_packages=True, exclude_type_checking_imports=True
    )


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    modules = sorted(m for m in graph.modules if m.startswith("postel"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if not child.startswith("postel"):
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_sans_io_cores_import_only_stdlib_and_mail() -> None:
    graph = _graph()
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad: list[str] = []
    for module in sorted(graph.modules):
        if not any(module == core or module.startswith(core + ".") for core in SANS_IO):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if top == "postel":
                if not (imported == "postel" or imported.startswith("postel.mail")) and not any(
                    imported == core or imported.startswith(core + ".")
                    for core in SANS_IO
                    if module.startswith(core)
                ):
                    bad.append(f"{module} -> {imported}")
            elif top not in stdlib:
                bad.append(f"{module} -> {imported}")
    assert not bad, "sans-IO cores must not import these:\n" + "\n".join(bad)


def test_contracts_hold() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_contracts_fail_when_a_layer_is_crossed(tmp_path: Path) -> None:
    """The same contracts over a copy of the package in which SMTP reaches for the SQL
    backend and IMAP imports POP3: lint-imports must refuse both."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "postel", copy / "postel")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    session = copy / "postel" / "smtp" / "session.py"
    session.write_text(session.read_text() + "\nimport postel.store.sql  # noqa\n")
    imap_session = copy / "postel" / "imap" / "session.py"
    imap_session.write_text(imap_session.read_text() + "\nimport postel.pop3.proto  # noqa\n")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "postel.smtp.session -> postel.store.sql" in result.stdout, result.stdout
    assert "postel.imap.session -> postel.pop3.proto" in result.stdout, result.stdout
