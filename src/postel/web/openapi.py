"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json)."""

from __future__ import annotations

from functools import cache
from typing import Any

from postel.web.mail.openapi import mail_paths, mail_schemas
from postel.web.openapi_parts import (
    _ANON_CSRF,
    _AUTH,
    _CSRF,
    _DOMAIN,
    _EMAIL,
    _PAGING,
    _STR,
    _body,
    _obj,
    _ok,
    _ref,
)


@cache
def document() -> dict[str, Any]:
    user_patch = _obj(
        [], display_name=_STR, backup_email=_STR, password=_STR,
        role={"type": "string", "enum": ["user", "domain-admin", "admin"]},
        quota_bytes={"type": "integer", "minimum": 0},
        disabled={"type": "boolean"},
    )
    user_new = dict(user_patch, required=["email", "password"],
                    properties=dict(user_patch["properties"], email=_STR))
    paths: dict[str, Any] = {
        "/session": {
            "get": {"summary": "Who is logged on, and the CSRF token for unsafe calls",
                    "security": [], "responses": _ok("200", "Session", _ref("Session"))},
            "post": {"summary": "Log on with the full email address and password",
                     "security": _ANON_CSRF,
                     "requestBody": _body(_obj(["email", "password"], email=_STR,
                                               password=_STR)),
                     "responses": _ok("200", "Logged on (cookie set)", _ref("Session"),
                                      "400", "401", "403", "429")},
            "delete": {"summary": "Log out", "security": _CSRF,
                       "responses": _ok("204", "Logged out", None, *_AUTH)},
        },
        "/me": {
            "get": {"summary": "My account settings",
                    "responses": _ok("200", "Account", _ref("User"), *_AUTH)},
            "patch": {"summary": "Change my display name or Backup Email Address",
                      "security": _CSRF,
                      "requestBody": _body(_obj([], display_name=_STR, backup_email=_STR)),
                      "responses": _ok("200", "Account", _ref("User"), "400", *_AUTH)},
        },
        "/me/password": {
            "post": {"summary": "Change my password (current password required)",
                     "security": _CSRF,
                     "requestBody": _body(_obj(["current_password", "new_password"],
                                               current_password=_STR, new_password=_STR)),
                     "responses": _ok("200", "Changed; a new session", _ref("Session"),
                                      "400", *_AUTH)},
        },
        "/captcha": {
            "post": {"summary": "A new CAPTCHA challenge (image and audio)", "security": _ANON_CSRF,
                     "responses": _ok("201", "Challenge", _obj(
                         ["id", "image", "audio"], id=_STR, image=_STR, audio=_STR),
                         "403", "429")},
        },
        "/password-reset": {
            "post": {"summary": "Forgot your password? Sends a reset link to the backup "
                                "address; the answer is the same for every address",
                     "security": _ANON_CSRF,
                     "requestBody": _body(_obj(["email", "captcha_id", "captcha_answer"],
                                               email=_STR, captcha_id=_STR,
                                               captcha_answer=_STR)),
                     "responses": _ok("202", "Accepted", _obj(["message"], message=_STR),
                                      "400", "403", "429")},
        },
        "/password-reset/confirm": {
            "post": {"summary": "Set a new password with the token from the reset link",
                     "security": _ANON_CSRF,
                     "requestBody": _body(_obj(["token", "new_password"], token=_STR,
                                               new_password=_STR)),
                     "responses": _ok("204", "Changed", None, "400", "403", "410")},
        },
        "/domains": {
            "get": {"summary": "Domains with user counts and storage (system admins)",
                    "responses": _ok("200", "Domains", _obj(
                        ["domains"], domains={"type": "array", "items": _ref("Domain")}),
                        *_AUTH)},
            "post": {"summary": "Add a domain (system admins)", "security": _CSRF,
                     "requestBody": _body(_obj(["name"], name=_STR)),
                     "responses": _ok("201", "Added", _obj(["name"], name=_STR), "400",
                                      *_AUTH, "409")},
        },
        "/domains/{domain}": {
            "parameters": [_DOMAIN],
            "delete": {"summary": "Remove a domain without users (system admins)",
                       "security": _CSRF,
                       "responses": _ok("204", "Removed", None, "400", *_AUTH, "404",
                                        "409")},
        },
        "/domains/{domain}/users": {
            "parameters": [_DOMAIN],
            "get": {"summary": "Users of a domain, with search and paging",
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}},
                                   *_PAGING],
                    "responses": _ok("200", "Users", _obj(
                        ["total", "offset", "users"], total={"type": "integer"},
                        offset={"type": "integer"},
                        users={"type": "array", "items": _ref("User")}),
                        "400", *_AUTH, "404")},
            "post": {"summary": "Add a user", "security": _CSRF,
                     "requestBody": _body(user_new),
                     "responses": _ok("201", "Added", _ref("User"), "400", *_AUTH, "404",
                                      "409")},
        },
        "/users/{email}": {
            "parameters": [_EMAIL],
            "get": {"summary": "One user (admins of its domain)",
                    "responses": _ok("200", "User", _ref("User"), "400", *_AUTH, "404")},
            "patch": {"summary": "Edit a user: Backup Email Address, new password, name, "
                                 "role, quota, disabled", "security": _CSRF,
                      "requestBody": _body(user_patch),
                      "responses": _ok("200", "User", _ref("User"), "400", *_AUTH, "404")},
            "delete": {"summary": "Delete a user and their mail", "security": _CSRF,
                       "responses": _ok("204", "Deleted", None, "400", *_AUTH, "404")},
        },
        "/domains/{domain}/aliases": {
            "parameters": [_DOMAIN],
            "get": {"summary": "Aliases of a domain",
                    "responses": _ok("200", "Aliases", _obj(
                        ["aliases"], aliases={"type": "array", "items": _ref("Alias")}),
                        "400", *_AUTH)},
            "post": {"summary": "Add an alias (source \"*\" for a catch-all)",
                     "security": _CSRF, "requestBody": _body(_ref("Alias")),
                     "responses": _ok("201", "Added", _ref("Alias"), "400", *_AUTH, "404",
                                      "409")},
            "delete": {"summary": "Remove an alias", "security": _CSRF,
                       "parameters": [
                           {"name": "source", "in": "query", "required": True,
                            "schema": {"type": "string"}},
                           {"name": "destination", "in": "query", "required": True,
                            "schema": {"type": "string"}}],
                       "responses": _ok("204", "Removed", None, "400", *_AUTH, "404")},
        },
        "/domains/{domain}/audit": {
            "parameters": [_DOMAIN],
            "get": {"summary": "Audit log of a domain (its admins)", "parameters": _PAGING,
                    "responses": _ok("200", "Entries", _ref("AuditPage"), "400", *_AUTH)},
        },
        "/audit": {
            "get": {"summary": "Audit log of every domain (system admins)",
                    "parameters": _PAGING,
                    "responses": _ok("200", "Entries", _ref("AuditPage"), "400", *_AUTH)},
        },
    }
    schemas = {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}, "field": {"type": "string"}}},
        "Session": {"type": "object",
                    "required": ["authenticated", "email", "role", "csrf_token"],
                    "properties": {"authenticated": {"type": "boolean"},
                                   "email": {"type": ["string", "null"]},
                                   "role": {"type": ["string", "null"]},
                                   "csrf_token": {"type": "string"}}},
        "User": {"type": "object",
                 "required": ["email", "display_name", "backup_email", "role", "quota_bytes",
                              "disabled", "created_at", "password_changed_at"],
                 "properties": {
                     "email": {"type": "string"}, "display_name": {"type": "string"},
                     "backup_email": {"type": ["string", "null"]},
                     "role": {"type": "string", "enum": ["user", "domain-admin", "admin"]},
                     "quota_bytes": {"type": "integer"}, "disabled": {"type": "boolean"},
                     "created_at": {"type": "string", "format": "date-time"},
                     "password_changed_at": {"type": "string", "format": "date-time"}}},
        "Domain": {"type": "object",
                   "required": ["name", "users", "storage_bytes", "created_at"],
                   "properties": {"name": {"type": "string"}, "users": {"type": "integer"},
                                  "storage_bytes": {"type": "integer"},
                                  "created_at": {"type": "string", "format": "date-time"}}},
        "Alias": _obj(["source", "destination"], source=_STR, destination=_STR),
        "AuditPage": {"type": "object", "required": ["total", "offset", "entries"],
                      "properties": {"total": {"type": "integer"},
                                     "offset": {"type": "integer"},
                                     "entries": {"type": "array", "items": {"type": "object"}}}},
    }
    paths.update(mail_paths())
    schemas.update(mail_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Postel web API", "version": "1",
                 "description": "The operations behind Postel's web pages. Log on with "
                                "POST /session; send the session's csrf_token in the "
                                "X-CSRF-Token header with every unsafe method."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"session": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-postel-session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }
