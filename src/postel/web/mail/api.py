"""The webmail's JSON API under /api/v1/mail, in the style of /api/v1 (postel.web.api):
session cookie, X-CSRF-Token on unsafe methods, errors as {"error", "field"}. The web
client uses only these endpoints; every one is in the OpenAPI document.

Mail writes call the store's own methods (set_flags, imap_copy, expunge, append,
create_mailbox, imap_rename_mailbox, imap_delete_mailbox); sending goes through
postel.submission, the rules of port 587.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from postel.admin.errors import Kind, OperationError
from postel.mail.mime import parse_message_bytes
from postel.store.errors import StoreError
from postel.store.model import Account, Flags, Mailbox
from postel.store.webmail_api import BadCursor, ListedMessage, ListPage, SortKey, WebmailPrefs
from postel.submission import SubmissionRefused, submit_message
from postel.web.api import endpoint
from postel.web.mail import live, raw
from postel.web.mail.compose import (
    Attachment,
    ComposeError,
    Draft,
    addr_spec,
    attachment_from_part,
    build_message,
    from_saved_draft,
    prefill,
    split_addresses,
    upload_meta,
    upload_path,
    whole_message,
)
from postel.web.mail.mimeview import choose_bodies, html_to_text, part_text
from postel.web.mail.reading import Opened, message_json, remote_allowed
from postel.web.mail.search import parse_query
from postel.web.mail.state import MailState, mail_state
from postel.web.state import client_ip, web_of

MAX_PAGE = 200
ROLES = {None: None, "\\Drafts": "drafts", "\\Sent": "sent", "\\Junk": "junk",
         "\\Trash": "trash", "\\Archive": "archive"}
ROLE_ORDER = ["inbox", "drafts", "sent", "archive", "junk", "trash"]


def _thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return asyncio.to_thread(fn, *args, **kwargs)


def _state(request: Request) -> MailState:
    return mail_state(web_of(request))


# Mailbox ids are INTEGER columns (int4 on PostgreSQL): a larger number is no folder, and
# must not reach the database, which would refuse it with an error instead of no row.
MAX_FOLDER_ID = 2**31 - 1


def _int(value: Any, name: str, *, maximum: int = 2**53) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OperationError(Kind.INVALID, f"{name} must be a whole number.", name)
    text = str(value)
    if not text.isdigit() or int(text) > maximum:
        raise OperationError(Kind.INVALID,
            f"{name} must be a whole number from 0 to {maximum}.", name)
    return int(text)


def _string(body: dict[str, Any], name: str, limit: int = 2000) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise OperationError(Kind.INVALID,
            f"{name} must be a string of at most {limit} characters.", name)
    return value


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if isinstance(value, str):
        return split_addresses(value)
    if not isinstance(value, list) or len(value) > 500 or not all(
            isinstance(v, str) and len(v) <= 2000 for v in value):
        raise OperationError(Kind.INVALID, f"{name} must be a list of strings.", name)
    return [v.strip() for v in value if v.strip()]


def _role(box: Mailbox) -> str | None:
    return "inbox" if box.name == "INBOX" else ROLES.get(box.special_use)


async def _mailbox(request: Request, account: Account, mailbox_id: Any) -> Mailbox:
    box = await _thread(web_of(request).store.mail.get_mailbox_by_id,
                        _int(mailbox_id, "folder", maximum=MAX_FOLDER_ID))
    if not isinstance(box, Mailbox) or box.account_id != account.id:
        raise OperationError(Kind.NOT_FOUND, "There is no such folder.", "folder")
    return box


async def _special(request: Request, account: Account, role: str) -> Mailbox:
    box = await _thread(_special_sync, web_of(request).store, account, role)
    if box is None:
        raise OperationError(Kind.CONFLICT, f"This account has no {role.capitalize()} folder.")
    assert isinstance(box, Mailbox)
    return box


def _listed_json(item: ListedMessage) -> dict[str, Any]:
    return {
        "id": item.id, "mailbox_id": item.mailbox_id, "uid": item.uid,
        "subject": item.subject, "from": item.display_from, "to": item.display_to,
        "date": item.internal_date.isoformat(),
        "sent_date": item.sent_date.isoformat() if item.sent_date else None,
        "size": item.size, "seen": item.flags.seen, "flagged": item.flags.flagged,
        "answered": item.flags.answered, "draft": item.flags.draft,
        "attachment": item.has_attachments, "preview": item.preview,
    }


def _page_json(page: ListPage) -> dict[str, Any]:
    return {"messages": [_listed_json(m) for m in page.messages], "next": page.next_cursor}


# -- folders ------------------------------------------------------------------------------


def _folder_order(box: Mailbox) -> tuple[int, str]:
    role = _role(box)
    return (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER), box.name.lower())


def _check_name(name: str) -> str:
    name = name.strip().strip("/")
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name) or "//" in name \
            or name.upper() == "INBOX":
        raise OperationError(Kind.INVALID, "Choose another folder name.", "name")
    return name


@endpoint()
async def folders(request: Request, account: Account, body: dict[str, Any]) -> Any:
    state = _state(request)
    store = web_of(request).store
    if request.method == "POST":
        name = _check_name(_string(body, "name", 200))
        parent = body.get("parent")
        if parent not in (None, ""):
            name = f"{(await _mailbox(request, account, parent)).name}/{name}"
        try:
            box = await _thread(store.mail.create_mailbox, account.id, name)
        except StoreError as exc:
            raise OperationError(Kind.CONFLICT, str(exc), "name") from None
        return JSONResponse({"id": box.id, "name": box.name}, 201)
    summaries = await _thread(state.sql.folders, account.id)
    summaries.sort(key=lambda f: _folder_order(f.mailbox))
    return {
        "folders": [{"id": f.mailbox.id, "name": f.mailbox.name, "role": _role(f.mailbox),
                     "total": f.total, "unseen": f.unseen} for f in summaries],
        "unseen_inbox": sum(f.unseen for f in summaries if f.mailbox.name == "INBOX"),
    }


@endpoint()
async def folder(request: Request, account: Account, body: dict[str, Any]) -> Any:
    box = await _mailbox(request, account, request.path_params["folder"])
    store = web_of(request).store
    if _role(box) is not None:
        raise OperationError(Kind.FORBIDDEN, "The standard folders cannot be renamed or deleted.")
    try:
        if request.method == "DELETE":
            await _thread(store.mail.delete_mailbox, account.id, box.name)
            return None
        new = _check_name(_string(body, "name", 1000))
        await _thread(store.mail.rename_mailbox, account.id, box.name, new)
    except StoreError as exc:
        raise OperationError(Kind.CONFLICT, str(exc), "name") from None
    return {"id": box.id, "name": new}


@endpoint()
async def folder_messages(request: Request, account: Account, body: dict[str, Any]) -> Any:
    box = await _mailbox(request, account, request.path_params["folder"])
    params = request.query_params
    try:
        sort = SortKey(params.get("sort", "date"))
    except ValueError:
        raise OperationError(Kind.INVALID,
            "sort must be date, from, subject or size.", "sort") from None
    order = params.get("order", "desc" if sort in (SortKey.DATE, SortKey.SIZE) else "asc")
    if order not in ("asc", "desc"):
        raise OperationError(Kind.INVALID, "order must be asc or desc.", "order")
    limit = _int(params.get("limit", "50"), "limit", maximum=MAX_PAGE) or 50
    state = _state(request)
    state.indexer.kick(account.id)  # previews for new mail, off the request
    try:
        page = await _thread(state.sql.list_page, box.id, sort, order == "desc",
                             params.get("after") or None, limit)
    except BadCursor as exc:
        raise OperationError(Kind.INVALID, str(exc), "after") from None
    return _page_json(page)


@endpoint()
async def search(request: Request, account: Account, body: dict[str, Any]) -> Any:
    params = request.query_params
    terms = parse_query(params.get("q", ""))
    box = None
    if params.get("folder"):
        box = (await _mailbox(request, account, params["folder"])).id
    limit = _int(params.get("limit", "50"), "limit", maximum=MAX_PAGE) or 50
    state = _state(request)
    # The index holds every message stored before this search: consistent answers.
    await state.indexer.catch_up(account.id)
    try:
        page = await _thread(state.sql.search, account.id, box, terms,
                             params.get("after") or None, limit)
    except BadCursor as exc:
        raise OperationError(Kind.INVALID, str(exc), "after") from None
    return _page_json(page)


# -- one message --------------------------------------------------------------------------


_open = raw.open_owned


def _message_id(request: Request) -> int:
    return _int(request.path_params["message"], "message")


@endpoint()
async def message(request: Request, account: Account, body: dict[str, Any]) -> Any:
    part = request.query_params.get("part") or None
    state = _state(request)

    def load() -> dict[str, Any]:
        opened = _open(request, account, _message_id(request), part)
        prefs = state.sql.prefs(account.id)
        asked = request.query_params.get("remote") == "1"
        view = message_json(opened, prefs, allow_remote=remote_allowed(opened, prefs, asked))
        view["mark_read"] = prefs.mark_read_on_open
        return view

    return await _thread(load)


@endpoint()
async def thread(request: Request, account: Account, body: dict[str, Any]) -> Any:
    found = await _thread(_state(request).sql.thread, account.id, _message_id(request), 200)
    if found is None:  # another account's id looks exactly like one that does not exist
        raise OperationError(Kind.NOT_FOUND, "There is no such message.")
    return {"messages": [_listed_json(m) for m in found]}


@endpoint()
async def trust_sender(request: Request, account: Account, body: dict[str, Any]) -> Any:
    sender = _string(body, "sender", 320).strip().lower()
    if "@" not in sender:
        raise OperationError(Kind.INVALID, "sender must be an email address.", "sender")
    await _thread(_state(request).sql.trust_sender, account.id, sender)
    return None


# -- actions on many messages -------------------------------------------------------------

ACTIONS = ("read", "unread", "flag", "unflag", "move", "delete", "archive", "junk",
           "notjunk")


@endpoint()
async def actions(request: Request, account: Account, body: dict[str, Any]) -> Any:
    action = body.get("action")
    if action not in ACTIONS:
        raise OperationError(Kind.INVALID, f"action must be one of {', '.join(ACTIONS)}.", "action")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > 5000:
        raise OperationError(Kind.INVALID, "ids must be a list of 1 to 5000 message ids.", "ids")
    message_ids = [_int(i, "ids") for i in ids]
    store = web_of(request).store
    located: dict[int, list[int]] = await _thread(_state(request).sql.locate, account.id,
                                                  message_ids)
    if action in ("read", "unread", "flag", "unflag"):
        flags = Flags(seen=True) if action in ("read", "unread") else Flags(flagged=True)
        mode = "add" if action in ("read", "flag") else "remove"
        for box_id, uids in located.items():
            await _thread(store.mail.set_flags, box_id, uids, flags, mode=mode)
        return {"changed": sum(len(u) for u in located.values())}
    if action == "move":
        target = await _mailbox(request, account, body.get("folder"))
    else:
        role = {"delete": "trash", "archive": "archive", "junk": "junk",
                "notjunk": "inbox"}[str(action)]
        target = await _special(request, account, role)
    done = 0
    for box_id, uids in located.items():
        if box_id == target.id:
            if action == "delete":  # deleting in Trash deletes for good
                done += len(await _thread(store.mail.expunge, box_id, uids))
            continue
        done += len(await _thread(store.mail.copy, box_id, uids, target.id, move=True))
    return {"changed": done, "folder": target.id}


# -- writing ------------------------------------------------------------------------------


def _body_text(opened: Opened) -> str:
    bodies = choose_bodies(opened.root)
    if bodies.text is not None:
        return part_text(opened.blob, bodies.text)[0]
    if bodies.html is not None:
        return html_to_text(part_text(opened.blob, bodies.html)[0]).strip()
    return ""


def _attachment_refs(opened: Opened) -> list[dict[str, Any]]:
    view = message_json(opened, _NO_PREFS, allow_remote=False)
    return [{"message": opened.row["id"], "part": a["part"], "filename": a["filename"],
             "type": a["type"], "size": a["size"]} for a in view["attachments"]]


_NO_PREFS = WebmailPrefs()


@endpoint()
async def compose(request: Request, account: Account, body: dict[str, Any]) -> Any:
    """A prefilled draft: reply, reply to all, forward, forward as attachment, or a saved
    draft to resume; without a message, a blank one with the signature."""
    web = web_of(request)
    state = _state(request)
    mode = request.query_params.get("mode", "new")
    modes = ("new", "reply", "all", "forward", "forward_attachment", "draft")
    if mode not in modes:
        raise OperationError(Kind.INVALID, f"mode must be one of {', '.join(modes)}.", "mode")

    def build() -> dict[str, Any]:
        prefs = state.sql.prefs(account.id)
        if mode == "new":
            draft = Draft(sender=account.email, text=("\n\n-- \n" + prefs.signature)
                          if prefs.signature.strip() else "")
            return {"draft": draft.to_json(), "draft_id": None}
        opened = _open(request, account, _int(request.query_params.get("id", ""), "id"),
                       None)
        refs = _attachment_refs(opened)
        if mode == "draft":
            bodies = choose_bodies(opened.root)
            html = part_text(opened.blob, bodies.html)[0] if bodies.html else ""
            text = part_text(opened.blob, bodies.text)[0] if bodies.text else ""
            # As typed: LF line ends, without the final newline MIME gave the text part.
            text = text.replace("\r\n", "\n").removesuffix("\n")
            resumed = from_saved_draft(opened, text, html, refs)
            return {"draft": resumed.to_json(), "draft_id": opened.row["id"]}
        own = web.store.directory.addresses_of(account)
        draft = prefill(opened, mode, account, own, _body_text(opened), refs,
                        prefs.signature)
        return {"draft": draft.to_json(), "draft_id": None,
                "reply_to_id": opened.row["id"] if mode in ("reply", "all") else None}

    return await _thread(build)


def _draft_from(body: dict[str, Any], account: Account) -> Draft:
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list) or len(attachments) > 100 or not all(
            isinstance(a, dict) for a in attachments):
        raise OperationError(Kind.INVALID, "attachments must be a list of objects.", "attachments")
    return Draft(
        sender=_string(body, "from", 320) or account.email,
        to=_strings(body, "to"), cc=_strings(body, "cc"), bcc=_strings(body, "bcc"),
        subject=_string(body, "subject", 998), text=_string(body, "text", 5_000_000),
        html=_string(body, "html", 10_000_000), in_reply_to=_string(body, "in_reply_to", 998),
        references=_strings(body, "references")[:100], attachments=attachments,
    )


def _collect(request: Request, account: Account, refs: Sequence[dict[str, Any]]) -> list[
        Attachment]:
    """Blocking: the bytes of each attachment: an upload, a part of a stored message, or
    a whole stored message (forward as attachment)."""
    state = _state(request)
    out: list[Attachment] = []
    for ref in refs:
        if "upload" in ref:
            token = str(ref["upload"])
            meta = upload_meta(state.uploads, account.id, token)
            path = upload_path(state.uploads, account.id, token)
            if meta is None or path is None:
                raise OperationError(Kind.INVALID,
                    "An attachment upload has expired; add it again.",
                               "attachments")
            out.append(Attachment(meta["name"], meta["type"], path.read_bytes()))
            continue
        opened = _open(request, account, _int(ref.get("message"), "attachments"), None)
        if ref.get("part"):
            found = attachment_from_part(opened, str(ref["part"]))
            if found is None:
                raise OperationError(Kind.INVALID,
                    "An attached part no longer exists.", "attachments")
            out.append(found)
        else:
            out.append(whole_message(opened.row, opened.blob))
    return out


def _drop_uploads(request: Request, account: Account, refs: Sequence[dict[str, Any]]) -> None:
    state = _state(request)
    for ref in refs:
        path = upload_path(state.uploads, account.id, str(ref.get("upload", "")))
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)


def _remove_draft(request: Request, account: Account, draft_id: Any) -> None:
    if not draft_id:
        return
    web = web_of(request)
    row = _state(request).sql.message_row(account.id, _int(draft_id, "draft_id"))
    if row is not None and row["mailbox_special_use"] == "\\Drafts":
        web.store.mail.expunge(row["mailbox_id"], [row["uid"]])


@endpoint()
async def send(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web = web_of(request)
    draft = _draft_from(body, account)
    config = web.context.config

    def work() -> dict[str, Any]:
        attachments = _collect(request, account, draft.attachments)
        try:
            built = build_message(draft, account.display_name, attachments, keep_bcc=False,
                                  max_recipients=config.smtp.max_recipients)
            submitted = submit_message(
                web.store, config.hostname, account, draft.sender, built.recipients,
                built.message, client=f"webmail ([{client_ip(request)}])",
                max_size=config.smtp.max_message_size)
        except (ComposeError, SubmissionRefused) as exc:
            raise OperationError(Kind.INVALID, exc.message, exc.field) from None
        sent = _special_sync(web.store, account, "sent")
        if sent is not None:
            web.store.mail.append(account.id, sent.id, web.store.blobs.put(built.message),
                             parse_message_bytes(built.message), flags=Flags(seen=True))
        replied = body.get("reply_to_id")
        if replied:
            located = _state(request).sql.locate(account.id, [_int(replied, "reply_to_id")])
            for box_id, uids in located.items():
                web.store.mail.set_flags(box_id, uids, Flags(answered=True), mode="add")
        _remove_draft(request, account, body.get("draft_id"))
        _drop_uploads(request, account, draft.attachments)
        return {"queue_id": submitted.queue_id, "message_id": built.message_id,
                "local": submitted.local, "remote": submitted.remote}

    return await _thread(work)


def _special_sync(store: Any, account: Account, role: str) -> Mailbox | None:
    for box in store.mail.list_mailboxes(account.id):
        if _role(box) == role:
            assert isinstance(box, Mailbox)
            return box
    return None


@endpoint()
async def save_draft(request: Request, account: Account, body: dict[str, Any]) -> Any:
    """Save to Drafts (replacing the previous save); returns the new draft's id and its
    attachments as references to it."""
    web = web_of(request)
    draft = _draft_from(body, account)
    # A draft keeps only what is already an address (half-typed ones stay in the form).
    for name in ("to", "cc", "bcc"):
        setattr(draft, name, [a for a in getattr(draft, name) if _valid(a)])
    if not _valid(draft.sender):
        draft.sender = account.email
    state = _state(request)

    def work() -> dict[str, Any]:
        attachments = _collect(request, account, draft.attachments)
        try:
            built = build_message(draft, account.display_name, attachments, keep_bcc=True,
                                  max_recipients=web.context.config.smtp.max_recipients)
        except ComposeError as exc:
            raise OperationError(Kind.INVALID, exc.message, exc.field) from None
        drafts = _special_sync(web.store, account, "drafts")
        if drafts is None:
            raise OperationError(Kind.CONFLICT, "This account has no Drafts folder.")
        web.store.mail.append(account.id, drafts.id, web.store.blobs.put(built.message),
                         parse_message_bytes(built.message),
                         flags=Flags(seen=True, draft=True))
        new_id = state.sql.find_by_message_id(account.id, drafts.id, built.message_id)
        _remove_draft(request, account, body.get("draft_id"))
        _drop_uploads(request, account, draft.attachments)
        refs = _attachment_refs(_open(request, account, new_id, None)) if new_id else []
        return {"draft_id": new_id, "attachments": refs}

    return await _thread(work)


def _valid(address: str) -> bool:
    try:
        addr_spec(address)
    except ComposeError:
        return False
    return True


# -- identities, contacts, preferences ----------------------------------------------------


@endpoint()
async def identities(request: Request, account: Account, body: dict[str, Any]) -> Any:
    web = web_of(request)
    addresses = sorted(await _thread(web.store.directory.addresses_of, account))
    prefs = await _thread(_state(request).sql.prefs, account.id)
    return {"addresses": addresses, "default": account.email,
            "display_name": account.display_name, "signature": prefs.signature,
            "max_attachment_bytes": raw.max_upload(request),
            "upload_chunk_bytes": raw.UPLOAD_CHUNK}


@endpoint()
async def contacts(request: Request, account: Account, body: dict[str, Any]) -> Any:
    found = await _thread(_state(request).sql.correspondents, account.id,
                          request.query_params.get("q", "")[:100], 10)
    return {"addresses": found}


@endpoint()
async def prefs(request: Request, account: Account, body: dict[str, Any]) -> Any:
    sql = _state(request).sql
    if request.method == "PUT":
        mark = body.get("mark_read_on_open", True)
        if not isinstance(mark, bool):
            raise OperationError(Kind.INVALID, "mark_read_on_open must be true or false.",
                           "mark_read_on_open")
        await _thread(sql.save_prefs, account.id, signature=_string(body, "signature", 5000),
                      mark_read_on_open=mark)
    saved = await _thread(sql.prefs, account.id)
    return {"signature": saved.signature, "mark_read_on_open": saved.mark_read_on_open,
            "trusted_senders": sorted(saved.trusted_senders)}


def routes() -> list[BaseRoute]:
    return [
        Route("/folders", folders, methods=["GET", "POST"]),
        Route("/folders/{folder}", folder, methods=["PATCH", "DELETE"]),
        Route("/folders/{folder}/messages", folder_messages),
        Route("/search", search),
        Route("/messages/actions", actions, methods=["POST"]),
        Route("/messages/{message}", message),
        Route("/messages/{message}/thread", thread),
        Route("/messages/{message}/html", raw.html_body),
        Route("/messages/{message}/parts/{part}", raw.part),
        Route("/messages/{message}/raw", raw.source),
        Route("/trusted-senders", trust_sender, methods=["POST"]),
        Route("/compose", compose),
        Route("/send", send, methods=["POST"]),
        Route("/drafts", save_draft, methods=["POST"]),
        Route("/uploads", raw.new_upload_view, methods=["POST"]),
        Route("/uploads/{upload}", raw.append_upload, methods=["POST"]),
        Route("/identities", identities),
        Route("/contacts", contacts),
        Route("/prefs", prefs, methods=["GET", "PUT"]),
        Route("/events", live.events),
    ]
