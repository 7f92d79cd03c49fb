"""System admin pages: domains (add, remove, users and storage), domain admins, and the
audit log across every domain."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from postel.admin import audit as audit_ops
from postel.admin import domains as domain_ops
from postel.admin import users as user_ops
from postel.admin.actor import Actor
from postel.admin.errors import OperationError
from postel.store.model import Account, Role
from postel.web.pages import call, form, int_arg, login_required, page_numbers, redirect, render
from postel.web.state import client_ip, web_of

GET_POST = ["GET", "POST"]


def routes() -> list[BaseRoute]:
    return [
        Route("/system/domains", domains, methods=GET_POST),
        Route("/system/domains/{name}/delete", delete_domain, methods=GET_POST),
        Route("/system/admins", admins, methods=GET_POST),
        Route("/system/audit", audit),
    ]


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


@login_required(Role.ADMIN)
async def domains(request: Request, me: Account) -> Response:
    web = web_of(request)
    actor = Actor.of(me, client_ip(request))
    error, status, name = "", 200, ""
    if request.method == "POST":
        values = await form(request)
        name = values.get("domain", "")
        try:
            added = await asyncio.to_thread(domain_ops.add_domain, web.admin, actor, name)
            return redirect(request, f"/system/domains?added={added}")
        except OperationError as exc:
            error, status = exc.message, exc.status
    rows = await call(domain_ops.domain_stats, web.admin, actor)
    return render(request, "system_domains.html", status, rows=rows, error=error, name=name,
                  size=_size, added=request.query_params.get("added", ""))


@login_required(Role.ADMIN)
async def delete_domain(request: Request, me: Account) -> Response:
    web = web_of(request)
    name = request.path_params["name"]
    if request.method == "GET":
        return render(request, "system_domain_delete.html", name=name, error="")
    await form(request)
    try:
        await asyncio.to_thread(domain_ops.remove_domain, web.admin,
                                Actor.of(me, client_ip(request)), name)
    except OperationError as exc:
        return render(request, "system_domain_delete.html", exc.status, name=name,
                      error=exc.message)
    return redirect(request, "/system/domains")


@login_required(Role.ADMIN)
async def admins(request: Request, me: Account) -> Response:
    web = web_of(request)
    actor = Actor.of(me, client_ip(request))
    error, status = "", 200
    if request.method == "POST":
        values = await form(request)
        role = Role.USER if values.get("action") == "revoke" else Role.DOMAIN_ADMIN
        try:
            await asyncio.to_thread(user_ops.update_user, web.admin, actor,
                                    values.get("email", ""),
                                    {"role": role.value})
            return redirect(request, "/system/admins")
        except OperationError as exc:
            error, status = exc.message, exc.status
    found = await call(domain_ops.list_domain_admins, web.admin, actor)
    return render(request, "system_admins.html", status, admins=found, error=error)


@login_required(Role.ADMIN)
async def audit(request: Request, me: Account) -> Response:
    web = web_of(request)
    size = 50
    page = int_arg(request.query_params.get("page"))
    total, rows = await call(audit_ops.audit_log, web.admin,
                             Actor.of(me, client_ip(request)), None,
                             (max(1, page) - 1) * size, size)
    return render(request, "admin_audit.html", rows=rows,
                  paging=page_numbers(total, page, size), base="/system/audit?",
                  scope="system", domain="")
