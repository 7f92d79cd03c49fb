"""Who acts, with which role, from where: for permissions and the audit log."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from postel.admin.errors import Kind, OperationError
from postel.store.model import Account, Role

# The "From" column of audit rows written by the command line.
CLI_ORIGIN = "command line"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return "unknown"


@dataclass(frozen=True)
class Actor:
    """`name` is what the audit log records: a signed-in account's address, or
    "cli:<OS user>" for the command line, which acts as a system administrator (whoever
    can run it can read the database anyway)."""

    name: str
    role: Role
    ip: str
    account: Account | None = None

    @classmethod
    def of(cls, account: Account, ip: str) -> Actor:
        return cls(account.email, account.role, ip, account)

    @classmethod
    def cli(cls) -> Actor:
        return cls(f"cli:{_os_user()}", Role.ADMIN, CLI_ORIGIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def is_account(self, account: Account) -> bool:
        return self.account is not None and self.account.id == account.id

    def own_account(self) -> Account:
        """The actor's own account, for "my settings" operations."""
        if self.account is None:
            raise OperationError(Kind.FORBIDDEN, "Only a signed-in user has own settings.")
        return self.account

    def require_domain(self, domain: str) -> None:
        """System admins manage every domain; domain admins only their own."""
        if self.is_admin:
            return
        if self.role is Role.DOMAIN_ADMIN and self.account is not None \
                and self.account.domain == domain:
            return
        raise OperationError(Kind.FORBIDDEN, f"You may not manage the domain {domain}.")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise OperationError(Kind.FORBIDDEN, "Only system administrators may do this.")
