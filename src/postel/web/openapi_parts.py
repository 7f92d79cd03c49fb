"""Building blocks of the OpenAPI document: the account pages' paths (web/openapi.py)
and the webmail's (web/mail/openapi.py) are written with the same helpers."""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _ok(status: str, description: str, schema: dict[str, Any] | None = None,
        *errors: str) -> dict[str, Any]:
    responses: dict[str, Any] = {status: {"description": description}}
    if schema is not None:
        responses[status]["content"] = {JSON: {"schema": schema}}
    for code in errors:
        responses[code] = {"description": _ERRORS[code],
                           "content": {JSON: {"schema": _ref("Error")}}}
    return responses


_ERRORS = {
    "400": "Invalid input (the message says what to change)",
    "401": "Not logged on",
    "403": "Not allowed, or missing/wrong X-CSRF-Token",
    "404": "No such domain, user or alias",
    "409": "Already exists, or still in use",
    "410": "The reset link has expired or was already used",
    "413": "Too large (the message says the limit)",
    "429": "Too many attempts; try later",
}
_AUTH = ("401", "403")
_DOMAIN = {"name": "domain", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL = {"name": "email", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGING = [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                 "maximum": 200}},
]
# Unsafe methods: the session cookie and the X-CSRF-Token header; anonymous ones only
# the header (the token of the anonymous cookie, from GET /session).
_CSRF: list[dict[str, list[str]]] = [{"session": [], "csrf": []}]
_ANON_CSRF: list[dict[str, list[str]]] = [{"csrf": []}]


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


_STR = {"type": "string", "maxLength": 2000}
