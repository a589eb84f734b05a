"""Inputs of the campaign mutations and their translation to a CampaignSpec."""

from __future__ import annotations

import strawberry

from saas.campaigns import service as campaigns
from schema.campaigns.types import CampaignRecipient, CampaignTrigger
from schema.nodes import decode_id


@strawberry.input
class CampaignStepInput:
    subject: str = strawberry.field(description="Template, e.g. 'About {{ deal.title }}'.")
    body: str = strawberry.field(description="Template; fields: deal.*, contact.*, owner.*, "
                                             "company.name, tenant.name, unsubscribe_url.")
    delay_days: int = 0
    delay_hours: int = 0
    delay_minutes: int = 0


@strawberry.input
class CreateCampaignInput:
    name: str
    trigger: CampaignTrigger
    steps: list[CampaignStepInput]
    trigger_days: int | None = strawberry.field(
        default=None, description="Stale: days in the stage (default: the stage's rotting "
                                  "days); no activity: days without activity.")
    recipient: CampaignRecipient | None = strawberry.field(
        default=None, description="Default: the owner for stale reminders, else the contact.")
    segment_ids: list[strawberry.ID] | None = None
    pipeline_ids: list[strawberry.ID] | None = None
    stage_ids: list[strawberry.ID] | None = None
    labels: list[str] | None = None
    temperatures: list[str] | None = None


@strawberry.input
class UpdateCampaignInput:
    campaign_id: strawberry.ID
    expected_version: int | None = None
    name: str | None = strawberry.UNSET
    trigger: CampaignTrigger | None = strawberry.UNSET
    trigger_days: int | None = strawberry.UNSET
    recipient: CampaignRecipient | None = strawberry.UNSET
    steps: list[CampaignStepInput] | None = strawberry.UNSET
    segment_ids: list[strawberry.ID] | None = strawberry.UNSET
    pipeline_ids: list[strawberry.ID] | None = strawberry.UNSET
    stage_ids: list[strawberry.ID] | None = strawberry.UNSET
    labels: list[str] | None = strawberry.UNSET
    temperatures: list[str] | None = strawberry.UNSET


@strawberry.input
class CampaignIdInput:
    campaign_id: strawberry.ID


@strawberry.input
class MarkRepliedInput:
    deal_id: strawberry.ID
    campaign_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this campaign; default: every campaign of the deal.")


def _spec(input: CreateCampaignInput | UpdateCampaignInput) -> campaigns.CampaignSpec:
    def present(value: object) -> bool:
        return value is not strawberry.UNSET

    spec = campaigns.CampaignSpec()
    if present(input.name):
        spec.name = input.name
    if present(input.trigger):
        spec.trigger = input.trigger.value if input.trigger else None
    if present(input.trigger_days):
        spec.trigger_days = input.trigger_days
    if present(input.recipient) and input.recipient is not None:
        spec.recipient = input.recipient.value
    for name, type_name, field in (("segment_ids", "Segment", "segmentIds"),
                                   ("pipeline_ids", "Pipeline", "pipelineIds"),
                                   ("stage_ids", "Stage", "stageIds")):
        value = getattr(input, name)
        if present(value) and (value is not None or isinstance(input, UpdateCampaignInput)):
            setattr(spec, name, [decode_id(v, type_name, field=field) for v in value or []])
    for name in ("labels", "temperatures"):
        value = getattr(input, name)
        if present(value) and (value is not None or isinstance(input, UpdateCampaignInput)):
            setattr(spec, name, list(value or []))
    if present(input.steps) and input.steps is not None:
        spec.steps = [campaigns.StepSpec(subject=s.subject, body=s.body, delay_days=s.delay_days,
                                         delay_hours=s.delay_hours, delay_minutes=s.delay_minutes)
                      for s in input.steps]
    return spec
