"""Login sessions: short access tokens, refresh tokens that rotate, reuse detection, logout.

`login` starts a session and returns an access token (JWT_TTL_SECONDS, 15 minutes) and a
refresh token (`rt_<tenant hex>_<token id hex>_<secret>`, only its SHA-256 stored). Each
`refresh` uses the refresh token up and returns a new pair; presenting a used refresh token
again means it was copied, so the whole session (every token descended from that login) is
revoked, and the attempt is audited. Revoking a session (logout, reuse, password change,
deactivation) ends its access tokens at the next request (the `sid` claim is checked through
the authorisation cache) and closes its websockets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from saas.db import Database, UnitOfWork
from saas.errors import NotFound, Unauthenticated
from saas.settings import Settings
from tenants import audit, tokens
from tenants.audit import Action
from tenants.authcache import publish_change
from tenants.models import AuthSession, User
from tenants.principal import Principal, Role

PREFIX = "rt_"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: User
    session_id: uuid.UUID


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_refresh(tenant_id: uuid.UUID) -> tuple[uuid.UUID, str]:
    token_id = uuid.uuid4()
    return token_id, f"{PREFIX}{tenant_id.hex}_{token_id.hex}_{secrets.token_urlsafe(32)}"


def _parse(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        prefix, tenant_hex, token_hex, _ = token.split("_", 3)
        if prefix + "_" != PREFIX:
            raise ValueError(prefix)
        return uuid.UUID(hex=tenant_hex), uuid.UUID(hex=token_hex)
    except ValueError as e:
        raise Unauthenticated("the refresh token is not valid") from e


async def _issue_refresh(uow: UnitOfWork, session_id: uuid.UUID) -> str:
    assert uow.tenant_id is not None
    token_id, secret = _new_refresh(uow.tenant_id)
    await uow.session.execute(text(
        "INSERT INTO refresh_tokens (tenant_id, id, session_id, token_hash) "
        "VALUES (:t, :i, :s, :h)"), {"t": uow.tenant_id, "i": token_id, "s": session_id,
                                    "h": _hash(secret)})
    return secret


def _access(settings: Settings, user: User, session_id: uuid.UUID) -> str:
    return tokens.issue(settings, tenant_id=user.tenant_id, user_id=user.id,
                        session_id=session_id, epoch=user.auth_epoch, role=user.role,
                        team_id=user.team_id)


async def start(*, uow: UnitOfWork, settings: Settings, user: User, address: str | None,
                user_agent: str | None) -> Tokens:
    """A new session for `user` (already authenticated), with its first token pair."""
    session = AuthSession(tenant_id=user.tenant_id, id=uuid.uuid4(), user_id=user.id,
                          expires_at=datetime.now(UTC) + timedelta(
                              seconds=settings.refresh_ttl_seconds),
                          address=address, user_agent=(user_agent or "")[:300] or None)
    uow.session.add(session)
    await uow.session.flush()
    refresh = await _issue_refresh(uow, session.id)
    return Tokens(access_token=_access(settings, user, session.id),
                  expires_in=settings.jwt_ttl_seconds, refresh_token=refresh,
                  refresh_expires_in=settings.refresh_ttl_seconds, user=user,
                  session_id=session.id)


_LOOKUP = text(
    "SELECT r.token_hash, r.used_at, r.session_id, s.user_id, s.revoked_at, s.expires_at "
    "FROM refresh_tokens r JOIN auth_sessions s ON s.tenant_id = r.tenant_id "
    "AND s.id = r.session_id WHERE r.id = :id FOR UPDATE OF r, s")


async def refresh(*, db: Database, settings: Settings, refresh_token: str,
                  address: str | None) -> Tokens:
    """Use up a refresh token for a new pair; a reused one revokes its whole session."""
    tenant_id, token_id = _parse(refresh_token.strip())
    reused: uuid.UUID | None = None
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(_LOOKUP, {"id": token_id})).one_or_none()
        if row is None or not hmac.compare_digest(row.token_hash, _hash(refresh_token.strip())):
            raise Unauthenticated("the refresh token is not valid")
        if row.revoked_at is not None:
            raise Unauthenticated("the session has ended (logged out or revoked); log in again")
        if row.expires_at <= datetime.now(UTC):
            raise Unauthenticated("the session has expired; log in again")
        user = await uow.session.get(User, (tenant_id, row.user_id))
        if row.used_at is not None:
            reused = row.session_id
            await _revoke(uow, row.session_id, row.user_id, "refresh_reused")
            actor = Principal(tenant_id=tenant_id, user_id=row.user_id,
                              role=Role(user.role) if user else None, address=address)
            await audit.record(uow, actor, Action.REFRESH_REUSED,
                               target=("User", row.user_id),
                               details={"session_id": row.session_id})
        else:
            if user is None or not user.is_active:
                raise Unauthenticated("the user has been deactivated")
            await uow.session.execute(text(
                "UPDATE refresh_tokens SET used_at = now() WHERE id = :id"), {"id": token_id})
            await uow.session.execute(text(
                "UPDATE auth_sessions SET last_refreshed_at = now() WHERE id = :s"),
                {"s": row.session_id})
            secret = await _issue_refresh(uow, row.session_id)
            remaining = int((row.expires_at - datetime.now(UTC)).total_seconds())
            result = Tokens(access_token=_access(settings, user, row.session_id),
                            expires_in=settings.jwt_ttl_seconds, refresh_token=secret,
                            refresh_expires_in=remaining, user=user, session_id=row.session_id)
    if reused is not None:  # raised after the revocation committed
        raise Unauthenticated("this refresh token was already used: the session has been "
                              "revoked; log in again")
    return result


async def _revoke(uow: UnitOfWork, session_id: uuid.UUID, user_id: uuid.UUID,
                  reason: str) -> bool:
    changed = (await uow.session.execute(text(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = :r "
        "WHERE id = :s AND revoked_at IS NULL RETURNING id"),
        {"s": session_id, "r": reason})).scalar_one_or_none()
    if changed is not None:
        publish_change(uow, reason="session_revoked", user_id=user_id, session_id=session_id)
    return changed is not None


async def logout(*, uow: UnitOfWork, principal: Principal,
                 refresh_token: str | None) -> bool:
    """End the caller's session (the access token's, or the one a refresh token names)."""
    session_id = principal.session_id
    if refresh_token:
        tenant_id, token_id = _parse(refresh_token.strip())
        row = (await uow.session.execute(text(
            "SELECT r.session_id, r.token_hash, s.user_id FROM refresh_tokens r JOIN "
            "auth_sessions s ON s.tenant_id = r.tenant_id AND s.id = r.session_id "
            "WHERE r.id = :id"), {"id": token_id})).one_or_none()
        if (row is None or tenant_id != principal.tenant_id or row.user_id != principal.user_id
                or not hmac.compare_digest(row.token_hash, _hash(refresh_token.strip()))):
            raise NotFound("no session of yours has this refresh token",
                           field="input.refreshToken")
        session_id = row.session_id
    if session_id is None or principal.user_id is None:
        return False
    ended = await _revoke(uow, session_id, principal.user_id, "logout")
    if ended:
        await audit.record(uow, principal, Action.LOGOUT, target=("User", principal.user_id),
                           details={"session_id": session_id})
    return ended


async def revoke_all(*, uow: UnitOfWork, user_id: uuid.UUID, reason: str,
                     keep: uuid.UUID | None = None) -> int:
    """Revoke every open session of a user (but `keep`), e.g. after a password change."""
    rows: list[uuid.UUID] = list((await uow.session.execute(text(
        "UPDATE auth_sessions SET revoked_at = now(), revoked_reason = :r "
        "WHERE user_id = :u AND revoked_at IS NULL AND id IS DISTINCT FROM :keep "
        "RETURNING id"), {"u": user_id, "r": reason, "keep": keep})).scalars())
    if rows:
        publish_change(uow, reason="session_revoked", user_id=user_id)
    return len(rows)
