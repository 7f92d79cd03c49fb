"""The webmail endpoints that are not JSON: the HTML body for the sandboxed iframe, part
downloads and previews, the raw source, and attachment uploads (raw bytes, in chunks
under the web's request size limit)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from postel.admin.errors import Kind, OperationError
from postel.store.model import Account
from postel.web.api import SAFE
from postel.web.mail.compose import new_upload, upload_meta, upload_path
from postel.web.mail.mimeview import find_section, read_part
from postel.web.mail.reading import (
    PREVIEWABLE,
    Opened,
    frame_body,
    open_message,
    remote_allowed,
)
from postel.web.mail.sanitize import frame_csp, frame_document
from postel.web.mail.state import mail_state
from postel.web.security import CSRF_HEADER, csrf_valid, current_account, finish
from postel.web.state import web_of

UPLOAD_CHUNK = 512 * 1024  # bytes per upload request, well under web.max_request_body
# What a previewed part may do in the browser: nothing but show itself.
PART_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; " \
    "object-src 'self'; frame-ancestors 'self'"

RawHandler = Callable[[Request, Account], Awaitable[Response]]


def authed(handler: RawHandler) -> Callable[[Request], Awaitable[Response]]:
    """Session (and for unsafe methods X-CSRF-Token) checks, errors as JSON."""

    @functools.wraps(handler)
    async def view(request: Request) -> Response:
        account = await current_account(request)
        if account is None:
            return finish(request, JSONResponse({"error": "Log on first."}, 401))
        if request.method not in SAFE and not csrf_valid(
                request, request.headers.get(CSRF_HEADER, "")):
            return finish(request, JSONResponse(
                {"error": "Missing or wrong X-CSRF-Token header."}, 403))
        try:
            return finish(request, await handler(request, account))
        except OperationError as exc:
            body: dict[str, Any] = {"error": exc.message}
            if exc.field:
                body["field"] = exc.field
            return finish(request, JSONResponse(body, exc.status))

    return view


def open_owned(request: Request, account: Account, message_id: int,
               part: str | None) -> Opened:
    """Blocking: the message (or attached message `part`) of this account, or 404."""
    web = web_of(request)
    row = mail_state(web).sql.message_row(account.id, message_id)
    if row is None:
        raise OperationError(Kind.NOT_FOUND, "There is no such message.")
    opened = open_message(row, web.store.blobs.path(row["blob_sha256"]), part)
    if opened is None:
        raise OperationError(Kind.NOT_FOUND,
            "There is no attached message with that number.", "part")
    return opened


def _opened(request: Request, account: Account, part: str | None) -> Opened:
    raw_id = request.path_params["message"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        raise OperationError(Kind.NOT_FOUND, "There is no such message.")
    return open_owned(request, account, int(raw_id), part)


def content_disposition(kind: str, filename: str) -> str:
    """RFC 6266 4.3: an ASCII fallback and the exact UTF-8 name (RFC 8187)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in filename) or "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@authed
async def html_body(request: Request, account: Account) -> Response:
    def render() -> str:
        opened = _opened(request, account, request.query_params.get("part") or None)
        prefs = mail_state(web_of(request)).sql.prefs(account.id)
        allow = remote_allowed(opened, prefs, request.query_params.get("remote") == "1")
        request.state.allow_remote = allow
        return frame_document(frame_body(opened, allow_remote=allow)[0])

    page = await asyncio.to_thread(render)
    return HTMLResponse(page, headers={
        "Content-Security-Policy": frame_csp(request.state.allow_remote),
        "X-Frame-Options": "SAMEORIGIN",
    })


@authed
async def part(request: Request, account: Account) -> Response:
    number = request.path_params["part"]

    def load() -> tuple[str, str, bytes]:
        opened = _opened(request, account, None)
        section = find_section(opened.root, number)
        if section is None:
            raise OperationError(Kind.NOT_FOUND,
                "The message has no part with that number.", "part")
        name = section.filename or f"part-{number}"
        if section.part.message is not None and not name.endswith(".eml"):
            name += ".eml"
        return name, section.mime_type, read_part(opened.blob, section.part)

    name, kind, data = await asyncio.to_thread(load)
    inline = request.query_params.get("inline") == "1" and kind in PREVIEWABLE
    return Response(data, media_type=kind if inline else "application/octet-stream",
                    headers={
                        "Content-Disposition": content_disposition(
                            "inline" if inline else "attachment", name),
                        "Content-Security-Policy": PART_CSP,
                        "X-Frame-Options": "SAMEORIGIN",
                    })


@authed
async def source(request: Request, account: Account) -> Response:
    opened = await asyncio.to_thread(_opened, request, account, None)
    headers = {"Content-Security-Policy": "default-src 'none'; sandbox"}
    if request.query_params.get("download") == "1":
        headers["Content-Disposition"] = content_disposition(
            "attachment", f"message-{opened.row['id']}.eml")
    return FileResponse(opened.blob, media_type="text/plain; charset=utf-8",
                        headers=headers)


def max_upload(request: Request) -> int:
    """Bytes of attachments one message may carry: base64 makes them a third larger, and
    the text and headers need room too."""
    return web_of(request).context.config.smtp.max_message_size * 3 // 4 - 64 * 1024


@authed
async def new_upload_view(request: Request, account: Account) -> Response:
    """Start an upload with its first chunk: ?name=...&type=..., the body is the bytes."""
    state = mail_state(web_of(request))
    name = request.query_params.get("name", "attachment")[:200]
    kind = request.query_params.get("type", "") or "application/octet-stream"
    data = await request.body()
    if len(data) > UPLOAD_CHUNK or len(data) > max_upload(request):
        raise OperationError(Kind.TOO_LARGE, f"Send at most {UPLOAD_CHUNK} bytes per request.")

    def store() -> dict[str, Any]:
        token = new_upload(state.uploads, account.id, name, kind)
        path = upload_path(state.uploads, account.id, token)
        assert path is not None
        path.write_bytes(data)
        meta = upload_meta(state.uploads, account.id, token)
        assert meta is not None
        return meta

    return JSONResponse(await asyncio.to_thread(store), 201)


@authed
async def append_upload(request: Request, account: Account) -> Response:
    """The next chunk of an upload, appended."""
    state = mail_state(web_of(request))
    token = request.path_params["upload"]
    path = upload_path(state.uploads, account.id, token)
    if path is None:
        raise OperationError(Kind.NOT_FOUND, "There is no such upload.")
    data = await request.body()
    if len(data) > UPLOAD_CHUNK:
        raise OperationError(Kind.TOO_LARGE, f"Send at most {UPLOAD_CHUNK} bytes per request.")
    if path.stat().st_size + len(data) > max_upload(request):
        raise OperationError(Kind.TOO_LARGE,
            f"Attachments may be at most {max_upload(request)} bytes.")

    def append() -> dict[str, Any]:
        with path.open("ab") as handle:
            handle.write(data)
        meta = upload_meta(state.uploads, account.id, token)
        assert meta is not None
        return meta

    return JSONResponse(await asyncio.to_thread(append))
