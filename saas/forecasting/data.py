"""Read a pipeline's stages, stage events and open deals into the model's arrays.

Runs under the tenant's RLS like everything else: a job for tenant A sees only A's rows.
Events of a deal from before it was transferred into this pipeline name stages of another
pipeline; they are dropped, so such a deal enters this pipeline's history at its transfer.

The two big reads (about a million events and 100k deals for the largest tenant) come back
as binary COPY streams whose fields all have a fixed width, so NumPy reads them in place
(`_fixed_rows`): no Python object per row or per value. The events arrive ordered by
(deal_id, seq) from the covering index `stage_events_forecast` (migration 0007), with no
sort, and the deals are numbered from that order (dense rank of deal_id, as before).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np
from sqlalchemy import exc, text

from saas.db import UnitOfWork
from saas.forecasting.model import EventLog, Stage, StageKind

_STAGES = text(
    "SELECT id, name, kind, probability FROM stages WHERE pipeline_id = :p "
    "ORDER BY archived_at IS NOT NULL, position, id")
_EVENT_FILTER = """
    FROM stage_events e
    WHERE e.pipeline_id = $1 AND e.kind <> 'updated' AND e.occurred_at < $3
      AND e.to_stage_id = ANY($2::uuid[]) AND e.kind NOT IN ('deleted', 'restored')
      AND e.deal_id NOT IN (SELECT a.id FROM deals a WHERE a.archived_at IS NOT NULL)"""
# One row per event, in deal order (ties by seq, i.e. by the order they were written).
_EVENTS = f"""
    SELECT e.deal_id, e.occurred_at,
           (array_position($2::uuid[], e.to_stage_id) - 1)::int2,
           e.kind IN ('created', 'transferred')
    {_EVENT_FILTER}
    ORDER BY e.deal_id, e.seq"""
# The current amount of every deal of the event log, in the same (deal_id) order.
_AMOUNTS = f"""
    SELECT coalesce(d.amount, 0)::float8
    FROM (SELECT DISTINCT e.deal_id {_EVENT_FILTER}) n LEFT JOIN deals d ON d.id = n.deal_id
    ORDER BY n.deal_id"""
# What the weighted-pipeline baseline needs of the same deals: the expected close date (the
# end of that day, UTC, in POSIX seconds) and the probability override, NaN when unset.
_BASELINE = f"""
    SELECT coalesce(extract(epoch FROM (d.expected_close_date + 1)::timestamp
                            AT TIME ZONE 'UTC')::float8, 'NaN'::float8),
           coalesce(d.probability_override::float8, 'NaN'::float8)
    FROM (SELECT DISTINCT e.deal_id {_EVENT_FILTER}) n LEFT JOIN deals d ON d.id = n.deal_id
    ORDER BY n.deal_id"""
_NIL = "'00000000-0000-0000-0000-000000000000'::uuid"
# Every field has a fixed width: NULL owners/teams become the nil UUID plus a flag, and the
# currency (char(3), so 3 characters, padded as stored: 3 to 12 UTF-8 bytes) becomes its
# UTF-8 bytes left-padded with zero bytes to 12 (text never contains a zero byte).
_DEALS = f"""
    SELECT (array_position($2::uuid[], d.stage_id) - 1)::int2, d.amount::float8,
           decode(lpad(encode(convert_to(rpad(d.currency::text, 3), 'UTF8'), 'hex'), 24, '0'),
                  'hex'),
           coalesce(d.owner_id, {_NIL}), d.owner_id IS NULL,
           coalesce(u.team_id, {_NIL}), u.team_id IS NULL
    FROM deals d LEFT JOIN users u ON u.id = d.owner_id
    WHERE d.pipeline_id = $1 AND d.archived_at IS NULL
      AND ($3::uuid IS NULL OR d.owner_id = $3)
      AND ($4::uuid IS NULL OR u.team_id = $4)
    ORDER BY d.id"""

# PostgreSQL timestamps count microseconds from 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800 * 1_000_000
_PG_TIMESTAMP_INFINITY = np.iinfo(np.int64).max
_UUID = [("hi", ">u8"), ("lo", ">u8")]  # a uuid's 16 bytes, compared like PostgreSQL does


@dataclass(frozen=True)
class PipelineStages:
    ids: list[uuid.UUID]
    stages: list[Stage]


@dataclass(frozen=True, eq=False)
class PipelineData:
    stage_ids: list[uuid.UUID]
    stages: list[Stage]
    log: EventLog
    deal_keys: np.ndarray  # index -> deal id as 16 bytes (dtype V16), for the event log
    amounts: np.ndarray | None  # per event-log deal index; loaded only when asked for

    @property
    def deal_ids(self) -> list[uuid.UUID]:
        """Index -> deal id of the event log."""
        return [uuid.UUID(bytes=bytes(k)) for k in self.deal_keys]


@dataclass(frozen=True, eq=False)
class OpenDeals:
    """Deals in the pipeline now, ordered by id; owner and currency as codes into tables."""

    stage: np.ndarray  # stage index
    amount: np.ndarray
    currency: np.ndarray  # index into `currencies`
    currencies: list[str]  # as stored (char(3), so padded to 3 characters)
    owner: np.ndarray  # index into `owners`
    owners: list[tuple[uuid.UUID | None, uuid.UUID | None]]  # (owner id, owner's team id)

    @property
    def size(self) -> int:
        return int(self.stage.size)


async def _copy(uow: UnitOfWork, query: str, *args: object) -> bytes:
    """Run `query` as a binary COPY on the unit of work's connection (same transaction)."""
    connection = await uow.session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    try:
        await driver.copy_from_query(query, *args, output=sink, format="binary")
    except asyncpg.InterfaceError as e:
        # What SQLAlchemy raises for the same driver error (a lost connection, say), so the
        # job's retry policy treats both paths alike.
        raise exc.InterfaceError(query, None, e) from e
    return b"".join(chunks)


def _fixed_rows(buf: bytes, fields: Sequence[tuple[str, object]]) -> np.ndarray:
    """The rows of a binary COPY whose fields are all non-NULL and of a fixed width, as a
    structured array (big-endian, as sent). Raises ValueError on anything else."""
    signature = b"PGCOPY\n\xff\r\n\x00"
    if not buf.startswith(signature) or not buf.endswith(b"\xff\xff"):
        raise ValueError("not a binary COPY stream")
    start = len(signature) + 8 + int.from_bytes(buf[len(signature) + 4:len(signature) + 8], "big")
    layout: list[tuple[str, object]] = [("n_fields", ">i2")]
    for name, kind in fields:
        layout += [(f"{name}_len", ">i4"), (name, kind)]
    dtype = np.dtype(layout)
    body = len(buf) - 2 - start
    if body % dtype.itemsize:
        raise ValueError("binary COPY rows are not of the expected width (a NULL?)")
    rows = np.frombuffer(buf, dtype=dtype, count=body // dtype.itemsize, offset=start)
    if np.any(rows["n_fields"] != len(fields)):
        raise ValueError("binary COPY rows do not have the expected fields")
    for name, kind in fields:
        if np.any(rows[f"{name}_len"] != np.dtype(kind).itemsize):  # type: ignore[call-overload]
            raise ValueError(f"binary COPY field {name} is NULL or not of the expected width")
    return rows


def _codes(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes of the rows' key tuples (in key order) and each code's first row."""
    n = keys[0].size
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys[::-1])
    new = np.ones(n, dtype=bool)
    new[1:] = np.any([k[order][1:] != k[order][:-1] for k in keys], axis=0)
    codes = np.empty(n, dtype=np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes, order[new]


def _uuid(row: np.void) -> uuid.UUID:
    return uuid.UUID(int=(int(row["hi"]) << 64) | int(row["lo"]))


async def load_stages(uow: UnitOfWork, pipeline_id: uuid.UUID) -> PipelineStages:
    rows = (await uow.session.execute(_STAGES, {"p": pipeline_id})).all()
    return PipelineStages(
        ids=[r.id for r in rows],
        stages=[Stage(key=r.name, kind=StageKind[r.kind.upper()],
                      probability=float(r.probability)) for r in rows])


async def load_pipeline(uow: UnitOfWork, pipeline_id: uuid.UUID, as_of: datetime, *,
                        stages: PipelineStages | None = None,
                        with_amounts: bool = False) -> PipelineData:
    """The pipeline's stage events before `as_of` as an event log (deals numbered in
    deal_id order); with `with_amounts`, also each of those deals' current amount."""
    if stages is None:
        stages = await load_stages(uow, pipeline_id)
    args = (pipeline_id, stages.ids, as_of)
    rows = _fixed_rows(await _copy(uow, _EVENTS, *args), [
        ("deal", _UUID), ("at", ">i8"), ("stage", ">i2"), ("created", "?")])
    deal = rows["deal"]
    first = np.ones(deal.size, dtype=bool)
    first[1:] = (deal["hi"][1:] != deal["hi"][:-1]) | (deal["lo"][1:] != deal["lo"][:-1])
    index = np.cumsum(first) - 1
    n_deals = int(first.sum())
    # extract(epoch FROM occurred_at)::float8, bit for bit: the microseconds are exact in a
    # float64 and the division rounds once, as the cast from PostgreSQL's exact numeric does.
    micros = rows["at"].astype(np.int64)
    seconds = np.where(micros == -_PG_TIMESTAMP_INFINITY - 1, -np.inf,
                       (micros + _PG_EPOCH_US).astype(np.float64) / 1e6)
    log = EventLog.from_arrays(index, seconds, rows["stage"].astype(np.int64),
                               created=rows["created"], n_deals=n_deals)
    keys = np.ascontiguousarray(deal[first]).view("V16")
    amounts = None
    if with_amounts:
        amounts = _fixed_rows(await _copy(uow, _AMOUNTS, *args),
                              [("amount", ">f8")])["amount"].astype(np.float64)
        if amounts.size != n_deals:
            raise ValueError("the pipeline's events changed while they were being read")
    return PipelineData(stage_ids=stages.ids, stages=stages.stages, log=log, deal_keys=keys,
                        amounts=amounts)


async def load_close_dates(uow: UnitOfWork, pipeline_id: uuid.UUID, as_of: datetime,
                           stages: PipelineStages, n_deals: int) -> tuple[np.ndarray, np.ndarray]:
    """(expected close, probability override) of load_pipeline's deals, in its order."""
    rows = _fixed_rows(await _copy(uow, _BASELINE, pipeline_id, stages.ids, as_of),
                       [("close", ">f8"), ("override", ">f8")])
    if rows.size != n_deals:
        raise ValueError("the pipeline's events changed while they were being read")
    return rows["close"].astype(np.float64), rows["override"].astype(np.float64)


async def load_open_deals(
    uow: UnitOfWork, pipeline_id: uuid.UUID, stage_ids: list[uuid.UUID],
    owner_id: uuid.UUID | None, team_id: uuid.UUID | None,
) -> OpenDeals:
    """Deals in the pipeline now (won ones too: they stay won), optionally one owner/team's."""
    rows = _fixed_rows(await _copy(uow, _DEALS, pipeline_id, stage_ids, owner_id, team_id), [
        ("stage", ">i2"), ("amount", ">f8"), ("currency", [("a", ">u8"), ("b", ">u4")]),
        ("owner", _UUID), ("no_owner", "?"), ("team", _UUID), ("no_team", "?")])
    currency = rows["currency"]
    currency_code, currency_first = _codes(currency["a"], currency["b"])
    raw = np.ascontiguousarray(currency[currency_first]).tobytes()
    currencies = [raw[i:i + 12].lstrip(b"\0").decode() for i in range(0, len(raw), 12)]
    owner, team = rows["owner"], rows["team"]
    owner_code, owner_first = _codes(rows["no_owner"], owner["hi"], owner["lo"])
    # The team comes from the owner's user row, so it is the same for every deal of an owner.
    if (team[owner_first][owner_code] != team).any() or (
            rows["no_team"][owner_first][owner_code] != rows["no_team"]).any():
        raise ValueError("deals of one owner came back with different teams")
    owners = [(None if rows["no_owner"][i] else _uuid(owner[i]),
               None if rows["no_team"][i] else _uuid(team[i])) for i in owner_first]
    return OpenDeals(stage=rows["stage"].astype(np.int64),
                     amount=rows["amount"].astype(np.float64),
                     currency=currency_code, currencies=currencies,
                     owner=owner_code, owners=owners)
