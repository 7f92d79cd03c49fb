"""/metrics: queue size and age, stored mail, in the Prometheus text format; loopback only."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import httpx

from tests.harness import PASSWORD, PostelServer
from tests.web.helpers import start


def scrape(server: PostelServer) -> dict[str, float]:
    answer = httpx.get(f"http://127.0.0.1:{server.port('http')}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    values = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            values[name] = float(value)
    return values


def test_metrics_follow_the_queue_and_the_store(make_postel: Callable[..., PostelServer]) -> None:
    server = make_postel()
    server.add_user("alice@example.test")
    start(server)
    before = scrape(server)
    assert before["postel_queue_messages"] == 0
    assert before["postel_accounts"] == 1  # alice (no first admin: the store was not empty)
    with smtplib.SMTP("127.0.0.1", server.port("submission")) as client:
        client.starttls(context=server.client_tls())
        client.login("alice@example.test", PASSWORD)
        client.sendmail(
            "alice@example.test",
            ["friend@remote.test", "alice@example.test"],
            b"From: alice@example.test\r\nSubject: m\r\n\r\nhi\r\n",
        )
    after = scrape(server)
    assert after["postel_queue_messages"] == 1  # remote.test never resolves in tests
    assert after["postel_queue_oldest_age_seconds"] >= 0
    assert after["postel_messages"] == before["postel_messages"] + 1
    assert after["postel_message_bytes"] > before["postel_message_bytes"]


def test_metrics_are_refused_outside_the_allowed_networks(
    make_postel: Callable[..., PostelServer],
) -> None:
    server = make_postel(extra_config='[web]\nmetrics_allow = ["192.0.2.0/24"]\n')
    start(server)
    answer = httpx.get(f"http://127.0.0.1:{server.port('http')}/metrics", timeout=30)
    assert answer.status_code == 403
