"""Access tokens: issue our own (HS256), verify ours and an external identity provider's.

Our tokens (from `login` and `refresh`) are HS256 with JWT_SECRET and carry `sub` (user),
`tid` (tenant), `sid` (login session), `ep` (the user's auth epoch), `role`/`team` (for the
client's convenience only: the service reads role and team from the user's row on every
request), `iat`, `exp`, `iss`, `aud`.

An identity provider's tokens are RS256/ES256 (JWT_ALGORITHMS), verified with JWT_PUBLIC_KEY
(PEM) or the keys of JWT_JWKS_URL (fetched off the event loop, cached per `kid`, refetched
when an unknown `kid` appears, at most once per JWT_JWKS_MIN_REFRESH_SECONDS, and every
JWT_JWKS_CACHE_SECONDS). The token's header picks the path: HS256 only ever checks against
our secret and RS/ES only against the provider's keys, so a public key can never be used
as an HMAC secret (algorithm confusion).

`check_config` runs at start-up and refuses a configuration that cannot verify anything.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from saas.errors import Unauthenticated
from saas.settings import Settings

SELF_ALGORITHM = "HS256"
ASYMMETRIC = {"RS256": rsa.RSAPublicKey, "RS384": rsa.RSAPublicKey, "RS512": rsa.RSAPublicKey,
              "ES256": ec.EllipticCurvePublicKey, "ES384": ec.EllipticCurvePublicKey}


class InvalidAuthConfig(RuntimeError):
    """Raised at start-up: the token settings cannot verify what they claim to."""


@dataclass(frozen=True)
class Claims:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    epoch: int | None
    expires_at: float


def issue(settings: Settings, *, tenant_id: uuid.UUID, user_id: uuid.UUID,
          session_id: uuid.UUID | None, epoch: int | None, role: str | None = None,
          team_id: uuid.UUID | None = None, ttl: int | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id), "tid": str(tenant_id), "role": role,
        "team": str(team_id) if team_id else None, "iat": now,
        "exp": now + (ttl if ttl is not None else settings.jwt_ttl_seconds),
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "jti": uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    if epoch is not None:
        claims["ep"] = epoch
    return jwt.encode(claims, settings.jwt_secret, algorithm=SELF_ALGORITHM)


def _idp_algorithms(settings: Settings) -> list[str]:
    return [a for a in settings.jwt_algorithms if a != SELF_ALGORITHM]


def check_config(settings: Settings) -> None:
    """Refuse settings that cannot verify a token, or that would verify the wrong way."""
    problems = []
    unknown = [a for a in settings.jwt_algorithms if a != SELF_ALGORITHM and a not in ASYMMETRIC]
    if unknown:
        problems.append(f"JWT_ALGORITHMS has unsupported values {unknown} "
                        f"(use HS256 and/or {', '.join(ASYMMETRIC)})")
    idp = _idp_algorithms(settings)
    if (settings.jwt_public_key or settings.jwt_jwks_url) and not idp:
        problems.append("JWT_PUBLIC_KEY/JWT_JWKS_URL is set but JWT_ALGORITHMS names no "
                        "RS/ES algorithm to verify with it")
    if idp and not (settings.jwt_public_key or settings.jwt_jwks_url):
        problems.append(f"JWT_ALGORITHMS={','.join(idp)} needs JWT_PUBLIC_KEY or JWT_JWKS_URL")
    if settings.jwt_public_key and idp:
        try:
            key = load_pem_public_key(settings.jwt_public_key.encode())
        except ValueError as e:
            problems.append(f"JWT_PUBLIC_KEY is not a PEM public key ({e})")
        else:
            usable = [a for a in idp if a in ASYMMETRIC and isinstance(key, ASYMMETRIC[a])]
            if not usable:
                problems.append(f"JWT_PUBLIC_KEY is a {type(key).__name__}, which cannot "
                                f"verify {','.join(idp)}")
    if settings.jwt_jwks_url and not settings.jwt_jwks_url.startswith(("https://", "http://")):
        problems.append("JWT_JWKS_URL must be an http(s) URL")
    if problems:
        raise InvalidAuthConfig("refusing to start: " + "; ".join(problems))


class Jwks:
    """The provider's signing keys by `kid`, fetched in a thread and cached."""

    def __init__(self, url: str, cache_seconds: float, min_refresh: float) -> None:
        self.client = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=5)
        self.cache_seconds = cache_seconds
        self.min_refresh = min_refresh
        self.fetches = 0
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        found = self.keys.get(kid or "")
        stale = now - self.fetched_at > self.cache_seconds
        if found is not None and not stale:
            return found
        async with self._lock:
            if (kid or "") not in self.keys or stale:
                if time.monotonic() - self.fetched_at >= self.min_refresh or stale:
                    await self._refresh()
        found = self.keys.get(kid or "")
        if found is None and kid is None and len(self.keys) == 1:
            found = next(iter(self.keys.values()))
        if found is None:
            raise Unauthenticated("the access token is signed by an unknown key")
        return found

    async def _refresh(self) -> None:
        try:
            jwk_set = await asyncio.to_thread(self.client.get_jwk_set, True)
        except jwt.PyJWKClientError as e:
            if self.keys:
                return  # keep the keys we have; retried after min_refresh
            raise Unauthenticated("the identity provider's keys are unavailable") from e
        self.keys = {k.key_id or "": k for k in jwk_set.keys}
        self.fetched_at = time.monotonic()
        self.fetches += 1


class Verifier:
    """Turns a bearer JWT into Claims (signature, expiry, issuer, audience checked)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.idp_algorithms = _idp_algorithms(settings)
        self.public_key = (load_pem_public_key(settings.jwt_public_key.encode())
                           if settings.jwt_public_key and self.idp_algorithms else None)
        self.jwks = (Jwks(settings.jwt_jwks_url, settings.jwt_jwks_cache_seconds,
                          settings.jwt_jwks_min_refresh_seconds)
                     if settings.jwt_jwks_url and self.idp_algorithms else None)

    async def verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise Unauthenticated("the access token is malformed") from e
        algorithm = header.get("alg")
        key: Any
        if algorithm == SELF_ALGORITHM:
            key, algorithms = self.settings.jwt_secret, [SELF_ALGORITHM]
        elif algorithm in self.idp_algorithms:
            algorithms = [algorithm]
            if self.jwks is not None:
                key = (await self.jwks.key(header.get("kid"))).key
            else:
                key = self.public_key
        else:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are not accepted")
        return self._decode(token, key, algorithms)

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> Claims:
        s = self.settings
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, audience=s.jwt_audience,
                                issuer=s.jwt_issuer,
                                options={"require": ["exp", "sub", "tid"]})
        except jwt.ExpiredSignatureError as e:
            raise Unauthenticated("the access token has expired; refresh it or log in again") \
                from e
        except jwt.InvalidSignatureError as e:
            raise Unauthenticated("the access token's signature is invalid") from e
        except jwt.InvalidAudienceError as e:
            raise Unauthenticated("the access token is for another audience") from e
        except jwt.InvalidIssuerError as e:
            raise Unauthenticated("the access token is from another issuer") from e
        except jwt.MissingRequiredClaimError as e:
            raise Unauthenticated(f"the access token lacks the claim {e.claim!r}") from e
        except jwt.PyJWTError as e:
            raise Unauthenticated("the access token is invalid") from e
        try:
            sid = claims.get("sid")
            epoch = claims.get("ep")
            return Claims(tenant_id=uuid.UUID(str(claims["tid"])),
                          user_id=uuid.UUID(str(claims["sub"])),
                          session_id=uuid.UUID(str(sid)) if sid else None,
                          epoch=int(epoch) if epoch is not None else None,
                          expires_at=float(claims["exp"]))
        except (ValueError, TypeError) as e:
            raise Unauthenticated("the access token's claims are malformed") from e
