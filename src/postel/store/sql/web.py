"""Web sessions, password reset tokens, CAPTCHA challenges and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    delete,
    func,
    insert,
    select,
    true,
    update,
)

from postel.store.model import (
    Account,
    CredentialsChanged,
    Domain,
)
from postel.store.sql import schema as t
from postel.store.sql.database import Database
from postel.store.sql.rows import now, to_account


class SqlWebState:
    """`api.WebState` on SQL: web sessions, password reset tokens, CAPTCHA challenges, the
    audit log, and the admin pages' account search and domain statistics."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- web --------------------------------------------------------------------------
    # Sessions, reset tokens, CAPTCHA challenges and the audit log of the web pages.
    # Tokens arrive here already hashed (SHA-256 hex); the store never sees a raw one.

    def session_create(
        self, token_hash: str, account_id: int, ip: str, user_agent: str
    ) -> None:
        at = now()
        with self._db.write() as (conn, _):
            conn.execute(
                insert(t.web_sessions).values(
                    token_hash=token_hash, account_id=account_id, created_at=at,
                    last_seen_at=at, ip=ip[:64], user_agent=user_agent[:500],
                )
            )

    def session_get(self, token_hash: str) -> tuple[int, datetime, datetime] | None:
        """(account id, created at, last seen at) of a session, or None."""
        with self._db.read() as conn:
            row = conn.execute(
                select(t.web_sessions).where(t.web_sessions.c.token_hash == token_hash)
            ).first()
        return (row.account_id, row.created_at, row.last_seen_at) if row else None

    def session_touch(self, token_hash: str) -> None:
        with self._db.write() as (conn, _):
            conn.execute(
                update(t.web_sessions)
                .where(t.web_sessions.c.token_hash == token_hash)
                .values(last_seen_at=now())
            )

    def session_delete(self, token_hash: str) -> None:
        with self._db.write() as (conn, _):
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.token_hash == token_hash))

    def sessions_delete_for_account(self, account_id: int, *, keep: str = "") -> int:
        """Sign an account out everywhere (but the session `keep`); returns how many."""
        with self._db.write() as (conn, _):
            result = conn.execute(
                delete(t.web_sessions).where(
                    and_(
                        t.web_sessions.c.account_id == account_id,
                        t.web_sessions.c.token_hash != keep,
                    )
                )
            )
            return int(result.rowcount)

    def sessions_count(self, account_id: int) -> int:
        with self._db.read() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.web_sessions)
                .where(t.web_sessions.c.account_id == account_id)
            ).scalar_one())

    def expire(self, idle_before: datetime, created_before: datetime) -> None:
        """Drop idle or too old sessions, expired reset tokens and CAPTCHA challenges."""
        at = now()
        with self._db.write() as (conn, _):
            conn.execute(
                delete(t.web_sessions).where(
                    (t.web_sessions.c.last_seen_at < idle_before)
                    | (t.web_sessions.c.created_at < created_before)
                )
            )
            conn.execute(
                delete(t.password_reset_tokens).where(t.password_reset_tokens.c.expires_at < at)
            )
            conn.execute(
                delete(t.captcha_challenges).where(t.captcha_challenges.c.expires_at < at)
            )

    def forget_account(self, account_id: int) -> None:
        """Remove an account's sessions and reset tokens (before remove_account)."""
        with self._db.write() as (conn, _):
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            conn.execute(
                delete(t.password_reset_tokens).where(
                    t.password_reset_tokens.c.account_id == account_id
                )
            )

    def reset_token_create(self, token_hash: str, account_id: int, expires_at: datetime) -> None:
        with self._db.write() as (conn, _):
            conn.execute(
                insert(t.password_reset_tokens).values(
                    token_hash=token_hash, account_id=account_id, created_at=now(),
                    expires_at=expires_at,
                )
            )

    def reset_token_account(self, token_hash: str) -> int | None:
        """The account of a reset token that is unused and unexpired, else None."""
        with self._db.read() as conn:
            return conn.execute(
                select(t.password_reset_tokens.c.account_id).where(
                    and_(
                        t.password_reset_tokens.c.token_hash == token_hash,
                        t.password_reset_tokens.c.used_at.is_(None),
                        t.password_reset_tokens.c.expires_at > now(),
                    )
                )
            ).scalar()

    def reset_token_use(self, token_hash: str, password_hash: str) -> Account | None:
        """Spend a valid token and set the new password in one transaction.

        The conditional UPDATE makes the token single-use even under concurrent requests;
        every other outstanding token of the account is spent too, and every web session
        of the account is signed out.
        """
        at = now()
        tokens = t.password_reset_tokens
        with self._db.write() as (conn, changes):
            account_id = conn.execute(
                select(tokens.c.account_id).where(tokens.c.token_hash == token_hash)
            ).scalar()
            if account_id is None:
                return None
            result = conn.execute(
                update(tokens)
                .where(
                    and_(
                        tokens.c.token_hash == token_hash,
                        tokens.c.used_at.is_(None),
                        tokens.c.expires_at > at,
                    )
                )
                .values(used_at=at)
            )
            if result.rowcount != 1:
                return None
            conn.execute(
                update(tokens)
                .where(and_(tokens.c.account_id == account_id, tokens.c.used_at.is_(None)))
                .values(used_at=at)
            )
            conn.execute(
                update(t.accounts)
                .where(t.accounts.c.id == account_id)
                .values(password_hash=password_hash, password_changed_at=at)
            )
            conn.execute(delete(t.web_sessions).where(t.web_sessions.c.account_id == account_id))
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id)).one()
            changes.append(CredentialsChanged(account_id))
            return to_account(row)

    def reset_tokens_spend(self, account_id: int) -> int:
        tokens = t.password_reset_tokens
        with self._db.write() as (conn, _):
            result = conn.execute(
                update(tokens)
                .where(and_(tokens.c.account_id == account_id, tokens.c.used_at.is_(None)))
                .values(used_at=now())
            )
            return int(result.rowcount)

    def captcha_create(self, challenge_id: str, answer: str, expires_at: datetime) -> None:
        with self._db.write() as (conn, _):
            conn.execute(
                insert(t.captcha_challenges).values(
                    id=challenge_id, answer=answer, created_at=now(), expires_at=expires_at
                )
            )

    def captcha_get(self, challenge_id: str) -> str | None:
        """The answer of an unexpired challenge (to render it), without spending it."""
        with self._db.read() as conn:
            return conn.execute(
                select(t.captcha_challenges.c.answer).where(
                    and_(
                        t.captcha_challenges.c.id == challenge_id,
                        t.captcha_challenges.c.expires_at > now(),
                    )
                )
            ).scalar()

    def captcha_take(self, challenge_id: str) -> str | None:
        """Spend a challenge: it is deleted whatever the answer; None when expired/unknown."""
        with self._db.write() as (conn, _):
            row = conn.execute(
                select(t.captcha_challenges).where(t.captcha_challenges.c.id == challenge_id)
            ).first()
            if row is None:
                return None
            conn.execute(
                delete(t.captcha_challenges).where(t.captcha_challenges.c.id == challenge_id)
            )
        return str(row.answer) if row.expires_at > now() else None

    def audit_add(
        self, *, actor: str, ip: str, domain: str, action: str, target: str = "",
        detail: str = "",
    ) -> None:
        with self._db.write() as (conn, _):
            conn.execute(
                insert(t.audit_log).values(
                    at=now(), actor=actor, ip=ip[:64], domain=domain, action=action,
                    target=target, detail=detail,
                )
            )

    def audit_list(
        self, domain: str | None, offset: int = 0, limit: int = 50
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, newest-first rows) of one domain's audit log, or every domain's."""
        where = t.audit_log.c.domain == domain if domain is not None else true()
        with self._db.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(t.audit_log).where(where)
            ).scalar_one()
            rows = conn.execute(
                select(t.audit_log).where(where).order_by(t.audit_log.c.id.desc())
                .offset(offset).limit(limit)
            ).all()
        return int(total), [dict(r._mapping) for r in rows]

    def search_accounts(
        self, domain: str, query: str = "", offset: int = 0, limit: int = 25
    ) -> tuple[int, list[Account]]:
        """(total, page) of a domain's accounts whose address or name contains `query`."""
        where = t.domains.c.name == domain.lower()
        if query:
            pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%") \
                .replace("_", "\\_") + "%"
            where = and_(
                where,
                t.accounts.c.email.like(pattern, escape="\\")
                | func.lower(t.accounts.c.display_name).like(pattern, escape="\\"),
            )
        base = select(t.accounts).join(t.domains).where(where)
        with self._db.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(base.subquery())
            ).scalar_one()
            rows = conn.execute(
                base.order_by(t.accounts.c.email).offset(offset).limit(limit)
            ).all()
        return int(total), [to_account(r) for r in rows]

    def domain_stats(self) -> list[tuple[Domain, int, int]]:
        """Every domain with its number of users and the bytes their messages take."""
        users = (
            select(t.accounts.c.domain_id, func.count().label("n"))
            .group_by(t.accounts.c.domain_id).subquery()
        )
        usage = (
            select(t.accounts.c.domain_id, func.sum(t.messages.c.size).label("bytes"))
            .select_from(t.accounts.join(t.mailboxes).join(t.messages))
            .group_by(t.accounts.c.domain_id).subquery()
        )
        query = (
            select(
                t.domains,
                func.coalesce(users.c.n, 0).label("users"),
                func.coalesce(usage.c.bytes, 0).label("bytes"),
            )
            .outerjoin(users, users.c.domain_id == t.domains.c.id)
            .outerjoin(usage, usage.c.domain_id == t.domains.c.id)
            .order_by(t.domains.c.name)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            (Domain(r.id, r.name, r.created_at), int(r.users), int(r.bytes)) for r in rows
        ]
