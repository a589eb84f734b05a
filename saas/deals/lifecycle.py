"""A deal's lifecycle beyond edits: archive (soft delete), restore, permanent deletion, and
bulk changes of owner, labels and temperature.

- Archive hides a deal from boards, lists, analytics, forecasts and campaigns (its active
  enrollments stop with `deal_archived`); its history stays and it can be restored. The log
  gets a `deleted` event; restore a `restored` one. An archived deal is read-only.
- Permanent deletion (privacy:admin) removes the deal with its events, activities,
  enrollments and sends, and appends one `deleted` event with `data.permanent` so live
  boards and cursor readers learn of it. It is recorded in the audit trail.
- Bulk update changes the same fields of up to MAX_BULK deals at once, all or nothing, each
  deal with its own `updated` event carrying the field history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text

from saas.campaigns.service import stop_enrollments
from saas.db import UnitOfWork
from saas.deals import events
from saas.deals.models import Activity, Deal, StageEvent
from saas.deals.permissions import require_edit
from saas.deals.service import (
    UNSET,
    DealFields,
    apply_fields,
    changed_data,
    check_version,
    get,
)
from saas.errors import Conflict, Forbidden, InvalidStage, LimitExceeded, NotFound, ValidationFailed
from saas.pipelines import service as pipelines
from tenants import audit
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_BULK = 500


def _check_optional_version(deal: Deal, expected_version: int | None) -> None:
    if expected_version is not None:
        check_version(deal, expected_version)


async def _bump(uow: UnitOfWork, deal: Deal) -> None:
    deal.version += 1
    deal.updated_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(deal)


async def archive(*, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID,
                  expected_version: int | None) -> Deal:
    """Hide the deal everywhere but its history; a `deleted` event tells live boards."""
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    await require_edit(uow, principal, deal)
    _check_optional_version(deal, expected_version)
    if deal.archived_at is not None:
        raise Conflict("the deal is already archived", field="dealId")
    deal.archived_at = func.now()
    await _bump(uow, deal)
    await stop_enrollments(uow, where="deal_id = :d", params={"d": deal.id},
                           reason="deal_archived", now=datetime.now(UTC))
    await events.append(uow, principal=principal, deal=deal, kind="deleted",
                        from_stage_id=deal.stage_id, data={"permanent": False})
    return deal


async def restore(*, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID,
                  expected_version: int | None, stage_id: uuid.UUID | None = None) -> Deal:
    """Bring an archived deal back, in its stage (or `stage_id` if that one was archived)."""
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    await require_edit(uow, principal, deal)
    _check_optional_version(deal, expected_version)
    if deal.archived_at is None:
        raise Conflict("the deal is not archived", field="dealId")
    from_stage = deal.stage_id
    if stage_id is not None and stage_id != deal.stage_id:
        target = await pipelines.get_stage(uow=uow, stage_id=stage_id)
        if target.pipeline_id != deal.pipeline_id or target.archived_at is not None:
            raise InvalidStage("choose an active stage of the deal's pipeline",
                               field="stageId")
        if target.kind == "lost" or (await pipelines.get_stage(
                uow=uow, stage_id=deal.stage_id)).kind == "lost":
            raise InvalidStage("restore into the deal's own stage, then move it",
                               field="stageId")
        deal.stage_id = target.id
        deal.stage_entered_at = func.now()
    else:
        current = await pipelines.get_stage(uow=uow, stage_id=deal.stage_id)
        if current.archived_at is not None:
            raise InvalidStage("the deal's stage was archived: choose stageId",
                               field="stageId")
    deal.archived_at = None
    await _bump(uow, deal)
    await events.append(uow, principal=principal, deal=deal, kind="restored",
                        from_stage_id=from_stage)
    return deal


async def delete_permanently(*, uow: UnitOfWork, principal: Principal,
                             deal_id: uuid.UUID) -> uuid.UUID:
    """Remove the deal and everything that hangs on it; leaves one tombstone event."""
    principal.require(Scope.PRIVACY_ADMIN)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    tombstone = Deal(tenant_id=deal.tenant_id, id=deal.id, pipeline_id=deal.pipeline_id,
                     stage_id=deal.stage_id, amount=deal.amount, currency=deal.currency,
                     lost_reason=None)
    params = {"d": deal.id}
    await uow.session.execute(text("DELETE FROM campaign_sends WHERE deal_id = :d"), params)
    await uow.session.execute(text("DELETE FROM campaign_enrollments WHERE deal_id = :d"),
                              params)
    await uow.session.execute(delete(Activity).where(Activity.deal_id == deal.id))
    removed = (await uow.session.execute(
        delete(StageEvent).where(StageEvent.deal_id == deal.id))).rowcount  # type: ignore[attr-defined]
    await uow.session.delete(deal)
    await uow.session.flush()
    await events.append(uow, principal=principal, deal=tombstone, kind="deleted",
                        from_stage_id=tombstone.stage_id, data={"permanent": True})
    await audit.record(uow, principal, "deal.deleted_permanently", target=("Deal", deal.id),
                       details={"pipeline_id": str(deal.pipeline_id),
                                "events_removed": int(removed or 0)})
    return deal.id


@dataclass
class BulkChange:
    """What a bulk update sets: UNSET leaves it; labels are added and removed."""

    owner_id: Any = UNSET
    temperature: Any = UNSET
    add_labels: Sequence[str] = ()
    remove_labels: Sequence[str] = ()

    @property
    def empty(self) -> bool:
        return (self.owner_id is UNSET and self.temperature is UNSET and not self.add_labels
                and not self.remove_labels)


async def bulk_update(*, uow: UnitOfWork, principal: Principal, deal_ids: Sequence[uuid.UUID],
                      change: BulkChange) -> list[Deal]:
    """Apply `change` to every deal, all or nothing (the first refusal names its index)."""
    principal.require(Scope.DEALS_WRITE)
    if change.empty:
        raise ValidationFailed("say what to change: ownerId, temperature, addLabels or "
                               "removeLabels", field="input")
    ids = list(dict.fromkeys(deal_ids))
    if not ids:
        raise ValidationFailed("dealIds is empty", field="dealIds")
    if len(ids) > MAX_BULK:
        raise LimitExceeded(f"at most {MAX_BULK} deals per bulk update", field="dealIds")
    rows = (await uow.session.execute(
        select(Deal).where(Deal.id.in_(ids)).order_by(Deal.id).with_for_update())).scalars()
    found = {d.id: d for d in rows}
    for i, deal_id in enumerate(ids):
        if deal_id not in found:
            raise NotFound(f"deal not found (dealIds[{i}])", field="dealIds")
    remove = {label.strip() for label in change.remove_labels}
    for i, deal_id in enumerate(ids):
        deal = found[deal_id]
        try:
            await require_edit(uow, principal, deal)
        except Forbidden as e:
            raise Forbidden(f"{e.message} (dealIds[{i}])", field="dealIds") from e
        if deal.archived_at is not None:
            raise Conflict(f"the deal is archived (dealIds[{i}]); restore it first",
                           field="dealIds")
        fields = DealFields(owner_id=change.owner_id, temperature=change.temperature)
        if change.add_labels or change.remove_labels:
            current = [label for label in deal.labels if label not in remove]
            fields.labels = current + [label for label in change.add_labels
                                       if label.strip() not in remove]
        changes = await apply_fields(uow, principal, deal, fields)
        if not changes:
            continue
        await _bump(uow, deal)
        await events.append(uow, principal=principal, deal=deal, kind="updated",
                            from_stage_id=deal.stage_id, data=changed_data(changes))
    return [found[i] for i in ids]

