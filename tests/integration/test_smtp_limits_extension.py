"""LIMITS (RFC 9422): EHLO announces RCPTMAX and MAILMAX from the configured limits,
on 25, 587 (after STARTTLS) and 465, and the session applies them. Client: smtplib."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.harness import PostelServer
from tests.integration.smtp_helpers import connect

CONFIG = """
[smtp]
max_recipients = 4
max_transactions = 2
"""


@pytest.fixture
def limited(make_postel: Callable[..., PostelServer]) -> Iterator[PostelServer]:
    server = make_postel(extra_config=CONFIG)
    server.add_user("alice@example.test")
    server.start()
    yield server


@pytest.mark.parametrize("port_name", ["smtp", "submission", "submissions"])
def test_ehlo_announces_the_configured_limits(limited: PostelServer, port_name: str) -> None:
    with connect(limited, port_name) as client:
        assert client.has_extn("limits")
        # RFC 9422 4: limit names and values, space separated.
        assert client.esmtp_features["limits"].split() == ["RCPTMAX=4", "MAILMAX=2"]


def test_mailmax_is_applied(limited: PostelServer) -> None:
    with connect(limited, "smtp") as client:
        for _ in range(2):
            client.sendmail("a@remote.test", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n")
        code, _ = client.mail("a@remote.test")
        assert code == 421
    assert len(limited.inbox("alice@example.test")) == 2


def test_rcptmax_is_applied(limited: PostelServer) -> None:
    with connect(limited, "smtp") as client:
        client.mail("a@remote.test")
        for _ in range(4):
            assert client.rcpt("alice@example.test")[0] == 250
        assert client.rcpt("alice@example.test")[0] == 452
