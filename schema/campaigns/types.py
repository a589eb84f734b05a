"""GraphQL types of campaigns, enrollments and sends."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from saas.campaigns import models
from saas.campaigns import service as campaigns
from saas.errors import LimitExceeded, NotFound
from schema.campaigns import loaders
from schema.context import Info
from schema.errors import UserError
from schema.nodes import gid


@strawberry.enum(description="What enrolls a deal.")
class CampaignTrigger(enum.Enum):
    DEAL_CREATED = "deal_created"
    DEAL_WON = "deal_won"
    DEAL_LOST = "deal_lost"
    DEAL_STALE = "deal_stale"
    NO_ACTIVITY = "no_activity"


@strawberry.enum
class CampaignRecipient(enum.Enum):
    CONTACT = "contact"
    OWNER = "owner"


@strawberry.enum
class CampaignStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


@strawberry.enum
class EnrollmentStatus(enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"


@strawberry.enum
class StopReason(enum.Enum):
    REPLIED = "replied"
    REOPENED = "reopened"
    DEAL_MOVED = "deal_moved"
    ACTIVITY_LOGGED = "activity_logged"
    UNSUBSCRIBED = "unsubscribed"
    CAMPAIGN_PAUSED = "campaign_paused"
    NO_RECIPIENT = "no_recipient"
    DELIVERY_FAILED = "delivery_failed"
    DEAL_ARCHIVED = "deal_archived"
    CONTACT_MERGED = "contact_merged"
    CONTACT_DELETED = "contact_deleted"


@strawberry.enum(description="CLAIMED: a worker is about to send; DELIVERING: being handed "
                             "to SMTP; UNCONFIRMED: the worker stopped mid-delivery, so it may "
                             "have arrived and is never re-sent; RETRY: a transient failure, "
                             "tried again at nextAttemptAt.")
class SendStatus(enum.Enum):
    CLAIMED = "claimed"
    DELIVERING = "delivering"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    CANCELLED = "cancelled"




def _ids(type_name: str, ids: list[uuid.UUID]) -> list[strawberry.ID]:
    return [gid(type_name, i) for i in ids]


@strawberry.type
class CampaignStep:
    position: int
    delay_minutes: int = strawberry.field(
        description="Minutes after the previous step was sent (the first: after the trigger).")
    subject: str
    body: str


@strawberry.type
class Campaign(relay.Node):
    id: relay.NodeID[str]
    name: str
    trigger: CampaignTrigger
    trigger_days: int | None
    recipient: CampaignRecipient
    status: CampaignStatus
    segment_ids: list[strawberry.ID]
    pipeline_ids: list[strawberry.ID]
    stage_ids: list[strawberry.ID]
    labels: list[str]
    temperatures: list[str]
    steps: list[CampaignStep]
    version: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Enrollments in this campaign, newest first.")
    async def enrollments(self, info: Info, first: int = 100,
                          status: EnrollmentStatus | None = None) -> list[CampaignEnrollment]:
        if not 0 < first <= campaigns.MAX_LIST:
            raise LimitExceeded(f"first must be 1-{campaigns.MAX_LIST}", field="first")
        loader = loaders.enrollments_by_campaign(info, first=first,
                                                 status=status.value if status else None)
        rows = await loader.load(uuid.UUID(self.id))
        return [CampaignEnrollment.from_model(e, sends) for e, sends in rows]

    @classmethod
    def from_view(cls, v: campaigns.CampaignView) -> Campaign:
        c = v.campaign
        return cls(id=str(c.id), name=c.name, trigger=CampaignTrigger(c.trigger),
                   trigger_days=c.trigger_days, recipient=CampaignRecipient(c.recipient),
                   status=CampaignStatus(c.status), segment_ids=_ids("Segment", c.segment_ids),
                   pipeline_ids=_ids("Pipeline", c.pipeline_ids),
                   stage_ids=_ids("Stage", c.stage_ids), labels=list(c.labels),
                   temperatures=list(c.temperatures),
                   steps=[CampaignStep(position=s.position, delay_minutes=s.delay_minutes,
                                       subject=s.subject, body=s.body) for s in v.steps],
                   version=c.version, created_at=c.created_at, updated_at=c.updated_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Campaign | None]:
        out: list[Campaign | None] = []
        async with info.context.uow() as uow:
            for i in node_ids:
                try:
                    c = await campaigns.get(uow=uow, campaign_id=uuid.UUID(i))
                except NotFound:
                    out.append(None)
                    continue
                steps = await campaigns.steps_of(uow, [c.id])
                out.append(cls.from_view(campaigns.CampaignView(c, steps.get(c.id, []))))
        return out


@strawberry.type
class CampaignSend:
    id: strawberry.ID
    step: int
    status: SendStatus
    recipient: str
    subject: str
    body: str
    message_id: str
    attempts: int
    error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, s: models.Send) -> CampaignSend:
        return cls(id=strawberry.ID(str(s.id)), step=s.step, status=SendStatus(s.status),
                   recipient=s.recipient, subject=s.subject, body=s.body,
                   message_id=s.message_id, attempts=s.attempts, error=s.error,
                   next_attempt_at=s.next_attempt_at, sent_at=s.sent_at,
                   created_at=s.created_at)


@strawberry.type
class CampaignEnrollment(relay.Node):
    id: relay.NodeID[str]
    campaign_id: strawberry.ID
    deal_id: strawberry.ID
    status: EnrollmentStatus
    stop_reason: StopReason | None
    next_step: int = strawberry.field(description="Position of the next step to send.")
    next_due_at: datetime | None
    enrolled_at: datetime
    finished_at: datetime | None
    converted_at: datetime | None = strawberry.field(
        description="When the lost deal was reopened after this re-engagement campaign.")
    converted_by_event_seq: int | None
    sends: list[CampaignSend]

    @strawberry.field
    async def campaign(self, info: Info) -> Campaign | None:
        campaign_id = uuid.UUID(relay.GlobalID.from_id(self.campaign_id).node_id)
        row = await loaders.campaigns_by_id(info).load(campaign_id)
        if row is None:
            return None
        return Campaign.from_view(campaigns.CampaignView(*row))

    @classmethod
    def from_model(cls, e: models.Enrollment, sends: list[models.Send]) -> CampaignEnrollment:
        return cls(id=str(e.id), campaign_id=gid("Campaign", e.campaign_id),
                   deal_id=gid("Deal", e.deal_id),
                   status=EnrollmentStatus(e.status),
                   stop_reason=StopReason(e.stop_reason) if e.stop_reason else None,
                   next_step=e.next_step, next_due_at=e.next_due_at, enrolled_at=e.enrolled_at,
                   finished_at=e.finished_at, converted_at=e.converted_at,
                   converted_by_event_seq=e.converted_seq,
                   sends=[CampaignSend.from_model(s) for s in sends])

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[CampaignEnrollment | None]:
        ids = [uuid.UUID(i) for i in node_ids]
        async with info.context.uow() as uow:
            rows = {e.id: e for e in await campaigns.enrollments(uow=uow, ids=ids)}
            sends = await campaigns.sends(uow=uow, enrollment_ids=list(rows))
        return [cls.from_model(rows[i], [s for s in sends if s.enrollment_id == i])
                if i in rows else None for i in ids]


async def _enrollments(info: Info, *, first: int, deal_id: uuid.UUID | None = None,
                       campaign_id: uuid.UUID | None = None,
                       status: EnrollmentStatus | None = None) -> list[CampaignEnrollment]:
    if not 0 < first <= campaigns.MAX_LIST:
        raise LimitExceeded(f"first must be 1-{campaigns.MAX_LIST}", field="first")
    async with info.context.uow() as uow:
        rows = await campaigns.enrollments(uow=uow, deal_id=deal_id, campaign_id=campaign_id,
                                           status=status.value if status else None, limit=first)
        sends = await campaigns.sends(uow=uow, enrollment_ids=[e.id for e in rows],
                                      limit=first * campaigns.MAX_STEPS)
    by_enrollment: dict[uuid.UUID, list[models.Send]] = {}
    for s in sends:
        by_enrollment.setdefault(s.enrollment_id, []).append(s)
    return [CampaignEnrollment.from_model(e, by_enrollment.get(e.id, [])) for e in rows]


@strawberry.type
class CampaignPayload:
    campaign: Campaign | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MarkRepliedPayload:
    stopped: list[CampaignEnrollment] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)
