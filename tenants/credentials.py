"""Presented credentials (a bearer JWT or an API key) -> the Principal, checked every time.

Signature and expiry come from the token (tenants/tokens.py); whether the user is still
active, with which role and team, whether the session was revoked, and whether the key is
revoked, expired or rotated come from the per-process authorisation cache
(tenants/authcache.py), so changes apply to the next request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from dataclasses import dataclass

from saas.db import Database
from saas.errors import Unauthenticated
from saas.settings import Settings
from tenants import keys
from tenants.authcache import AuthCache, UserState
from tenants.principal import Principal, Role
from tenants.tokens import Claims, Verifier, issue

__all__ = ["Authenticator", "issue_jwt"]

log = logging.getLogger("tenants.auth")

TOUCH_EVERY = 60.0
MAX_TOKENS = 50_000


@dataclass(frozen=True)
class _Verified:
    claims: Claims
    state: UserState
    address: str | None
    principal: Principal


def issue_jwt(settings: Settings, principal: Principal, *, ttl: int | None = None) -> str:
    """An access token for a user principal without a login session (tools and tests; users
    get theirs from `login`). Its user's current state is still checked on every request."""
    assert principal.user_id is not None, "API keys have no access tokens"
    return issue(settings, tenant_id=principal.tenant_id, user_id=principal.user_id,
                 session_id=principal.session_id, epoch=None,
                 role=principal.role.value if principal.role else None,
                 team_id=principal.team_id, ttl=ttl)


class Authenticator:
    """One per process: the token verifier and the authorisation cache."""

    def __init__(self, db: Database, settings: Settings, cache: AuthCache | None = None) -> None:
        self.db = db
        self.settings = settings
        self.cache = cache or AuthCache(db, ttl=settings.auth_cache_ttl_seconds)
        self.verifier = Verifier(settings)
        self._touched: dict[uuid.UUID, float] = {}
        self._tokens: dict[str, _Verified] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, *, authorization: str | None, api_key: str | None,
                           address: str | None = None) -> Principal | None:
        """Credentials from headers (or a websocket payload); None when none were given."""
        if api_key:
            return await self.from_api_key(api_key.strip(), address)
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
        token = token.strip()
        if keys.looks_like_api_key(token):
            return await self.from_api_key(token, address)
        return await self.from_jwt(token, address)

    async def from_jwt(self, token: str, address: str | None = None) -> Principal:
        # A token verified before is not verified again until it expires, and while its
        # user's state is the same cached object, the principal built from it is reused:
        # the hot path is two dict lookups (revocation replaces the state object).
        memo = self._tokens.get(token)
        if memo is not None and memo.claims.expires_at > time.time():
            claims = memo.claims
        else:
            memo = None
            claims = await self.verifier.verify(token)
        state = await self.cache.user(claims.tenant_id, claims.user_id, claims.session_id)
        if memo is not None and memo.state is state and memo.address == address:
            return memo.principal
        if state is None:
            raise Unauthenticated("the access token's user does not exist")
        if not state.is_active:
            raise Unauthenticated("the user has been deactivated")
        if claims.session_id is not None and (not state.session_found
                                              or state.session_revoked):
            raise Unauthenticated("the session has ended (logged out or revoked); "
                                  "log in again")
        # A session's tokens end with the session (revoked on logout, password change,
        # deactivation); `ep` ends the session-less ones when the user's epoch moves on.
        if claims.session_id is None and claims.epoch is not None and claims.epoch < state.epoch:
            raise Unauthenticated("your credentials have changed; log in again")
        principal = Principal(tenant_id=claims.tenant_id, user_id=claims.user_id,
                              role=Role(state.role), team_id=state.team_id,
                              session_id=claims.session_id, expires_at=claims.expires_at,
                              address=address)
        if len(self._tokens) >= MAX_TOKENS:
            self._tokens.clear()
        self._tokens[token] = _Verified(claims, state, address, principal)
        return principal

    async def from_api_key(self, secret: str, address: str | None = None) -> Principal:
        """Look the key up under its own tenant; unknown, forged, revoked, expired fail."""
        tenant_id, key_id = keys.parse_api_key(secret)
        state = await self.cache.key(tenant_id, key_id)
        if state is None:
            raise Unauthenticated("the API key is not valid")
        digest = keys.hash_api_key(secret)
        now = time.time()
        expires_at = state.expires_at
        if not hmac.compare_digest(state.secret_hash, digest):
            grace = state.previous_expires_at
            if (state.previous_hash is None or grace is None or grace <= now
                    or not hmac.compare_digest(state.previous_hash, digest)):
                raise Unauthenticated("the API key is not valid")
            expires_at = grace if expires_at is None else min(expires_at, grace)
        if state.revoked:
            raise Unauthenticated("the API key has been revoked")
        if state.expires_at is not None and state.expires_at <= now:
            raise Unauthenticated("the API key has expired")
        self._touch(tenant_id, key_id, state.last_used_at, address)
        return Principal(tenant_id=tenant_id, api_key_id=key_id, scopes=state.scopes,
                         expires_at=expires_at, address=address)

    def _touch(self, tenant_id: uuid.UUID, key_id: uuid.UUID, last_used: float | None,
               address: str | None) -> None:
        """Record use in the background, at most once a minute per key and process."""
        now = time.monotonic()
        if last_used is not None and time.time() - last_used < TOUCH_EVERY:
            return
        if now - self._touched.get(key_id, -TOUCH_EVERY) < TOUCH_EVERY:
            return
        self._touched[key_id] = now
        if len(self._touched) > 10_000:
            self._touched.clear()
        task = asyncio.get_running_loop().create_task(self._record_use(tenant_id, key_id,
                                                                        address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_use(self, tenant_id: uuid.UUID, key_id: uuid.UUID,
                          address: str | None) -> None:
        try:
            async with self.db.unit_of_work(tenant_id) as uow:
                await keys.touch(uow=uow, key_id=key_id, address=address)
        except Exception as e:  # best effort: never fails a request
            log.warning("could not record the use of API key %s (%s)", key_id, e)

    async def drain(self) -> None:
        """Wait for background writes (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
