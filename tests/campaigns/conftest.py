"""Fixtures: a real SMTP server on a free loopback port, settings pointing at it, a clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from saas.settings import Settings
from tests.campaigns.support import Clock, SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                                       "smtp_timeout_seconds": 10.0})


@pytest.fixture
def clock() -> Clock:
    return Clock()
