"""What every web view needs, built once per server: the Postel context, templates, the
cookie secret and the in-memory rate counters."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request

from postel.admin.context import AdminContext
from postel.auth.limits import WindowCounter
from postel.config import Config, WebConfig
from postel.context import Context
from postel.store.api import Store

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def load_secret(data_dir: Path) -> bytes:
    """The key CSRF tokens are derived with; kept in data_dir so restarts keep forms valid."""
    path = data_dir / "web" / "secret.key"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data


def default_base_url(config: Config) -> str:
    if config.web.base_url:
        return config.web.base_url.rstrip("/")
    https = config.listen.get("https")
    if https is None or https.port == 443:
        return f"https://{config.hostname}"
    return f"https://{config.hostname}:{https.port}"


@dataclass
class Web:
    context: Context
    secret: bytes
    templates: jinja2.Environment
    base_url: str
    login_failures: WindowCounter
    reset_by_ip: WindowCounter
    reset_by_account: WindowCounter
    captcha_by_ip: WindowCounter
    admin: AdminContext
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> WebConfig:
        return self.context.config.web

    @property
    def captcha_max_per_ip(self) -> int:
        """CAPTCHA challenges one IP may create per `captcha_lifetime` (each is a row in the
        store until it expires): five per allowed reset request, at least 20."""
        return max(20, 5 * self.config.reset_max_per_ip)

    @property
    def store(self) -> Store:
        return self.context.store

    @classmethod
    def build(cls, context: Context) -> Web:
        config = context.config
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        return cls(
            context=context,
            secret=load_secret(config.data_dir),
            templates=env,
            base_url=default_base_url(config),
            login_failures=WindowCounter(config.auth.failure_window),
            reset_by_ip=WindowCounter(config.web.reset_window),
            reset_by_account=WindowCounter(config.web.reset_window),
            captcha_by_ip=WindowCounter(config.web.captcha_lifetime),
            admin=AdminContext.for_hostname(context.store, config.hostname,
                                            config.web.system_from, context.limiter),
        )


def web_of(request: Request) -> Web:
    web = request.app.state.web
    assert isinstance(web, Web)
    return web


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
