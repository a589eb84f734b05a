"""The audit trail: an append-only, per-tenant record of security-relevant events.

    await audit.record(uow, principal, Action.KEY_CREATED, target=("ApiKey", key.id),
                       details={"scopes": [...]})

`record` inserts into `audit_events` through the caller's unit of work, so the entry commits
with the action and a failed action (its transaction rolled back) leaves none. The app role
may only INSERT and SELECT that table (migration 0011; `tenants/rls.py` keeps it so), and a
trigger refuses UPDATE and DELETE for everyone else too.

Entries never hold secrets: `details` is refused (a programming error, ValueError) when one
of its keys looks like a credential (password, secret, token, hash, key material). Store ids,
names, scopes and outcomes, not what a caller typed as a password or a key.

Actions are `domain.verb` names; the ones of this module are in `Action`, other domains may
record their own (e.g. `contact.erased`, `personal_data.exported`, `webhook.created`) as long
as they match `ACTION_PATTERN` (list them in docs/access.md).
"""

from __future__ import annotations

import base64
import enum
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import LimitExceeded, ValidationFailed
from tenants.principal import Principal

ACTION_PATTERN = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|hash|private|credential|api_?key$)", re.I)
MAX_PAGE = 200


class Action(enum.StrEnum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_THROTTLED = "login.throttled"
    LOGOUT = "session.logged_out"
    REFRESH_REUSED = "session.refresh_reused"
    KEY_CREATED = "api_key.created"
    KEY_ROTATED = "api_key.rotated"
    KEY_REVOKED = "api_key.revoked"
    USER_CREATED = "user.created"
    USER_INVITED = "user.invited"
    INVITATION_ACCEPTED = "user.invitation_accepted"
    USER_UPDATED = "user.updated"
    ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    PASSWORD_CHANGED = "user.password_changed"
    PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    PASSWORD_RESET = "user.password_reset"
    TEAM_CREATED = "team.created"
    DATA_EXPORTED = "personal_data.exported"
    DATA_ERASED = "personal_data.erased"


def _check_details(details: Mapping[str, Any], path: str = "details") -> None:
    for key, value in details.items():
        if _SECRET_KEY.search(str(key)):
            raise ValueError(f"audit {path}.{key}: audit entries never hold secrets")
        if isinstance(value, Mapping):
            _check_details(value, f"{path}.{key}")


_INSERT = text(
    "INSERT INTO audit_events (tenant_id, id, action, actor_user_id, actor_api_key_id, "
    "target_type, target_id, address, details) "
    "VALUES (:tenant, :id, :action, :user, :key, :target_type, :target_id, :address, "
    "CAST(:details AS jsonb))")


async def record(uow: UnitOfWork, principal: Principal | None, action: str, *,
                 target: tuple[str, uuid.UUID | None] | None = None,
                 details: Mapping[str, Any] | None = None,
                 address: str | None = None) -> uuid.UUID:
    """Append one entry in the caller's transaction (the unit of work's tenant)."""
    if uow.tenant_id is None:
        raise ValueError("audit entries belong to a tenant: the unit of work has none")
    if not ACTION_PATTERN.match(action):
        raise ValueError(f"audit action {action!r} is not a 'domain.verb' name")
    details = dict(details or {})
    _check_details(details)
    entry_id = uuid.uuid4()
    await uow.session.execute(_INSERT, {
        "tenant": uow.tenant_id, "id": entry_id, "action": action,
        "user": principal.user_id if principal else None,
        "key": principal.api_key_id if principal else None,
        "target_type": target[0] if target else None,
        "target_id": target[1] if target else None,
        "address": address if address is not None else getattr(principal, "address", None),
        "details": orjson.dumps(details, default=str).decode(),
    })
    return entry_id


@dataclass(frozen=True)
class Entry:
    id: uuid.UUID
    occurred_at: datetime
    action: str
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    target_type: str | None
    target_id: uuid.UUID | None
    address: str | None
    details: dict[str, Any]

    @property
    def cursor(self) -> str:
        raw = f"{self.occurred_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode()


@dataclass(frozen=True)
class Filter:
    actions: Sequence[str] = ()
    actor_user_id: uuid.UUID | None = None
    actor_api_key_id: uuid.UUID | None = None
    target_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, _, entry = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(entry)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationFailed("not a cursor of this list", field="after") from e


async def page(uow: UnitOfWork, *, filter: Filter, first: int,
               after: str | None) -> tuple[list[Entry], bool]:
    """Newest first; (entries, has_next_page). Admin access is checked by the caller."""
    if not 0 < first <= MAX_PAGE:
        raise LimitExceeded(f"first must be 1-{MAX_PAGE}", field="first")
    where = ["true"]
    params: dict[str, Any] = {"limit": first + 1}
    if filter.actions:
        where.append("action = ANY(:actions)")
        params["actions"] = list(filter.actions)
    for column, value in (("actor_user_id", filter.actor_user_id),
                          ("actor_api_key_id", filter.actor_api_key_id),
                          ("target_id", filter.target_id)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if filter.since is not None:
        where.append("occurred_at >= :since")
        params["since"] = filter.since
    if filter.until is not None:
        where.append("occurred_at < :until")
        params["until"] = filter.until
    if after:
        params["after_at"], params["after_id"] = _decode_cursor(after)
        where.append("(occurred_at, id) < (:after_at, :after_id)")
    rows = (await uow.session.execute(text(
        "SELECT id, occurred_at, action, actor_user_id, actor_api_key_id, target_type, "
        "target_id, address, details FROM audit_events WHERE " + " AND ".join(where)
        + " ORDER BY occurred_at DESC, id DESC LIMIT :limit"), params)).all()
    entries = [Entry(r.id, r.occurred_at, r.action, r.actor_user_id, r.actor_api_key_id,
                     r.target_type, r.target_id, r.address,
                     r.details if isinstance(r.details, dict) else orjson.loads(r.details))
               for r in rows[:first]]
    return entries, len(rows) > first
