"""Domain Settings (domain admins) and System (system admins) pages over real HTTPS."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import httpx
import pytest

from postel.store.model import Role
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, csrf, logon, start

RESET_TO = "set by the admin 99"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("web"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\npage_size = 2\n")
    server.add_user("boss@a.example", role=Role.DOMAIN_ADMIN, backup_email="boss@x.test")
    for name in ("ann", "ben", "cat"):
        server.add_user(f"{name}@a.example", backup_email=f"{name}@x.test")
    server.add_user("root@a.example", role=Role.ADMIN, backup_email="root@x.test")
    server.add_user("boss@b.example", role=Role.DOMAIN_ADMIN, backup_email="b@x.test")
    server.add_user("zed@b.example", backup_email="zed@x.test")
    start(server)
    yield server
    server.close()


@pytest.fixture
def boss(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        assert logon(http, "boss@a.example", PASSWORD).status_code == 303
        yield http


def test_users_list_search_and_paging(boss: httpx.Client) -> None:
    first = boss.get("/admin/users")
    assert first.status_code == 200
    assert "Page 1 of 3" in first.text
    found = boss.get("/admin/users", params={"q": "ben"})
    assert "ben@a.example" in found.text and "ann@a.example" not in found.text
    second = boss.get("/admin/users", params={"page": "2"})
    assert "Page 2 of 3" in second.text


def test_domain_admin_overwrites_backup_and_resets_password(
    server: PostelServer, boss: httpx.Client
) -> None:
    page = boss.get("/admin/users/ann@a.example/edit")
    assert page.status_code == 200
    assert "Backup Email Address" in page.text and 'value="ann@x.test"' in page.text
    saved = boss.post("/admin/users/ann@a.example/edit", data={
        "csrf_token": csrf(page.text), "display_name": "Ann", "backup_email": "ann@new.test",
        "password": RESET_TO, "role": "user", "quota_mb": "100"})
    assert saved.status_code == 303
    account = server.store.directory.get_account("ann@a.example")
    assert account is not None
    assert account.backup_email == "ann@new.test"
    assert account.quota_bytes == 100 * 1024 * 1024
    with client(server) as http:
        assert logon(http, "ann@a.example", RESET_TO).status_code == 303
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=server.client_tls())
        smtp.login("ann@a.example", RESET_TO)
    audit = boss.get("/admin/audit")
    assert "user.update" in audit.text and "ann@a.example" in audit.text
    assert RESET_TO not in audit.text


def test_domain_admin_is_refused_on_other_domains(boss: httpx.Client) -> None:
    assert boss.get("/admin/users/zed@b.example/edit").status_code == 403
    assert boss.get("/admin/users", params={"domain": "b.example"}).status_code == 403
    page = boss.get("/admin/users")
    assert boss.post("/admin/users/zed@b.example/edit", data={
        "csrf_token": csrf(page.text), "backup_email": "evil@x.test"}).status_code == 403
    assert boss.get("/admin/users/root@a.example/edit").status_code == 403
    assert boss.get("/system/domains").status_code == 403


def test_add_and_delete_user_and_alias(server: PostelServer, boss: httpx.Client) -> None:
    page = boss.get("/admin/users/new")
    added = boss.post("/admin/users/new", data={
        "csrf_token": csrf(page.text), "domain": "a.example", "local": "dan",
        "password": "secret words 1234", "role": "user", "quota_mb": "0"})
    assert added.status_code == 303
    assert server.store.directory.get_account("dan@a.example") is not None
    alias_page = boss.get("/admin/aliases")
    assert boss.post("/admin/aliases", data={
        "csrf_token": csrf(alias_page.text), "action": "add", "source": "sales",
        "destination": "dan@a.example"}).status_code == 303
    assert "sales@a.example" in boss.get("/admin/aliases").text
    confirm = boss.get("/admin/users/dan@a.example/delete")
    assert "cannot be undone" in confirm.text
    assert boss.post("/admin/users/dan@a.example/delete",
                     data={"csrf_token": csrf(confirm.text)}).status_code == 303
    assert server.store.directory.get_account("dan@a.example") is None
    audit = boss.get("/admin/audit").text
    assert "user.add" in audit and "user.delete" in audit and "alias.add" in audit


def test_user_is_not_an_admin(server: PostelServer) -> None:
    with client(server) as http:
        assert logon(http, "cat@a.example", PASSWORD).status_code == 303
        assert http.get("/admin/users").status_code == 403


def test_system_admin_domains_admins_and_audit(server: PostelServer) -> None:
    with client(server) as root:
        assert logon(root, "root@a.example", PASSWORD).status_code == 303
        page = root.get("/system/domains")
        assert page.status_code == 200
        added = root.post("/system/domains", data={"csrf_token": csrf(page.text),
                                                   "domain": "C.Example"})
        assert added.status_code == 303
        listing = root.get(added.headers["location"]).text
        assert "c.example" in listing
        assert server.store.directory.get_domain("c.example") is not None
        refused = root.post("/system/domains/a.example/delete",
                            data={"csrf_token": csrf(page.text)})
        assert refused.status_code == 409
        admins = root.get("/system/admins")
        assert root.post("/system/admins", data={"csrf_token": csrf(admins.text),
                                                 "action": "grant",
                                                 "email": "zed@b.example"}).status_code == 303
        account = server.store.directory.get_account("zed@b.example")
        assert account is not None and account.role is Role.DOMAIN_ADMIN
        audit = root.get("/system/audit").text
        assert "domain.add" in audit and "c.example" in audit
        # System admins manage users of every domain.
        assert root.get("/admin/users", params={"domain": "b.example"}).status_code == 200


def test_cli_removes_a_user_with_web_sessions_and_reset_tokens(server: PostelServer) -> None:
    server.add_user("gone@a.example", backup_email="gone@x.test")
    with client(server) as http:
        assert logon(http, "gone@a.example", PASSWORD).status_code == 303
    account = server.store.directory.get_account("gone@a.example")
    assert account is not None
    server.store.web.reset_token_create("0" * 64, account.id, account.created_at)
    result = server.cli("user", "remove", "gone@a.example")
    assert result.returncode == 0, result.stderr
    assert server.store.directory.get_account("gone@a.example") is None
