"""Import direction, checked on the source: the operations layer sits below every front
end, and the web has no import cycles (nor with the composition root)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "postel"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every postel module `path` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("postel")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("postel"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def test_admin_imports_no_front_end() -> None:
    forbidden = ("postel.web", "postel.smtp", "postel.imap", "postel.pop3", "postel.cli",
                 "postel.app")
    for name, imported in _graph().items():
        if name.startswith("postel.admin"):
            bad = sorted(m for m in imported if m.startswith(forbidden))
            assert not bad, f"{name} imports {bad}"


def test_no_import_cycle_in_web_or_with_app() -> None:
    graph = _graph()
    scope = {n for n in graph if n.startswith("postel.web") or n == "postel.app"}

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node] & scope):
            if nxt in path:
                cycle = [*path[path.index(nxt):], nxt]
                raise AssertionError(" -> ".join(cycle))
            if nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(scope):
        if start not in done:
            visit(start, [start])
