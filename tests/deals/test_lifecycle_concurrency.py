"""Lifecycle mutations racing each other: one wins, the others get a typed answer, nothing
deadlocks or half-applies, and the log stays gap-free."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.deals.ops import MOVE, create_deal, default_pipeline, stage_ids
from tests.factories import TenantFactory

ARCHIVE = """mutation($id: ID!, $v: Int) { archiveDeal(input: {dealId: $id, expectedVersion: $v}) {
  deal { version } errors { code } } }"""
BULK = """mutation($ids: [ID!]!, $t: Temperature) { bulkUpdateDeals(input: {dealIds: $ids,
  temperature: $t}) { deals { id } errors { code message } } }"""
MERGE = """mutation($s: ID!, $d: ID!) { mergeContacts(input: {survivorId: $s, duplicateId: $d}) {
  contact { id } errors { code field } } }"""
CONTACT = """mutation($n: String!) { createContact(input: {name: $n}) { contact { id } } }"""


async def test_archive_and_moves_of_one_version_race_and_one_wins(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    deal = await create_deal(admin, pipeline["id"], "Contested")
    calls = [admin.ok(ARCHIVE, id=deal["id"], v=1)] + [
        admin.ok(MOVE, deal=deal["id"], to=s["Proposal"], v=1, reason=None) for _ in range(9)]
    results = [next(iter(r.values())) for r in await asyncio.gather(*calls)]
    winners = [r for r in results if not r["errors"]]
    assert len(winners) == 1
    assert {r["errors"][0]["code"] for r in results if r["errors"]} == {"VERSION_CONFLICT"}
    kinds = [r["kind"] for r in await owner_conn.fetch(
        "SELECT kind FROM stage_events WHERE tenant_id = $1 ORDER BY seq", t.id)]
    assert kinds[0] == "created" and len(kinds) == 2 and kinds[1] in ("deleted", "moved")
    seqs = [r["seq"] for r in await owner_conn.fetch(
        "SELECT seq FROM stage_events WHERE tenant_id = $1 ORDER BY seq", t.id)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_overlapping_bulk_updates_and_crossed_merges_do_not_deadlock(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    deals = [await create_deal(admin, pipeline["id"], f"D{i}") for i in range(12)]
    ids = [d["id"] for d in deals]
    # Overlapping sets given in different orders: locks are taken in id order.
    bulks = [admin.ok(BULK, ids=list(reversed(ids)) if i % 2 else ids,
                      t=["HOT", "COLD"][i % 2]) for i in range(6)]
    results = [r["bulkUpdateDeals"] for r in await asyncio.gather(*bulks)]
    assert all(r["errors"] == [] for r in results), results
    versions = await owner_conn.fetch("SELECT version FROM deals WHERE tenant_id = $1", t.id)
    assert {r["version"] for r in versions} <= set(range(2, 8))
    # Two contacts merged into each other at once: exactly one merge happens.
    a = (await admin.ok(CONTACT, n="Ann"))["createContact"]["contact"]["id"]
    b = (await admin.ok(CONTACT, n="Ann L."))["createContact"]["contact"]["id"]
    crossed = [r["mergeContacts"] for r in await asyncio.gather(
        admin.ok(MERGE, s=a, d=b), admin.ok(MERGE, s=b, d=a))]
    assert sorted(len(r["errors"]) for r in crossed) == [0, 1]
    (loser,) = [r["errors"][0] for r in crossed if r["errors"]]
    assert loser["code"] == "NOT_FOUND"
    left = await owner_conn.fetchval("SELECT count(*) FROM contacts WHERE tenant_id = $1", t.id)
    assert left == 1
