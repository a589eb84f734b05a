"""Optimistic concurrency and the commit-ordered, gap-free event sequence."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg

from saas.db import Database
from saas.deals import events, moves
from saas.deals import service as deals
from saas.errors import VersionConflict
from saas.pipelines import service as pipelines
from tests.deals.ops import MOVE, create_deal, default_pipeline, stage_ids
from tests.factories import TenantFactory


async def test_fifty_concurrent_moves_with_the_same_version_one_wins(
    tenants: TenantFactory, owner_conn: asyncpg.Connection
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    deal = await create_deal(admin, pipeline["id"], "Contested")
    targets = [stages["Lead qualification"], stages["Needs analysis"], stages["Proposal"]]

    results = await asyncio.gather(*(
        admin.ok(MOVE, deal=deal["id"], to=targets[i % 3], v=1, reason=None) for i in range(50)))

    winners = [r["moveDeal"] for r in results if not r["moveDeal"]["errors"]]
    losers = [r["moveDeal"]["errors"][0] for r in results if r["moveDeal"]["errors"]]
    assert len(winners) == 1
    assert len(losers) == 49
    winner_stage = winners[0]["deal"]["stage"]["id"]
    assert all(e["code"] == "VERSION_CONFLICT" and e["currentVersion"] == 2
               and e["currentStageId"] == winner_stage for e in losers)
    row = await owner_conn.fetchrow(
        "SELECT version, count(e.*) FILTER (WHERE e.kind = 'moved') AS moves "
        "FROM deals d LEFT JOIN stage_events e ON e.deal_id = d.id AND e.tenant_id = d.tenant_id "
        "WHERE d.tenant_id = $1 GROUP BY d.version", t.id)
    assert (row["version"], row["moves"]) == (2, 1)


async def test_sequence_is_gap_free_and_in_commit_order_under_concurrent_writers(
    tenants: TenantFactory, db: Database
) -> None:
    t = await tenants.create()
    async with db.unit_of_work(t.id) as uow:
        (_segment, pipeline), = await pipelines.list_segments(uow=uow)
        stages = await pipelines.list_stages(uow=uow, pipeline_id=pipeline.id)
        assert await events.after(uow, after_seq=0, limit=10) == []  # a fresh tenant
    open_stages = [s.id for s in stages if s.kind == "open"]
    rng = random.Random(42)
    deal_ids: list[uuid.UUID] = []
    for i in range(8):
        async with db.unit_of_work(t.id) as uow:
            d = await deals.create(uow=uow, principal=t.admin, pipeline_id=pipeline.id,
                                   stage_id=None, fields=deals.DealFields(title=f"d{i}"))
            deal_ids.append(d.id)

    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        """Follows the cursor while writers run; must see every event exactly once."""
        cursor = 8  # after the 8 creations
        while True:
            finished = done.is_set()
            async with db.unit_of_work(t.id) as uow:
                batch = await events.after(uow, after_seq=cursor, limit=1000)
            for e in batch:
                seen.append(e.seq)
                cursor = e.seq
            if finished and not batch:
                return
            await asyncio.sleep(0.002)

    async def writer(deal_id: uuid.UUID, n: int) -> int:
        moved = 0
        for _ in range(n):
            try:
                async with db.unit_of_work(t.id) as uow:
                    deal = await deals.get(uow=uow, deal_id=deal_id)
                    target = rng.choice([s for s in open_stages if s != deal.stage_id])
                    await moves.move(uow=uow, principal=t.admin, deal_id=deal_id,
                                     to_stage_id=target, expected_version=deal.version)
                    # Hold the transaction open a random while after taking the sequence.
                    await asyncio.sleep(rng.random() * 0.01)
                moved += 1
            except VersionConflict:
                pass
        return moved

    reading = asyncio.create_task(reader())
    counts = await asyncio.gather(*(writer(d, 15) for d in deal_ids for _ in range(2)))
    done.set()
    await reading

    total = sum(counts)
    assert total > 0
    assert seen == list(range(9, 9 + total))


async def test_a_move_takes_the_tenants_number_and_writes_its_event_in_one_statement(
    tenants: TenantFactory, app: Any, owner_conn: asyncpg.Connection
) -> None:
    """Statements per moveDeal, counted: from taking the tenant's counter row (locked until
    COMMIT) to COMMIT there is one statement, so a tenant's writers serialise on as little
    as possible."""
    from saas.observability.statements import statements

    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    deal = await create_deal(admin, pipeline["id"], "Counted")
    await admin.ok("query { me { tenantId } }")  # the caller's auth state is cached
    async with statements(app.state.services.db) as seen:
        data = await admin.ok(MOVE, deal=deal["id"], to=stages["Proposal"], v=1, reason=None)
    assert not data["moveDeal"]["errors"]
    counter = [i for i, s in enumerate(seen) if "tenant_counters" in s]
    assert len(counter) == 1 and "INSERT INTO stage_events" in seen[counter[0]], seen
    assert seen[counter[0] + 1] == "COMMIT", seen
    assert len(seen) == 9, seen  # BEGIN, tenant, deal, 2 stages, UPDATE, re-read, append, COMMIT
    row = await owner_conn.fetchrow(
        "SELECT e.seq, c.event_seq FROM stage_events e JOIN tenant_counters c USING (tenant_id) "
        "WHERE e.tenant_id = $1 ORDER BY e.seq DESC LIMIT 1", t.id)
    assert row["seq"] == row["event_seq"] == data["moveDeal"]["event"]["seq"]
