"""The link behind the "Set up your device" QR code, and the code itself.

A phone that scans the code is not signed in, so the link carries its own short-lived
proof: HMAC(secret, account id, expiry). It opens only what autoconfig already tells anyone
who knows the address (server names, ports, the password-less profile) for one account,
and expires after [autoconfig] device_link_lifetime seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io

import segno


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"device-link:" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make_token(secret: bytes, account_id: int, expires: int) -> str:
    payload = f"{account_id}.{expires}"
    return f"{payload}.{_mac(secret, payload)}"


def read_token(secret: bytes, token: str, now: float) -> int | None:
    """The account id of a valid, unexpired token; None otherwise."""
    if len(token) > 100:
        return None
    payload, _, mac = token.rpartition(".")
    account_text, _, expires_text = payload.partition(".")
    if not (account_text.isascii() and account_text.isdigit() and expires_text.isascii()
            and expires_text.isdigit()):
        return None
    if not hmac.compare_digest(_mac(secret, payload), mac):
        return None
    if int(expires_text) < now:
        return None
    return int(account_text)


def qr_svg(data: str, title: str) -> str:
    """An inline SVG QR code (error correction M: survives a screen's glare)."""
    code = segno.make(data, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=4, border=4, xmldecl=False, svgns=True,
              title=title, svgclass="qr", lineclass=None, dark="#000", light="#fff")
    return out.getvalue().decode()
