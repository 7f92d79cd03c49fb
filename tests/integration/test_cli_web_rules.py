"""The command line and the web share one operations layer (postel.admin): the same
names are refused with the same message, and every CLI change is in the audit log the web
shows."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from postel.store.model import Role
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, csrf, logon, start

BAD_NAMES = ("localhost", "bad domain", "[192.0.2.1]", "a..example", "x-.example", "bücher..de", "")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("rules"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("root@a.example", role=Role.ADMIN, backup_email="root@x.test")
    start(server)
    yield server
    server.close()


@pytest.fixture(scope="module")
def root(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        assert logon(http, "root@a.example", PASSWORD).status_code == 303
        yield http


def _cli_refusal(server: PostelServer, name: str) -> str:
    result = server.cli("domain", "add", name)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("postel: ")
    return message.removeprefix("postel: ")


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n])
def test_cli_and_web_refuse_the_same_names_alike(
    server: PostelServer, root: httpx.Client, name: str
) -> None:
    message = _cli_refusal(server, name)
    assert "is not a valid domain name" in message

    page = root.get("/system/domains")
    answer = root.post("/system/domains", data={"csrf_token": csrf(page.text),
                                                 "domain": name})
    assert answer.status_code == 400
    assert message in unescape(answer.text)

    token = root.get("/api/v1/session").json()["csrf_token"]
    api = root.post("/api/v1/domains", json={"name": name}, headers={"X-CSRF-Token": token})
    assert api.status_code == 400
    assert api.json() == {"error": message, "field": "domain"}
    assert server.store.directory.get_domain(name.strip().lower()) is None


def test_cli_changes_are_on_the_web_audit_page(server: PostelServer,
                                               root: httpx.Client) -> None:
    run = server.cli
    assert run("domain", "add", "Cli.Example").returncode == 0
    added = run("user", "add", "carol@cli.example", "--password-stdin",
                input="a long enough secret\n")
    assert added.returncode == 0, added.stderr
    assert run("alias", "add", "info@cli.example", "carol@cli.example").returncode == 0
    assert run("alias", "remove", "info@cli.example", "carol@cli.example").returncode == 0
    assert run("user", "passwd", "carol@cli.example", "--password-stdin",
               input="another long secret\n").returncode == 0

    actor = f"cli:{getpass.getuser()}"
    page = root.get("/system/audit")
    assert page.status_code == 200
    text = unescape(page.text)
    for action in ("domain.add", "user.add", "alias.add", "alias.remove", "user.update"):
        assert action in text
    assert actor in text

    domain_page = root.get("/admin/audit", params={"domain": "cli.example"})
    assert domain_page.status_code == 200
    assert "carol@cli.example" in domain_page.text and actor in unescape(domain_page.text)

    total, rows = server.store.web.audit_list("cli.example")
    assert total == 5 and {row["actor"] for row in rows} == {actor}
    assert {row["ip"] for row in rows} == {"command line"}
