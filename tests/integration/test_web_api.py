"""The JSON API under /api/v1: sessions, CSRF, scoping, and a schemathesis run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from postel.store.model import Role
from postel.web.openapi import document
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import api_logon, client, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("web"),
        extra_config="[web]\nlogin_backoff_base = 0.0\nreset_max_per_ip = 1000\n"
                     "[auth]\nmax_failures_per_ip = 0\nmax_failures_per_account = 0\n",
    )
    server.add_user("boss@a.example", role=Role.DOMAIN_ADMIN, backup_email="boss@x.test")
    server.add_user("ann@a.example", backup_email="ann@x.test")
    server.add_user("zed@b.example", backup_email="zed@x.test")
    server.add_user("root@a.example", role=Role.ADMIN, backup_email="root@x.test")
    start(server)
    yield server
    server.close()


def test_unauthenticated_calls_are_refused(server: PostelServer) -> None:
    with client(server) as http:
        for path in ("/api/v1/me", "/api/v1/domains", "/api/v1/domains/a.example/users",
                     "/api/v1/users/ann@a.example", "/api/v1/audit"):
            answer = http.get(path)
            assert answer.status_code == 401, path
            assert "error" in answer.json()
        assert http.get("/api/v1/session").json()["authenticated"] is False


def test_logon_needs_csrf_and_right_password(server: PostelServer) -> None:
    with client(server) as http:
        assert http.post("/api/v1/session", json={
            "email": "ann@a.example", "password": PASSWORD}).status_code == 403
        token = http.get("/api/v1/session").json()["csrf_token"]
        wrong = http.post("/api/v1/session", json={"email": "ann@a.example",
                                                   "password": "nope nope nope"},
                          headers={"X-CSRF-Token": token})
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "The email address or password is incorrect."


def test_unsafe_calls_need_the_csrf_header(server: PostelServer) -> None:
    with client(server) as http:
        token = api_logon(http, "ann@a.example")
        refused = http.patch("/api/v1/me", json={"display_name": "Ann"})
        assert refused.status_code == 403
        forged = http.patch("/api/v1/me", json={"display_name": "Ann"},
                            headers={"X-CSRF-Token": "f" * 64})
        assert forged.status_code == 403
        ok = http.patch("/api/v1/me", json={"display_name": "Ann",
                                            "backup_email": "ann@y.test",
                                            "current_password": PASSWORD},
                        headers={"X-CSRF-Token": token})
        assert ok.status_code == 200
        assert ok.json()["backup_email"] == "ann@y.test"
        bad = http.patch("/api/v1/me", json={"backup_email": "not-an-address"},
                         headers={"X-CSRF-Token": token})
        assert bad.status_code == 400 and bad.json()["field"] == "backup_email"
        assert http.delete("/api/v1/session", headers={"X-CSRF-Token": token}
                           ).status_code == 204
        assert http.get("/api/v1/me").status_code == 401


def test_domain_admin_is_scoped_to_own_domain(server: PostelServer) -> None:
    with client(server) as http:
        token = api_logon(http, "boss@a.example")
        headers = {"X-CSRF-Token": token}
        listing = http.get("/api/v1/domains/a.example/users", params={"q": "ann"})
        assert listing.status_code == 200
        assert [u["email"] for u in listing.json()["users"]] == ["ann@a.example"]
        assert http.get("/api/v1/domains/b.example/users").status_code == 403
        assert http.get("/api/v1/users/zed@b.example").status_code == 403
        assert http.patch("/api/v1/users/zed@b.example", json={"backup_email": "e@x.test"},
                          headers=headers).status_code == 403
        assert http.delete("/api/v1/users/zed@b.example", headers=headers).status_code == 403
        assert http.post("/api/v1/domains/b.example/users", json={
            "email": "evil", "password": "long enough pass 1"}, headers=headers
        ).status_code == 403
        assert http.get("/api/v1/domains").status_code == 403
        changed = http.patch("/api/v1/users/ann@a.example",
                             json={"backup_email": "ann@z.test", "quota_bytes": 1000},
                             headers=headers)
        assert changed.status_code == 200, changed.text
        assert changed.json()["backup_email"] == "ann@z.test"
        audit = http.get("/api/v1/domains/a.example/audit").json()
        assert audit["entries"][0]["action"] == "user.update"
        assert audit["entries"][0]["actor"] == "boss@a.example"
        assert http.get("/api/v1/domains/b.example/audit").status_code == 403
    account = server.store.directory.get_account("zed@b.example")
    assert account is not None and account.backup_email == "zed@x.test"


def test_openapi_document(server: PostelServer) -> None:
    with client(server) as http:
        doc = http.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/domains/{domain}/users" in doc["paths"]
    assert doc == json.loads(json.dumps(document()))


# -- schemathesis: no input makes the API answer 5xx ------------------------------------


@pytest.fixture(scope="module")
def api_session(server: PostelServer) -> dict[str, Any]:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
    session.verify = str(server.cert_path)  # the self-signed cert names 127.0.0.1
    base = f"https://127.0.0.1:{server.port('https')}/api/v1"

    def logon() -> None:
        session.cookies.clear()
        token = session.get(base + "/session").json()["csrf_token"]
        answer = session.post(base + "/session", headers={"X-CSRF-Token": token},
                              json={"email": "root@a.example", "password": PASSWORD})
        assert answer.status_code == 200
        session.headers["X-CSRF-Token"] = answer.json()["csrf_token"]

    logon()
    return {"session": session, "base": base, "logon": logon, "verify": session.verify}


# The document the server serves (test_openapi_document checks they are the same); loaded
# at import because schemathesis' lazy from_fixture() does not work with pytest 9.
schema = schemathesis.openapi.from_dict(
    document(),
    config=SchemathesisConfig.from_dict({
        "phases": {"coverage": {"enabled": False}},
        "generation": {"max-examples": 10},
    }),
)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_with_a_server_error(case: Any, api_session: dict[str, Any]) -> None:
    session = api_session["session"]
    # Explicit credentials: schemathesis would otherwise generate values for the
    # documented security schemes (the cookie and the header).
    response = case.call(
        base_url=api_session["base"], session=session, verify=api_session["verify"],
        headers={"X-CSRF-Token": session.headers["X-CSRF-Token"]},
        cookies={"__Host-postel-session": session.cookies["__Host-postel-session"]},
    )
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code == 401 or (case.path == "/session" and case.method == "DELETE"):
        api_session["logon"]()
