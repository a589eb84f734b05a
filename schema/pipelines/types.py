"""GraphQL types of segments, pipelines and stages."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import strawberry
from strawberry import relay

from saas.pipelines import models
from saas.pipelines import service as pipelines
from schema.context import Info
from schema.errors import UserError
from schema.loaders import by_id


@strawberry.enum
class StageKind(enum.Enum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"




@strawberry.type
class Stage(relay.Node):
    id: relay.NodeID[str]
    pipeline_id: strawberry.Private[uuid.UUID]
    name: str
    position: int
    kind: StageKind
    probability: Decimal
    rotting_days: int | None
    archived: bool

    @classmethod
    def from_row(cls, m: Any) -> Stage:
        def get(key: str) -> Any:
            return m[key] if isinstance(m, dict) else getattr(m, key)

        return cls(id=str(get("id")), pipeline_id=get("pipeline_id"), name=get("name"),
                   position=get("position"), kind=StageKind(get("kind")),
                   probability=get("probability"), rotting_days=get("rotting_days"),
                   archived=m.get("archived_at") is not None if isinstance(m, dict)
                   else m.archived_at is not None)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Stage | None]:
        rows = await by_id(info, models.Stage).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_row(r) if r else None for r in rows]


@strawberry.type
class Pipeline(relay.Node):
    id: relay.NodeID[str]
    name: str
    segment_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Active stages in order (archived ones with includeArchived).")
    async def stages(self, info: Info, include_archived: bool = False) -> list[Stage]:
        async with info.context.uow() as uow:
            rows = await pipelines.list_stages(
                uow=uow, pipeline_id=uuid.UUID(self.id), include_archived=include_archived)
        return [Stage.from_row(s) for s in rows]

    @classmethod
    def from_model(cls, m: models.Pipeline) -> Pipeline:
        return cls(id=str(m.id), name=m.name, segment_id=m.segment_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Pipeline | None]:
        rows = await by_id(info, models.Pipeline).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class Segment(relay.Node):
    id: relay.NodeID[str]
    name: str
    pipeline: Pipeline

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Segment | None]:
        ids = {uuid.UUID(i) for i in node_ids}
        async with info.context.uow() as uow:
            found = {str(s.id): cls(id=str(s.id), name=s.name, pipeline=Pipeline.from_model(p))
                     for s, p in await pipelines.list_segments(uow=uow) if s.id in ids}
        return [found.get(i) for i in node_ids]


@strawberry.type
class SegmentPayload:
    segment: Segment | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class StagePayload:
    stage: Stage | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class StagesPayload:
    stages: list[Stage] | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteStagePayload:
    deleted_stage_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
