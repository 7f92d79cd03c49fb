"""The verified-credentials cache and the rehash at login, over real sockets.

The fast path is observed through /metrics counters (tests never assert timings). One
server for the module, with cheap Argon2id parameters: the accounts the harness adds are
hashed with argon2-cffi's defaults, so their first login also rehashes them."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import extract_parameters

from postel.auth.passwords import hash_password
from tests.harness import PASSWORD, PostelServer
from tests.integration.test_metrics import scrape
from tests.web.helpers import api_logon, client, start

CHEAP = (
    "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\nargon2_parallelism = 1\n"
    "failure_delay = 0.0\nmax_failures_per_ip = 1000\n[web]\nlogin_backoff_base = 0.0\n"
)
NEW_PASSWORD = "a brand new secret 77"
USERS = ("alice", "bob", "carol", "dave", "erin", "ivan", "rita")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostelServer]:
    postel = PostelServer(tmp_path_factory.mktemp("login-cache"), extra_config=CHEAP)
    for name in USERS:
        postel.add_user(f"{name}@example.test")
    start(postel)
    yield postel
    postel.close()


def imap_login(server: PostelServer, user: str, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"), ssl_context=server.client_tls())
    imap.login(user, password)
    return imap


def pop_login(server: PostelServer, user: str, password: str = PASSWORD) -> None:
    pop = poplib.POP3_SSL("127.0.0.1", server.port("pop3s"), context=server.client_tls(),
                          timeout=30)
    try:
        pop.user(user)
        pop.pass_(password)
    finally:
        pop.close()


def smtp_login(server: PostelServer, user: str, password: str = PASSWORD) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30) as smtp:
        smtp.starttls(context=server.client_tls())
        smtp.login(user, password)


def refused_everywhere(server: PostelServer, user: str, password: str) -> None:
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(server, user, password)
    with pytest.raises(poplib.error_proto):
        pop_login(server, user, password)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_login(server, user, password)


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """How much a counter grew, summed over its labels (login failures are per protocol)."""
    def total(values: dict[str, float]) -> float:
        metric = f"postel_{name}_total"
        return sum(v for k, v in values.items() if k == metric or k.startswith(metric + "{"))

    return total(after) - total(before)


def test_a_reconnect_with_the_same_password_skips_argon2(server: PostelServer) -> None:
    first = scrape(server)
    imap_login(server, "alice@example.test").logout()
    verified = scrape(server)
    assert delta(first, verified, "login_cache_misses") == 1
    assert delta(first, verified, "login_cache_stored") == 1
    # IMAP, POP3 and SMTP AUTH share the one authenticator and so the one cache.
    imap_login(server, "alice@example.test").logout()
    pop_login(server, "alice@example.test")
    smtp_login(server, "alice@example.test")
    after = scrape(server)
    assert delta(verified, after, "login_cache_hits") == 3
    assert delta(verified, after, "login_cache_misses") == 0
    assert delta(verified, after, "login_cache_stored") == 0


def test_a_wrong_password_is_never_cached_and_always_counted(server: PostelServer) -> None:
    imap_login(server, "dave@example.test").logout()  # the right one is cached
    before = scrape(server)
    for _ in range(2):
        with pytest.raises(imaplib.IMAP4.error):
            imap_login(server, "dave@example.test", "not the password at all")
    after = scrape(server)
    assert delta(before, after, "login_cache_hits") == 0
    assert delta(before, after, "login_cache_misses") == 2  # each paid for Argon2
    assert delta(before, after, "login_cache_stored") == 0
    assert delta(before, after, "login_failures") == 2  # and the limiter counted both
    imap_login(server, "dave@example.test").logout()
    assert delta(after, scrape(server), "login_cache_hits") == 1


def test_a_web_password_change_refuses_the_old_password_at_once(server: PostelServer) -> None:
    user = "bob@example.test"
    imap_login(server, user).logout()
    pop_login(server, user)
    before = scrape(server)
    with client(server) as http:
        token = api_logon(http, user)
        answer = http.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 200, answer.text
    assert delta(before, scrape(server), "login_cache_forgotten") >= 1  # the bus hint
    refused_everywhere(server, user, PASSWORD)
    imap_login(server, user, NEW_PASSWORD).logout()
    smtp_login(server, user, NEW_PASSWORD)


def test_a_cli_password_change_refuses_the_old_password_at_once(server: PostelServer) -> None:
    # The CLI is another process: its hint never reaches the server's bus, so only the
    # stored hash in the cache key stands between the old password and a login.
    user = "erin@example.test"
    imap_login(server, user).logout()
    smtp_login(server, user)
    done = server.cli("user", "passwd", user, "--password-stdin", input=NEW_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    refused_everywhere(server, user, PASSWORD)
    pop_login(server, user, NEW_PASSWORD)


def test_a_disabled_account_is_refused_though_its_password_is_cached(
    server: PostelServer,
) -> None:
    user = "ivan@example.test"
    imap_login(server, user).logout()
    server.store.directory.update_account(user, disabled=True)  # no hint reaches the server
    refused_everywhere(server, user, PASSWORD)


def test_a_login_rehashes_to_the_configured_parameters_without_signing_out(
    server: PostelServer,
) -> None:
    user = "carol@example.test"
    directory = server.store.directory
    account = directory.get_account(user)
    assert account is not None
    old_hash, changed_at = account.password_hash, account.password_changed_at
    assert extract_parameters(old_hash).memory_cost == 65536  # the harness's default hash

    before = scrape(server)
    early = imap_login(server, user)  # rehashes, then stays signed in throughout
    early.select("INBOX")
    account = directory.get_account(user)
    assert account is not None
    rehashed = account.password_hash
    params = extract_parameters(rehashed)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 8192, 1)

    # Put a default-parameter hash back behind the server's back (the test process's
    # store publishes nothing to the server), so the next login rehashes while `early`
    # is subscribed: a rehash that signed people out would end `early` now.
    assert directory.rehash_password(account.id, rehashed, old_hash)
    imap_login(server, user).logout()
    assert delta(before, scrape(server), "password_rehashes") == 2
    account = directory.get_account(user)
    assert account is not None and account.password_hash not in (old_hash, rehashed)
    assert account.password_changed_at == changed_at  # web sign-ins stay valid too
    assert early.noop()[0] == "OK"
    assert early.select("INBOX")[0] == "OK"
    early.logout()


def test_rehash_is_a_compare_and_set(server: PostelServer) -> None:
    """A login that verified the old password must not undo a password change made in
    between: the store replaces the hash only while it is still the one verified."""
    directory = server.store.directory
    account = directory.get_account("rita@example.test")
    assert account is not None
    newer = hash_password(NEW_PASSWORD)
    assert not directory.rehash_password(account.id, "$argon2id$not-the-stored-one", newer)
    assert directory.rehash_password(account.id, account.password_hash, newer)
    after = directory.get_account("rita@example.test")
    assert after is not None and after.password_hash == newer
    assert after.password_changed_at == account.password_changed_at


def test_right_passwords_checked_at_once_do_not_delay_each_other(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Twelve clients behind one address (a webmail, a NAT) log in at once with right
    passwords and no cache: the failure limiter counted every check in flight as a
    failure, so they made each other wait up to failure_delay_max, and once ten were in
    flight (max_failures_per_ip) the rest were refused (issue 12)."""
    uncached = (
        "[auth]\nargon2_time_cost = 2\nargon2_memory_kib = 32768\nargon2_parallelism = 1\n"
        "credentials_cache_ttl = 0\n"
    )
    postel = PostelServer(tmp_path_factory.mktemp("login-burst"), extra_config=uncached)
    users = [f"burst{k}@example.test" for k in range(12)]
    try:
        for user in users:
            postel.add_user(user)
        start(postel)
        before = scrape(postel)
        def two_logins(user: str) -> None:
            for _ in range(2):
                imap_login(postel, user).logout()

        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(two_logins, users))
        after = scrape(postel)
        assert delta(before, after, "login_cache_hits") == 0  # Argon2 every time
        assert delta(before, after, "login_failures") == 0
        assert delta(before, after, "login_delayed") == 0
        assert delta(before, after, "login_throttled") == 0
    finally:
        postel.close()
