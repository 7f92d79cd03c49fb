from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import PostelServer


@pytest.fixture
def make_postel(tmp_path: Path) -> Iterator[Callable[..., PostelServer]]:
    """Build (not start) Postel servers in this test's temp dir; all are stopped after."""
    servers: list[PostelServer] = []

    def make(name: str = "postel", **kwargs: Any) -> PostelServer:
        root = tmp_path / name
        root.mkdir()
        server = PostelServer(root, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def postel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    """One running server per test module, with alice@ and bob@example.test."""
    server = PostelServer(tmp_path_factory.mktemp("postel"))
    server.add_user("alice@example.test")
    server.add_user("bob@example.test")
    server.start()
    yield server
    server.close()
