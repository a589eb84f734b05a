"""Plan targets: set (create or replace) and delete (targets:write)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import strawberry

from saas.planning import service as planning
from saas.planning import targets
from schema.analytics.api import PeriodKind, PlanPeriodInput, TargetMetric, _opt
from schema.context import Info
from schema.errors import UserError
from schema.mutations import DeletedPayload, payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.type
class Target:
    id: strawberry.ID
    user_id: strawberry.ID | None
    team_id: strawberry.ID | None
    period_kind: PeriodKind
    period_start: date
    metric: TargetMetric
    value: Decimal


@strawberry.type
class TargetPayload:
    target: Target | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetTargetInput:
    period: PlanPeriodInput
    metric: TargetMetric
    value: Decimal
    user_id: strawberry.ID | None = None
    team_id: strawberry.ID | None = None


@strawberry.input
class DeleteTargetInput:
    target_id: strawberry.ID


@strawberry.type
class TargetsMutation:
    @strawberry.mutation(description="Create or replace a target (managers and admins).")
    async def set_target(self, info: Info, input: SetTargetInput) -> TargetPayload:
        principal = info.context.require_principal()

        async def act() -> TargetPayload:
            principal.require(Scope.TARGETS_WRITE)
            async with info.context.uow() as uow:
                t: dict[str, Any] = await planning.set_target(
                    uow=uow, principal=principal, kind=input.period.kind.value,
                    start=input.period.start, metric=input.metric.value, value=input.value,
                    user_id=_opt(input.user_id, "User", "userId"),
                    team_id=_opt(input.team_id, "Team", "teamId"))
            return TargetPayload(target=Target(
                id=gid("Target", t["id"]),
                user_id=gid("User", t["user_id"]), team_id=gid("Team", t["team_id"]),
                period_kind=PeriodKind(t["period_kind"]), period_start=t["period_start"],
                metric=TargetMetric(t["metric"]), value=t["value"]))

        return await payload(TargetPayload, act)

    @strawberry.mutation(description="Remove a target: plan-fact shows no target for it.")
    async def delete_target(self, info: Info, input: DeleteTargetInput) -> DeletedPayload:
        principal = info.context.require_principal()

        async def act() -> DeletedPayload:
            principal.require(Scope.TARGETS_WRITE)
            target_id = decode_id(input.target_id, "Target", field="targetId")
            async with info.context.uow() as uow:
                gone = await targets.delete_target(uow=uow, principal=principal,
                                                   target_id=target_id)
            return DeletedPayload(deleted_id=gid("Target", gone))

        return await payload(DeletedPayload, act)
