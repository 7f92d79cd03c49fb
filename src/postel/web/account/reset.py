""""Forgot your password?": email address + on-screen code, a reset link to the backup
address, and the page the link opens to choose a new password.

The answer to a request is the same whether or not the account exists or has a backup
address, and the mail is sent after the response (so its timing tells nothing either).
"""

from __future__ import annotations

import asyncio

from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from postel.admin import reset
from postel.admin.errors import Kind, OperationError
from postel.web import captcha
from postel.web.pages import form, render
from postel.web.state import Web, client_ip, web_of

TOO_MANY = ("Too many password reset requests from your address. Please try again "
            "later, or ask your domain administrator.")


def request_reset(web: Web, email: str, ip: str) -> None:
    """Blocking, after the response: the reset link, within the per-account limit."""
    reset.request_reset(
        web.admin, email, ip, link_base=f"{web.base_url}/reset-password",
        lifetime=web.config.reset_token_lifetime,
        allowed=lambda key: web.reset_by_account.add(key) <= web.config.reset_max_per_account,
    )


async def _form_page(request: Request, status: int = 200, *, email: str = "",
                     error: str = "") -> Response:
    try:
        challenge = await asyncio.to_thread(captcha.new_challenge, web_of(request),
                                            client_ip(request))
    except captcha.TooManyChallenges:
        return render(request, "message.html", 429, title="Forgot your password?",
                      message=TOO_MANY)
    return render(request, "forgot.html", status, challenge=challenge, email=email,
                  error=error)


async def forgot_password(request: Request) -> Response:
    if request.method == "GET":
        return await _form_page(request)
    values = await form(request)
    web = web_of(request)
    ip = client_ip(request)
    email = values.get("email", "").strip()[:320]
    if web.reset_by_ip.add(ip) > web.config.reset_max_per_ip:
        return render(request, "message.html", 429, title="Forgot your password?",
                      message=TOO_MANY)
    solved = await asyncio.to_thread(
        captcha.solve, web, values.get("challenge", ""), values.get("captcha", "")[:32]
    )
    if not solved:
        return await _form_page(
            request, 400, email=email,
            error="The code did not match, or it expired. Please type the new code.",
        )
    if not email:
        return await _form_page(request, 400, error="Please enter your email address.")
    response = render(request, "forgot_sent.html", email=email,
                      minutes=max(1, round(web.config.reset_token_lifetime / 60)))
    response.background = BackgroundTask(request_reset, web, email, ip)
    return response


async def captcha_image(request: Request) -> Response:
    data = await asyncio.to_thread(captcha.image, web_of(request),
                                   request.path_params["challenge"])
    if data is None:
        raise HTTPException(404, "This code has expired; reload the page for a new one.")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


async def captcha_audio(request: Request) -> Response:
    data = await asyncio.to_thread(captcha.audio, web_of(request),
                                   request.path_params["challenge"])
    if data is None:
        raise HTTPException(404, "This code has expired; reload the page for a new one.")
    return Response(data, media_type="audio/wav", headers={"Cache-Control": "no-store"})


async def captcha_test_answer(request: Request) -> Response:
    """Test-only hook (web.test_hooks, loopback servers only): the answer of a challenge."""
    web = web_of(request)
    if not web.config.test_hooks:
        raise HTTPException(404, "Not found")
    answer = await asyncio.to_thread(captcha.answer_for_tests, web,
                                     request.path_params["challenge"])
    if answer is None:
        raise HTTPException(404, "Not found")
    return PlainTextResponse(answer)


async def reset_password(request: Request) -> Response:
    web = web_of(request)
    if request.method == "GET":
        token = request.query_params.get("token", "")
        if not await asyncio.to_thread(reset.reset_token_valid, web.admin, token):
            return render(request, "message.html", 410, title="Reset your password",
                          message="This reset link has expired or has already been used. "
                                  "Ask for a new one with “Forgot your password?”.",
                          link=("/forgot-password", "Forgot your password?"))
        return render(request, "reset.html", token=token, error="")
    values = await form(request)
    token = values.get("token", "")
    try:
        await asyncio.to_thread(
            reset.complete_reset, web.admin, token, values.get("password", ""),
            values.get("confirm", ""), client_ip(request),
        )
    except OperationError as exc:
        if exc.kind is Kind.GONE:
            return render(request, "message.html", 410, title="Reset your password",
                          message=exc.message,
                          link=("/forgot-password", "Forgot your password?"))
        return render(request, "reset.html", exc.status, token=token, error=exc.message)
    return render(request, "message.html", title="Password changed",
                  message="Your password has been changed. Use it now to log on here and "
                          "in your email programs (IMAP, POP3, SMTP). Every other session "
                          "was signed out.",
                  link=("/logon", "Log on"))
