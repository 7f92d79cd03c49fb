"""What the operations need from the rest of Postel, built once by each caller (the web
server, the command line)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from postel.admin.notices import send_system_mail
from postel.auth.limits import FailureLimiter
from postel.store.api import Store
from postel.store.model import Account

log = logging.getLogger("postel.admin")


@dataclass(frozen=True)
class AdminContext:
    store: Store
    system_from: str  # sender of reset links and notices
    limiter: FailureLimiter | None = None  # told of successful resets (the web's logon)

    @classmethod
    def for_hostname(cls, store: Store, hostname: str, system_from: str = "",
                     limiter: FailureLimiter | None = None) -> AdminContext:
        return cls(store, system_from or f"postmaster@{hostname}", limiter)

    def send(self, to: str, subject: str, body: str) -> None:
        send_system_mail(self.store, self.system_from, to, subject, body)

    def notify(self, account: Account, subject: str, body: str) -> None:
        """A notice to the account's backup address, if any; a failure is only logged
        (the change it reports is already made)."""
        if account.backup_email:
            try:
                self.send(account.backup_email, subject, body)
            except Exception:
                log.exception("could not send a notice to the backup address")
