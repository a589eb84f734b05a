"""The forecast's result as GraphQL types, with global ids (Forecast.projection)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry

from schema.nodes import gid

RATE_DIGITS = 4  # deal counts and probabilities: four decimals


def _n(value: float) -> float:
    return round(float(value), RATE_DIGITS)


@strawberry.type
class StageOccupancy:
    stage_id: strawberry.ID
    deals: float = strawberry.field(description="Expected deals in the stage.")


@strawberry.type
class AmountBand:
    currency: str
    amount: float = strawberry.field(description="Expected won amount (two decimals).")
    low: float
    high: float


@strawberry.type(description="One horizon: the state expected this many months after asOf.")
class ForecastHorizon:
    months: int
    occupancy: list[StageOccupancy]
    expected_won_count: float
    won_count_low: float = strawberry.field(description="80% band, low end.")
    won_count_high: float
    expected_won_amount: list[AmountBand]
    new_deals_won_count: float = strawberry.field(
        description="Of expectedWonCount, deals not yet created (inflow), when included.")


@strawberry.type
class OwnerAmounts:
    currency: str
    amounts: list[float] = strawberry.field(description="Per horizon, months 1..H.")


@strawberry.type(description="One owner's share of the current pipeline's expected wins.")
class OwnerForecast:
    owner_id: strawberry.ID | None
    team_id: strawberry.ID | None
    expected_won_count: list[float] = strawberry.field(description="Per horizon, months 1..H.")
    expected_won_amount: list[OwnerAmounts]


@strawberry.type
class ForecastStage:
    stage_id: strawberry.ID
    name: str
    kind: str


@strawberry.type(description="What a finished forecast projects, typed.")
class ForecastProjection:
    as_of: datetime
    period_days: float
    open_deals: int
    events_used: int
    transitions_observed: int
    inflow_per_period: float
    stages: list[ForecastStage]
    transition_matrix: list[list[float]] = strawberry.field(
        description="Row i, column j: P(a deal in stages[i] is in stages[j] a period later).")
    horizons: list[ForecastHorizon]
    by_owner: list[OwnerForecast]


def _stage(value: str) -> strawberry.ID:
    return gid("Stage", uuid.UUID(value))


def _opt(type_name: str, value: str | None) -> strawberry.ID | None:
    return gid(type_name, uuid.UUID(value)) if value else None


def from_result(r: dict[str, Any]) -> ForecastProjection:
    """The stored result (saas/forecasting/compute.py) with ids and numbers as the API has them."""
    return ForecastProjection(
        as_of=datetime.fromisoformat(r["asOf"]), period_days=r["periodDays"],
        open_deals=r["openDeals"], events_used=r["eventsUsed"],
        transitions_observed=r["transitionsObserved"],
        inflow_per_period=_n(r.get("inflowPerPeriod", 0.0)),
        stages=[ForecastStage(stage_id=_stage(s["id"]), name=s["name"], kind=s["kind"])
                for s in r["stages"]],
        transition_matrix=[[_n(x) for x in row] for row in r["matrix"]],
        horizons=[ForecastHorizon(
            months=h["horizon"],
            occupancy=[StageOccupancy(stage_id=_stage(k), deals=_n(v))
                       for k, v in h["occupancy"].items()],
            expected_won_count=_n(h["expectedWonCount"]), won_count_low=_n(h["wonCountLow"]),
            won_count_high=_n(h["wonCountHigh"]),
            expected_won_amount=[AmountBand(currency=a["currency"].strip(),
                                            amount=round(a["amount"], 2),
                                            low=round(a["low"], 2), high=round(a["high"], 2))
                                 for a in h["expectedWonAmount"]],
            new_deals_won_count=_n(h.get("newDealsWonCount", 0.0)))
            for h in r["horizons"]],
        by_owner=[OwnerForecast(
            owner_id=_opt("User", o["ownerId"]), team_id=_opt("Team", o["teamId"]),
            expected_won_count=[_n(x) for x in o["expectedWonCount"]],
            expected_won_amount=[OwnerAmounts(currency=a["currency"].strip(),
                                              amounts=[round(x, 2) for x in a["amounts"]])
                                 for a in o["expectedWonAmount"]])
            for o in r["byOwner"]],
    )
