"""The `postel` command line. Each subcommand parses its arguments and calls a service."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from postel.admin import aliases as alias_ops
from postel.admin import blocks as block_ops
from postel.admin import domains as domain_ops
from postel.admin import maintenance
from postel.admin import outbound as outbound_ops
from postel.admin import users as user_ops
from postel.admin.actor import Actor
from postel.admin.context import AdminContext
from postel.admin.errors import OperationError
from postel.admin.validate import backup_address, email_key
from postel.auth.passwords import WeakPassword, check_strength
from postel.config import ConfigError, load_config
from postel.mail.address import AddressError, Domain
from postel.store.api import Store
from postel.store.errors import StoreError
from postel.store.model import OutboundItem, Role

# Who the command line acts as: a system administrator, recorded as "cli:<OS user>".
CLI = Actor.cli()


class CliError(Exception):
    pass


def _store(args: argparse.Namespace) -> Store:
    from postel.app import join_running_server, open_store

    config = load_config(args.config)
    store = open_store(config)
    join_running_server(store, config)  # its changes reach a running server's workers
    return store


def _admin(args: argparse.Namespace) -> AdminContext:
    """The operations layer over the configured store; the CLI acts as `Actor.cli()`."""
    from postel.app import configure_passwords

    config = load_config(args.config)
    configure_passwords(config)  # a password set here is hashed with [auth]'s parameters
    return AdminContext.for_hostname(_store(args), config.hostname, config.web.system_from)


def _domain(text: str) -> Domain:
    try:
        return Domain.parse(text)
    except AddressError:
        raise CliError(f"{text!r} is not a valid domain name") from None


def _read_password(args: argparse.Namespace, email: str) -> str:
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    elif getattr(args, "password", None):
        password = str(args.password)
    elif sys.stdin.isatty():
        password = getpass.getpass(f"New password for {email}: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the two passwords differ")
    else:
        raise CliError("give --password-stdin or --password (no terminal to ask on)")
    try:
        check_strength(password, email)
    except WeakPassword as exc:
        raise CliError(f"password refused: {exc}") from None
    return password


# -- commands -------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from postel.app import StartupError, serve, serve_worker
    from postel.logging_setup import setup_logging
    from postel.supervisor import WorkerFailed, supervise, worker_argv, worker_setup_from_env

    config = load_config(args.config, dev=args.dev)
    if args.workers is not None:
        if args.workers < 0:
            raise CliError("--workers: expected 0 (one per core) or more")
        config = replace(config, server=replace(config.server, workers=args.workers))
    setup = worker_setup_from_env()  # set when the supervisor started this process
    setup_logging(config.log_level, worker=setup.index if setup is not None else None)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        pass
    count = config.server.worker_count()
    try:
        if setup is not None:
            asyncio.run(serve_worker(config, setup))
        elif count > 1:
            asyncio.run(supervise(config, worker_argv(args), count))
        else:
            asyncio.run(serve(config))
    except WorkerFailed:
        return 2  # the worker said why, on the same stderr
    except StartupError as exc:
        print(f"postel: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def cmd_domain_add(args: argparse.Namespace) -> int:
    name = domain_ops.add_domain(_admin(args), CLI, args.name)
    print(f"domain {name} added")
    return 0


def cmd_domain_list(args: argparse.Namespace) -> int:
    for name in domain_ops.list_domains(_admin(args), CLI):
        print(name)
    return 0


def cmd_domain_remove(args: argparse.Namespace) -> int:
    name = domain_ops.remove_domain(_admin(args), CLI, args.name)
    print(f"domain {name} removed")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    ctx = _admin(args)
    # Every check that does not need the password first: do not ask for it in vain.
    email = user_ops.check_new_user(ctx, CLI, args.email)
    if args.backup_email:
        backup_address(args.backup_email, email)
    password = _read_password(args, email)
    user_ops.add_user(ctx, CLI, {
        "email": email,
        "password": password,
        "role": args.role,
        "backup_email": args.backup_email,
        "display_name": args.name or "",
        "quota_bytes": args.quota_mb * 1024 * 1024,
    })
    print(f"user {email} added")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    ctx = _admin(args)
    account = user_ops.get_user(ctx, CLI, args.email)
    password = _read_password(args, account.email)
    user_ops.update_user(ctx, CLI, account.email, {"password": password})
    print(f"password of {account.email} changed")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    for account in user_ops.list_accounts(_admin(args), CLI, args.domain):
        flags = [account.role.value]
        if account.disabled:
            flags.append("disabled")
        if account.backup_email:
            flags.append(f"backup={account.backup_email}")
        print(f"{account.email}\t{' '.join(flags)}")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    ctx = _admin(args)
    account = user_ops.get_user(ctx, CLI, args.email)
    user_ops.delete_user(ctx, CLI, account.email)
    print(f"user {account.email} removed")
    return 0


def cmd_alias_add(args: argparse.Namespace) -> int:
    domain = alias_ops.domain_of_source(args.source)
    alias = alias_ops.add_alias(_admin(args), CLI, domain, args.source, args.destination)
    print(f"alias {alias.source} -> {alias.destination} added")
    return 0


def cmd_alias_list(args: argparse.Namespace) -> int:
    for alias in alias_ops.list_aliases(_admin(args), CLI, args.domain):
        print(f"{alias.source}\t{alias.destination}")
    return 0


def cmd_alias_remove(args: argparse.Namespace) -> int:
    domain = alias_ops.domain_of_source(args.source)
    ctx = _admin(args)
    alias_ops.remove_alias(ctx, CLI, domain, args.source, args.destination)
    source = args.source.strip().lower()
    print(f"alias {source} -> {email_key(args.destination, 'destination')} removed")
    return 0


def _queue_row(item: OutboundItem) -> str:
    waiting = f"next {item.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"
    if item.state != "queued":
        waiting = item.state
    return (f"{item.id}\t{item.queue_id}\t{item.mail_from or '<>'}\t{item.domain}\t"
            f"{len(item.recipients)} rcpt\t{item.size} B\t{item.attempts} tries\t{waiting}")


def _queue_id(text: str) -> int:
    if not text.isdigit():
        raise CliError(f"{text!r} is not a queue entry number (see `postel queue list`)")
    return int(text)


def cmd_queue_list(args: argparse.Namespace) -> int:
    items = outbound_ops.list_queue(_admin(args), CLI)
    for item in items:
        print(_queue_row(item))
    print(f"{len(items)} queued", file=sys.stderr)
    return 0


def cmd_queue_show(args: argparse.Namespace) -> int:
    item = outbound_ops.get_queued(_admin(args), CLI, _queue_id(args.id))
    for label, value in (
        ("id", item.id), ("queue id", item.queue_id), ("from", item.mail_from or "<>"),
        ("domain", item.domain), ("recipients", ", ".join(item.recipients)),
        ("size", f"{item.size} bytes"), ("state", item.state), ("attempts", item.attempts),
        ("queued at", f"{item.created_at:%Y-%m-%d %H:%M:%S}Z"),
        ("next attempt", f"{item.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"),
        ("last error", item.last_error or "-"), ("blob", item.blob_sha256),
    ):
        print(f"{label + ':':<14}{value}")
    return 0


def cmd_queue_retry(args: argparse.Namespace) -> int:
    if args.all == (args.id is not None):
        raise CliError("give either an entry number or --all")
    count = outbound_ops.retry_now(_admin(args), CLI, None if args.all else _queue_id(args.id))
    print(f"{count} queue entr{'y' if count == 1 else 'ies'} due now")
    return 0


def cmd_queue_delete(args: argparse.Namespace) -> int:
    outbound_ops.delete_queued(_admin(args), CLI, _queue_id(args.id))
    print(f"queue entry {args.id} deleted (no bounce sent)")
    return 0


def cmd_block_list(args: argparse.Namespace) -> int:
    auth = load_config(args.config).auth
    blocks = block_ops.list_blocks(_admin(args), CLI, auth)
    for block in blocks:
        until = datetime.fromtimestamp(block.until, UTC)
        print(f"{block.key:<42} {block.scope:<8} {block.state:<8} "
              f"{block.failures:>4} failures  until {until:%Y-%m-%d %H:%M:%S}Z")
    print(f"{len(blocks)} blocked or delayed (failed logins in the last "
          f"{auth.failure_window:g} s)", file=sys.stderr)
    return 0


def cmd_block_remove(args: argparse.Namespace) -> int:
    count = block_ops.remove_block(_admin(args), CLI, args.key)
    print(f"{args.key}: {count} failed login{'' if count == 1 else 's'} forgotten")
    return 0


def cmd_dkim_generate(args: argparse.Namespace) -> int:
    from postel.mailauth.dkim import dns_record, generate_key

    domain = _domain(args.domain).ascii
    selector = args.selector or f"postel{datetime.now(UTC):%Y%m}"
    if not selector.replace("-", "").replace("_", "").isalnum():
        raise CliError(f"{selector!r} is not a valid selector (letters, digits, - and _)")
    algorithm = "ed25519-sha256" if args.ed25519 else "rsa-sha256"
    pem = generate_key(algorithm, args.rsa)
    ctx = _admin(args)
    if ctx.store.directory.get_domain(domain) is None:
        print(f"note: {domain} is not hosted here (yet)", file=sys.stderr)
    outbound_ops.add_dkim_key(ctx, CLI, domain, selector, algorithm, pem)
    record = dns_record(pem)
    print(f"DKIM key {selector} for {domain} stored ({algorithm}); outbound mail from "
          f"{domain} is signed with it. Publish this TXT record:\n")
    # DNS strings are at most 255 octets (RFC 1035 3.3.14): split long records.
    chunks = " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))
    print(f"{selector}._domainkey.{domain}. IN TXT {chunks}")
    return 0


def cmd_dns(args: argparse.Namespace) -> int:
    from postel.autoconfig.dnscheck import Status, check_all
    from postel.autoconfig.dnsrecords import domain_dns
    from postel.autoconfig.settings import mail_settings
    from postel.mailauth.dkim import dns_record
    from postel.mailauth.dns import DnsResolver

    config = load_config(args.config)
    name = _domain(args.domain)
    domain = name.ascii
    store = _store(args)
    directory = store.directory
    if directory.get_domain(name.unicode) is None and directory.get_domain(domain) is None:
        print(f"note: {domain} is not hosted here (yet)", file=sys.stderr)
    dkim = [(selector, dns_record(pem)) for selector, _, pem in store.dkim.signing_keys(domain)]
    records = domain_dns(config, mail_settings(config), domain, dkim)
    if not args.check:
        print(records.zone(), end="")
        return 0
    results = asyncio.run(check_all(records.records, DnsResolver(config.dns)))
    for result in results:
        print(f"{result.status.value:<11} {result.record.zone_line()}")
        if result.status is Status.DIFFERENT:
            print(f"{'':<11} ; DNS has: {', '.join(result.seen)}")
        elif result.status is Status.UNKNOWN:
            print(f"{'':<11} ; lookup failed: {result.detail}")
    bad = [r for r in results if r.status not in (Status.FOUND, Status.SKIPPED)]
    print(f"{len(results) - len(bad)} of {len(results)} records as suggested", file=sys.stderr)
    return 1 if bad else 0


class ProgressBar:
    """A one-line bar on stderr for long work (a terminal only: logs and pipes stay clean)."""

    WIDTH = 30

    def __init__(self, stream: TextIO = sys.stderr, *, enabled: bool = True) -> None:
        self._stream = stream
        self._on = enabled and stream.isatty()
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._on:
            return
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self._stream.write(f"\r{stage:<10} [{bar}] {done}/{total}")
        if done >= total:
            self._stream.write("\n")
        self._stream.flush()


def cmd_check(args: argparse.Namespace) -> int:
    report = maintenance.check(_admin(args), CLI, repair=args.repair,
                               stale_after=args.stale_after, progress=ProgressBar())
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0 if report.clean else 1
    for problem in report.problems:
        state = "repaired" if problem.repaired else (
            "repairable" if problem.repairable else "error")
        print(f"{state:<11}{problem.kind:<28}{problem.subject}: {problem.detail}")
    looked = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.examined.items())
    print(f"examined {looked}")
    left = report.remaining
    repaired = len(report.problems) - len(left)
    fixable = sum(1 for p in left if p.repairable)
    print(f"{len(report.problems)} problem(s), {repaired} repaired, {len(left)} remaining"
          + (f" ({fixable} repairable: run `postel check --repair`)" if fixable else ""))
    return 0 if report.clean else 1


def cmd_backup(args: argparse.Namespace) -> int:
    summary = maintenance.backup(_admin(args), CLI, Path(args.dir), ProgressBar())
    rows = sum(summary.tables.values())
    print(f"backup in {args.dir}: {rows} rows, {summary.blobs} blobs ({summary.bytes} bytes), "
          f"schema {summary.revision}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    summary = maintenance.restore(_admin(args), CLI, Path(args.dir), ProgressBar())
    rows = sum(summary.tables.values())
    print(f"restored {rows} rows and {summary.blobs} blobs from {args.dir}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Copy the embedded store into PostgreSQL, with a progress bar per table."""
    from postel.app import StartupError, migrate_storage

    config = load_config(args.config)
    progress = ProgressBar(enabled=not args.quiet)
    try:
        reports = migrate_storage(config, args.to, progress=progress, batch=args.batch)
    except StartupError as exc:
        print(f"postel: migrate: {exc}", file=sys.stderr)
        return 2
    bad = [r for r in reports if not r.matches]
    for report in reports:
        mark = "ok" if report.matches else "DIFFERENT"
        print(f"{report.name:<26} {report.source_rows:>9} rows  {mark}")
    if bad:
        print(f"postel: migrate: {len(bad)} tables differ; run the command again to "
              "resume the copy", file=sys.stderr)
        return 1
    print(f"Every row copied and verified. Set [storage] url = \"{args.to}\" in the "
          "configuration and start Postel: clients keep their UIDs and sync state.")
    return 0


# -- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postel",
        description="Postel, an all-in-one mail server. Every command takes --config FILE "
        "(or the POSTEL_CONFIG environment variable).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: Any, name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        p.set_defaults(func=func)
        return p

    serve = command(sub, "serve", cmd_serve, "run every configured service")
    serve.add_argument(
        "--dev", action="store_true",
        help="use unprivileged ports on 127.0.0.1 (2525, 5587, 5465, 1143, 1993, ...)",
    )
    serve.add_argument(
        "--workers", type=int, metavar="N",
        help="worker processes (default: server.workers, 0 = one per CPU core; 1 = a "
        "single process)",
    )

    domain = sub.add_parser("domain", help="hosted domains").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(domain, "add", cmd_domain_add, "host a domain").add_argument("name")
    command(domain, "list", cmd_domain_list, "list hosted domains")
    command(domain, "remove", cmd_domain_remove, "stop hosting a domain (it must have no users)"
            ).add_argument("name")

    user = sub.add_parser("user", help="accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = command(user, "add", cmd_user_add, "create an account; the login is the full address")
    add.add_argument("email")
    group = add.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    group.add_argument("--password", metavar="P", help="the password (visible in `ps`)")
    add.add_argument("--backup-email", metavar="ADDR",
                     help="where password-reset mail goes")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    add.add_argument("--name", help="display name")
    add.add_argument("--quota-mb", type=int, default=0, help="mailbox quota, 0 = unlimited")
    passwd = command(user, "passwd", cmd_user_passwd, "set an account's password")
    passwd.add_argument("email")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    command(user, "list", cmd_user_list, "list accounts").add_argument("domain", nargs="?")
    command(user, "remove", cmd_user_remove, "delete an account and all its mail"
            ).add_argument("email")

    alias = sub.add_parser("alias", help="extra addresses and catch-alls").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    for name, func, text in (
        ("add", cmd_alias_add, "deliver SOURCE (or @domain for a catch-all) to DEST"),
        ("remove", cmd_alias_remove, "remove an alias"),
    ):
        p = command(alias, name, func, text)
        p.add_argument("source")
        p.add_argument("destination")
    command(alias, "list", cmd_alias_list, "list aliases").add_argument("domain", nargs="?")

    queue = sub.add_parser("queue", help="outbound mail waiting for delivery").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(queue, "list", cmd_queue_list, "list queued messages, one line per destination")
    command(queue, "show", cmd_queue_show, "show one queue entry").add_argument("id")
    retry = command(queue, "retry", cmd_queue_retry, "try an entry (or --all) now")
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all", action="store_true", help="every waiting entry")
    command(queue, "delete", cmd_queue_delete, "drop an entry without a bounce"
            ).add_argument("id")

    block = sub.add_parser(
        "block", help="addresses and accounts the login limiter blocks or delays",
        description="Failed logins are counted per IP address (IPv6: per /64) and per "
        "account over [auth] failure_window seconds; a third of the limit delays the next "
        "login, the limit blocks it (an account only for addresses its owner never used).",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    command(block, "list", cmd_block_list,
            "what is blocked or delayed, why (failures in the window) and until when")
    command(block, "remove", cmd_block_remove,
            "forget the failures of KEY, on the running server too").add_argument(
        "key", metavar="KEY", help="an IP address, an IPv6 /64 as listed, or an account")

    dkim = sub.add_parser("dkim", help="DKIM signing keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    generate = command(dkim, "generate", cmd_dkim_generate,
                       "make a signing key for DOMAIN and print its DNS record")
    generate.add_argument("domain")
    generate.add_argument("--selector", help="DNS selector (default: postelYYYYMM)")
    kind = generate.add_mutually_exclusive_group()
    kind.add_argument("--rsa", type=int, choices=[2048, 3072, 4096], default=2048,
                      help="RSA key bits (default 2048)")
    kind.add_argument("--ed25519", action="store_true",
                      help="an Ed25519 key (RFC 8463); publish an RSA key too for old verifiers")
    dns_command = command(sub, "dns", cmd_dns, "print the DNS records DOMAIN should publish "
                          "(MX, SPF, DKIM, DMARC, MTA-STS, autoconfig, SRV)")
    dns_command.add_argument("domain")
    dns_command.add_argument("--check", action="store_true",
                             help="query DNS and mark each record found, missing or "
                             "different (exit status 1 unless all are as suggested)")
    check = command(sub, "check", cmd_check, "check the store's consistency: blob files "
                    "against message and queue rows, UIDNEXT and HIGHESTMODSEQ, rows without "
                    "their parent, stale temp files (exit status 1 while problems remain)")
    check.add_argument("--repair", action="store_true",
                       help="fix what is safe to fix: remove unreferenced blobs and stale "
                       "temp files, raise UIDNEXT / HIGHESTMODSEQ / the UIDVALIDITY counter")
    check.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    check.add_argument("--stale-after", type=float, default=3600.0, metavar="SECONDS",
                       help="unreferenced blobs and temp files younger than this belong to "
                       "work in progress and are left alone (default 3600; 0 when the "
                       "server is stopped)")
    command(sub, "backup", cmd_backup, "copy the database (one consistent snapshot, while "
            "serving) and the message bodies into the new directory DIR, with a manifest of "
            "SHA-256 sums").add_argument("dir")
    command(sub, "restore", cmd_restore, "restore a backup DIR into the configured (new, "
            "empty) data directory and database; refuses a changed or incomplete backup"
            ).add_argument("dir")
    migrate = command(sub, "migrate", cmd_migrate,
                      "copy this installation's store (SQLite) into PostgreSQL, keeping "
                      "every UID, UIDVALIDITY and MODSEQ; stop the server first; run it "
                      "again to resume after an interruption")
    migrate.add_argument("--to", required=True, metavar="URL",
                         help="the target, postgresql://user@host/database (an empty "
                         "database, or the one an interrupted copy was writing to)")
    migrate.add_argument("--batch", type=int, default=1000, metavar="ROWS",
                         help="rows per transaction (default 1000)")
    migrate.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"postel: bad configuration: {exc}", file=sys.stderr)
        return 2
    except OperationError as exc:
        print(f"postel: {exc.message}", file=sys.stderr)
        return 1
    except (CliError, StoreError) as exc:
        print(f"postel: {exc}", file=sys.stderr)
        return 1
