"""Two real API processes sharing PostgreSQL and Redis (idempotency holds across them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from saas.settings import Settings
from tests.conftest import TEST_SECRET
from tests.live.support import ApiServer


@pytest.fixture(scope="session")
def api_pair(owner_url: str, settings: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    logs = tmp_path_factory.mktemp("idempotency-servers")
    env = {"ENVIRONMENT": "test", "DATABASE_URL": owner_url, "REDIS_URL": settings.redis_url or "",
           "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET, "LOG_LEVEL": "WARNING",
           "ARQ_QUEUE_NAME": settings.arq_queue_name, "DB_POOL_SIZE": "10",
           "DB_MAX_OVERFLOW": "20"}
    pair = (ApiServer(env, logs / "a.log"), ApiServer(env, logs / "b.log"))
    try:
        for server in pair:
            server.start()
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()
