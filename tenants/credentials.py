"""Passwords, JWTs and API keys: issue them, and turn presented credentials into a Principal."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text

from saas.db import Database
from saas.errors import Unauthenticated
from saas.settings import Settings
from tenants.principal import Principal, Role, Scope

API_KEY_PREFIX = "sp_"
_hasher = PasswordHasher()
# Verified against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def issue_jwt(settings: Settings, principal: Principal, *, ttl: int | None = None) -> str:
    """A signed access token whose claims carry the tenant, the user, role and team."""
    now = int(time.time())
    claims = {
        "sub": str(principal.user_id),
        "tid": str(principal.tenant_id),
        "role": principal.role.value if principal.role else None,
        "team": str(principal.team_id) if principal.team_id else None,
        "iat": now,
        "exp": now + (ttl if ttl is not None else settings.jwt_ttl_seconds),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def principal_from_jwt(settings: Settings, token: str) -> Principal:
    """Verify signature, expiry, issuer and audience; map claims to a Principal."""
    key = settings.jwt_public_key or settings.jwt_secret
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "tid"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise Unauthenticated("the access token has expired; log in again") from e
    except jwt.InvalidSignatureError as e:
        raise Unauthenticated("the access token's signature is invalid") from e
    except jwt.PyJWTError as e:
        raise Unauthenticated(f"the access token is invalid: {e}") from e
    try:
        role = Role(claims.get("role") or "rep")
        team = claims.get("team")
        return Principal(
            tenant_id=uuid.UUID(claims["tid"]),
            user_id=uuid.UUID(claims["sub"]),
            role=role,
            team_id=uuid.UUID(team) if team else None,
            scopes=frozenset({Scope.READ, Scope.READ_WRITE}),
        )
    except (ValueError, TypeError) as e:
        raise Unauthenticated("the access token's claims are malformed") from e


@dataclass(frozen=True)
class NewApiKey:
    id: uuid.UUID
    secret: str
    secret_hash: str


def new_api_key(tenant_id: uuid.UUID) -> NewApiKey:
    """A key that names its tenant and id, so lookup happens under that tenant's RLS."""
    key_id = uuid.uuid4()
    secret = f"{API_KEY_PREFIX}{tenant_id.hex}_{key_id.hex}_{secrets.token_urlsafe(32)}"
    return NewApiKey(id=key_id, secret=secret, secret_hash=hash_api_key(secret))


def hash_api_key(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough (and keeps per-request auth cheap).
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(secret: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        _, tenant_hex, key_hex, _rest = secret.split("_", 3)
        return uuid.UUID(hex=tenant_hex), uuid.UUID(hex=key_hex)
    except ValueError as e:
        raise Unauthenticated("the API key is malformed") from e


_KEY_SELECT = text("SELECT secret_hash, scope, revoked_at FROM api_keys WHERE id = :id")


async def principal_from_api_key(db: Database, secret: str) -> Principal:
    """Look the key up under its own tenant's RLS; unknown, forged or revoked keys fail."""
    tenant_id, key_id = parse_api_key(secret)
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(_KEY_SELECT, {"id": key_id})).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, hash_api_key(secret)):
            raise Unauthenticated("the API key is not valid")
        if row.revoked_at is not None:
            raise Unauthenticated("the API key has been revoked")
        # Touch last_used_at at most once a minute: a write per request would be wasteful.
        await uow.session.execute(
            text(
                "UPDATE api_keys SET last_used_at = now() WHERE id = :id AND "
                "(last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')"
            ),
            {"id": key_id},
        )
    scopes = {Scope.READ} | ({Scope.READ_WRITE} if row.scope == Scope.READ_WRITE else set())
    return Principal(tenant_id=tenant_id, api_key_id=key_id, scopes=frozenset(scopes))


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


async def authenticate(
    db: Database, settings: Settings, *, authorization: str | None, api_key: str | None
) -> Principal | None:
    """Credentials from headers (or a websocket payload) -> Principal; None when none given."""
    if api_key:
        return await principal_from_api_key(db, api_key.strip())
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
    token = token.strip()
    if looks_like_api_key(token):
        return await principal_from_api_key(db, token)
    return principal_from_jwt(settings, token)
