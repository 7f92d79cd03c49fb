"""XCLIENT's attribute parser (Postfix XCLIENT_README)."""

from __future__ import annotations

import pytest

from postel.smtp.xclient import Xclient, XclientError, parse_xclient


def test_attributes_are_parsed_and_decoded() -> None:
    assert parse_xclient("ADDR=192.0.2.1 NAME=client.example PORT=4242 PROTO=esmtp "
                         "HELO=client.example LOGIN=alice+40example.test") == Xclient(
        "192.0.2.1", "client.example", 4242, "ESMTP", "client.example", "alice@example.test")
    assert parse_xclient("addr=IPV6:2001:db8::1").addr == "2001:db8::1"
    assert parse_xclient("NAME=[UNAVAILABLE] ADDR=[TEMPUNAVAIL]") == Xclient()


@pytest.mark.parametrize("argument", [
    "", "ADDR", "COLOR=red", "ADDR=nonsense", "PORT=70000", "PORT=-1", "PROTO=LMTP",
    "HELO=a+20b", "NAME=a+0Db", "LOGIN=" + "x" * 300, "ADDR=1.2.3.4+",
])
def test_malformed_commands_are_refused(argument: str) -> None:
    with pytest.raises(XclientError):
        parse_xclient(argument)
