"""Deal creation at a steady rate from its own process, for bench/partners.py.

    python -m bench.deal_writer DB_URL TENANT_ID USER_ID PIPELINE_ID RATE COUNT PREFIX

Creates COUNT deals titled PREFIX-i at RATE per second through the deals service (like the
API's createDeal: one transaction each, its event appended to the log and announced on the
live channel after commit, as the API's hub does), then prints one JSON object
{title: commit wall-clock time}. Several of these stand for several API processes: one
Python process cannot commit 100 deals/s and run the rest of a benchmark.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from decimal import Decimal

import redis.asyncio as aioredis

from bench.common import redis_url, settings_for
from saas.db import Database, create_engine
from saas.deals import service as deals
from saas.live.config import LiveSettings, channel_for
from tenants.principal import Principal, Role


async def main(url: str, tenant: uuid.UUID, user: uuid.UUID, pipeline: uuid.UUID, rate: float,
               count: int, prefix: str) -> None:
    settings = settings_for(url)
    channel = channel_for(settings, LiveSettings())
    redis = aioredis.Redis.from_url(redis_url())

    async def publish(messages: list[dict[str, object]]) -> None:
        for message in messages:
            await redis.publish(channel, json.dumps(message))

    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=10), publish)
    admin = Principal(tenant_id=tenant, user_id=user, role=Role.ADMIN)
    commits: dict[str, float] = {}

    async def create(title: str) -> None:
        async with db.unit_of_work(tenant) as uow:
            await deals.create(uow=uow, principal=admin, pipeline_id=pipeline, stage_id=None,
                               fields=deals.DealFields(title=title, amount=Decimal(1)))
        commits[title] = time.time()

    try:
        start = time.perf_counter()
        pending = []
        for i in range(count):
            pending.append(asyncio.create_task(create(f"{prefix}-{i}")))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*pending)
    finally:
        await db.dispose()
        await redis.aclose()
    print(json.dumps(commits))


if __name__ == "__main__":
    url, tenant, user, pipeline, rate, count, prefix = sys.argv[1:8]
    asyncio.run(main(url, uuid.UUID(tenant), uuid.UUID(user), uuid.UUID(pipeline), float(rate),
                     int(count), prefix))
