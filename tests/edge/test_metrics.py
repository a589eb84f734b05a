"""/metrics behind METRICS_TOKEN: 401 with a JSON error without it or with a wrong one, the
Prometheus text with it; open as before when the setting is unset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from saas.app import create_app
from saas.settings import InsecureSettings, Settings

TOKEN = "metrics-token-0123456789abcdef-0123456789"


@pytest.fixture(scope="module")
async def guarded(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"metrics_token": TOKEN, "db_pool_size": 1,
                                                 "db_max_overflow": 0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
])
async def test_without_the_token_metrics_are_refused(
    guarded: httpx.AsyncClient, authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await guarded.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert response.json() == {"errors": [{
        "message": "send 'Authorization: Bearer <METRICS_TOKEN>' to read the metrics",
        "extensions": {"code": "UNAUTHENTICATED"}}]}
    assert "saas_" not in response.text


async def test_with_the_token_metrics_are_served(guarded: httpx.AsyncClient) -> None:
    for scheme in ("Bearer", "bearer"):
        response = await guarded.get("/metrics", headers={"authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE saas_graphql_client_gone_total counter" in response.text


async def test_unset_the_metrics_stay_open(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "# TYPE saas_graphql_client_gone_total counter" in response.text


def test_a_short_token_is_refused_outside_dev(settings: Settings) -> None:
    production = settings.model_copy(update={
        "environment": "production", "jwt_secret": "j" * 40, "unsubscribe_secret": "u" * 40,
        "metrics_token": "short"})
    with pytest.raises(InsecureSettings, match="METRICS_TOKEN"):
        production.check_secure()
    production.model_copy(update={"metrics_token": TOKEN}).check_secure()
    production.model_copy(update={"metrics_token": None}).check_secure()
