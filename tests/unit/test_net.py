"""Tests for postel.net.is_loopback: the one loopback rule of every service."""

from __future__ import annotations

import pytest

from postel.net import is_loopback


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "::ffff:127.0.0.1",
                "::FFFF:127.1.2.3", "0:0:0:0:0:0:0:1"],
)
def test_loopback(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address", ["128.0.0.1", "10.0.0.1", "::2", "::ffff:10.0.0.1", "127.example.org",
                "localhost", "unknown", "", "1270.0.0.1", "::127.0.0.1"],
)
def test_not_loopback(address: str) -> None:
    assert not is_loopback(address)
