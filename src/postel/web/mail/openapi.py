"""The /api/v1/mail part of the OpenAPI document (postel.web.openapi adds it)."""

from __future__ import annotations

from typing import Any

from postel.web.openapi_parts import _AUTH, _CSRF, _STR, _body, _obj, _ok, _ref

_FOLDER = {"name": "folder", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 0}}
_MESSAGE = {"name": "message", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 0}}
_PART_Q = {"name": "part", "in": "query", "schema": {"type": "string"},
           "description": "Section number of an attached message/rfc822 to show instead"}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                      "maximum": 200}}
_AFTER = {"name": "after", "in": "query", "schema": {"type": "string"},
          "description": "The `next` cursor of the previous page"}
_STRS = {"type": "array", "items": _STR, "maxItems": 500}
_ANY = {"type": "object"}
_BYTES = {"required": True,
          "content": {"application/octet-stream": {"schema": {"type": "string",
                                                               "format": "binary"}}}}
_DRAFT = _obj(
    [], **{"from": _STR}, to=_STRS, cc=_STRS, bcc=_STRS, subject=_STR, text=_STR, html=_STR,
    in_reply_to=_STR, references=_STRS,
    attachments={"type": "array", "maxItems": 100, "items": _obj(
        [], upload=_STR, message={"type": "integer"}, part=_STR)},
    draft_id={"type": ["integer", "null"]}, reply_to_id={"type": ["integer", "null"]},
)


def _file(description: str) -> dict[str, Any]:
    return {"200": {"description": description}, "401": {"description": "Not logged on"},
            "404": {"description": "No such message or part"}}


def mail_paths() -> dict[str, Any]:
    return {
        "/mail/folders": {
            "get": {"summary": "My folders with message and unread counts, standard ones first",
                    "responses": _ok("200", "Folders", _ref("MailFolders"), *_AUTH)},
            "post": {"summary": "Create a folder (parent: a folder id for a subfolder)",
                     "security": _CSRF,
                     "requestBody": _body(_obj(["name"], name=_STR,
                                               parent={"type": ["integer", "null"]})),
                     "responses": _ok("201", "Created", _ANY, "400", *_AUTH, "404", "409")},
        },
        "/mail/folders/{folder}": {
            "parameters": [_FOLDER],
            "patch": {"summary": "Rename or move a folder (name is the full new path)",
                      "security": _CSRF, "requestBody": _body(_obj(["name"], name=_STR)),
                      "responses": _ok("200", "Renamed", _ANY, "400", *_AUTH, "404", "409")},
            "delete": {"summary": "Delete a folder and its messages", "security": _CSRF,
                       "responses": _ok("204", "Deleted", None, "400", *_AUTH, "404",
                                        "409")},
        },
        "/mail/folders/{folder}/messages": {
            "parameters": [_FOLDER],
            "get": {"summary": "One page of a folder's messages (keyset paging)",
                    "parameters": [
                        {"name": "sort", "in": "query", "schema": {
                            "type": "string", "enum": ["date", "from", "subject", "size"]}},
                        {"name": "order", "in": "query",
                         "schema": {"type": "string", "enum": ["asc", "desc"]}},
                        _AFTER, _LIMIT],
                    "responses": _ok("200", "Messages", _ref("MessagePage"), "400", *_AUTH,
                                     "404")},
        },
        "/mail/search": {
            "get": {"summary": "Full-text search: words and from: to: subject: "
                               "has:attachment is:unread is:flagged before: after: on:",
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}},
                                   {"name": "folder", "in": "query",
                                    "schema": {"type": "integer", "minimum": 0}},
                                   _AFTER, _LIMIT],
                    "responses": _ok("200", "Messages, newest first", _ref("MessagePage"),
                                     "400", *_AUTH, "404")},
        },
        "/mail/messages/actions": {
            "post": {"summary": "Mark read/unread, flag, move, delete (to Trash; in Trash for "
                                "good), archive, junk / not junk", "security": _CSRF,
                     "requestBody": _body(_obj(
                         ["action", "ids"],
                         action={"type": "string", "enum": [
                             "read", "unread", "flag", "unflag", "move", "delete",
                             "archive", "junk", "notjunk"]},
                         ids={"type": "array", "items": {"type": "integer"},
                              "maxItems": 5000},
                         folder={"type": "integer"})),
                     "responses": _ok("200", "Done", _ANY, "400", *_AUTH, "404", "409")},
        },
        "/mail/messages/{message}": {
            "parameters": [_MESSAGE],
            "get": {"summary": "A message to read: headers, text, the HTML body's address, "
                               "attachments",
                    "parameters": [_PART_Q, {"name": "remote", "in": "query",
                                             "schema": {"type": "string", "enum": ["0", "1"]}}],
                    "responses": _ok("200", "Message", _ANY, "400", *_AUTH, "404")},
        },
        "/mail/messages/{message}/thread": {
            "parameters": [_MESSAGE],
            "get": {"summary": "The conversation across folders (References, Message-ID)",
                    "responses": _ok("200", "Messages, oldest first", _ANY, "400", *_AUTH)},
        },
        "/mail/messages/{message}/html": {
            "parameters": [_MESSAGE],
            "get": {"summary": "The sanitised HTML body, for a sandboxed iframe (own CSP)",
                    "parameters": [_PART_Q, {"name": "remote", "in": "query",
                                             "schema": {"type": "string", "enum": ["0", "1"]}}],
                    "responses": _file("HTML document")},
        },
        "/mail/messages/{message}/parts/{part}": {
            "parameters": [_MESSAGE, {"name": "part", "in": "path", "required": True,
                                      "schema": {"type": "string"}}],
            "get": {"summary": "An attachment, decoded (inline=1: previewable types shown)",
                    "parameters": [{"name": "inline", "in": "query",
                                    "schema": {"type": "string", "enum": ["0", "1"]}}],
                    "responses": _file("The part's bytes")},
        },
        "/mail/messages/{message}/raw": {
            "parameters": [_MESSAGE],
            "get": {"summary": "The message source as stored",
                    "parameters": [{"name": "download", "in": "query",
                                    "schema": {"type": "string", "enum": ["0", "1"]}}],
                    "responses": _file("The message")},
        },
        "/mail/trusted-senders": {
            "post": {"summary": "Always show remote images from this sender",
                     "security": _CSRF, "requestBody": _body(_obj(["sender"], sender=_STR)),
                     "responses": _ok("204", "Saved", None, "400", *_AUTH)},
        },
        "/mail/compose": {
            "get": {"summary": "A prefilled message: new, reply, all (reply to all), forward, "
                               "forward_attachment, or a saved draft to resume",
                    "parameters": [
                        {"name": "mode", "in": "query", "schema": {"type": "string", "enum": [
                            "new", "reply", "all", "forward", "forward_attachment", "draft"]}},
                        {"name": "id", "in": "query", "schema": {"type": "integer"}}],
                    "responses": _ok("200", "Draft", _ANY, "400", *_AUTH, "404")},
        },
        "/mail/send": {
            "post": {"summary": "Send (the rules of port 587; remote recipients queued, DKIM "
                                "signed) and keep a copy in Sent",
                     "security": _CSRF, "requestBody": _body(_DRAFT),
                     "responses": _ok("200", "Sent", _ANY, "400", *_AUTH, "404", "409")},
        },
        "/mail/drafts": {
            "post": {"summary": "Save to Drafts, replacing the draft draft_id",
                     "security": _CSRF, "requestBody": _body(_DRAFT),
                     "responses": _ok("200", "Saved", _ANY, "400", *_AUTH, "404", "409")},
        },
        "/mail/uploads": {
            "post": {"summary": "Start an attachment upload with its first chunk",
                     "security": _CSRF,
                     "parameters": [{"name": "name", "in": "query", "schema": _STR},
                                    {"name": "type", "in": "query", "schema": _STR}],
                     "requestBody": _BYTES,
                     "responses": _ok("201", "Upload", _ANY, *_AUTH, "413")},
        },
        "/mail/uploads/{upload}": {
            "parameters": [{"name": "upload", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "post": {"summary": "Append the next chunk of an upload", "security": _CSRF,
                     "requestBody": _BYTES,
                     "responses": _ok("200", "Upload", _ANY, *_AUTH, "404", "413")},
        },
        "/mail/identities": {
            "get": {"summary": "The addresses I may send as, signature, attachment limit",
                    "responses": _ok("200", "Identities", _ANY, *_AUTH)},
        },
        "/mail/contacts": {
            "get": {"summary": "Past correspondents matching q (address autocomplete)",
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
                    "responses": _ok("200", "Addresses", _ANY, *_AUTH)},
        },
        "/mail/prefs": {
            "get": {"summary": "Mail settings: signature, mark read on open, trusted senders",
                    "responses": _ok("200", "Settings", _ANY, *_AUTH)},
            "put": {"summary": "Save mail settings", "security": _CSRF,
                    "requestBody": _body(_obj([], signature=_STR,
                                              mark_read_on_open={"type": "boolean"})),
                    "responses": _ok("200", "Settings", _ANY, "400", *_AUTH)},
        },
        "/mail/events": {
            "get": {"summary": "Server-sent events (text/event-stream): `change` names the "
                               "folders that changed; the stream ends after 25 s and the "
                               "browser reconnects",
                    "responses": {"200": {"description": "Event stream"},
                                  "401": {"description": "Not logged on"},
                                  "406": {"description": "Not asked for text/event-stream"}}},
        },
    }


def mail_schemas() -> dict[str, Any]:
    listed = {"type": "object", "properties": {
        "id": {"type": "integer"}, "mailbox_id": {"type": "integer"},
        "subject": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"},
        "date": {"type": "string", "format": "date-time"}, "size": {"type": "integer"},
        "seen": {"type": "boolean"}, "flagged": {"type": "boolean"},
        "attachment": {"type": "boolean"}, "preview": {"type": "string"}}}
    return {
        "MailFolders": {"type": "object", "required": ["folders", "unseen_inbox"],
                        "properties": {"folders": {"type": "array", "items": {
                            "type": "object", "properties": {
                                "id": {"type": "integer"}, "name": {"type": "string"},
                                "role": {"type": ["string", "null"]},
                                "total": {"type": "integer"}, "unseen": {"type": "integer"}}}},
                            "unseen_inbox": {"type": "integer"}}},
        "MessagePage": {"type": "object", "required": ["messages", "next"],
                        "properties": {"messages": {"type": "array", "items": listed},
                                       "next": {"type": ["string", "null"]}}},
    }
