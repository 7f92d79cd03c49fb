"""Domain Settings for domain admins (and system admins): Users, Aliases, Audit log.

Every operation goes through postel.admin, which scopes a domain admin to their own
domain and writes the audit log.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from postel.admin import aliases as alias_ops
from postel.admin import audit as audit_ops
from postel.admin import users as user_ops
from postel.admin.actor import Actor
from postel.admin.errors import Kind, OperationError
from postel.store.model import Account, Role
from postel.web.pages import call, form, int_arg, login_required, page_numbers, redirect, render
from postel.web.state import client_ip, web_of

ADMINS = (Role.DOMAIN_ADMIN, Role.ADMIN)
GET_POST = ["GET", "POST"]
BAD_QUOTA = "The quota must be a number of megabytes (0 for none)."


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/users", users),
        Route("/admin/users/new", new_user, methods=GET_POST),
        Route("/admin/users/{email}/edit", edit_user, methods=GET_POST),
        Route("/admin/users/{email}/delete", delete_user, methods=GET_POST),
        Route("/admin/aliases", aliases, methods=GET_POST),
        Route("/admin/audit", audit),
    ]


def _domain(request: Request, me: Account, values: dict[str, str] | None = None) -> str:
    """The domain a page works on: the admin's own, or another for system admins."""
    chosen = (values or {}).get("domain") or request.query_params.get("domain", "")
    return chosen.strip().lower() or me.domain


def _actor(request: Request, me: Account) -> Actor:
    return Actor.of(me, client_ip(request))


def _form_values(values: dict[str, str]) -> dict[str, Any]:
    """Form strings to the typed fields ops takes (quota in MB, checkbox for disabled)."""
    raw: dict[str, Any] = {
        "email": values.get("email", ""),
        "display_name": values.get("display_name", ""),
        "backup_email": values.get("backup_email", ""),
        "password": values.get("password", ""),
        "role": values.get("role") or None,
        "disabled": values.get("disabled") == "on",
    }
    quota = values.get("quota_mb", "").strip() or "0"
    try:
        megabytes = float(quota)
    except ValueError:
        raise OperationError(Kind.INVALID, BAD_QUOTA, "quota") from None
    if not 0 <= megabytes < 2**40:
        raise OperationError(Kind.INVALID, BAD_QUOTA, "quota")
    raw["quota_bytes"] = int(megabytes * 1024 * 1024)
    return raw


@login_required(*ADMINS)
async def users(request: Request, me: Account) -> Response:
    web = web_of(request)
    domain = _domain(request, me)
    query = request.query_params.get("q", "")
    size = max(1, web.config.page_size)
    page = int_arg(request.query_params.get("page"))
    total, found = await call(user_ops.list_users, web.admin, _actor(request, me), domain,
                              query, (page - 1) * size, size)
    paging = page_numbers(total, page, size)
    if paging["page"] != page:
        total, found = await call(user_ops.list_users, web.admin, _actor(request, me), domain,
                                  query, paging["offset"], size)
    domains = [d.name for d in await asyncio.to_thread(web.store.directory.list_domains)] \
        if me.role is Role.ADMIN else []
    base = "/admin/users?" + urlencode({"domain": domain, "q": query}) + "&"
    return render(request, "admin_users.html", domain=domain, query=query, users=found,
                  paging=paging, base=base, domains=domains, quote=quote,
                  saved=request.query_params.get("saved", ""))


def _roles(me: Account) -> list[tuple[str, str]]:
    roles = [(Role.USER.value, "User"), (Role.DOMAIN_ADMIN.value, "Domain admin")]
    if me.role is Role.ADMIN:
        roles.append((Role.ADMIN.value, "System admin"))
    return roles


@login_required(*ADMINS)
async def new_user(request: Request, me: Account) -> Response:
    web = web_of(request)
    if request.method == "GET":
        domain = _domain(request, me)
        await call(_actor(request, me).require_domain, domain)
        return render(request, "admin_user_new.html", domain=domain, roles=_roles(me),
                      values={}, error="", field="")
    values = await form(request)
    domain = _domain(request, me, values)
    local = values.get("local", "").strip()
    values["email"] = f"{local}@{domain}" if local and "@" not in local else local
    try:
        account = await asyncio.to_thread(user_ops.add_user, web.admin, _actor(request, me),
                                          _form_values(values))
    except OperationError as exc:
        return render(request, "admin_user_new.html", exc.status, domain=domain,
                      roles=_roles(me), values=values, error=exc.message, field=exc.field)
    return redirect(request, f"/admin/users?domain={quote(account.domain)}&saved="
                             f"{quote(account.email)}")


@login_required(*ADMINS)
async def edit_user(request: Request, me: Account) -> Response:
    web = web_of(request)
    actor = _actor(request, me)
    email = request.path_params["email"]
    account: Account = await call(user_ops.get_user, web.admin, actor, email)
    if request.method == "GET":
        return render(request, "admin_user_edit.html", user=account, roles=_roles(me),
                      values={}, error="", field="",
                      saved=request.query_params.get("saved") == "1", quote=quote)
    values = await form(request)
    try:
        await asyncio.to_thread(user_ops.update_user, web.admin, actor, account.email,
                                _form_values(values))
    except OperationError as exc:
        return render(request, "admin_user_edit.html", exc.status, user=account,
                      roles=_roles(me), values=values, error=exc.message, field=exc.field,
                      saved=False, quote=quote)
    return redirect(request, f"/admin/users/{quote(account.email)}/edit?saved=1")


@login_required(*ADMINS)
async def delete_user(request: Request, me: Account) -> Response:
    web = web_of(request)
    actor = _actor(request, me)
    account: Account = await call(user_ops.get_user, web.admin, actor,
                                  request.path_params["email"])
    if request.method == "GET":
        return render(request, "admin_user_delete.html", user=account, quote=quote)
    await form(request)
    await call(user_ops.delete_user, web.admin, actor, account.email)
    return redirect(request, f"/admin/users?domain={quote(account.domain)}")


@login_required(*ADMINS)
async def aliases(request: Request, me: Account) -> Response:
    web = web_of(request)
    actor = _actor(request, me)
    error = ""
    status = 200
    values: dict[str, str] = {}
    if request.method == "POST":
        values = await form(request)
        domain = _domain(request, me, values)
        try:
            if values.get("action") == "remove":
                await asyncio.to_thread(alias_ops.remove_alias, web.admin, actor, domain,
                                        values.get("source", ""), values.get("destination", ""))
            else:
                await asyncio.to_thread(alias_ops.add_alias, web.admin, actor, domain,
                                        values.get("source", ""), values.get("destination", ""))
            return redirect(request, f"/admin/aliases?domain={quote(domain)}")
        except OperationError as exc:
            error, status = exc.message, exc.status
    else:
        domain = _domain(request, me)
    found = await call(alias_ops.list_aliases, web.admin, actor, domain)
    return render(request, "admin_aliases.html", status, domain=domain, aliases=found,
                  error=error, values=values)


@login_required(*ADMINS)
async def audit(request: Request, me: Account) -> Response:
    web = web_of(request)
    domain = _domain(request, me)
    size = 50
    page = int_arg(request.query_params.get("page"))
    total, rows = await call(audit_ops.audit_log, web.admin, _actor(request, me), domain,
                             (max(1, page) - 1) * size, size)
    paging = page_numbers(total, page, size)
    return render(request, "admin_audit.html", domain=domain, rows=rows, paging=paging,
                  base=f"/admin/audit?domain={quote(domain)}&", scope="domain")
