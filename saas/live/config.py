"""Knobs of the live hub, read from LIVE_* environment variables.

They live here rather than in saas.settings so the live package stays self-contained;
the channel prefix defaults to one derived from the database name, so test runs (or
deployments) that share a Redis but not a database never see each other's messages.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from saas.settings import Settings


class LiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVE_", env_file=None, extra="ignore")

    channel_prefix: str | None = None  # LIVE_CHANNEL_PREFIX; default saas:<database name>
    queue_size: int = 1000  # LIVE_QUEUE_SIZE: pending wake-ups per subscriber before resync
    page_size: int = 500  # LIVE_PAGE_SIZE: events per PostgreSQL read (replay, gap fill)
    publish_timeout: float = 1.0  # LIVE_PUBLISH_TIMEOUT: seconds a PUBLISH may take
    backoff_max: float = 2.0  # LIVE_BACKOFF_MAX: longest wait between reconnect attempts
    render_cache: int = 1024  # LIVE_RENDER_CACHE: events whose renderings are kept (0: off)


def channel_for(settings: Settings, live: LiveSettings) -> str:
    prefix = live.channel_prefix
    if not prefix:
        database = None
        for url in (settings.database_url, settings.app_database_url):
            if url:
                database = make_url(url).database
                break
        prefix = f"saas:{database or 'default'}"
    return f"{prefix}:events"
