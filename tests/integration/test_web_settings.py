"""My Settings > Account Settings over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import client, csrf, logon, start, wait_for_mail


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(tmp_path_factory.mktemp("web"),
                          extra_config="[web]\nlogin_backoff_base = 0.0\n")
    server.add_user("gina@example.test")
    server.add_user("gina.new@backup.test")
    server.add_user("hank@example.test", backup_email="hank@old.test")
    start(server)
    yield server
    server.close()


@pytest.fixture
def http(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as c:
        yield c


def test_first_logon_prompt_sets_backup_address(server: PostelServer,
                                                http: httpx.Client) -> None:
    answer = logon(http, "gina@example.test", PASSWORD)
    assert answer.headers["location"] == "/settings/welcome?next=/"
    page = http.get(answer.headers["location"])
    bad = http.post("/settings/welcome", data={"csrf_token": csrf(page.text),
                                               "backup_email": "not an address", "next": "/"})
    assert bad.status_code == 400
    assert "not a valid email address" in bad.text
    same = http.post("/settings/welcome", data={"csrf_token": csrf(page.text),
                                                "backup_email": "gina@example.test"})
    assert same.status_code == 400
    # The backup address can take the account over, so it needs the password (issue 15).
    unconfirmed = http.post("/settings/welcome", data={
        "csrf_token": csrf(page.text), "backup_email": "gina.new@backup.test"})
    assert unconfirmed.status_code == 400
    ok = http.post("/settings/welcome", data={"csrf_token": csrf(page.text),
                                              "backup_email": "gina.new@backup.test",
                                              "current_password": PASSWORD,
                                              "next": "/settings"})
    assert ok.status_code == 303
    account = server.store.directory.get_account("gina@example.test")
    assert account is not None and account.backup_email == "gina.new@backup.test"
    # A notice tells the new backup address why it will hear from us.
    notice = wait_for_mail(server, "gina.new@backup.test", 1)[0]
    assert "gina@example.test" in str(notice["Subject"])


def test_account_settings_change_name_backup_and_password(
    server: PostelServer, http: httpx.Client
) -> None:
    assert logon(http, "hank@example.test", PASSWORD).status_code == 303
    page = http.get("/settings")
    assert 'value="hank@old.test"' in page.text
    saved = http.post("/settings", data={
        "csrf_token": csrf(page.text), "action": "profile", "display_name": "Hank Hill",
        "backup_email": "hank@new.test", "current_password": PASSWORD})
    assert saved.status_code == 303
    page = http.get(saved.headers["location"])
    assert "Your settings were saved." in page.text
    account = server.store.directory.get_account("hank@example.test")
    assert account is not None
    assert (account.display_name, account.backup_email) == ("Hank Hill", "hank@new.test")
    # The password change needs the current password, and keeps this session.
    wrong = http.post("/settings", data={
        "csrf_token": csrf(page.text), "action": "password",
        "current_password": "wrong one here", "new_password": "another fine pass 7",
        "confirm": "another fine pass 7"})
    assert wrong.status_code == 400
    assert "current password is not correct" in wrong.text
    with client(server) as other:
        assert logon(other, "hank@example.test", PASSWORD).status_code == 303
        changed = http.post("/settings", data={
            "csrf_token": csrf(page.text), "action": "password",
            "current_password": PASSWORD, "new_password": "another fine pass 7",
            "confirm": "another fine pass 7"})
        assert changed.status_code == 303
        assert http.get("/settings").status_code == 200
        assert other.get("/settings").status_code == 303
    with client(server) as fresh:
        assert logon(fresh, "hank@example.test", "another fine pass 7").status_code == 303


def test_sign_out_every_other_session(server: PostelServer) -> None:
    with client(server) as here, client(server) as there:
        assert logon(here, "gina.new@backup.test", PASSWORD).status_code == 303
        assert logon(there, "gina.new@backup.test", PASSWORD).status_code == 303
        page = here.get("/settings")
        assert "signed in 2 times" in page.text
        done = here.post("/settings", data={"csrf_token": csrf(page.text),
                                            "action": "signout"})
        assert done.status_code == 303
        assert "Every other session was signed out." in here.get(done.headers["location"]).text
        assert there.get("/settings").status_code == 303
        assert "signed in once" in here.get("/settings").text
