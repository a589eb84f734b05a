"""Deleting a plan target (setTarget is in schema/analytics/api.py)."""

from __future__ import annotations

import strawberry

from saas.planning import targets
from schema.context import Info
from schema.mutations import DeletedPayload, payload
from schema.nodes import decode_id, gid
from tenants.scopes import Scope


@strawberry.input
class DeleteTargetInput:
    target_id: strawberry.ID


@strawberry.type
class TargetsMutation:
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
