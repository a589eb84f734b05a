"""Partner API keys: scoped, optionally expiring, rotatable with a grace period, revocable.

A key is `sp_<tenant hex>_<key id hex>_<secret>`: it names its tenant and id, so it is looked
up under that tenant's RLS; only a SHA-256 of it is stored (it carries 256 random bits, so a
fast hash is enough and keeps per-request checks cheap). A key holds a list of scopes
(tenants/scopes.py; aliases are expanded when the key is created, so a later change of an
alias never widens an existing key). Nobody creates a key with a scope they do not hold,
and a key that expires cannot create one that outlives it.

Rotation issues a new secret; the previous one keeps working until the grace period ends
(at most API_KEY_MAX_GRACE_SECONDS; a second rotation ends the first one's grace at once).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from saas.db import UnitOfWork
from saas.errors import NotFound, Unauthenticated, ValidationFailed
from saas.settings import Settings
from tenants import audit, scopes
from tenants.audit import Action
from tenants.authcache import publish_change
from tenants.models import ApiKey
from tenants.principal import Principal
from tenants.scopes import Scope

API_KEY_PREFIX = "sp_"


@dataclass(frozen=True)
class NewApiKey:
    id: uuid.UUID
    secret: str
    secret_hash: str


def new_secret(tenant_id: uuid.UUID, key_id: uuid.UUID) -> NewApiKey:
    secret = f"{API_KEY_PREFIX}{tenant_id.hex}_{key_id.hex}_{secrets.token_urlsafe(32)}"
    return NewApiKey(id=key_id, secret=secret, secret_hash=hash_api_key(secret))


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(secret: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        _, tenant_hex, key_hex, _rest = secret.split("_", 3)
        return uuid.UUID(hex=tenant_hex), uuid.UUID(hex=key_hex)
    except ValueError as e:
        raise Unauthenticated("the API key is malformed") from e


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def requested_scopes(names: Sequence[str], field: str = "input.scopes") -> frozenset[Scope]:
    """Scope names and aliases -> scopes; VALIDATION_FAILED names the unknown entry."""
    if not names:
        raise ValidationFailed("a key needs at least one scope", field=field)
    for i, name in enumerate(names):
        try:
            scopes.expand([name])
        except ValueError as e:
            known = ", ".join([*scopes.ALIASES, *(s.value for s in Scope)])
            raise ValidationFailed(f"unknown scope {name!r}; known: {known}",
                                   field=f"{field}.{i}") from e
    return scopes.expand(list(names))


async def create(*, uow: UnitOfWork, principal: Principal, name: str, scope_names: Sequence[str],
                 expires_at: datetime | None) -> tuple[ApiKey, str]:
    """Create a key; the returned secret is shown once and never stored."""
    principal.require(Scope.USERS_ADMIN)
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("key name must be 1-200 characters", field="input.name")
    granted = requested_scopes(scope_names)
    principal.require_all(granted, what="a key", field="input.scopes")
    now = datetime.now(UTC)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationFailed("expiresAt needs a time zone offset", field="input.expiresAt")
        if expires_at <= now:
            raise ValidationFailed("expiresAt must be in the future", field="input.expiresAt")
    if principal.expires_at is not None and principal.is_api_key:
        limit = datetime.fromtimestamp(principal.expires_at, UTC)
        if expires_at is None or expires_at > limit:
            raise ValidationFailed("a key that expires cannot create a key that outlives it: "
                                   f"set expiresAt to {limit.isoformat()} or earlier",
                                   field="input.expiresAt")
    fresh = new_secret(principal.tenant_id, uuid.uuid4())
    key = ApiKey(tenant_id=principal.tenant_id, id=fresh.id, name=name,
                 secret_hash=fresh.secret_hash, scopes=sorted(s.value for s in granted),
                 created_by=principal.user_id, created_by_api_key=principal.api_key_id,
                 expires_at=expires_at)
    uow.session.add(key)
    await uow.session.flush()
    await uow.session.refresh(key)
    await audit.record(uow, principal, Action.KEY_CREATED, target=("ApiKey", key.id),
                       details={"name": key.name, "scopes": key.scopes,
                                "expires_at": expires_at})
    return key, fresh.secret


async def get(*, uow: UnitOfWork, key_id: uuid.UUID, for_update: bool = False) -> ApiKey:
    query = select(ApiKey).where(ApiKey.id == key_id)
    if for_update:
        query = query.with_for_update()
    key = (await uow.session.execute(query)).scalar_one_or_none()
    if key is None:
        raise NotFound("API key not found", field="input.id")
    return key


async def rotate(*, uow: UnitOfWork, principal: Principal, settings: Settings,
                 key_id: uuid.UUID, grace_seconds: int) -> tuple[ApiKey, str]:
    """A new secret for the key; the current one stays valid for `grace_seconds`."""
    principal.require(Scope.USERS_ADMIN)
    if not 0 <= grace_seconds <= settings.api_key_max_grace_seconds:
        raise ValidationFailed(
            f"gracePeriodSeconds must be 0-{settings.api_key_max_grace_seconds}",
            field="input.gracePeriodSeconds")
    key = await get(uow=uow, key_id=key_id, for_update=True)
    principal.require_all(scopes.expand(key.scopes), what="a key", field="input.id")
    if key.revoked_at is not None:
        raise ValidationFailed("a revoked key cannot be rotated", field="input.id")
    fresh = new_secret(principal.tenant_id, key.id)
    now = datetime.now(UTC)
    key.previous_secret_hash = key.secret_hash
    key.previous_expires_at = now + timedelta(seconds=grace_seconds)
    key.secret_hash = fresh.secret_hash
    key.rotated_at = now
    await uow.session.flush()
    await audit.record(uow, principal, Action.KEY_ROTATED, target=("ApiKey", key.id),
                       details={"name": key.name, "grace_seconds": grace_seconds})
    publish_change(uow, reason="key_rotated", api_key_id=key.id)
    return key, fresh.secret


async def revoke(*, uow: UnitOfWork, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    """Revoke at once: every API process refuses it from the next request and closes its
    websockets."""
    principal.require(Scope.USERS_ADMIN)
    key = await get(uow=uow, key_id=key_id, for_update=True)
    if key.revoked_at is None:
        await uow.session.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key.id})
        await uow.session.refresh(key)
        await audit.record(uow, principal, Action.KEY_REVOKED, target=("ApiKey", key.id),
                           details={"name": key.name})
        publish_change(uow, reason="key_revoked", api_key_id=key.id)
    return key


async def list_keys(*, uow: UnitOfWork, principal: Principal) -> list[ApiKey]:
    principal.require(Scope.USERS_ADMIN)
    rows = await uow.session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return list(rows.scalars())


_TOUCH = text(
    "UPDATE api_keys SET last_used_at = now(), last_used_address = :address "
    "WHERE id = :id AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')")


async def touch(*, uow: UnitOfWork, key_id: uuid.UUID, address: str | None) -> None:
    """Record use (at most once a minute per key: a write per request would be wasteful)."""
    await uow.session.execute(_TOUCH, {"id": key_id, "address": address})
