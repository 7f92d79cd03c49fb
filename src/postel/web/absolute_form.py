"""Requests in absolute-form (`GET http://host/path HTTP/1.1`), as a client sends them
through a proxy (Thunderbird's autoconfig lookup does).

RFC 9112 3.2.2: a server MUST accept the absolute-form, and an origin server MUST ignore
the Host header then and use the target's authority instead. uvicorn hands the whole
target on as the path, so the routes (and the HTTP to HTTPS redirect) would see
"/http://host/path"; this middleware turns it back into an origin-form request first.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

_SCHEMES = (b"http://", b"https://")


class AbsoluteForm:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
            if raw[:8].lower().startswith(_SCHEMES):
                scope = _origin_form(scope, raw)
        await self.app(scope, receive, send)


def _origin_form(scope: Scope, raw: bytes) -> Scope:
    target = urlsplit(raw.split(b"?", 1)[0])
    raw_path = target.path or b"/"
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
    if target.netloc:
        headers.append((b"host", target.netloc))  # RFC 9112 3.2.2: the target's authority
    return {**scope, "raw_path": raw_path, "path": unquote(raw_path.decode("latin-1")),
            "headers": headers}
