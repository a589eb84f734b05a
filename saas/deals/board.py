"""The board: a pipeline's active stages, each with its first N deals, in one SQL statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import LimitExceeded, NotFound

MAX_PER_STAGE = 100

# LATERAL per stage walks the (tenant, pipeline, stage, updated_at, id) index for the first N
# cards and counts the column; RLS adds the tenant predicate to every table reference.
BOARD_SQL = text(
    """
    SELECT s.id AS stage_id, s.name AS stage_name, s.position, s.kind, s.probability,
           s.rotting_days, p.name AS pipeline_name, cnt.n AS deal_count,
           d.id, d.title, d.amount, d.currency, d.temperature, d.labels, d.version,
           d.expected_close_date, d.probability_override, d.stage_entered_at, d.updated_at,
           d.created_at, d.owner_id, d.contact_id, d.company_id, d.lost_reason,
           d.custom_fields, u.name AS owner_name, u.email AS owner_email, u.role AS owner_role,
           u.team_id AS owner_team_id, u.is_active AS owner_is_active,
           c.name AS contact_name, c.email AS contact_email, c.phone AS contact_phone,
           c.company_id AS contact_company_id, c.unsubscribed_at AS contact_unsubscribed_at
    FROM pipelines p
    JOIN stages s ON s.pipeline_id = p.id AND s.archived_at IS NULL
    LEFT JOIN LATERAL (
        SELECT count(*) AS n FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id
    ) cnt ON true
    LEFT JOIN LATERAL (
        SELECT * FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id
        ORDER BY x.updated_at DESC, x.id DESC LIMIT :n
    ) d ON true
    LEFT JOIN users u ON u.id = d.owner_id
    LEFT JOIN contacts c ON c.id = d.contact_id
    WHERE p.id = :pipeline
    ORDER BY s.position, d.updated_at DESC, d.id DESC
    """
)


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
    result = await uow.session.execute(BOARD_SQL, {"pipeline": pipeline_id, "n": per_stage})
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
