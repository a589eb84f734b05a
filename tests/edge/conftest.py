"""A real API server process for the edge tests that need sockets (audits, slow clients,
disconnects, attacks with a bystander), on the session's database and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from saas.settings import Settings
from tests.conftest import TEST_SECRET
from tests.live.support import ApiServer

EDGE_ENV = {"BODY_READ_TIMEOUT_SECONDS": "2", "WS_MESSAGES_PER_SECOND": "20",
            "WS_MESSAGE_BURST": "40"}


@pytest.fixture(scope="session")
def edge_server(owner_url: str, settings: Settings,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = {"ENVIRONMENT": "test", "DATABASE_URL": owner_url, "REDIS_URL": settings.redis_url or "",
           "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET, "LOG_LEVEL": "INFO",
           "DB_POOL_SIZE": "4", "DB_MAX_OVERFLOW": "0", **EDGE_ENV}
    server = ApiServer(env, tmp_path_factory.mktemp("edge-server") / "api.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
