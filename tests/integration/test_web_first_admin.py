"""A fresh start with no hostname configured: the first admin it prints can open every
admin and settings page (none answers 4xx or 5xx).

Without `hostname`, Postel uses the machine's name, which is often just "localhost", so
the first admin is admin@localhost in a domain that `postel domain add` would refuse. Pages
look existing domains up by syntax only (postel.admin.names), so that domain stays
manageable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from postel.config import load_config
from tests.harness import PostelServer
from tests.web.helpers import client, logon, start

FIRST_ADMIN = re.compile(r"First admin: (\S+)  password: (\S+)")
HREF = re.compile(r'href="(/[^"]*)"')
# Every page an admin has, by role; the crawl below also follows every link they show.
PAGES = ("/", "/settings", "/settings/welcome", "/settings/device", "/admin/users",
         "/admin/users/new", "/admin/aliases", "/admin/audit", "/admin/dns",
         "/system/domains", "/system/admins", "/system/audit")
# Not pages: signing out, files, the API, and the confirmation forms of deletions (whose
# GET is a page too, but following them is all the crawl needs to show).
SKIP = ("/logout", "/static/", "/api/", "/metrics", "/captcha/")


def _without_hostname(server: PostelServer) -> None:
    text = server.config_path.read_text()
    server.config_path.write_text(re.sub(r'^hostname = .*\n', "", text, flags=re.M))
    server.config = load_config(server.config_path)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path)
    _without_hostname(server)
    start(server)
    yield server
    server.close()


def _first_admin(server: PostelServer) -> tuple[str, str]:
    found = FIRST_ADMIN.search(server.log_path.read_text())
    assert found, server.log_path.read_text()
    return found.group(1), found.group(2)


def test_first_admin_opens_every_page(fresh: PostelServer) -> None:
    email, password = _first_admin(fresh)
    with client(fresh) as http:
        assert logon(http, email, password).status_code == 303
        todo = [*PAGES, f"/admin/users/{email}/edit"]
        seen: set[str] = set()
        failures: list[str] = []
        while todo and len(seen) < 200:
            path = todo.pop(0)
            if path in seen or path.startswith(SKIP) or path.endswith(".mobileconfig"):
                continue
            seen.add(path)
            answer = http.get(path)
            if answer.status_code >= 400:
                failures.append(f"{path}: {answer.status_code}")
                continue
            if answer.status_code in (302, 303):
                todo.append(urlsplit(answer.headers["location"]).path)
                continue
            todo += [unescape(link) for link in HREF.findall(answer.text)]
        assert not failures, failures
        assert {"/admin/users", "/admin/dns", "/system/domains"} <= seen


def test_the_cli_refuses_what_the_first_admin_has(fresh: PostelServer) -> None:
    """The rule for new domains still holds; only existing ones are not re-validated."""
    email, _ = _first_admin(fresh)
    domain = email.rpartition("@")[2]
    if "." in domain:
        pytest.skip(f"this machine's name {domain} is qualified: nothing to refuse")
    result = fresh.cli("domain", "add", "otherhost")
    assert result.returncode == 1
    assert "otherhost is not a valid domain name" in result.stderr
