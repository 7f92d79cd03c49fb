"""Target 5: the web's form parsing (pages.form_fields: Starlette's form parser on
python-multipart, urlencoded and multipart/form-data) behind our SecurityHeaders body
limit, called as an ASGI app in-process, with the body in arbitrary chunks; and the JSON
API's body reader (api.json_object).

Findings: form_fields raising anything but HTTPException 400 (malformed, too many
fields), 413 (too large) or 415 (no text charset); a field that is not text;
json_object raising at all.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import atheris

with atheris.instrument_imports():
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response

    from postel.web.api import json_object
    from postel.web.pages import MAX_FORM_FIELDS, form_fields
    from postel.web.security import SecurityHeaders

from common import run, split

# python-multipart logs every malformed part; that is not a finding, and it floods stderr.
logging.disable(logging.CRITICAL)

MAX_BODY = 8192
_KINDS = (b"multipart/form-data; boundary=", b"multipart/form-data; boundary=\"",
          b"application/x-www-form-urlencoded", b"")
_loop = asyncio.new_event_loop()


async def _form_app(scope: Any, receive: Any, send: Any) -> None:
    request = Request(scope, receive)
    try:
        fields = await form_fields(request)
    except HTTPException as exc:
        if exc.status_code not in (400, 413, 415):
            raise
        status = exc.status_code
    else:
        if len(fields) > MAX_FORM_FIELDS or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
            raise AssertionError(f"bad fields {fields!r}")
        status = 200
    await Response(str(status), status)(scope, receive, send)


_app = SecurityHeaders(_form_app, hsts_max_age=0, max_body=MAX_BODY)


async def _post(content_type: bytes, chunks: list[bytes], length: bool) -> None:
    headers = [(b"content-type", content_type)]
    if length:
        headers.append((b"content-length", b"%d" % sum(map(len, chunks))))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "https", "path": "/logon", "raw_path": b"/logon",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443), "app": _app}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    try:
        await _app(scope, receive, send)
    except HTTPException as exc:
        # RequestTooLarge escapes the middleware; the app's handler answers it with 413.
        if exc.status_code != 413:
            raise


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    kind, length = _KINDS[data[0] % 4], bool(data[0] & 4)
    n = data[1] % 64
    content_type = kind + data[2 : 2 + n]
    chunks, payload = split(data[2 + n :])
    _loop.run_until_complete(_post(content_type, chunks, length))
    result = json_object(payload)
    if not isinstance(result, dict | str):
        raise AssertionError(f"json_object gave {result!r}")


if __name__ == "__main__":
    run(one_input)
