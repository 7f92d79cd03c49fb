"""Typed, validated settings read from one TOML file.

Every key is optional. An unknown key or a bad value stops start-up with a message that
names the key (``ConfigError``), because a typo that is silently ignored is how mail
servers end up open relays. Each field's comment is its documentation.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Services in the order they are started and printed.
SERVICES = (
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "http",
    "https",
)

STANDARD_LISTEN = {
    "smtp": "0.0.0.0:25",
    "submission": "0.0.0.0:587",
    "submissions": "0.0.0.0:465",
    "imap": "0.0.0.0:143",
    "imaps": "0.0.0.0:993",
    "pop3": "0.0.0.0:110",
    "pop3s": "0.0.0.0:995",
    "http": "0.0.0.0:80",
    "https": "0.0.0.0:443",
}

# `postel serve --dev`: the same services on unprivileged ports, loopback only.
DEV_LISTEN = {
    "smtp": "127.0.0.1:2525",
    "submission": "127.0.0.1:5587",
    "submissions": "127.0.0.1:5465",
    "imap": "127.0.0.1:1143",
    "imaps": "127.0.0.1:1993",
    "pop3": "127.0.0.1:1110",
    "pop3s": "127.0.0.1:1995",
    "http": "127.0.0.1:8080",
    "https": "127.0.0.1:8443",
}


class ConfigError(Exception):
    """A setting is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsConfig:
    # PEM certificate chain and private key. Both absent: a self-signed certificate for
    # `hostname` is generated in data_dir on first start.
    cert: Path | None = None
    # The private key of `cert`, PEM (readable only by the user Postel runs as).
    key: Path | None = None


@dataclass(frozen=True)
class StorageConfig:
    # SQLAlchemy URL. Default: sqlite:///<data_dir>/postel.db. PostgreSQL:
    # postgresql://user@host/db (the psycopg 3 driver is used).
    url: str = ""
    # Where message bodies live with PostgreSQL: "database" (in the database, so every host
    # of a cluster reads them; each host's blob directory is only a cache) or "files" (only
    # in the blob directory, which every host must then share). SQLite always uses files.
    bodies: str = "database"


@dataclass(frozen=True)
class ServerConfig:
    """The process model: one supervising process binds every listener, then starts worker
    processes that inherit the sockets and each run every protocol on their own event
    loop. The test harness pins 1; `postel serve` defaults to one worker per core.
    Connection caps ([connections], max_connections_per_ip) count per worker."""

    # Worker processes; 0 = one per CPU core. 1 runs everything in the one process (no
    # supervisor). `postel serve --workers N` overrides it.
    workers: int = 0
    # Seconds before restarting a worker that died; doubled after each quick death, up to
    # worker_restart_delay_max.
    worker_restart_delay: float = 0.5
    # Upper bound of the restart delay of a worker that keeps dying.
    worker_restart_delay_max: float = 30.0
    # Seconds a supervisor waits for all workers to report ready at start-up.
    worker_start_timeout: float = 60.0
    # Debugging and tests only: IMAP ID's answer carries `x-worker` (this worker's index),
    # so a test can tell which process serves a connection.
    expose_worker_id: bool = False

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ConnectionsConfig:
    # Client connections of all listeners together; beyond it a new one is closed at
    # accept. 0: the open-file limit (raised to its hard limit at start) minus 128 kept
    # for the database, blobs, spool files and outbound deliveries.
    max_total: int = 0
    # Seconds a client has for its TLS handshake (implicit TLS ports, and after STARTTLS
    # or STLS) before the connection is cut.
    handshake_timeout: float = 10.0
    # Addresses or networks of proxies (a load balancer, an IMAP/SMTP proxy, a webmail)
    # allowed to pass on the real client's address: by a PROXY protocol header on the
    # listeners in `proxy_protocol`, by IMAP ID "x-originating-ip" (RFC 2971) before
    # login, by SMTP XCLIENT (Postfix), by X-Forwarded-For on HTTP and HTTPS. Empty:
    # nobody is; what a client claims about its address is ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Listen keys (e.g. ["imap", "smtp"]) whose connections start with a PROXY protocol
    # v1 or v2 header (HAProxy's proxy-protocol.txt). Such a listener closes a connection
    # from outside `trusted_proxies`, or with a malformed header, before a word is said.
    proxy_protocol: tuple[str, ...] = ()
    # Commands a second one connection may send on average (SMTP, IMAP, POP3), beyond a
    # burst of `command_burst`; a flood past it gets the protocol's error (421 4.7.0,
    # * BYE, -ERR) and the connection is cut. 0: no limit. SMTP BDAT chunks are data, not
    # counted; a POP3 client pipelining DELE for more than `command_burst` messages faster
    # than this would be cut, hence the generous default.
    max_commands_per_second: float = 100.0
    # Commands sent at once (pipelined) before `max_commands_per_second` counts.
    command_burst: int = 1000
    # Bytes of replies waiting for a client that does not read them before the server
    # stops producing more for it (the rest waits; memory stays bounded per connection).
    max_pending_output: int = 1024 * 1024
    # Seconds the pending replies may stay over `max_pending_output` without the client
    # reading any of them; then the connection is cut (0: never).
    send_timeout: float = 120.0


@dataclass(frozen=True)
class SmtpConfig:
    # Largest message accepted, in bytes (advertised as SIZE; 552 beyond it).
    max_message_size: int = 50 * 1024 * 1024
    # Longest command line, in bytes including CRLF (RFC 5321 4.5.3.1.4 says at least 512).
    max_line_length: int = 4096
    # Recipients per message (RFC 5321 4.5.3.1.8 says at least 100); 452 beyond it.
    max_recipients: int = 100
    # Transactions (MAIL commands) per connection; 421 and close beyond it. Advertised
    # with max_recipients in EHLO as LIMITS MAILMAX / RCPTMAX (RFC 9422).
    max_transactions: int = 1000
    # Concurrent connections from one IP address; 421 beyond it.
    max_connections_per_ip: int = 20
    # Seconds a client may stay silent before 421 and close (RFC 5321 4.5.3.2.7: 5 minutes).
    idle_timeout: float = 300.0
    # Failed AUTH attempts in one connection before it is closed with 421.
    max_auth_failures: int = 3
    # Commands that are not part of a transaction (NOOP, RSET, VRFY, bad syntax) before 421.
    max_junk_commands: int = 50
    # Allow AUTH without TLS from loopback addresses (for local tools); off by default.
    allow_plaintext_auth_on_loopback: bool = False
    # Seconds one connection may last in all, however busy; then 421 4.7.0 and close (0: no limit).
    max_session_time: float = 3600.0


@dataclass(frozen=True)
class Pop3Config:
    # Longest command line in bytes (RFC 2449 4: 255 octets of command; we allow more).
    max_line_length: int = 1024
    # Seconds of client silence before the server closes (RFC 1939 3: at least 10 minutes).
    idle_timeout: float = 600.0
    # Failed logins in one connection before it is closed.
    max_auth_failures: int = 3
    # Concurrent connections from one IP address.
    max_connections_per_ip: int = 20
    # Allow USER/PASS and AUTH without TLS from loopback addresses; off by default.
    allow_plaintext_auth_on_loopback: bool = False
    # Seconds one connection may last in all, however busy; then -ERR and close (0: no limit).
    max_session_time: float = 3600.0


@dataclass(frozen=True)
class ImapConfig:
    # Longest command line in bytes, literals excluded.
    max_line_length: int = 65536
    # Largest literal (APPEND message or string) in bytes; NO [TOOBIG] beyond it.
    max_literal_size: int = 50 * 1024 * 1024
    # All literals of one command together (MULTIAPPEND, or many strings), in bytes;
    # NO [TOOBIG] beyond it.
    max_command_size: int = 100 * 1024 * 1024
    # Largest literal before login (RFC 7888 LITERAL-: 4096). A bigger synchronizing one
    # gets NO [TOOBIG] instead of "+"; a bigger non-synchronizing one BAD and BYE.
    max_literal_size_before_login: int = 4096
    # All literals of one command together before login, in bytes.
    max_command_size_before_login: int = 16 * 1024
    # Deepest nesting of parenthesised lists in a command (search keys, fetch attributes).
    max_nesting: int = 32
    # Seconds of client silence before logout (RFC 9051 5.4: at least 30 minutes).
    idle_timeout: float = 1800.0
    # Failed logins in one connection before it is closed.
    max_auth_failures: int = 3
    # Concurrent connections from one IP address.
    max_connections_per_ip: int = 50
    # Allow LOGIN/AUTHENTICATE without TLS from loopback addresses; off by default.
    allow_plaintext_auth_on_loopback: bool = False
    # Largest METADATA entry value in bytes (RFC 5464); SETMETADATA beyond it gets
    # NO [METADATA MAXSIZE n].
    metadata_max_value_size: int = 64 * 1024
    # Most METADATA entries on one mailbox, on one user's server entries, and on the
    # server's shared entries; more gets NO [METADATA TOOMANY].
    metadata_max_entries: int = 256
    # Keep /private METADATA entries; false refuses them with NO [METADATA NOPRIVATE].
    metadata_private: bool = True
    # Seconds one connection may last in all (IDLE included); then * BYE and close (0: no limit).
    max_session_time: float = 86400.0
    # Mailboxes one account may have (INBOX included); CREATE beyond it gets NO [LIMIT].
    max_mailboxes: int = 1000
    # Keywords (flags not starting with a backslash) on one message; STORE beyond it
    # gets NO [LIMIT].
    max_keywords_per_message: int = 64
    # Distinct keywords in use in one mailbox; a STORE that adds more gets NO [LIMIT].
    max_keywords_per_mailbox: int = 256
    # Mailboxes one NOTIFY SET may watch (RFC 5465 3.1: beyond it, NO
    # [NOTIFICATIONOVERFLOW] and the previous NOTIFY stays).
    max_notify_mailboxes: int = 1000


@dataclass(frozen=True)
class AuthConfig:
    # Failed logins per IP within `failure_window` seconds before that IP is refused.
    max_failures_per_ip: int = 10
    # Failed logins per account within `failure_window` seconds before it is locked.
    max_failures_per_account: int = 5
    # Seconds a failed login is remembered for the two limits above.
    failure_window: float = 900.0
    # Seconds the next login waits once an IP or account has failed a few times (a third
    # of its limit), doubled per further failure: slowed down before it is refused.
    failure_delay: float = 0.5
    # The longest that wait gets, in seconds; a locked account's logins from addresses
    # its owner never used wait this long (and only max_failures_per_account of them
    # per window get their password checked).
    failure_delay_max: float = 8.0
    # Seconds a verified password is remembered in memory (a keyed HMAC-SHA-256 digest,
    # never the password), so a client that reconnects with it is checked without Argon2;
    # 0 turns the cache off. A password change, disable or removal forgets it at once.
    credentials_cache_ttl: float = 600.0
    # Accounts-and-passwords the cache above holds at most; the least recently used go.
    credentials_cache_size: int = 10000
    # Argon2id passes over memory (RFC 9106 4) for new hashes; a stored hash made with
    # other parameters is rehashed at its next successful login.
    argon2_time_cost: int = 3
    # Argon2id memory in KiB (65536 = 64 MiB, RFC 9106's second recommended option).
    argon2_memory_kib: int = 65536
    # Argon2id lanes (threads) per hash.
    argon2_parallelism: int = 4


@dataclass(frozen=True)
class WebConfig:
    # Networks allowed to read /metrics (Prometheus text format); others get 403.
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # Seconds a signed-in web session may stay unused before it is signed out.
    session_idle_timeout: float = 1800.0
    # Seconds after logon when a web session ends however active it is.
    session_max_age: float = 43200.0
    # Seconds a "Forgot your password?" link stays valid (it is also single-use).
    reset_token_lifetime: float = 3600.0
    # Reset requests per client IP within `reset_window` seconds before 429.
    reset_max_per_ip: int = 10
    # Reset mails per account within `reset_window` seconds (more are silently dropped).
    reset_max_per_account: int = 3
    # Seconds over which the two reset limits above are counted.
    reset_window: float = 3600.0
    # Seconds a CAPTCHA challenge may be answered; each challenge takes one answer.
    captcha_lifetime: float = 600.0
    # Digits in a CAPTCHA (digits, so the audio alternative reads the same answer).
    captcha_length: int = 6
    # Seconds a failed web logon is delayed, doubled per recent failure of that IP or
    # account, up to `login_backoff_max`; lockout itself is [auth]'s shared limiter.
    login_backoff_base: float = 0.25
    # The longest that delay gets, in seconds.
    login_backoff_max: float = 8.0
    # From address of reset and notice mails. Default: postmaster@<hostname>.
    system_from: str = ""
    # Start of links in mails, e.g. "https://mail.example.com". Default: https://<hostname>
    # (with the https port when it is not 443). Never taken from the request's Host header.
    base_url: str = ""
    # Strict-Transport-Security max-age in seconds on HTTPS responses (0 sends none).
    hsts_max_age: int = 31536000
    # Users per page in the admin lists.
    page_size: int = 25
    # Largest request body in bytes the web server accepts (413 beyond it).
    max_request_body: int = 1024 * 1024
    # Concurrent HTTP and HTTPS connections from one IP address; beyond it a new one is
    # closed at accept, before its TLS handshake.
    max_connections_per_ip: int = 50
    # Seconds a connection has from accept (TLS handshake included), and a kept-alive one
    # after each response, to send complete request headers; then it is closed.
    header_timeout: float = 10.0
    # Test-only hooks (the CAPTCHA answer at /__test__/captcha/ID). Refused at start-up
    # unless every listen address is loopback, so a production server cannot enable them.
    test_hooks: bool = False


@dataclass(frozen=True)
class DnsConfig:
    # Resolvers to ask, as "IP" or "IP:PORT" (IPv6: "[::1]:53"). Empty: the system's
    # /etc/resolv.conf; then names under the reserved .test, .example, .invalid and
    # .localhost (RFC 6761) are never sent out and resolve to a temporary failure.
    nameservers: tuple[str, ...] = ()
    # Seconds one DNS lookup may take (all resolvers and retries together).
    timeout: float = 5.0


@dataclass(frozen=True)
class OutboundConfig:
    # Port remote mail exchangers are reached on (RFC 5321: 25; tests use a high port).
    mx_port: int = 25
    # Seconds to wait before each retry after a temporary failure; the last one repeats.
    retry_schedule: tuple[float, ...] = (300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
    # Seconds after queueing when a message that still fails temporarily is bounced.
    expire_after: float = 5 * 86400.0
    # Seconds after queueing when the sender is told the message is delayed (0: never).
    delay_warning_after: float = 4 * 3600.0
    # Deliveries in flight at once, all destinations together.
    max_connections: int = 50
    # Deliveries in flight at once to one destination domain.
    max_connections_per_domain: int = 5
    # Seconds to wait for a TCP connection to a mail exchanger.
    connect_timeout: float = 30.0
    # Seconds to wait for each reply (RFC 5321 4.5.3.2 suggests 5 to 10 minutes).
    command_timeout: float = 300.0
    # Seconds between looks at the queue for retries that came due. A row queued by the
    # server wakes the queue at once; rows made due by another process (`postel queue
    # retry`) wait for this look.
    poll_interval: float = 1.0
    # Seconds a host's claim on a queued message lasts: a host that dies mid-delivery has
    # its messages taken over by the other hosts once it runs out. Longer than any delivery
    # attempt (connect, TLS, DATA of the largest message); a host's own claims from before
    # a restart are released at its start at once.
    claim_lease: float = 900.0
    # Relay all outbound mail through this "host:port" instead of MX lookups ("" = off).
    smarthost: str = ""
    # How to secure the smarthost connection: "starttls", "tls" (implicit) or "none".
    smarthost_tls: str = "starttls"
    # User name for AUTH at the smarthost ("" = no AUTH).
    smarthost_username: str = ""
    # Password for AUTH at the smarthost.
    smarthost_password: str = ""
    # PEM file of CA certificates that the smarthost's certificate must chain to ("" = the
    # system's). With AUTH the certificate is always verified: credentials never go to an
    # unverified peer.
    smarthost_cafile: str = ""
    # How the MX hosts of a REQUIRETLS message (RFC 8689 4.2.1) must be authenticated:
    # "dnssec" (the MX answer must carry the AD bit of the resolver, so [dns] nameservers
    # must be a validating resolver you trust, e.g. a local unbound; otherwise such mail
    # bounces with 5.7.30) or "certificate" (any MX answer will do; the TLS certificate,
    # always verified against the MX name, is then the only check, which a forged MX answer
    # naming a host with a valid certificate defeats). MTA-STS is not consulted. Either way
    # the certificate must verify and the MX must offer REQUIRETLS; a smarthost counts as
    # authenticated by this configuration.
    requiretls_mx_auth: str = "dnssec"


@dataclass(frozen=True)
class MailauthConfig:
    # What to do with mail whose DMARC check fails under a domain policy of p=reject:
    # "reject" (550 5.7.1; p=quarantine goes to Junk), "quarantine" (both go to Junk) or
    # "none" (deliver to INBOX; the result is only recorded in Authentication-Results).
    dmarc_policy: str = "reject"
    # Answer 451 (try again later) when a DNS failure keeps DMARC from being evaluated.
    defer_on_dns_error: bool = True
    # Client networks whose mail on port 25 is not checked (SPF, DKIM, DMARC), e.g. local
    # tools; forged Authentication-Results headers are still removed.
    trusted_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class AutoconfigConfig:
    # MTA-STS (RFC 8461) policy mode served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt:
    # "testing" (senders report but still deliver), "enforce" (senders refuse delivery
    # without valid TLS to the MX), "none" (withdraw a policy), or "" (not served). The
    # certificate must then also cover mta-sts.DOMAIN of every hosted domain.
    mta_sts_mode: str = ""
    # Seconds senders may cache the MTA-STS policy (RFC 8461 3.2: at most 31557600).
    mta_sts_max_age: int = 604800
    # Seconds a QR-code link on "Set up your device" stays valid; it opens the account's
    # settings and profile on a phone without a logon (it never carries the password).
    device_link_lifetime: float = 900.0


@dataclass(frozen=True)
class Config:
    # The name this server greets with and puts in Received headers and certificates.
    hostname: str = field(default_factory=socket.getfqdn)
    # Where the SQLite database, message blobs, spool and generated certificate live.
    data_dir: Path = Path("data")
    # Log level: debug, info, warning, error.
    log_level: str = "info"
    # Address per service; "" disables a service.
    listen: dict[str, ListenAddress | None] = field(default_factory=dict)
    tls: TlsConfig = TlsConfig()
    storage: StorageConfig = StorageConfig()
    server: ServerConfig = ServerConfig()
    connections: ConnectionsConfig = ConnectionsConfig()
    smtp: SmtpConfig = SmtpConfig()
    pop3: Pop3Config = Pop3Config()
    imap: ImapConfig = ImapConfig()
    auth: AuthConfig = AuthConfig()
    web: WebConfig = WebConfig()
    dns: DnsConfig = DnsConfig()
    outbound: OutboundConfig = OutboundConfig()
    mailauth: MailauthConfig = MailauthConfig()
    autoconfig: AutoconfigConfig = AutoconfigConfig()

    @property
    def storage_url(self) -> str:
        if self.storage.url:
            return self.storage.url
        return f"sqlite:///{(self.data_dir / 'postel.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        # Spool and half-written blobs; on the same file system as blob_dir so rename is atomic.
        return self.data_dir / "tmp"


def _parse_listen(key: str, value: Any) -> ListenAddress | None:
    if not isinstance(value, str):
        raise ConfigError(f"listen.{key}: expected a string like \"0.0.0.0:25\" or \"\"")
    if value == "":
        return None
    host, sep, port_text = value.rpartition(":")
    # isascii(): str.isdigit() also accepts "²" (int() raises) and other scripts' digits.
    if not sep or not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(f"listen.{key}: {value!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"listen.{key}: port {port} is out of range")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host not in ("localhost",) and not host.replace("-", "").replace(".", "").isalnum():
            raise ConfigError(f"listen.{key}: {host!r} is not an IP address or host name") from None
    return ListenAddress(host, port)


def _section(cls: type[Any], name: str, raw: Any) -> Any:
    """Build a flat dataclass section, checking each key's presence and type."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown setting (known: {', '.join(known)})")
        default = getattr(defaults, key)
        values[key] = _coerce(f"{name}.{key}", value, default)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        return _number(key, value, whole=isinstance(default, int))
    if isinstance(default, Path) or default is None:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    if isinstance(default, tuple):
        want_numbers = bool(default) and isinstance(default[0], float)
        item_type = (int, float) if want_numbers else str
        if not isinstance(value, list) or not all(
            isinstance(v, item_type) and not isinstance(v, bool) for v in value
        ):
            kind = "numbers" if want_numbers else "strings"
            raise ConfigError(f"{key}: expected a list of {kind}, got {value!r}")
        if want_numbers:
            return tuple(_number(key, v, whole=False) for v in value)
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported value {value!r}")  # pragma: no cover


def _number(key: str, value: Any, *, whole: bool) -> Any:
    """A finite, non-negative number; `whole` refuses fractions (5e7 is still fine), so
    a typo like 4096.5 is reported instead of silently truncated."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{key}: number too large, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if number < 0:
        raise ConfigError(f"{key}: must not be negative, got {value!r}")
    if whole:
        if not number.is_integer():
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return int(value)
    return number


def parse_config(raw: dict[str, Any], *, dev: bool = False, base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document. `base_dir` anchors relative paths (the file's folder)."""
    sections: dict[str, type[Any]] = {
        "tls": TlsConfig,
        "storage": StorageConfig,
        "server": ServerConfig,
        "connections": ConnectionsConfig,
        "smtp": SmtpConfig,
        "pop3": Pop3Config,
        "imap": ImapConfig,
        "auth": AuthConfig,
        "web": WebConfig,
        "dns": DnsConfig,
        "outbound": OutboundConfig,
        "mailauth": MailauthConfig,
        "autoconfig": AutoconfigConfig,
    }
    top_keys = {"hostname", "data_dir", "log_level", "listen", *sections}
    for key in raw:
        if key not in top_keys:
            raise ConfigError(f"{key}: unknown setting (known: {', '.join(sorted(top_keys))})")
    config = Config()
    if "hostname" in raw:
        hostname = raw["hostname"]
        name = hostname.lower().rstrip(".") if isinstance(hostname, str) else ""
        # It goes into greetings, Received headers and certificates: no whitespace or
        # control characters, and something must be left once the root dot is gone.
        if not name or any(c.isspace() or not c.isprintable() for c in name):
            raise ConfigError(f"hostname: expected a host name, got {hostname!r}")
        config = replace(config, hostname=name)
    if "data_dir" in raw:
        config = replace(config, data_dir=_coerce("data_dir", raw["data_dir"], Path()))
    if "log_level" in raw:
        level = raw["log_level"]
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: expected debug, info, warning or error, got {level!r}")
        config = replace(config, log_level=level)

    defaults = DEV_LISTEN if dev else STANDARD_LISTEN
    listen: dict[str, ListenAddress | None] = {
        name: _parse_listen(name, text) for name, text in defaults.items()
    }
    raw_listen = raw.get("listen", {})
    if not isinstance(raw_listen, dict):
        raise ConfigError("listen: expected a table")
    for name, text in raw_listen.items():
        if name not in SERVICES:
            raise ConfigError(f"listen.{name}: unknown service (known: {', '.join(SERVICES)})")
        listen[name] = _parse_listen(name, text)
    config = replace(config, listen=listen)

    for name, cls in sections.items():
        if name in raw:
            config = replace(config, **{name: _section(cls, name, raw[name])})
    if (config.tls.cert is None) != (config.tls.key is None):
        missing, given = ("key", "cert") if config.tls.key is None else ("cert", "key")
        raise ConfigError(f"tls.{missing}: required with tls.{given} (set both, or neither)")
    url = config.storage.url
    if url and not url.startswith(("sqlite:", "postgresql:", "postgresql+")):
        raise ConfigError(f"storage.url: {url!r} is neither sqlite:///PATH nor postgresql://...")
    if config.storage.bodies not in ("database", "files"):
        raise ConfigError(f"storage.bodies: expected database or files, "
                          f"got {config.storage.bodies!r}")
    _check_outbound(config)
    if config.imap.max_command_size < config.imap.max_literal_size:
        raise ConfigError("imap.max_command_size: must be at least imap.max_literal_size")
    if config.autoconfig.mta_sts_mode not in ("", "testing", "enforce", "none"):
        raise ConfigError("autoconfig.mta_sts_mode: expected testing, enforce, none or \"\", "
                          f"got {config.autoconfig.mta_sts_mode!r}")
    if not 0 < config.autoconfig.mta_sts_max_age <= 31557600:
        raise ConfigError("autoconfig.mta_sts_max_age: expected 1 to 31557600 seconds")
    _check_argon2(config.auth)

    if base_dir is not None:
        config = _anchor_paths(config, base_dir)
    return config


def _check_argon2(auth: AuthConfig) -> None:
    """Argon2's own floors (RFC 9106 3.1: p >= 1, m >= 8p KiB, t >= 1), refused here
    rather than as a traceback from the first password change."""
    if auth.argon2_time_cost < 1:
        raise ConfigError("auth.argon2_time_cost: expected at least 1")
    if not 1 <= auth.argon2_parallelism <= 255:
        raise ConfigError("auth.argon2_parallelism: expected 1 to 255")
    if not 8 * auth.argon2_parallelism <= auth.argon2_memory_kib <= 4 * 1024 * 1024:
        raise ConfigError("auth.argon2_memory_kib: expected 8 x argon2_parallelism to 4194304")


def _check_outbound(config: Config) -> None:
    """Values of [dns], [outbound] and [mailauth] that the type alone does not check."""
    if config.mailauth.dmarc_policy not in ("reject", "quarantine", "none"):
        raise ConfigError("mailauth.dmarc_policy: expected reject, quarantine or none, "
                          f"got {config.mailauth.dmarc_policy!r}")
    for network in config.mailauth.trusted_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"mailauth.trusted_networks: {network!r} is not a network") from None
    if config.outbound.smarthost_tls not in ("starttls", "tls", "none"):
        raise ConfigError("outbound.smarthost_tls: expected starttls, tls or none, "
                          f"got {config.outbound.smarthost_tls!r}")
    if config.outbound.requiretls_mx_auth not in ("dnssec", "certificate"):
        raise ConfigError("outbound.requiretls_mx_auth: expected dnssec or certificate, "
                          f"got {config.outbound.requiretls_mx_auth!r}")
    if config.outbound.smarthost:
        _parse_listen("smarthost", config.outbound.smarthost)
    cafile = config.outbound.smarthost_cafile
    if cafile and not Path(cafile).is_file():
        raise ConfigError(f"outbound.smarthost_cafile: {cafile} does not exist or is not a file")
    if not config.outbound.retry_schedule:
        raise ConfigError("outbound.retry_schedule: give at least one delay")
    for network in config.connections.trusted_proxies:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"connections.trusted_proxies: {network!r} is not an address or network"
            ) from None
    for name in config.connections.proxy_protocol:
        if name not in SERVICES:
            raise ConfigError(f"connections.proxy_protocol: {name!r} is not a listen key "
                              f"(known: {', '.join(SERVICES)})")
    for network in config.web.metrics_allow:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"web.metrics_allow: {network!r} is not a network") from None
    for server in config.dns.nameservers:
        nameserver_address(server)


def nameserver_address(text: str) -> tuple[str, int]:
    """"IP", "IP:PORT" or "[IPv6]:PORT" -> (ip, port); port 53 when none is given."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"dns.nameservers: {text!r} is not IP or IP:PORT") from None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"dns.nameservers: bad port in {text!r}")
    return host, int(port)


def _anchor_paths(config: Config, base_dir: Path) -> Config:
    def anchor(path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else base_dir / path

    data_dir = anchor(config.data_dir)
    assert data_dir is not None
    tls = TlsConfig(cert=anchor(config.tls.cert), key=anchor(config.tls.key))
    return replace(config, data_dir=data_dir, tls=tls)


def load_config(path: str | os.PathLike[str] | None, *, dev: bool = False) -> Config:
    """Read the TOML file at `path` (or $POSTEL_CONFIG); no file means every default."""
    if path is None:
        path = os.environ.get("POSTEL_CONFIG") or None
    if path is None:
        return parse_config({}, dev=dev)
    file = Path(path)
    try:
        with file.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML files are UTF-8 (TOML 1.0 "Spec")
        raise ConfigError(f"config file {file} is not valid UTF-8: {exc}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"config file {file} cannot be read: {exc.strerror}") from None
    # Relative paths in a config file are relative to the directory the server runs in,
    # like the issue's `data_dir = "data"` example; this matches what operators expect
    # from `make run` in the checkout.
    return parse_config(raw, dev=dev)
