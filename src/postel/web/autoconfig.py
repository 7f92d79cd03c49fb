"""Client auto-configuration over HTTP(S), and the two pages built on it.

* Thunderbird autoconfig: /mail/config-v1.1.xml (autoconfig.DOMAIN, HTTP and HTTPS) and
  /.well-known/autoconfig/mail/config-v1.1.xml (DOMAIN).
* Microsoft Autodiscover: POST /autodiscover/autodiscover.xml (POX) and
  GET /autodiscover/autodiscover.json (v2).
* MTA-STS: https://mta-sts.DOMAIN/.well-known/mta-sts.txt when [autoconfig] mta_sts_mode
  is set.
* My Settings > Set up your device (/settings/device): the account's settings, per-client
  guides, the Apple profile and a QR code for a phone (/device/TOKEN).
* Domain Settings > DNS records (/admin/dns): what to publish, with a live DNS check.

Every document is rendered per request from the live configuration
(postel.autoconfig.settings), so a changed port or hostname shows up everywhere at once.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from postel.admin.actor import Actor
from postel.auth.limits import WindowCounter
from postel.auth.passwords import verify_password
from postel.autoconfig import autodiscover, device, dnscheck, mobileconfig, thunderbird
from postel.autoconfig.dnsrecords import DomainDns, domain_dns, mta_sts_policy
from postel.autoconfig.settings import MailSettings, mail_settings
from postel.mail.address import AddressError, Domain, parse_email
from postel.store.model import Account, Role
from postel.tls import certificate_paths
from postel.web.pages import call, form, login_required, render
from postel.web.security import finish
from postel.web.state import Web, client_ip, web_of

XML = "application/xml; charset=utf-8"
ADMINS = (Role.DOMAIN_ADMIN, Role.ADMIN)
# Wrong passwords per account, within [auth] failure_window, before the profile form
# stops checking them (429): the form must not become a way to guess a password.
MAX_PROFILE_PASSWORD_FAILURES = 5


def routes() -> list[BaseRoute]:
    return [
        Route("/mail/config-v1.1.xml", thunderbird_config),
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", thunderbird_config),
        Route("/autodiscover/autodiscover.xml", autodiscover_pox, methods=["POST"]),
        Route("/Autodiscover/Autodiscover.xml", autodiscover_pox, methods=["POST"]),
        Route("/autodiscover/autodiscover.json", autodiscover_json),
        Route("/autodiscover/autodiscover.json/v1.0/{email}", autodiscover_json),
        Route("/Autodiscover/Autodiscover.json", autodiscover_json),
        Route("/Autodiscover/Autodiscover.json/v1.0/{email}", autodiscover_json),
        Route("/.well-known/mta-sts.txt", mta_sts),
        Route("/settings/device", setup_device),
        Route("/settings/device/profile.mobileconfig", profile_download,
              methods=["GET", "POST"]),
        Route("/device/{token}", device_link),
        Route("/device/{token}/profile.mobileconfig", device_profile),
        Route("/admin/dns", dns_records),
    ]


def _settings(web: Web) -> MailSettings:
    return mail_settings(web.context.config)


def _request_host(request: Request) -> str:
    """The Host header's name, lowercase, without port ("" when absent or odd)."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):
        return ""
    host = host.rpartition(":")[0] if ":" in host else host
    return host.rstrip(".")


async def _hosted(web: Web, domain: str) -> str | None:
    """The ASCII form of `domain` when it is hosted here, else None."""
    try:
        name = Domain.parse(domain)
    except AddressError:
        return None
    found = await asyncio.to_thread(web.store.directory.get_domain, name.unicode)
    if found is None and name.ascii != name.unicode:
        found = await asyncio.to_thread(web.store.directory.get_domain, name.ascii)
    return name.ascii if found is not None else None


# -- Thunderbird -----------------------------------------------------------------------


async def thunderbird_config(request: Request) -> Response:
    web = web_of(request)
    email = request.query_params.get("emailaddress", "").strip()
    if email:
        try:
            address = parse_email(email)
        except AddressError:
            return PlainTextResponse("emailaddress is not a valid address\n", 400)
        domain = address.domain
    else:
        # No address: the domain is the one asked for (autoconfig.DOMAIN or DOMAIN).
        domain = _request_host(request).removeprefix("autoconfig.")
    hosted = await _hosted(web, domain)
    if hosted is None:
        return PlainTextResponse(f"no mail service for {domain or 'this name'} here\n", 404)
    return Response(thunderbird.client_config(_settings(web), hosted), media_type=XML)


# -- Autodiscover ----------------------------------------------------------------------


def _pox_error(error: autodiscover.AutodiscoverError) -> Response:
    return Response(autodiscover.error_xml(error), error.status, media_type=XML)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def autodiscover_pox(request: Request) -> Response:
    web = web_of(request)
    body = await _read_limited(request, autodiscover.MAX_REQUEST)
    try:
        if body is None:
            raise autodiscover.AutodiscoverError(413, 600, "Invalid Request: too large")
        requested = autodiscover.parse_request(body)
        if await _hosted(web, requested.domain) is None:
            raise autodiscover.AutodiscoverError(
                404, 500, "The e-mail address cannot be found."
            )
    except autodiscover.AutodiscoverError as exc:
        return _pox_error(exc)
    return Response(autodiscover.response_xml(_settings(web), requested), media_type=XML)


async def autodiscover_json(request: Request) -> Response:
    web = web_of(request)
    params = {k.lower(): v for k, v in request.query_params.items()}
    email = request.path_params.get("email") or params.get("email", "")
    protocol = params.get("protocol", "")
    if not email or not protocol:
        return JSONResponse({"ErrorCode": "InvalidRequest",
                             "ErrorMessage": "Give Email and Protocol."}, 400)
    try:
        answer = autodiscover.json_response(_settings(web), email, protocol)
    except autodiscover.AutodiscoverError as exc:
        return JSONResponse({"ErrorCode": exc.json_code, "ErrorMessage": exc.message},
                            exc.status)
    if await _hosted(web, autodiscover.requested_address(email).domain) is None:
        return JSONResponse({"ErrorCode": "InvalidUser",
                             "ErrorMessage": "The e-mail address cannot be found."}, 404)
    return JSONResponse(answer)


# -- MTA-STS ---------------------------------------------------------------------------


async def mta_sts(request: Request) -> Response:
    """RFC 8461 3.3: only at https://mta-sts.DOMAIN/, as text/plain."""
    web = web_of(request)
    config = web.context.config
    host = _request_host(request)
    if not config.autoconfig.mta_sts_mode or not host.startswith("mta-sts."):
        return PlainTextResponse("no MTA-STS policy here\n", 404)
    if await _hosted(web, host.removeprefix("mta-sts.")) is None:
        return PlainTextResponse("no MTA-STS policy for this domain\n", 404)
    return PlainTextResponse(mta_sts_policy(config))


# -- the Apple profile -----------------------------------------------------------------


def _profile_bytes(web: Web, account: Account, password: str | None) -> bytes:
    """Blocking: the profile, signed with the TLS certificate when possible."""
    data = mobileconfig.profile(_settings(web), account.email, account.display_name,
                                password=password)
    signer = mobileconfig.load_signer(*certificate_paths(web.context.config))
    return signer.sign(data) if signer is not None else data


async def _profile_response(web: Web, account: Account, password: str | None) -> Response:
    try:
        data = await asyncio.to_thread(_profile_bytes, web, account, password)
    except mobileconfig.NoMailService as exc:
        raise HTTPException(404, f"There is nothing to configure: {exc}.") from None
    filename = quote(f"{account.email}.mobileconfig")
    return Response(data, media_type=mobileconfig.MEDIA_TYPE, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
    })


def _password_failures(web: Web) -> WindowCounter:
    counter = web.extra.get("profile_password_failures")
    if not isinstance(counter, WindowCounter):
        counter = WindowCounter(web.context.config.auth.failure_window)
        web.extra["profile_password_failures"] = counter
    return counter


@login_required()
async def profile_download(request: Request, me: Account) -> Response:
    web = web_of(request)
    if request.method == "GET":
        return finish(request, await _profile_response(web, me, None))
    values = await form(request)
    password: str | None = None
    if values.get("include_password") == "on":
        failures = _password_failures(web)
        if failures.count(me.email) >= MAX_PROFILE_PASSWORD_FAILURES:
            return await _setup_page(request, me, 429, "Too many wrong passwords. Wait a "
                                     "few minutes, or download the profile without one.")
        password = values.get("password", "")
        if not await asyncio.to_thread(verify_password, me.password_hash, password):
            failures.add(me.email)
            return await _setup_page(request, me, 400, "That is not your current password, "
                                     "so it was not put in the profile.")
    return finish(request, await _profile_response(web, me, password))


# -- Set up your device ----------------------------------------------------------------


def _device_url(web: Web, account: Account) -> str:
    expires = int(time.time() + web.context.config.autoconfig.device_link_lifetime)
    return f"{web.base_url}/device/{device.make_token(web.secret, account.id, expires)}"


async def _setup_page(request: Request, me: Account, status: int = 200,
                      error: str = "") -> Response:
    web = web_of(request)
    link = _device_url(web, me)
    minutes = max(1, round(web.context.config.autoconfig.device_link_lifetime / 60))
    return render(request, "setup_device.html", status, account=me, mail=_settings(web),
                  device_link=link, qr=device.qr_svg(link, f"Set up {me.email}"),
                  link_minutes=minutes, error=error)


@login_required()
async def setup_device(request: Request, me: Account) -> Response:
    return await _setup_page(request, me)


async def _device_account(request: Request) -> Account:
    web = web_of(request)
    account_id = device.read_token(web.secret, request.path_params["token"], time.time())
    account = None
    if account_id is not None:
        account = await asyncio.to_thread(web.store.directory.get_account_by_id, account_id)
    if account is None or account.disabled:
        raise HTTPException(404, "This link has expired. Open My Settings > Set up your "
                                 "device and scan the new code.")
    return account


async def device_link(request: Request) -> Response:
    """What a phone opens from the QR code: the settings and the profile, no logon."""
    account = await _device_account(request)
    return render(request, "autoconfig_device_link.html", account=account,
                  mail=_settings(web_of(request)), token=request.path_params["token"])


async def device_profile(request: Request) -> Response:
    account = await _device_account(request)
    return await _profile_response(web_of(request), account, None)


# -- DNS records -----------------------------------------------------------------------


def _domain_dns(web: Web, domain: str) -> DomainDns:
    """Blocking: the records for `domain`, with its DKIM keys from the store."""
    from postel.mailauth.dkim import dns_record

    keys = web.store.dkim.signing_keys(domain)
    dkim = [(selector, dns_record(pem)) for selector, _, pem in keys]
    return domain_dns(web.context.config, _settings(web), domain, dkim)


@login_required(*ADMINS)
async def dns_records(request: Request, me: Account) -> Response:
    web = web_of(request)
    chosen = request.query_params.get("domain", "").strip().lower() or me.domain
    await call(Actor.of(me, client_ip(request)).require_domain, chosen)
    domain = await _hosted(web, chosen)
    if domain is None:
        raise HTTPException(404, f"The domain {chosen} is not hosted here.")
    records = await asyncio.to_thread(_domain_dns, web, domain)
    checked: list[dnscheck.Checked] | None = None
    if request.query_params.get("check") == "1":
        checked = await dnscheck.check_all(records.records, web.context.resolver)
    return render(request, "dns_records.html", domain=chosen, ascii_domain=domain,
                  dns=records, checked=checked, Status=dnscheck.Status)
