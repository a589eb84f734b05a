"""Campaign test helpers: a real SMTP server on loopback, a movable clock, burst workers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from arq.worker import create_worker
from strawberry.relay import GlobalID

from saas import jobs
from saas.db import Database
from saas.embedded import free_port
from saas.settings import Settings
from tests.factories import TENANT_TABLES, Caller, snapshot
from workers.settings import WorkerSettings

CAMPAIGN_TABLES = ("campaigns", "campaign_steps", "campaign_cursors", "campaign_enrollments",
                   "campaign_sends")

CREATE = """
mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
  campaign { id name trigger triggerDays recipient status version labels temperatures
             segmentIds pipelineIds stageIds steps { position delayMinutes subject body } }
  errors { code field message } } }"""
UPDATE = """
mutation($input: UpdateCampaignInput!) { updateCampaign(input: $input) {
  campaign { id name status version steps { position delayMinutes subject } }
  errors { code field message } } }"""
PAUSE = """mutation($id: ID!) { pauseCampaign(input: {campaignId: $id}) {
  campaign { id status } errors { code field message } } }"""
RESUME = """mutation($id: ID!) { resumeCampaign(input: {campaignId: $id}) {
  campaign { id status } errors { code field message } } }"""
REPLIED = """mutation($deal: ID!) { markReplied(input: {dealId: $deal}) {
  stopped { id status stopReason } errors { code field message } } }"""
ENROLLMENTS = """
query($deal: ID, $campaign: ID) { campaignEnrollments(dealId: $deal, campaignId: $campaign) {
  id status stopReason nextStep nextDueAt convertedAt convertedByEventSeq dealId
  campaign { id name }
  sends { step status recipient subject attempts error messageId sentAt nextAttemptAt } } }"""
CONTACT = """mutation($name: String!, $email: String) {
  createContact(input: {name: $name, email: $email}) { contact { id } errors { code } } }"""


def raw(global_id: str) -> uuid.UUID:
    return uuid.UUID(GlobalID.from_id(global_id).node_id)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        content = str(self.message.get_content())  # type: ignore[attr-defined]
        return content.replace("\r\n", "\n")


@dataclass
class Handler:
    """An SMTP server's behaviour, scripted by the test (runs in the controller's thread)."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)  # next RCPT answers, then 250
    data_replies: list[str] = field(default_factory=list)
    block_in: str | None = None  # "rcpt" or "data": hold the client there until released
    release: threading.Event = field(default_factory=threading.Event)
    blocked: threading.Event = field(default_factory=threading.Event)

    async def _hold(self, where: str) -> None:
        if self.block_in == where:
            self.blocked.set()
            await asyncio.to_thread(self.release.wait)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        await self._hold("rcpt")
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      parsed))  # type: ignore[arg-type]
        await self._hold("data")
        return "250 Message accepted for delivery"

    def for_recipient(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


class SmtpServer:
    def __init__(self) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.handler.release.set()
        self.controller.stop()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


async def run_jobs(settings: Settings, db: Database, clock: Clock,
                   *tenant_ids: uuid.UUID, copies: int = 1) -> None:
    """Enqueue `campaigns_tenant` for each tenant (`copies` times, distinct job ids) and run
    a real in-process arq burst worker until the queue is empty."""
    pool = await jobs.connect(settings)
    try:
        for tenant_id in tenant_ids:
            for _ in range(copies):
                await pool.enqueue_job("campaigns_tenant", tenant_id=str(tenant_id),
                                       _job_id=f"test-campaigns:{uuid.uuid4().hex}")
    finally:
        await pool.aclose()
    await burst_worker(settings, db, clock)


async def burst_worker(settings: Settings, db: Database, clock: Clock) -> None:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = db
        ctx["settings"] = settings
        ctx["clock"] = clock

    worker = create_worker(WorkerSettings, burst=True, queue_name=settings.arq_queue_name,
                           redis_settings=jobs.redis_settings(settings), on_startup=startup,
                           on_shutdown=None, cron_jobs=[], poll_delay=0.05,
                           handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def full_snapshot(owner_conn: Any, tenant_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    """tests.factories.snapshot plus the campaign tables."""
    result = await snapshot(owner_conn, tenant_id)
    for table in CAMPAIGN_TABLES:
        assert table not in TENANT_TABLES
        row = await owner_conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
            f"AS h FROM {table} t WHERE tenant_id = $1", tenant_id)
        result[table] = (row["n"], row["h"])
    return result


async def contact(caller: Caller, name: str, email_address: str | None) -> str:
    data = await caller.ok(CONTACT, name=name, email=email_address)
    contact_id: str = data["createContact"]["contact"]["id"]
    return contact_id


async def create_campaign(caller: Caller, **input: Any) -> dict[str, Any]:
    data = await caller.ok(CREATE, input=input)
    assert data["createCampaign"]["errors"] == [], data
    campaign: dict[str, Any] = data["createCampaign"]["campaign"]
    return campaign


async def enrollments(caller: Caller, *, deal: str | None = None,
                      campaign: str | None = None) -> list[dict[str, Any]]:
    data = await caller.ok(ENROLLMENTS, deal=deal, campaign=campaign)
    result: list[dict[str, Any]] = data["campaignEnrollments"]
    return result
