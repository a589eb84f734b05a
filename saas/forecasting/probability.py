"""Each deal's chance to be won and its likely close month, from the latest forecast of its
pipeline (the fitted transition matrix), else from the configured stage probability.

- winProbability: P(the deal ends in a won stage) from its current stage, under the latest
  done whole-pipeline forecast's matrix (the chain run for OUTLOOK_PERIODS periods: long
  enough for every open stage to resolve); a deal's own probability override wins over both.
- expectedCloseMonth: the first month by which half of that probability has been realised
  (the median time to win, given it wins), counted from the forecast's as-of date; with no
  forecast, the month of the deal's own expected close date.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.forecasting.model import DEFAULT_PERIOD
from saas.forecasting.planning import won_by_horizon

OUTLOOK_PERIODS = 36


class Source(enum.StrEnum):
    FORECAST = "forecast"
    STAGE_PROBABILITY = "stage_probability"
    OVERRIDE = "override"
    WON = "won"


@dataclass(frozen=True)
class StageOutlook:
    win_probability: float
    months_to_close: int | None


@dataclass(frozen=True)
class PipelineOutlook:
    forecast_id: uuid.UUID
    as_of: datetime
    stages: dict[uuid.UUID, StageOutlook]


def outlook(forecast_id: uuid.UUID, result: dict[str, Any]) -> PipelineOutlook:
    """Per stage of a stored forecast result: P(won eventually) and the median months."""
    stage_ids = [uuid.UUID(s["id"]) for s in result["stages"]]
    won = np.array([s["kind"] == "won" for s in result["stages"]], dtype=bool)
    matrix = np.asarray(result["matrix"], dtype=np.float64)
    # Rows are rounded when stored; renormalise so the chain stays stochastic.
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    w = won_by_horizon(matrix, won, OUTLOOK_PERIODS)
    stages = {}
    for i, sid in enumerate(stage_ids):
        final = float(w[i, -1])
        months = None
        if final > 1e-6 and not won[i]:
            months = int(np.argmax(w[i] >= final / 2))
        stages[sid] = StageOutlook(round(final, 4), months)
    return PipelineOutlook(forecast_id, datetime.fromisoformat(result["asOf"]), stages)


_LATEST = text("""
    SELECT DISTINCT ON (pipeline_id) id, pipeline_id, result FROM forecasts
    WHERE status = 'done' AND team_id IS NULL AND owner_id IS NULL
      AND pipeline_id = ANY(:p) AND result IS NOT NULL
    ORDER BY pipeline_id, finished_at DESC, id""")


async def latest(uow: UnitOfWork, pipeline_ids: Sequence[uuid.UUID]
                 ) -> dict[uuid.UUID, PipelineOutlook]:
    rows = await uow.session.execute(_LATEST, {"p": list(pipeline_ids)})
    return {r.pipeline_id: outlook(r.id, r.result) for r in rows}


def month_after(start: datetime, periods: int) -> date:
    moment = start + periods * DEFAULT_PERIOD
    return date(moment.year, moment.month, 1)


@dataclass(frozen=True)
class DealOutlook:
    win_probability: float
    expected_close_month: date | None
    source: Source
    forecast_id: uuid.UUID | None


def for_deal(*, stage_id: uuid.UUID, stage_kind: str, stage_probability: float,
             override: float | None, expected_close: date | None,
             pipeline: PipelineOutlook | None) -> DealOutlook:
    """One deal's outlook (see the module docstring for the rules)."""
    fallback_month = date(expected_close.year, expected_close.month, 1) if expected_close \
        else None
    if stage_kind == "won":
        return DealOutlook(1.0, None, Source.WON, None)
    stage = pipeline.stages.get(stage_id) if pipeline else None
    month = fallback_month
    if pipeline is not None and stage is not None and stage.months_to_close is not None:
        month = month_after(pipeline.as_of, stage.months_to_close)
    if override is not None:
        return DealOutlook(override, month, Source.OVERRIDE,
                           pipeline.forecast_id if pipeline is not None and stage else None)
    if pipeline is not None and stage is not None:
        return DealOutlook(stage.win_probability, month, Source.FORECAST, pipeline.forecast_id)
    return DealOutlook(stage_probability, fallback_month, Source.STAGE_PROBABILITY, None)
