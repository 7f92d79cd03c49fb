"""Relaying every outbound message through a smarthost, with TLS and AUTH.

Postel B plays the smarthost: its authenticated submission ports (465 implicit TLS, 587
STARTTLS) accept mail from the relay account, exactly as a provider's relay would.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_outbound_support import wait_until

RELAY_PASSWORD = "relay account secret 42"


def start_pair(
    make_postel: Callable[..., PostelServer], *, port_name: str, mode: str, trust: bool
) -> tuple[PostelServer, PostelServer]:
    smarthost = make_postel("smarthost")
    smarthost.add_user("alice@a.test", RELAY_PASSWORD)  # the relay account at the provider
    smarthost.add_user("bob@b.test")
    smarthost.start()
    cafile = f'smarthost_cafile = "{smarthost.cert_path}"\n' if trust else ""
    sender = make_postel(
        "sender",
        extra_config=(
            "[outbound]\n"
            f'smarthost = "127.0.0.1:{smarthost.port(port_name)}"\n'
            f'smarthost_tls = "{mode}"\n'
            'smarthost_username = "alice@a.test"\n'
            f'smarthost_password = "{RELAY_PASSWORD}"\n' + cafile
        ),
    )
    sender.add_user("alice@a.test")
    sender.start()
    return sender, smarthost


def submit(sender: PostelServer, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", sender.port("submission")) as client:
        client.starttls(context=sender.client_tls())
        client.login("alice@a.test", PASSWORD)
        client.sendmail(
            "alice@a.test",
            ["bob@b.test"],
            f"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: {subject}\r\n\r\nhi\r\n".encode(),
        )


@pytest.mark.parametrize(
    ("port_name", "mode"), [("submissions", "tls"), ("submission", "starttls")]
)
def test_mail_goes_through_the_smarthost_with_auth(
    make_postel: Callable[..., PostelServer], port_name: str, mode: str
) -> None:
    sender, smarthost = start_pair(make_postel, port_name=port_name, mode=mode, trust=True)
    submit(sender, f"via smarthost {mode}")
    wait_until(lambda: len(smarthost.inbox("bob@b.test")) == 1, what="relayed mail")
    stored = smarthost.inbox("bob@b.test")[0]
    assert f"Subject: via smarthost {mode}".encode() in stored
    assert b"with ESMTPSA" in stored  # the smarthost saw TLS and an authenticated sender
    wait_until(lambda: sender.store.queue.list_all() == [], what="queue emptied")


@pytest.mark.parametrize(
    ("port_name", "mode"), [("submissions", "tls"), ("submission", "starttls")]
)
def test_credentials_never_go_to_an_unverified_smarthost(
    make_postel: Callable[..., PostelServer], port_name: str, mode: str
) -> None:
    # Without the smarthost's CA the certificate cannot verify: the relay must not fall
    # back to unverified TLS and send its password anyway; the mail waits in the queue.
    sender, smarthost = start_pair(make_postel, port_name=port_name, mode=mode, trust=False)
    submit(sender, "must wait")

    def attempted() -> bool:
        queue = sender.store.queue.list_all()
        return bool(queue) and queue[0].attempts >= 1

    wait_until(attempted, what="a failed attempt")
    item = sender.store.queue.list_all()[0]
    assert item.last_error is not None
    assert "did not verify" in item.last_error or "CERTIFICATE_VERIFY_FAILED" in item.last_error
    assert smarthost.inbox("bob@b.test") == []
    assert "authenticated" not in smarthost.log_path.read_text()
