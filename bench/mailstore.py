"""Hooks for the mailbox-access benchmarks (POP3 and IMAP against Debian's Dovecot).

They measure only protocols Postel actually serves: a protocol whose service is not wired
into `postel.app.service_factories()` yet is skipped with a note instead of a number.
A benchmark added here follows bench/smtp_delivery.py: start Postel and the reference in
the same run, drive both with the same client load, verify what was read, return rows.
"""

from __future__ import annotations

from bench.framework import Options, Report, Row


def postel_serves(protocol: str) -> bool:
    """True when a service for `protocol` ("pop3", "imap") is wired into Postel's app."""
    from postel.app import service_factories

    return any(protocol in factory.__name__.lower() for factory in service_factories())


def _skipped(protocol: str, report: Report) -> list[Row]:
    report.notes.append(
        f"{protocol.upper()} vs Dovecot: skipped, Postel does not serve {protocol.upper()} "
        "yet (no service for it in postel.app.service_factories())."
    )
    return []


def pop3_retrieval(opts: Options, report: Report) -> list[Row]:
    if not postel_serves("pop3"):
        return _skipped("pop3", report)
    report.notes.append("POP3 vs Dovecot: Postel serves POP3 now; this benchmark is still to do.")
    return []


def imap_fetch(opts: Options, report: Report) -> list[Row]:
    if not postel_serves("imap"):
        return _skipped("imap", report)
    report.notes.append("IMAP vs Dovecot: Postel serves IMAP now; this benchmark is still to do.")
    return []
