"""Build the hub from settings (used by the app's lifespan)."""

from __future__ import annotations

from saas.db import Database
from saas.live.config import LiveSettings, channel_for
from saas.live.hub import Hub
from saas.settings import Settings


def build_hub(settings: Settings, db: Database) -> Hub:
    live = LiveSettings()
    return Hub(
        redis_url=settings.redis_url or "redis://127.0.0.1:6379/0",
        channel=channel_for(settings, live),
        db=db,
        queue_size=live.queue_size,
        page_size=live.page_size,
        publish_timeout=live.publish_timeout,
        backoff_max=live.backoff_max,
        render_cache_size=live.render_cache,
    )
