"""CORS from ALLOWED_ORIGINS: preflights answered and cached, other origins get no grant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from saas.app import create_app
from saas.settings import Settings
from tests.factories import TenantFactory

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"allowed_origins": [ORIGIN],
                                                 "db_pool_size": 2, "db_max_overflow": 0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


def preflight(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"}


async def test_preflight_from_an_allowed_origin_is_granted_and_cached(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.options("/graphql", headers=preflight(ORIGIN))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers


async def test_other_origins_get_no_grant(cors_client: httpx.AsyncClient,
                                          client: httpx.AsyncClient) -> None:
    refused = await cors_client.options("/graphql", headers=preflight("https://evil.example"))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # Without ALLOWED_ORIGINS (the default app) nothing cross-origin is granted at all.
    default = await client.options("/graphql", headers=preflight(ORIGIN))
    assert "access-control-allow-origin" not in default.headers
    assert default.status_code == 405


async def test_an_allowed_origin_reads_the_answer(cors_client: httpx.AsyncClient,
                                                  tenants: TenantFactory) -> None:
    t = await tenants.create()
    headers: dict[str, Any] = {**t.admin_caller.headers, "origin": ORIGIN}
    response = await cors_client.post("/graphql", json={"query": "{ me { tenantId } }"},
                                      headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    assert response.json()["data"] == {"me": {"tenantId": str(t.id)}}
    other = await cors_client.post("/graphql", json={"query": "{ me { tenantId } }"},
                                   headers={**t.admin_caller.headers, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_get_answers_say_who_may_cache_them(client: httpx.AsyncClient,
                                                   tenants: TenantFactory) -> None:
    t = await tenants.create()
    mine = await client.get("/graphql", params={"query": "{ me { tenantId } }"},
                            headers=t.admin_caller.headers)
    assert mine.json()["data"] == {"me": {"tenantId": str(t.id)}}
    assert mine.headers["cache-control"] == "private, no-store"
    assert "Authorization" in mine.headers["vary"]
    public = await client.get("/graphql", params={"query": "{ __typename }"})
    assert public.json()["data"] == {"__typename": "Query"}
    assert public.headers["cache-control"] == "public, max-age=60"
    anonymous_error = await client.get("/graphql", params={"query": "{ me { tenantId } }"})
    assert anonymous_error.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous_error.headers["cache-control"] == "private, no-store"
