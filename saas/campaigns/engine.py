"""The campaign engine a worker runs once a minute per tenant: enroll, then send what is due.

Enrollment is in `enrollment.py` (event triggers from the stage-event log through a cursor,
time triggers by scan); sending, exactly once per enrollment and step, in `sending.py`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import text

from saas.campaigns.enrollment import enroll_from_events, enroll_time_triggers
from saas.campaigns.mailer import Mailer
from saas.campaigns.results import TickResult
from saas.campaigns.sending import send_due
from saas.db import Database
from saas.settings import Settings

log = logging.getLogger("saas.campaigns")
__all__ = ["TickResult", "enroll_from_events", "has_campaigns", "tick"]


async def has_campaigns(db: Database, tenant_id: uuid.UUID) -> bool:
    async with db.unit_of_work(tenant_id) as uow:
        return bool((await uow.session.execute(text(
            "SELECT EXISTS (SELECT 1 FROM campaign_cursors)"))).scalar())


async def tick(db: Database, settings: Settings, tenant_id: uuid.UUID, now: datetime,
               mailer: Mailer) -> TickResult:
    """One tenant's minute: enroll from events and time triggers, then send what is due."""
    result = TickResult()
    if not await has_campaigns(db, tenant_id):
        return result
    await enroll_from_events(db, tenant_id, now, result)
    await enroll_time_triggers(db, tenant_id, now, result)
    await send_due(db, settings, tenant_id, now, mailer, result)
    return result
