"""Forgot your password? over real HTTPS: CAPTCHA, reset mail, single-use expiring link."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import update

from postel.store.sql import schema
from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import (
    ask_reset,
    client,
    csrf,
    local_path,
    logon,
    make_web_server,
    reset_link,
    solve_captcha,
    start,
    wait_for_mail,
)

NEW_PASSWORD = "a brand new secret 42"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    server = PostelServer(
        tmp_path_factory.mktemp("web"),
        extra_config="[web]\ntest_hooks = true\nlogin_backoff_base = 0.0\n",
    )
    server.add_user("dave@example.test", backup_email="dave.backup@backup.test")
    server.add_user("dave.backup@backup.test")
    server.add_user("erin@example.test", backup_email="erin.backup@backup.test")
    server.add_user("erin.backup@backup.test")
    server.add_user("frank@example.test", backup_email="frank.backup@backup.test")
    server.add_user("frank.backup@backup.test")
    server.add_user("nobackup@example.test")
    start(server)
    yield server
    server.close()


@pytest.fixture
def http(server: PostelServer) -> Iterator[httpx.Client]:
    with client(server) as c:
        yield c


def test_reset_flow_end_to_end(server: PostelServer, http: httpx.Client) -> None:
    # Another browser signed in as dave is signed out by the reset.
    with client(server) as other:
        assert logon(other, "dave@example.test", PASSWORD).status_code == 303
        assert other.get("/settings").status_code == 200
        answer = ask_reset(http, "Dave@example.test")
        assert answer.status_code == 200
        assert "If <strong>Dave@example.test</strong> is an account here" in answer.text
        mail = wait_for_mail(server, "dave.backup@backup.test", 1)[0]
        assert mail["From"] == "postmaster@mail.example.test"
        assert mail["To"] == "dave.backup@backup.test"
        link = reset_link(mail)
        assert link.startswith(f"https://mail.example.test:{server.port('https')}/reset-password")
        form = http.get(local_path(link))
        assert form.status_code == 200
        weak = http.post("/reset-password", data={
            "csrf_token": csrf(form.text), "token": urlsplit(link).query[6:],
            "password": "short", "confirm": "short",
        })
        assert weak.status_code == 400
        assert "at least 10 characters" in weak.text
        done = http.post("/reset-password", data={
            "csrf_token": csrf(form.text), "token": urlsplit(link).query[6:],
            "password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
        })
        assert done.status_code == 200, done.text
        assert "Your password has been changed" in done.text
        assert other.get("/settings").status_code == 303  # signed out
    # The new password works at once on the web and over SMTP AUTH (submission).
    assert logon(http, "dave@example.test", PASSWORD).status_code == 401
    assert logon(http, "dave@example.test", NEW_PASSWORD).status_code == 303
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=server.client_tls())
        smtp.login("dave@example.test", NEW_PASSWORD)
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=server.client_tls(), timeout=30) as imap:
        assert imap.login("dave@example.test", NEW_PASSWORD)[0] == "OK"
    pop = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=server.client_tls(),
                          timeout=30)
    try:
        pop.user("dave@example.test")
        assert pop.pass_(NEW_PASSWORD).startswith(b"+OK")
    finally:
        pop.quit()
    # And the backup address is told that the password changed.
    notice = wait_for_mail(server, "dave.backup@backup.test", 2)[1]
    assert "was changed" in str(notice["Subject"])
    # The link works once.
    again = http.get(local_path(link))
    assert again.status_code == 410
    assert "expired or has already been used" in again.text


def test_expired_link_is_refused(server: PostelServer, http: httpx.Client) -> None:
    assert ask_reset(http, "erin@example.test").status_code == 200
    link = reset_link(wait_for_mail(server, "erin.backup@backup.test", 1)[0])
    with server.store.engine.begin() as conn:
        conn.execute(update(schema.password_reset_tokens).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    page = http.get(local_path(link))
    assert page.status_code == 410
    form = http.get("/logon")
    post = http.post("/reset-password", data={
        "csrf_token": csrf(form.text), "token": urlsplit(link).query[6:],
        "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert post.status_code == 410
    assert logon(http, "erin@example.test", PASSWORD).status_code == 303


def test_answer_is_the_same_for_unknown_and_backup_less_accounts(
    server: PostelServer, http: httpx.Client
) -> None:
    texts = []
    for email in ("nobody@example.test", "nobackup@example.test", "frank@example.test"):
        answer = ask_reset(http, email)
        assert answer.status_code == 200
        texts.append(answer.text.replace(email, "EMAIL"))
    assert texts[0] == texts[1] == texts[2]
    assert "ask your domain" in texts[0]
    wait_for_mail(server, "frank.backup@backup.test", 1)


def test_wrong_captcha_is_refused_and_spent(server: PostelServer, http: httpx.Client) -> None:
    page = http.get("/forgot-password")
    challenge, answer = solve_captcha(http, page.text)
    wrong = str((int(answer) + 1) % 10**len(answer)).zfill(len(answer))
    refused = http.post("/forgot-password", data={
        "csrf_token": csrf(page.text), "email": "frank@example.test",
        "challenge": challenge, "captcha": wrong})
    assert refused.status_code == 400
    assert "did not match" in refused.text
    # One answer per challenge: the right answer after a wrong one is refused too.
    replay = http.post("/forgot-password", data={
        "csrf_token": csrf(page.text), "email": "frank@example.test",
        "challenge": challenge, "captcha": answer})
    assert replay.status_code == 400


def test_captcha_image_and_audio(http: httpx.Client) -> None:
    page = http.get("/forgot-password")
    challenge, _ = solve_captcha(http, page.text)
    image = http.get(f"/captcha/{challenge}.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    audio = http.get(f"/captcha/{challenge}.wav")
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
    assert http.get("/captcha/unknown.png").status_code == 404


def test_requests_are_limited_per_ip(make_postel: Callable[..., PostelServer]) -> None:
    server = make_web_server(make_postel, extra="reset_max_per_ip = 2\n")
    start(server)
    with client(server) as http:
        assert ask_reset(http, "x@example.test").status_code == 200
        assert ask_reset(http, "y@example.test").status_code == 200
        limited = ask_reset(http, "z@example.test")
        assert limited.status_code == 429
        # CAPTCHA challenges (rows in the store) are limited per IP too: at least 20.
        statuses = [http.get("/forgot-password").status_code for _ in range(18)]
        assert statuses[:17] == [200] * 17 and statuses[17] == 429


def test_test_hooks_are_refused_on_a_public_address(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_web_server(make_postel)
    text = server.config_path.read_text().replace('smtp = "127.0.0.1:', 'smtp = "0.0.0.0:')
    server.config_path.write_text(text)
    result = server.cli("serve")
    assert result.returncode == 2
    assert "web.test_hooks" in result.stderr


def test_test_hook_is_absent_by_default(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel()
    start(server)
    with client(server) as http:
        page = http.get("/forgot-password")
        challenge = page.text.split('name="challenge" value="')[1].split('"')[0]
        assert http.get(f"/__test__/captcha/{challenge}").status_code == 404


def test_reset_mail_to_a_remote_backup_goes_through_the_outbound_queue(
    make_postel: Callable[..., PostelServer],
) -> None:
    # The "remote" provider of the backup address is a second Postel; the first relays
    # to it as its smarthost, so the mail travels queue -> SMTP -> remote INBOX.
    remote = make_postel("remote")
    remote.add_user("someone@remote.example")
    start(remote)
    server = make_web_server(
        make_postel,
        extra=f'[outbound]\nsmarthost = "127.0.0.1:{remote.port("smtp")}"\n'
              'smarthost_tls = "none"\n',
    )
    server.add_user("gus@example.test", backup_email="someone@remote.example")
    start(server)
    with client(server) as http:
        assert ask_reset(http, "gus@example.test").status_code == 200
    mail = wait_for_mail(remote, "someone@remote.example", 1, timeout=30)[0]
    assert mail["From"] == "postmaster@mail.example.test"
    assert "/reset-password?token=" in reset_link(mail)


def test_expired_captcha_is_refused(server: PostelServer, http: httpx.Client) -> None:
    page = http.get("/forgot-password")
    challenge, answer = solve_captcha(http, page.text)
    with server.store.engine.begin() as conn:
        conn.execute(update(schema.captcha_challenges).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    refused = http.post("/forgot-password", data={
        "csrf_token": csrf(page.text), "email": "frank@example.test",
        "challenge": challenge, "captcha": answer})
    assert refused.status_code == 400
    assert "did not match, or it expired" in refused.text
