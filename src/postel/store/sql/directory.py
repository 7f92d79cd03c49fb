"""Domains, accounts and aliases: who receives mail here, and who may log in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from postel.store.errors import AlreadyExists, NotFound, StoreError
from postel.store.model import (
    DEFAULT_MAILBOXES,
    Account,
    Alias,
    CredentialsChanged,
    Domain,
    Role,
)
from postel.store.sql import schema as t
from postel.store.sql.collector import collect_blobs
from postel.store.sql.database import Database
from postel.store.sql.rows import domain_of, insert_mailbox, new_id, now, to_account


class SqlDirectory:
    """`api.Directory` on SQL: domains, accounts and aliases: who receives mail here, and
    who may log in."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- domains ----------------------------------------------------------------------

    def add_domain(self, name: str) -> Domain:
        name = name.lower().rstrip(".")
        with self._db.write() as (conn, _):
            if conn.execute(select(t.domains.c.id).where(t.domains.c.name == name)).first():
                raise AlreadyExists(f"domain {name} already exists")
            created = now()
            result = self._db.insert_new(
                conn, insert(t.domains).values(name=name, created_at=created),
                f"domain {name} already exists",
            )
            return Domain(new_id(result), name, created)

    def get_domain(self, name: str) -> Domain | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(t.domains).where(t.domains.c.name == name.lower().rstrip("."))
            ).first()
        return Domain(row.id, row.name, row.created_at) if row else None

    def list_domains(self) -> list[Domain]:
        with self._db.read() as conn:
            rows = conn.execute(select(t.domains).order_by(t.domains.c.name)).all()
        return [Domain(r.id, r.name, r.created_at) for r in rows]

    def remove_domain(self, name: str) -> None:
        name = name.lower().rstrip(".")
        with self._db.write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == name)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {name} does not exist")
            users = conn.execute(
                select(func.count()).where(t.accounts.c.domain_id == domain_id)
            ).scalar_one()
            if users:
                raise StoreError(f"domain {name} still has {users} user(s); remove them first")
            conn.execute(delete(t.aliases).where(t.aliases.c.domain_id == domain_id))
            conn.execute(delete(t.domains).where(t.domains.c.id == domain_id))

    def is_local_domain(self, name: str) -> bool:
        return self.get_domain(name) is not None

    # -- accounts ---------------------------------------------------------------------

    def add_account(
        self,
        email: str,
        password_hash: str,
        *,
        role: Role = Role.USER,
        backup_email: str | None = None,
        display_name: str = "",
        quota_bytes: int = 0,
    ) -> Account:
        """Create an account and its default mailboxes. `email` must be a lookup key."""
        domain = domain_of(email)
        with self._db.write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == domain)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {domain} is not hosted here; add it first")
            if conn.execute(select(t.accounts.c.id).where(t.accounts.c.email == email)).first():
                raise AlreadyExists(f"user {email} already exists")
            if conn.execute(select(t.aliases.c.id).where(t.aliases.c.source == email)).first():
                raise AlreadyExists(f"{email} is already an alias")
            created = now()
            result = self._db.insert_new(
                conn,
                insert(t.accounts).values(
                    domain_id=domain_id,
                    email=email,
                    password_hash=password_hash,
                    role=role.value,
                    backup_email=backup_email,
                    display_name=display_name,
                    quota_bytes=quota_bytes,
                    disabled=False,
                    created_at=created,
                    password_changed_at=created,
                ),
                f"user {email} already exists",
            )
            account_id = new_id(result)
            for name, special_use in DEFAULT_MAILBOXES:
                insert_mailbox(conn, account_id, name, special_use)
            # A new account's own mailboxes start subscribed; later ones only by SUBSCRIBE.
            conn.execute(insert(t.subscriptions), [
                {"account_id": account_id, "name": name} for name, _ in DEFAULT_MAILBOXES])
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).one()
            return to_account(row)

    def get_account(self, email: str) -> Account | None:
        with self._db.read() as conn:
            row = conn.execute(select(t.accounts).where(t.accounts.c.email == email)).first()
        return to_account(row) if row else None

    def get_account_by_id(self, account_id: int) -> Account | None:
        with self._db.read() as conn:
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).first()
        return to_account(row) if row else None

    def list_accounts(self, domain: str | None = None) -> list[Account]:
        query = select(t.accounts).order_by(t.accounts.c.email)
        if domain is not None:
            query = query.join(t.domains).where(t.domains.c.name == domain.lower().rstrip("."))
        with self._db.read() as conn:
            return [to_account(r) for r in conn.execute(query).all()]

    def update_account(self, email: str, **values: Any) -> Account:
        """Change password_hash, backup_email, role, display_name, quota_bytes or disabled."""
        allowed = {"password_hash", "backup_email", "role", "display_name", "quota_bytes",
                   "disabled"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
        if "role" in values:
            values["role"] = Role(values["role"]).value
        if "password_hash" in values:
            values["password_changed_at"] = now()
        with self._db.write() as (conn, changes):
            result = conn.execute(
                update(t.accounts).where(t.accounts.c.email == email).values(**values)
            )
            if result.rowcount == 0:
                raise NotFound(f"user {email} does not exist")
            row = conn.execute(select(t.accounts).where(t.accounts.c.email == email)).one()
            if "password_hash" in values or values.get("disabled"):
                changes.append(CredentialsChanged(row.id))
            return to_account(row)

    def rehash_password(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        # Compare-and-set: a concurrent password change must not be undone by a login
        # that verified the old password a moment earlier. No change hint: the password
        # is the same, so sessions and web sign-ins stay (password_changed_at untouched).
        accounts = t.accounts
        with self._db.write() as (conn, _):
            result = conn.execute(
                update(accounts)
                .where(and_(accounts.c.id == account_id, accounts.c.password_hash == old_hash))
                .values(password_hash=new_hash)
            )
            return bool(result.rowcount == 1)

    def remove_account(self, email: str) -> None:
        """Delete an account with its mailboxes and messages; then the bodies that no
        other message and no queued row names any more are deleted from disk."""
        with self._db.write() as (conn, changes):
            account_id = conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.email == email)
            ).scalar()
            if account_id is None:
                raise NotFound(f"user {email} does not exist")
            box_ids = select(t.mailboxes.c.id).where(t.mailboxes.c.account_id == account_id)
            blobs = set(
                conn.execute(
                    select(t.messages.c.blob_sha256)
                    .where(t.messages.c.mailbox_id.in_(box_ids))
                    .distinct()
                ).scalars()
            )
            conn.execute(delete(t.messages).where(t.messages.c.mailbox_id.in_(box_ids)))
            conn.execute(delete(t.expunged).where(t.expunged.c.mailbox_id.in_(box_ids)))
            # METADATA (RFC 5464): its mailbox entries and its own server entries.
            conn.execute(delete(t.metadata_entries)
                         .where(t.metadata_entries.c.account_id == account_id))
            conn.execute(delete(t.mailboxes).where(t.mailboxes.c.account_id == account_id))
            conn.execute(
                delete(t.subscriptions).where(t.subscriptions.c.account_id == account_id))
            conn.execute(
                update(t.outbound_queue)
                .where(t.outbound_queue.c.account_id == account_id)
                .values(account_id=None)
            )
            # Web sign-ins and reset links die with the account (the CLI removes users
            # without the web layer, and a foreign key would refuse the delete).
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            conn.execute(
                delete(t.password_reset_tokens).where(
                    t.password_reset_tokens.c.account_id == account_id
                )
            )
            conn.execute(delete(t.accounts).where(t.accounts.c.id == account_id))
            changes.append(CredentialsChanged(account_id))
        # After the commit: until then the rows still name the blobs.
        collect_blobs(self._db, blobs)

    def account_usage(self, account_id: int) -> int:
        """Bytes stored in all of an account's mailboxes (for quotas)."""
        with self._db.read() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(t.messages.c.size), 0))
                .join(t.mailboxes)
                .where(t.mailboxes.c.account_id == account_id)
            ).scalar_one()
        return int(total)

    def addresses_of(self, account: Account) -> set[str]:
        """The lookup keys an account may send as: its own, and aliases that point at it
        directly (a catch-all does not let a user send as every address of the domain)."""
        with self._db.read() as conn:
            sources = conn.execute(
                select(t.aliases.c.source).where(t.aliases.c.destination == account.email)
            ).scalars().all()
        return {account.email, *(s for s in sources if not s.startswith("@"))}

    # -- aliases ----------------------------------------------------------------------

    def add_alias(self, source: str, destination: str) -> Alias:
        """`source` is a lookup key or "@domain" (catch-all); the domain must be local."""
        domain = domain_of(source)
        with self._db.write() as (conn, _):
            domain_id = conn.execute(
                select(t.domains.c.id).where(t.domains.c.name == domain)
            ).scalar()
            if domain_id is None:
                raise NotFound(f"domain {domain} is not hosted here; add it first")
            if conn.execute(select(t.accounts.c.id).where(t.accounts.c.email == source)).first():
                raise AlreadyExists(f"{source} is a user; an alias cannot shadow it")
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(t.aliases).values(
                            domain_id=domain_id, source=source, destination=destination
                        )
                    )
            except IntegrityError:
                raise AlreadyExists(f"alias {source} -> {destination} already exists") from None
        return Alias(source, destination)

    def list_aliases(self, domain: str | None = None) -> list[Alias]:
        query = select(t.aliases.c.source, t.aliases.c.destination).order_by(
            t.aliases.c.source, t.aliases.c.destination
        )
        if domain is not None:
            query = query.join(t.domains).where(t.domains.c.name == domain.lower().rstrip("."))
        with self._db.read() as conn:
            return [Alias(r.source, r.destination) for r in conn.execute(query).all()]

    def remove_alias(self, source: str, destination: str) -> None:
        with self._db.write() as (conn, _):
            result = conn.execute(
                delete(t.aliases).where(
                    and_(t.aliases.c.source == source, t.aliases.c.destination == destination)
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"alias {source} -> {destination} does not exist")

    def resolve(self, key: str, *, max_depth: int = 8) -> tuple[list[Account], list[str]] | None:
        """Expand a recipient lookup key in a local domain.

        Returns (local accounts, remote addresses), or None when nothing is there: not a
        user, not an alias, and no catch-all. Aliases may point at aliases, up to
        `max_depth` levels (a loop ends there instead of running forever). A user's own
        address wins over a catch-all, as everyone expects.
        """
        accounts: dict[int, Account] = {}
        remote: list[str] = []
        found = False
        with self._db.read() as conn:
            pending = [(key, 0)]
            seen: set[str] = set()
            while pending:
                address, depth = pending.pop()
                if address in seen:
                    continue
                seen.add(address)
                row = conn.execute(
                    select(t.accounts).where(t.accounts.c.email == address)
                ).first()
                if row is not None:
                    found = True
                    if not row.disabled:
                        accounts[row.id] = to_account(row)
                    continue
                destinations = conn.execute(
                    select(t.aliases.c.destination).where(t.aliases.c.source == address)
                ).scalars().all()
                if not destinations and depth == 0:
                    destinations = conn.execute(
                        select(t.aliases.c.destination).where(
                            t.aliases.c.source == "@" + domain_of(address)
                        )
                    ).scalars().all()
                if destinations:
                    found = True
                elif depth > 0:
                    # An alias target with nothing behind it: targets in other domains are
                    # forwarded; local ones that are not users are dropped.
                    if not self._domain_exists(conn, domain_of(address)):
                        remote.append(address)
                    continue
                if depth >= max_depth:
                    continue
                for destination in destinations:
                    pending.append((destination, depth + 1))
        if not found:
            return None
        return list(accounts.values()), sorted(set(remote))

    @staticmethod
    def _domain_exists(conn: Connection, domain: str) -> bool:
        return conn.execute(
            select(t.domains.c.id).where(t.domains.c.name == domain)
        ).first() is not None

    def counts(self) -> dict[str, int]:
        """Sizes an operator watches: domains, accounts, messages and their bytes."""
        with self._db.read() as conn:
            domains = conn.execute(select(func.count()).select_from(t.domains)).scalar_one()
            accounts = conn.execute(select(func.count()).select_from(t.accounts)).scalar_one()
            messages, size = conn.execute(
                select(func.count(), func.coalesce(func.sum(t.messages.c.size), 0))
            ).one()
        return {
            "domains": int(domains),
            "accounts": int(accounts),
            "messages": int(messages),
            "message_bytes": int(size),
        }
