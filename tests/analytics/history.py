"""Hand-built histories: deals and stage events with explicit times and sequence numbers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from saas.db import Database

D0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def day(d: float) -> datetime:
    return D0 + timedelta(days=d)


@dataclass
class Stage:
    id: uuid.UUID
    pipeline_id: uuid.UUID
    name: str
    kind: str


@dataclass
class History:
    db: Database
    tenant_id: uuid.UUID
    stages: dict[tuple[uuid.UUID, str], Stage] = field(default_factory=dict)
    pipelines: dict[str, uuid.UUID] = field(default_factory=dict)
    seq: int = 0

    async def load(self) -> History:
        async with self.db.unit_of_work(self.tenant_id) as uow:
            rows = await uow.session.execute(text(
                "SELECT s.id, s.pipeline_id, s.name, s.kind, g.name AS segment FROM stages s "
                "JOIN pipelines p ON p.id = s.pipeline_id JOIN segments g ON g.id = p.segment_id"))
            for r in rows:
                self.pipelines[r.segment] = r.pipeline_id
                self.stages[(r.pipeline_id, r.name)] = Stage(r.id, r.pipeline_id, r.name, r.kind)
            self.seq = (await uow.session.execute(text(
                "SELECT coalesce(max(seq), 0) FROM stage_events"))).scalar_one()
        return self

    def stage(self, pipeline: str, name: str) -> Stage:
        return self.stages[(self.pipelines[pipeline], name)]

    async def deal(
        self, title: str, owner: uuid.UUID | None, amount: str, currency: str,
        path: list[tuple[Any, ...]], *, pipeline: str = "Default",
        probability_override: str | None = None, created_at: datetime | None = None,
        expected_close: date | None = None,
    ) -> uuid.UUID:
        """`path`: (stage name, when[, lost reason | "pipeline:<segment>" | "amount:<x>"])."""
        deal_id = uuid.uuid4()
        events: list[dict[str, Any]] = []
        current: Stage | None = None
        current_pipeline = pipeline
        amt = Decimal(amount)
        entered = path[0][1]
        reason: str | None = None
        for step in path:
            name, when, *extra = step
            note = extra[0] if extra else None
            kind = "moved"
            from_pipeline = None
            if isinstance(note, str) and note.startswith("pipeline:"):
                from_pipeline = self.pipelines[current_pipeline]
                current_pipeline = note.split(":", 1)[1]
                kind = "transferred"
            if isinstance(note, str) and note.startswith("amount:"):
                amt = Decimal(note.split(":", 1)[1])
                kind = "updated"
            target = self.stage(current_pipeline, name)
            if kind == "moved":
                if current is None:
                    kind = "created"
                elif target.kind == "lost":
                    kind = "lost"
                elif current.kind == "lost":
                    kind = "reopened"
            reason = note if kind == "lost" else (reason if kind == "updated" else None)
            if kind != "updated":
                entered = when
            self.seq += 1
            events.append({
                "t": self.tenant_id, "seq": self.seq, "d": deal_id,
                "p": self.pipelines[current_pipeline], "k": kind,
                "fs": current.id if current else None, "ts": target.id, "fp": from_pipeline,
                "a": amt, "c": currency, "r": reason if kind == "lost" else None, "at": when,
            })
            current = target
        assert current is not None
        async with self.db.unit_of_work(self.tenant_id) as uow:
            await uow.session.execute(text("""
                INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, owner_id, title, amount,
                                   currency, probability_override, lost_reason, stage_entered_at,
                                   created_at, updated_at, expected_close_date)
                VALUES (:t, :id, :p, :s, :o, :title, :a, :c, :po, :r, :e, :ca, :e, :ec)
            """), {"t": self.tenant_id, "id": deal_id, "p": current.pipeline_id, "s": current.id,
                   "o": owner, "title": title, "a": amt, "c": currency,
                   "po": Decimal(probability_override) if probability_override else None,
                   "r": reason if current.kind == "lost" else None, "e": entered,
                   "ca": created_at or path[0][1], "ec": expected_close})
            await uow.session.execute(text("""
                INSERT INTO stage_events (tenant_id, seq, deal_id, pipeline_id, kind,
                    from_stage_id, to_stage_id, from_pipeline_id, amount, currency, lost_reason,
                    occurred_at)
                VALUES (:t, :seq, :d, :p, :k, :fs, :ts, :fp, :a, :c, :r, :at)
            """), events)
            await uow.session.execute(text("""
                INSERT INTO tenant_counters (tenant_id, event_seq) VALUES (:t, :s)
                ON CONFLICT (tenant_id) DO UPDATE SET event_seq = EXCLUDED.event_seq
            """), {"t": self.tenant_id, "s": self.seq})
        return deal_id

    async def activity(self, deal_id: uuid.UUID, owner: uuid.UUID, done_at: datetime) -> None:
        async with self.db.unit_of_work(self.tenant_id) as uow:
            await uow.session.execute(text("""
                INSERT INTO activities (tenant_id, id, deal_id, kind, subject, owner_id, done_at)
                VALUES (:t, :id, :d, 'call', 'call', :o, :at)
            """), {"t": self.tenant_id, "id": uuid.uuid4(), "d": deal_id, "o": owner,
                   "at": done_at})
