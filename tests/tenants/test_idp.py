"""External identity providers: RS256 and ES256 tokens signed with key pairs made here, a
JWKS endpoint on loopback with key rotation and caching, tampering refused, and start-up
refusing settings that cannot verify anything."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from saas.settings import Settings
from tenants.tokens import InvalidAuthConfig, check_config
from tests.factories import TenantFactory, TenantHandle

ME = "query { me { tenantId user { email role } } }"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private: Any) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(t: TenantHandle, settings: Settings, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(t.admin.user_id), "tid": str(t.id), "iat": now, "exp": now + 300,
            "iss": settings.jwt_issuer, "aud": settings.jwt_audience, **extra}


@pytest.fixture
async def idp_app(settings: Settings) -> AsyncIterator[Any]:
    """A factory of in-process apps with the given token settings."""
    from saas.app import create_app

    stack: list[Any] = []

    async def make(**overrides: Any) -> httpx.AsyncClient:
        # Small pools: the session's app and servers already hold connections of the
        # PostgreSQL server that every engineer's suite shares.
        app = create_app(settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 2,
                                                     **overrides}))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        stack.append((lifespan, client))
        return client

    yield make
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": ME},
                                 headers={"Authorization": f"Bearer {token}"})
    return response.json()  # type: ignore[no-any-return]


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "00000000-0000-0000-0000-000000000001"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_token_of_the_providers_key_is_accepted_and_a_tampered_one_refused(
    tenants: TenantFactory, settings: Settings, idp_app: Any, algorithm: str,
) -> None:
    t = await tenants.create()
    private = rsa_key() if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    client = await idp_app(jwt_public_key=pem(private), jwt_algorithms=["HS256", algorithm])
    token = jwt.encode(claims(t, settings), private, algorithm=algorithm)
    stranger = jwt.encode(claims(t, settings), rsa_key() if algorithm == "RS256"
                          else ec.generate_private_key(ec.SECP256R1()), algorithm=algorithm)
    # A token "signed" with the public key as an HMAC secret: algorithm confusion.
    confused = jwt.encode(claims(t, settings), pem(private).encode().hex(), algorithm="HS256")

    ok = await me(client, token)
    tampered = await me(client, tamper(token))
    foreign = await me(client, stranger)
    wrong_audience = await me(client, jwt.encode(claims(t, settings, aud="someone-else"),
                                                 private, algorithm=algorithm))

    assert ok["data"]["me"] == {"tenantId": str(t.id),
                                "user": {"email": t.admin_email, "role": "ADMIN"}}
    for body in (tampered, foreign):
        assert body["errors"][0]["message"] == "the access token's signature is invalid"
    assert wrong_audience["errors"][0]["message"] == "the access token is for another audience"
    assert (await me(client, confused))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


class Jwks:
    """A JWKS endpoint on loopback whose keys the test rotates; counts its requests."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, *pairs: tuple[str, rsa.RSAPrivateKey]) -> None:
        self.keys = [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                      "kid": kid, "use": "sig", "alg": "RS256"} for kid, k in pairs]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    endpoint = Jwks()
    yield endpoint
    endpoint.close()


async def test_jwks_keys_are_cached_and_a_rotated_key_is_picked_up(
    tenants: TenantFactory, settings: Settings, idp_app: Any, jwks: Jwks,
) -> None:
    t = await tenants.create()
    old, new = rsa_key(), rsa_key()
    jwks.publish(("k1", old))
    client = await idp_app(jwt_jwks_url=jwks.url, jwt_algorithms=["HS256", "RS256"],
                           jwt_jwks_min_refresh_seconds=0.0)

    def signed(key: rsa.RSAPrivateKey, kid: str) -> str:
        return jwt.encode(claims(t, settings), key, algorithm="RS256", headers={"kid": kid})

    first = [await me(client, signed(old, "k1")) for _ in range(5)]
    assert all(b["data"]["me"]["user"]["email"] == t.admin_email for b in first)
    assert jwks.hits == 1  # fetched once, then cached

    jwks.publish(("k2", new))  # the provider rotates
    rotated = await me(client, signed(new, "k2"))
    assert rotated["data"]["me"]["tenantId"] == str(t.id)
    assert jwks.hits == 2  # the unknown kid made it refetch
    tampered = await me(client, tamper(signed(new, "k2")))
    unknown = await me(client, signed(rsa_key(), "k3"))

    assert tampered["errors"][0]["message"] == "the access token's signature is invalid"
    assert unknown["errors"][0]["message"] == "the access token is signed by an unknown key"


@pytest.mark.parametrize("overrides,problem", [
    ({"jwt_algorithms": ["RS256"]}, "needs JWT_PUBLIC_KEY or JWT_JWKS_URL"),
    ({"jwt_algorithms": ["HS256"], "jwt_public_key": "x"}, "names no RS/ES algorithm"),
    ({"jwt_algorithms": ["RS256"], "jwt_public_key": "not a pem"}, "not a PEM public key"),
    ({"jwt_algorithms": ["ES256"], "jwt_public_key": None}, "needs JWT_PUBLIC_KEY"),
    ({"jwt_algorithms": ["none"]}, "unsupported values"),
    ({"jwt_algorithms": ["RS256"], "jwt_jwks_url": "file:///etc/passwd"}, "http(s) URL"),
], ids=["no-key", "key-without-algorithm", "bad-pem", "es-without-key", "none", "file-url"])
def test_start_up_refuses_settings_that_cannot_verify(settings: Settings,
                                                      overrides: dict[str, Any],
                                                      problem: str) -> None:
    with pytest.raises(InvalidAuthConfig, match="refusing to start") as e:
        check_config(settings.model_copy(update=overrides))
    assert problem in str(e.value)


def test_start_up_refuses_a_key_of_the_wrong_type(settings: Settings) -> None:
    from saas.app import create_app

    with pytest.raises(InvalidAuthConfig, match="cannot verify ES256"):
        create_app(settings.model_copy(update={"jwt_algorithms": ["ES256"],
                                               "jwt_public_key": pem(rsa_key())}))
