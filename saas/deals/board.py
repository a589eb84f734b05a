"""The board: a pipeline's active stages, each with its first N deals, in one SQL statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import LimitExceeded, NotFound

MAX_PER_STAGE = 100

# The board query is the database function board_rows (migration 0009): it sets the tenant
# and runs one statement -- LATERAL per stage over the (tenant, pipeline, stage, updated_at,
# id) index for the first N cards, plus the column's count; RLS adds the tenant predicate to
# every table reference. Being one statement that enters the tenant itself, it needs no
# separate set_config (see schema/response_cache.py for why that matters).
BOARD_SQL = text("SELECT * FROM board_rows(:tenant, :pipeline, :n)")


@dataclass
class Column:
    stage: dict[str, Any]
    deal_count: int
    cards: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Board:
    pipeline_id: uuid.UUID
    pipeline_name: str
    columns: list[Column]


async def load(*, uow: UnitOfWork, pipeline_id: uuid.UUID, per_stage: int) -> Board:
    """The whole board in one round trip, whatever its size."""
    if not 0 <= per_stage <= MAX_PER_STAGE:
        raise LimitExceeded(f"dealsPerStage must be 0-{MAX_PER_STAGE}", field="dealsPerStage")
    if uow.tenant_id is None:
        raise NotFound("pipeline not found", field="pipelineId")
    result = await uow.session.execute(
        BOARD_SQL, {"tenant": uow.tenant_id, "pipeline": pipeline_id, "n": per_stage})
    keys = tuple(result.keys())
    columns: dict[uuid.UUID, Column] = {}
    name = None
    for values in result:
        row = dict(zip(keys, values, strict=True))
        name = row["pipeline_name"]
        column = columns.get(row["stage_id"])
        if column is None:
            column = columns[row["stage_id"]] = Column(
                stage={"id": row["stage_id"], "pipeline_id": pipeline_id,
                       "name": row["stage_name"], "position": row["position"],
                       "kind": row["kind"], "probability": row["probability"],
                       "rotting_days": row["rotting_days"]},
                deal_count=row["deal_count"],
            )
        if row["id"] is not None:
            column.cards.append(row)
    if name is None:
        raise NotFound("pipeline not found", field="pipelineId")
    return Board(pipeline_id=pipeline_id, pipeline_name=name, columns=list(columns.values()))
