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
_EVENTS = text(
    """
    SELECT e.deal_id, extract(epoch FROM e.occurred_at)::float8 AS at, e.to_stage_id,
           e.kind IN ('created', 'transferred') AS created
    FROM stage_events e
    WHERE e.pipeline_id = :p AND e.kind <> 'updated' AND e.occurred_at < :as_of
    ORDER BY e.seq
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
    index = {sid: i for i, sid in enumerate(stage_ids)}
    stages = [Stage(key=r.name, kind=StageKind[r.kind.upper()], probability=float(r.probability))
              for r in stage_rows]
    rows = (await uow.session.execute(_EVENTS, {"p": pipeline_id, "as_of": as_of})).all()
    deal_index: dict[uuid.UUID, int] = {}
    deal, time, stage, created = [], [], [], []
    for r in rows:
        to = index.get(r.to_stage_id)
        if to is None:
            continue
        deal.append(deal_index.setdefault(r.deal_id, len(deal_index)))
        time.append(r.at)
        stage.append(to)
        created.append(r.created)
    log = EventLog.from_arrays(deal, time, stage, created=created, n_deals=len(deal_index))
    amounts = np.zeros(len(deal_index))
    if deal_index:
        amount_rows = (await uow.session.execute(
            text("SELECT id, amount::float8 AS amount FROM deals WHERE id = ANY(:ids)"),
            {"ids": list(deal_index)})).all()
        for r in amount_rows:
            amounts[deal_index[r.id]] = r.amount
    return PipelineData(stage_ids=stage_ids, stages=stages, log=log,
                        deal_ids=list(deal_index), amounts=amounts)


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
