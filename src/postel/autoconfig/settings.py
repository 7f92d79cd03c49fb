"""The mail settings a client needs, derived from the live configuration.

One order everywhere (autoconfig, Autodiscover, the profile, SRV priorities and the setup
page): IMAP before POP3; implicit TLS before STARTTLS for IMAP and POP3 (RFC 8314 3.3);
for sending, SMTP submission on 587 with STARTTLS first, as the service page has always
recommended, then 465 with implicit TLS (RFC 8314 3.3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from postel.config import Config


class Security(enum.StrEnum):
    SSL = "SSL"  # implicit TLS from the first byte (RFC 8314)
    STARTTLS = "STARTTLS"  # plain connect, then STARTTLS/STLS before logging in


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "imap", "pop3" or "smtp"
    service: str  # the [listen] key and the SRV service name: "imaps", "submission", ...
    port: int
    security: Security

    @property
    def label(self) -> str:
        return {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[self.protocol]

    @property
    def security_text(self) -> str:
        """How the service page words it."""
        return "SSL/TLS" if self.security is Security.SSL else "STARTTLS"


# (protocol, [listen] service, security) in the preferred order described above.
ORDER: tuple[tuple[str, str, Security], ...] = (
    ("imap", "imaps", Security.SSL),
    ("imap", "imap", Security.STARTTLS),
    ("pop3", "pop3s", Security.SSL),
    ("pop3", "pop3", Security.STARTTLS),
    ("smtp", "submission", Security.STARTTLS),
    ("smtp", "submissions", Security.SSL),
)


@dataclass(frozen=True)
class MailSettings:
    hostname: str  # the server name clients connect to (config.hostname)
    endpoints: tuple[Endpoint, ...]  # enabled services only, in ORDER
    web_url: str  # https base of the web server, no trailing slash
    https_port: int | None  # None when HTTPS is disabled

    def of(self, protocol: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.protocol == protocol)

    def preferred(self, protocol: str) -> Endpoint | None:
        found = self.of(protocol)
        return found[0] if found else None

    def disabled_services(self) -> tuple[str, ...]:
        enabled = {e.service for e in self.endpoints}
        return tuple(service for _, service, _ in ORDER if service not in enabled)


def web_url(config: Config) -> str:
    """Where the web server is reached: web.base_url, else https://hostname[:port]."""
    if config.web.base_url:
        return config.web.base_url.rstrip("/")
    https = config.listen.get("https")
    if https is None or https.port == 443:
        return f"https://{config.hostname}"
    return f"https://{config.hostname}:{https.port}"


def mail_settings(config: Config) -> MailSettings:
    endpoints = []
    for protocol, service, security in ORDER:
        address = config.listen.get(service)
        if address is not None:
            endpoints.append(Endpoint(protocol, service, address.port, security))
    https = config.listen.get("https")
    return MailSettings(
        hostname=config.hostname,
        endpoints=tuple(endpoints),
        web_url=web_url(config),
        https_port=https.port if https else None,
    )
