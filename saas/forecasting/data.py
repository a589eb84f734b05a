"""Read a pipeline's stages, stage events and open deals into the model's arrays.

Runs under the tenant's RLS like everything else: a job for tenant A sees only A's rows.
Events of a deal from before it was transferred into this pipeline name stages of another
pipeline; they are dropped, so such a deal enters this pipeline's history at its transfer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.forecasting.model import EventLog, Stage, StageKind

_STAGES = text(
    "SELECT id, name, kind, probability FROM stages WHERE pipeline_id = :p "
    "ORDER BY archived_at IS NOT NULL, position, id")
# The whole log comes back as a few arrays in one row (not a million rows): the driver
# decodes them in C and NumPy takes them as they are. Aggregates of one query level see the
# rows in the same order, so the arrays line up; NumPy then orders them by seq.
_EVENTS = text(
    """
    WITH ev AS (
      SELECT e.seq, e.deal_id, (dense_rank() OVER (ORDER BY e.deal_id)) - 1 AS di,
             extract(epoch FROM e.occurred_at)::float8 AS at,
             array_position(CAST(:stage_ids AS uuid[]), e.to_stage_id) - 1 AS idx,
             e.kind IN ('created', 'transferred') AS created
      FROM stage_events e
      WHERE e.pipeline_id = :p AND e.kind <> 'updated' AND e.occurred_at < :as_of
        AND e.to_stage_id = ANY(CAST(:stage_ids AS uuid[]))
    ),
    -- The same numbering (dense rank of deal_id), with each deal's current amount.
    numbered AS (SELECT DISTINCT deal_id, di FROM ev)
    SELECT array_agg(seq) AS seq, array_agg(di) AS deal, array_agg(at) AS at,
           array_agg(idx) AS stage, array_agg(created) AS created,
           (SELECT array_agg(n.deal_id ORDER BY n.di) FROM numbered n) AS ids,
           (SELECT array_agg(coalesce(d.amount, 0)::float8 ORDER BY n.di)
            FROM numbered n LEFT JOIN deals d ON d.id = n.deal_id) AS amounts
    FROM ev
    """)
_DEALS = text(
    """
    SELECT d.id, d.stage_id, d.amount::float8 AS amount, d.currency, d.owner_id, u.team_id
    FROM deals d LEFT JOIN users u ON u.id = d.owner_id
    WHERE d.pipeline_id = :p
      AND (CAST(:owner AS uuid) IS NULL OR d.owner_id = :owner)
      AND (CAST(:team AS uuid) IS NULL OR u.team_id = :team)
    """)


@dataclass(frozen=True)
class PipelineData:
    stage_ids: list[uuid.UUID]
    stages: list[Stage]
    log: EventLog
    deal_ids: list[uuid.UUID]  # index -> deal id, for the event log
    amounts: np.ndarray  # per event-log deal index (0 for deals no longer present)


@dataclass(frozen=True)
class OpenDeals:
    ids: list[uuid.UUID]
    stage: np.ndarray
    amount: np.ndarray
    currency: list[str]
    owner: list[uuid.UUID | None]
    team: list[uuid.UUID | None]


async def load_pipeline(uow: UnitOfWork, pipeline_id: uuid.UUID, as_of: datetime) -> PipelineData:
    stage_rows = (await uow.session.execute(_STAGES, {"p": pipeline_id})).all()
    stage_ids = [r.id for r in stage_rows]
    stages = [Stage(key=r.name, kind=StageKind[r.kind.upper()], probability=float(r.probability))
              for r in stage_rows]
    params = {"p": pipeline_id, "as_of": as_of}
    # The deal numbering sorts the pipeline's events by deal: give it memory, not disk.
    await uow.session.execute(text("SET LOCAL work_mem = '64MB'"))
    row = (await uow.session.execute(_EVENTS, {**params, "stage_ids": stage_ids})).one()
    deal_ids = list(row.ids or [])
    order = np.argsort(np.array(row.seq or [], dtype=np.int64), kind="stable")

    def column(values: list[object] | None, dtype: type) -> np.ndarray:
        return np.array(values or [], dtype=dtype)[order]

    log = EventLog.from_arrays(column(row.deal, np.int64), column(row.at, np.float64),
                               column(row.stage, np.int64), created=column(row.created, bool),
                               n_deals=len(deal_ids))
    return PipelineData(stage_ids=stage_ids, stages=stages, log=log, deal_ids=deal_ids,
                        amounts=np.array(row.amounts or [], dtype=np.float64))


async def load_open_deals(
    uow: UnitOfWork, pipeline_id: uuid.UUID, stage_ids: list[uuid.UUID],
    owner_id: uuid.UUID | None, team_id: uuid.UUID | None,
) -> OpenDeals:
    """Deals in the pipeline now (won ones too: they stay won), optionally one owner/team's."""
    index = {sid: i for i, sid in enumerate(stage_ids)}
    rows = (await uow.session.execute(
        _DEALS, {"p": pipeline_id, "owner": owner_id, "team": team_id})).all()
    return OpenDeals(
        ids=[r.id for r in rows],
        stage=np.array([index[r.stage_id] for r in rows], dtype=np.int64),
        amount=np.array([r.amount for r in rows], dtype=np.float64),
        currency=[r.currency for r in rows],
        owner=[r.owner_id for r in rows],
        team=[r.team_id for r in rows],
    )
