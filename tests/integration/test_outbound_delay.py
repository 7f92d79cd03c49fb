"""Delay warnings: a message still queued after [outbound] delay_warning_after gets the
sender one RFC 3464 'delayed' notice, once, while delivery goes on being retried."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable

from tests.harness import PostelServer
from tests.integration.test_outbound_delivery import ALICE, route, start_sender, submit
from tests.integration.test_outbound_support import (
    DnsFixture,
    dns_server,
    log_entries,
    unused_port,
    wait_until,
)

__all__ = ["dns_server"]  # the fixture used by name below


def test_one_delay_warning_then_retries_go_on(
    make_postel: Callable[..., PostelServer], dns_server: DnsFixture
) -> None:
    route(dns_server, "slow.test", "127.0.0.3")  # nothing listens there
    sender = start_sender(
        make_postel, dns_server, unused_port(), expire_after=600.0, delay_warning_after=0.5
    )
    submit(sender, ["bob@slow.test"], "takes a while")
    wait_until(lambda: len(sender.inbox(ALICE)) == 1, what="delay warning")
    notice = email.message_from_bytes(sender.inbox(ALICE)[0], policy=email.policy.default)
    assert notice.get_content_type() == "multipart/report"
    status = notice.get_payload()[1].get_payload()  # type: ignore[index, union-attr]
    assert status[1]["Action"] == "delayed"
    assert status[1]["Final-Recipient"].endswith("bob@slow.test")
    # Still queued, still retried, and warned only once.
    warned_at = len(log_entries(sender, "delivery"))

    def retried_three_more() -> bool:
        return len(log_entries(sender, "delivery")) >= warned_at + 3

    wait_until(retried_three_more, what="more attempts")
    queue = sender.store.queue.list_all()
    assert len(queue) == 1 and queue[0].domain == "slow.test"
    assert len(sender.inbox(ALICE)) == 1
