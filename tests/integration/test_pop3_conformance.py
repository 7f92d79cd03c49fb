"""POP3 conformance fixes from issue 11, over 110 (STLS) and 995 with poplib."""

from __future__ import annotations

import poplib

import pytest

from tests.harness import PASSWORD, PostelServer
from tests.integration.test_pop3_protocol import over_995, server, user

__all__ = ["server", "user"]  # fixtures shared with the protocol tests


def connect(server: PostelServer, port: str) -> poplib.POP3:
    if port == "995":
        return over_995(server)
    client = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=30)
    client.stls(context=server.client_tls())
    return client


@pytest.mark.parametrize("port", ["995", "110"])
def test_capa_after_login_still_announces_user_and_sasl(
    server: PostelServer, user: str, port: str
) -> None:
    """RFC 2449 6.3 (USER) and 6.8 (SASL): "Announced states: both"."""
    client = connect(server, port)
    before = client.capa()
    client.user(user)
    client.pass_(PASSWORD)
    after = client.capa()
    assert "USER" in after and after["SASL"] == before["SASL"] == ["PLAIN", "LOGIN"]
    assert client.quit().startswith(b"+OK")
