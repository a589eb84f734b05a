"""Deals: create, read, update fields (stage moves live in `moves`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from saas.contacts.models import Company, Contact
from saas.db import UnitOfWork
from saas.deals import custom_fields, events
from saas.deals.models import Deal
from saas.deals.permissions import require_assign, require_edit
from saas.errors import Conflict, InvalidStage, NotFound, ValidationFailed, VersionConflict
from saas.money import check_amount, check_currency
from saas.pipelines import segments
from saas.pipelines import service as pipelines
from tenants.models import Tenant, User
from tenants.principal import Principal
from tenants.scopes import Scope

TEMPERATURES = ("hot", "warm", "cold")
MAX_LABELS = 20
UNSET: Any = object()


@dataclass
class DealFields:
    """Editable deal fields; UNSET leaves a field as it is."""

    title: Any = UNSET
    amount: Any = UNSET
    currency: Any = UNSET
    owner_id: Any = UNSET
    contact_id: Any = UNSET
    company_id: Any = UNSET
    expected_close_date: Any = UNSET
    temperature: Any = UNSET
    labels: Any = UNSET
    custom_fields: Any = UNSET
    probability_override: Any = UNSET
    changed: list[str] = field(default_factory=list)


async def get(*, uow: UnitOfWork, deal_id: uuid.UUID, for_update: bool = False) -> Deal:
    query = select(Deal).where(Deal.id == deal_id)
    if for_update:
        query = query.with_for_update()
    deal = (await uow.session.execute(query)).scalar_one_or_none()
    if deal is None:
        raise NotFound("deal not found", field="dealId")
    return deal


async def _exists(uow: UnitOfWork, model: Any, id: uuid.UUID, field: str, what: str) -> None:
    found = (await uow.session.execute(
        select(func.count()).select_from(model).where(model.id == id))).scalar_one()
    if not found:
        raise NotFound(f"{what} not found", field=field)


async def apply_fields(uow: UnitOfWork, principal: Principal, deal: Deal,
                 f: DealFields) -> dict[str, dict[str, Any]]:
    """Validate every given field, then set them; returns what changed, per field, as
    `{field: {"from": old, "to": new}}` in JSON terms (the field history of the log)."""
    changes: dict[str, Any] = {}
    if f.title is not UNSET:
        title = (f.title or "").strip()
        if not title or len(title) > 300:
            raise ValidationFailed("title must be 1-300 characters", field="title")
        changes["title"] = title
    if f.amount is not UNSET:
        changes["amount"] = check_amount(f.amount)
    if f.currency is not UNSET:
        changes["currency"] = check_currency(f.currency)
    if f.owner_id is not UNSET:
        if f.owner_id is not None and f.owner_id != principal.user_id:
            # (the caller's own user exists: authentication checked it for this request)
            await _exists(uow, User, f.owner_id, "ownerId", "owner")
        await require_assign(uow, principal, f.owner_id)
        changes["owner_id"] = f.owner_id
    if f.contact_id is not UNSET:
        if f.contact_id is not None:
            await _exists(uow, Contact, f.contact_id, "contactId", "contact")
        changes["contact_id"] = f.contact_id
    if f.company_id is not UNSET:
        if f.company_id is not None:
            await _exists(uow, Company, f.company_id, "companyId", "company")
        changes["company_id"] = f.company_id
    if f.expected_close_date is not UNSET:
        if f.expected_close_date is not None and not isinstance(f.expected_close_date, date):
            raise ValidationFailed("expected close must be a date", field="expectedCloseDate")
        changes["expected_close_date"] = f.expected_close_date
    if f.temperature is not UNSET:
        if f.temperature not in TEMPERATURES:
            raise ValidationFailed("temperature must be hot, warm or cold", field="temperature")
        changes["temperature"] = f.temperature
    if f.labels is not UNSET:
        labels = sorted({label.strip() for label in (f.labels or []) if label.strip()})
        if len(labels) > MAX_LABELS or any(len(label) > 50 for label in labels):
            raise ValidationFailed(f"at most {MAX_LABELS} labels of up to 50 characters",
                                   field="labels")
        changes["labels"] = labels
    if f.custom_fields is not UNSET:
        changes["custom_fields"] = await custom_fields.validate(
            uow, f.custom_fields or {}, existing=deal.custom_fields)
    if f.probability_override is not UNSET:
        p = f.probability_override
        if p is not None and not Decimal(0) <= Decimal(str(p)) <= Decimal(1):
            raise ValidationFailed("probability must be between 0 and 1",
                                   field="probabilityOverride")
        changes["probability_override"] = Decimal(str(p)) if p is not None else None
    changed = {k: {"from": history_value(getattr(deal, k, None)), "to": history_value(v)}
               for k, v in changes.items() if getattr(deal, k, None) != v}
    for key, value in changes.items():
        setattr(deal, key, value)
    return changed


def history_value(value: Any) -> Any:
    """A field's value as the log keeps it: JSON (ids and decimals as strings, dates ISO)."""
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [history_value(v) for v in value]
    return value


def changed_data(changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An `updated` event's data: the names that changed and each one's from/to."""
    return {"changed": list(changes), "changes": changes}


def check_active(deal: Deal) -> None:
    """Archived deals are read-only until restored."""
    if deal.archived_at is not None:
        raise Conflict("the deal is archived; restore it first", field="dealId")


async def create(
    *, uow: UnitOfWork, principal: Principal, pipeline_id: uuid.UUID,
    stage_id: uuid.UUID | None, fields: DealFields,
) -> Deal:
    """A new deal in an open stage of the pipeline (default: the first), with its event."""
    principal.require(Scope.DEALS_WRITE)
    pipeline = await pipelines.get_pipeline(uow=uow, pipeline_id=pipeline_id)
    await segments.check_open_for_deals(uow, pipeline, "pipelineId")
    stages = await pipelines.list_stages(uow=uow, pipeline_id=pipeline.id)
    if stage_id is None:
        stage = next((s for s in stages if s.kind == "open"), None)
        if stage is None:
            raise InvalidStage("the pipeline has no open stage", field="stageId")
    else:
        stage = next((s for s in stages if s.id == stage_id), None)
        if stage is None:
            raise InvalidStage("the stage is not an active stage of this pipeline",
                               field="stageId")
        if stage.kind != "open":
            raise InvalidStage("new deals start in an open stage", field="stageId")
    if fields.owner_id is UNSET:
        fields.owner_id = principal.user_id
    if fields.currency is UNSET:
        tenant = await uow.session.get(Tenant, principal.tenant_id)
        fields.currency = tenant.base_currency if tenant else "USD"
    if fields.amount is UNSET:
        fields.amount = Decimal(0)
    if fields.title is UNSET:
        fields.title = ""
    if fields.custom_fields is UNSET:
        fields.custom_fields = {}  # so required custom fields are checked on creation
    deal = Deal(tenant_id=principal.tenant_id, id=uuid.uuid4(), pipeline_id=pipeline.id,
                stage_id=stage.id, version=1, labels=[], temperature="warm")
    await apply_fields(uow, principal, deal, fields)
    uow.session.add(deal)
    await uow.session.flush()  # server defaults come back in the INSERT (eager_defaults)
    await events.append(uow, principal=principal, deal=deal, kind="created", from_stage_id=None)
    return deal


async def update(
    *, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID, expected_version: int,
    fields: DealFields,
) -> Deal:
    """Change fields (not the stage) under optimistic concurrency; emits an `updated` event."""
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    await require_edit(uow, principal, deal)
    check_version(deal, expected_version)
    check_active(deal)
    changed = await apply_fields(uow, principal, deal, fields)
    if not changed:
        return deal
    deal.version += 1
    deal.updated_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(deal)
    await events.append(uow, principal=principal, deal=deal, kind="updated",
                        from_stage_id=deal.stage_id, data=changed_data(changed))
    return deal


def check_version(deal: Deal, expected_version: int) -> None:
    if deal.version != expected_version:
        raise VersionConflict(
            f"the deal is at version {deal.version}, not {expected_version}; reload and retry",
            field="expectedVersion",
            current_version=deal.version,
            current_stage_id=deal.stage_id,
        )
