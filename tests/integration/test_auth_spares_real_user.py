"""Issue 15 item 12 over real sockets: brute-force protection that spares the real user.

One IP's failures (a webmail or proxy puts every user behind one address) slow down, but
do not refuse, a user who logged in from that IP before; a locked account lets its owner
in with the right password from an address never used before. Short delays in the
config keep the test quick: the behaviour is checked, never a timing.
"""

from __future__ import annotations

import base64
import imaplib
import smtplib
from collections.abc import Callable

from tests.harness import PASSWORD, PostelServer

CONFIG = ("[auth]\nmax_failures_per_ip = 10\nmax_failures_per_account = 5\n"
          "failure_delay = 0.01\nfailure_delay_max = 0.02\n")


def imap_login(server: PostelServer, user: str, password: str) -> str:
    with imaplib.IMAP4_SSL("127.0.0.1", server.port("imaps"),
                           ssl_context=server.client_tls(), timeout=30) as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def smtp_auth(server: PostelServer, user: str, password: str, source: str) -> int:
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=30,
                      source_address=(source, 0)) as client:
        client.starttls(context=server.client_tls())
        client.ehlo()
        # One AUTH PLAIN (smtplib's login() would try LOGIN after it: two failures).
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return int(client.docmd("AUTH", f"PLAIN {token}")[0])


def test_ten_failures_from_one_ip_spare_its_known_users(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(extra_config=CONFIG)
    for user in ("bob", "carol", "mallory"):
        server.add_user(f"{user}@example.test")
    server.start()
    assert imap_login(server, "bob@example.test", PASSWORD) == "OK"  # bob uses this IP
    for n in range(10):  # someone else behind the same address, failing
        assert "AUTHENTICATIONFAILED" in imap_login(server, f"u{n}@example.test", "guess")
    # The IP is full: a user never seen from it is refused ...
    assert "UNAVAILABLE" in imap_login(server, "carol@example.test", PASSWORD)
    # ... but bob, who logs in from it, still gets in (slowed down), on every protocol.
    assert imap_login(server, "bob@example.test", PASSWORD) == "OK"
    assert smtp_auth(server, "bob@example.test", PASSWORD, "127.0.0.1") == 235


def test_a_locked_account_lets_its_owner_in_from_a_new_address(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(extra_config=CONFIG)
    server.add_user("alice@example.test")
    server.start()
    for _ in range(5):  # the attacker locks alice's account
        assert smtp_auth(server, "alice@example.test", "guess", "127.0.0.3") == 535
    # Alice on a network she never used (a hotel): the right password gets in.
    assert smtp_auth(server, "alice@example.test", PASSWORD, "127.0.0.2") == 235
    # The attacker's further guesses are checked only within a budget (5 a window, one
    # spent by alice), then refused without a password check.
    codes = [smtp_auth(server, "alice@example.test", "guess", "127.0.0.4") for _ in range(5)]
    assert codes == [535, 535, 535, 535, 421]
    # Alice's own address keeps working: it has a budget of its own.
    assert smtp_auth(server, "alice@example.test", PASSWORD, "127.0.0.2") == 235
