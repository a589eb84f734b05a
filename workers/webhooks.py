"""The webhook delivery loop inside the arq worker process (saas/webhooks/runner.py).

It is not an arq job: it follows PostgreSQL (cursors, leases) continuously and wakes on the
live hub's channel, so it runs as a task beside arq's job loop, started and stopped with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from saas.db import Database
from saas.live.config import LiveSettings, channel_for
from saas.settings import Settings
from saas.webhooks.runner import Runner


@dataclass
class Running:
    runner: Runner
    task: asyncio.Task[None]


def start(db: Database, settings: Settings) -> Running:
    runner = Runner(db, settings, channel=channel_for(settings, LiveSettings()))
    return Running(runner, asyncio.create_task(runner.run()))


async def stop(running: Running) -> None:
    running.runner.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running.task, 10)
