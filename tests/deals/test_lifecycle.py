"""A deal's lifecycle: archive and restore (hidden everywhere, back again), permanent delete,
bulk update and field history; each failure typed and writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import REGISTRY
from strawberry.relay import GlobalID

from saas.forecasting import service as forecasting
from schema.nodes import decode_id
from tenants.principal import Role
from tests.deals.ops import BOARD, create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory, TenantHandle, all_tables_snapshot

ARCHIVE = """mutation($input: ArchiveDealInput!) { archiveDeal(input: $input) {
  deal { id version archivedAt } errors { code field message
  ... on VersionConflictError { currentVersion } } } }"""
RESTORE = """mutation($input: RestoreDealInput!) { restoreDeal(input: $input) {
  deal { id version archivedAt stage { id } } errors { code field message } } }"""
DELETE = """mutation($input: DeleteDealInput!) { deleteDeal(input: $input) {
  deletedDealId errors { code field message } } }"""
BULK = """mutation($input: BulkUpdateDealsInput!) { bulkUpdateDeals(input: $input) {
  deals { id version owner { id } labels temperature } errors { code field message } } }"""
UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) {
  deal { id version } errors { code field message } } }"""
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  activity { id } errors { code field message } } }"""
DEALS = """query($f: DealFilterInput) { deals(first: 50, filter: $f) {
  totalCount edges { node { id archivedAt } } } }"""
NODE = "query($id: ID!) { node(id: $id) { ... on Deal { id archivedAt version } } }"
HISTORY = """query($id: ID!) { node(id: $id) { ... on Deal { history {
  kind actorUserId data changes { field from to } } } } }"""
ANALYTICS = """query($p: ID!, $f: DateTime!, $t: DateTime!) {
  pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
    funnel { name count } conversion { name reached } weightedValue { currency amount } } }"""
STAGE_EVENTS = """query { stageEvents(first: 1000) { events { seq kind dealId data } } }"""


def _gid(type_name: str, n: int) -> str:
    return str(GlobalID(type_name, f"00000000-0000-0000-0000-{n:012d}"))


def _ids(board: dict[str, Any]) -> set[str]:
    return {d["id"] for c in board["columns"] for d in c["deals"]}


def _count(board: dict[str, Any]) -> int:
    return sum(c["dealCount"] for c in board["columns"])


async def _analytics(caller: Any, pipeline_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    data = await caller.ok(ANALYTICS, p=pipeline_id, f=(now - timedelta(days=1)).isoformat(),
                           t=(now + timedelta(days=1)).isoformat())
    return data["pipelineAnalytics"]  # type: ignore[no-any-return]


async def _forecast_deals(t: TenantHandle, pipeline_id: str) -> tuple[int, int]:
    """(deals in the event log, open deals) a forecast computed now reads."""
    data, deals = await forecasting.load(
        db=t.factory.db, tenant_id=t.id, pipeline_id=decode_id(pipeline_id, "Pipeline",
                                                              field="p"),
        as_of=datetime.now(UTC) + timedelta(seconds=1), owner_id=None, team_id=None)
    return data.log.n_deals, int(deals.stage.size)


async def test_archive_hides_a_deal_everywhere_and_restore_brings_it_back(
        tenants: TenantFactory, app: Any) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    p = pipeline["id"]
    keep = await create_deal(admin, p, "Keep", amount="100")
    gone = await create_deal(admin, p, "Duplicate", amount="900")
    board = (await admin.ok(BOARD, p=p, n=25))["board"]
    assert _ids(board) == {keep["id"], gone["id"]} and _count(board) == 2
    hits = REGISTRY.get_sample_value("saas_board_cache_total", {"result": "hit"}) or 0
    assert (await admin.ok(BOARD, p=p, n=25))["board"] == board  # now served from the cache
    assert REGISTRY.get_sample_value("saas_board_cache_total", {"result": "hit"}) == hits + 1
    before = await _analytics(admin, p)
    assert before["weightedValue"] == [{"currency": "USD", "amount": "50.00"}]
    assert await _forecast_deals(t, p) == (2, 2)

    archived = (await admin.ok(ARCHIVE, input={"dealId": gone["id"], "expectedVersion": 1}))
    result = archived["archiveDeal"]
    assert result["errors"] == [] and result["deal"]["version"] == 2
    assert result["deal"]["archivedAt"] is not None

    board = (await admin.ok(BOARD, p=p, n=25))["board"]
    assert _ids(board) == {keep["id"]} and _count(board) == 1  # not the cached board
    listed = (await admin.ok(DEALS))["deals"]
    assert [e["node"]["id"] for e in listed["edges"]] == [keep["id"]]
    assert listed["totalCount"] == 1
    only = (await admin.ok(DEALS, f={"archived": "ARCHIVED"}))["deals"]
    assert [e["node"]["id"] for e in only["edges"]] == [gone["id"]]
    assert (await admin.ok(DEALS, f={"archived": "ALL"}))["deals"]["totalCount"] == 2
    hidden = await _analytics(admin, p)
    assert hidden["weightedValue"] == [{"currency": "USD", "amount": "5.00"}]
    assert {f["name"]: f["count"] for f in hidden["funnel"]}["Lead generation"] == 1
    assert {c["name"]: c["reached"] for c in hidden["conversion"]}["Lead generation"] == 1
    assert await _forecast_deals(t, p) == (1, 1)
    node = (await admin.ok(NODE, id=gone["id"]))["node"]
    assert node["archivedAt"] is not None  # kept, with its history
    kinds = [e["kind"] for e in (await admin.ok(HISTORY, id=gone["id"]))["node"]["history"]]
    assert kinds == ["CREATED", "DELETED"]

    restored = (await admin.ok(RESTORE, input={"dealId": gone["id"], "expectedVersion": 2}))
    assert restored["restoreDeal"]["errors"] == []
    assert restored["restoreDeal"]["deal"]["archivedAt"] is None
    board = (await admin.ok(BOARD, p=p, n=25))["board"]
    assert _ids(board) == {keep["id"], gone["id"]} and _count(board) == 2
    assert await _analytics(admin, p) == before
    assert await _forecast_deals(t, p) == (2, 2)
    kinds = [e["kind"] for e in (await admin.ok(HISTORY, id=gone["id"]))["node"]["history"]]
    assert kinds == ["CREATED", "DELETED", "RESTORED"]


async def test_archived_deals_are_read_only_and_stop_their_campaigns(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "x")
    await admin.ok(ARCHIVE, input={"dealId": deal["id"]})
    before = await all_tables_snapshot(owner_conn, t.id)
    stages = stage_ids(pipeline)
    for name, result in [
        ("update", (await admin.ok(UPDATE, input={"dealId": deal["id"], "expectedVersion": 2,
                                                   "title": "y"}))["updateDeal"]),
        ("move", await move(admin, deal["id"], stages["Proposal"], 2)),
        ("activity", (await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL",
                                                      "subject": "s"}))["createActivity"]),
        ("bulk", (await admin.ok(BULK, input={"dealIds": [deal["id"]],
                                              "temperature": "HOT"}))["bulkUpdateDeals"]),
        ("archive again", (await admin.ok(ARCHIVE, input={"dealId": deal["id"]}))
         ["archiveDeal"]),
    ]:
        assert [e["code"] for e in result["errors"]] == ["CONFLICT"], name
        assert "archived" in result["errors"][0]["message"], name
        assert await all_tables_snapshot(owner_conn, t.id) == before, name


async def test_failures_are_typed_and_write_nothing(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    a, b = await tenants.create(), await tenants.create()
    admin = a.admin_caller
    pipeline = await default_pipeline(admin)
    p = pipeline["id"]
    deal = await create_deal(admin, p, "Target", amount="10")
    other = await create_deal(admin, p, "Other")
    b_deal = await create_deal(b.admin_caller, (await default_pipeline(b.admin_caller))["id"],
                               "B's")
    rep = a.as_user(await a.add_user(Role.REP))
    manager = a.as_user(await a.add_user(Role.MANAGER))
    lost_stage = stage_ids(pipeline)["Lost"]
    b_user = _gid("User", 9)
    cases: list[tuple[str, Any, str, dict[str, Any], str, str | None]] = [
        ("archive: unknown", admin, ARCHIVE, {"dealId": _gid("Deal", 1)}, "NOT_FOUND",
         "dealId"),
        ("archive: other tenant's", admin, ARCHIVE, {"dealId": b_deal["id"]}, "NOT_FOUND",
         "dealId"),
        ("archive: garbage id", admin, ARCHIVE, {"dealId": "nope"}, "NOT_FOUND", "dealId"),
        ("archive: stage id", admin, ARCHIVE, {"dealId": lost_stage}, "NOT_FOUND", "dealId"),
        ("archive: stale version", admin, ARCHIVE, {"dealId": deal["id"], "expectedVersion": 5},
         "VERSION_CONFLICT", "expectedVersion"),
        ("archive: rep, not theirs", rep, ARCHIVE, {"dealId": deal["id"]}, "FORBIDDEN", None),
        ("restore: not archived", admin, RESTORE, {"dealId": deal["id"]}, "CONFLICT", "dealId"),
        ("restore: other tenant's", admin, RESTORE, {"dealId": b_deal["id"]}, "NOT_FOUND",
         "dealId"),
        ("delete: manager", manager, DELETE, {"dealId": deal["id"]}, "FORBIDDEN", None),
        ("delete: unknown", admin, DELETE, {"dealId": _gid("Deal", 2)}, "NOT_FOUND", "dealId"),
        ("delete: other tenant's", admin, DELETE, {"dealId": b_deal["id"]}, "NOT_FOUND",
         "dealId"),
        ("bulk: nothing to change", admin, BULK, {"dealIds": [deal["id"]]},
         "VALIDATION_FAILED", "input"),
        ("bulk: no deals", admin, BULK, {"dealIds": [], "temperature": "HOT"},
         "VALIDATION_FAILED", "dealIds"),
        ("bulk: too many", admin, BULK, {"dealIds": [deal["id"]] * 501, "temperature": "HOT"},
         "LIMIT_EXCEEDED", "dealIds"),
        ("bulk: one unknown", admin, BULK, {"dealIds": [deal["id"], _gid("Deal", 3)],
                                            "temperature": "HOT"}, "NOT_FOUND", "dealIds"),
        ("bulk: other tenant's deal", admin, BULK,
         {"dealIds": [other["id"], b_deal["id"]], "temperature": "HOT"}, "NOT_FOUND",
         "dealIds"),
        ("bulk: other tenant's owner", admin, BULK,
         {"dealIds": [deal["id"]], "ownerId": b_user}, "NOT_FOUND", "ownerId"),
        ("bulk: label too long", admin, BULK,
         {"dealIds": [deal["id"], other["id"]], "addLabels": ["x" * 51]}, "VALIDATION_FAILED",
         "labels"),
        ("bulk: rep, not theirs", rep, BULK, {"dealIds": [deal["id"]], "temperature": "HOT"},
         "FORBIDDEN", "dealIds"),
    ]
    before = (await all_tables_snapshot(owner_conn, a.id),
              await all_tables_snapshot(owner_conn, b.id))
    for name, caller, mutation, variables, code, field in cases:
        body = await caller.gql(mutation, input=variables)
        assert "errors" not in body, (name, body)
        (result,) = body["data"].values()
        assert len(result["errors"]) == 1, (name, result)
        error = result["errors"][0]
        assert error["code"] == code, (name, error)
        if field is not None:
            assert error["field"] == field, (name, error)
        assert error["message"] and "Traceback" not in error["message"], name
        after = (await all_tables_snapshot(owner_conn, a.id),
                 await all_tables_snapshot(owner_conn, b.id))
        assert after == before, f"{name} changed the database"


async def test_delete_removes_the_deal_for_good_and_leaves_a_tombstone(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t, other = await tenants.create(), await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    keep = await create_deal(admin, pipeline["id"], "Keep")
    deal = await create_deal(admin, pipeline["id"], "Mistake")
    await move(admin, deal["id"], stage_ids(pipeline)["Proposal"], 1)
    await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL", "subject": "c"})
    other_before = await all_tables_snapshot(owner_conn, other.id)
    result = (await admin.ok(DELETE, input={"dealId": deal["id"]}))["deleteDeal"]
    assert result == {"deletedDealId": deal["id"], "errors": []}
    assert (await admin.ok(NODE, id=deal["id"]))["node"] is None
    uuid_ = decode_id(deal["id"], "Deal", field="id")
    for table in ("deals", "activities"):
        column = "id" if table == "deals" else "deal_id"
        assert await owner_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1", uuid_) == 0
    events = (await admin.ok(STAGE_EVENTS))["stageEvents"]["events"]
    mine = [(e["kind"], e["data"]) for e in events if e["dealId"] == deal["id"]]
    assert mine == [("DELETED", {"permanent": True})]  # the tombstone only
    assert [e["kind"] for e in events if e["dealId"] == keep["id"]] == ["CREATED"]
    audit = await owner_conn.fetch(
        "SELECT action, actor_user_id, target_id FROM audit_events WHERE tenant_id = $1 "
        "AND action = 'deal.deleted_permanently'", t.id)
    assert [(r["actor_user_id"], r["target_id"]) for r in audit] == [(t.admin.user_id, uuid_)]
    assert await all_tables_snapshot(owner_conn, other.id) == other_before
    # A key holding only privacy:admin may delete; deals:write alone may not.
    writer = t.key_caller(await t.api_key("deals:write"))
    refused = (await writer.gql(DELETE, input={"dealId": keep["id"]}))["data"]["deleteDeal"]
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    privacy = t.key_caller(await t.api_key("privacy:admin"))
    done = (await privacy.ok(DELETE, input={"dealId": keep["id"]}))["deleteDeal"]
    assert done["errors"] == []


async def test_bulk_update_reassigns_a_leaving_reps_deals_with_field_history(
        tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    team = await t.add_team("East")
    leaving = await t.add_user(Role.REP, team_id=team, name="Leaving")
    heir = await t.add_user(Role.REP, team_id=team, name="Heir")
    manager = t.as_user(await t.add_user(Role.MANAGER, team_id=team))
    pipeline = await default_pipeline(admin)
    leaver = t.as_user(leaving)
    theirs = [await create_deal(leaver, pipeline["id"], f"D{i}", labels=["old", "keep"])
              for i in range(3)]
    untouched = await create_deal(admin, pipeline["id"], "Admin's")
    heir_id = str(GlobalID("User", str(heir.user_id)))
    result = (await manager.ok(BULK, input={
        "dealIds": [d["id"] for d in theirs] + [theirs[0]["id"]], "ownerId": heir_id,
        "temperature": "HOT", "addLabels": ["handover"], "removeLabels": ["old"]}))
    payload = result["bulkUpdateDeals"]
    assert payload["errors"] == []
    assert [d["id"] for d in payload["deals"]] == [d["id"] for d in theirs]
    assert {(d["owner"]["id"], tuple(d["labels"]), d["temperature"], d["version"])
            for d in payload["deals"]} == {(heir_id, ("handover", "keep"), "HOT", 2)}
    history = (await admin.ok(HISTORY, id=theirs[0]["id"]))["node"]["history"]
    assert [e["kind"] for e in history] == ["CREATED", "UPDATED"]
    changes = {c["field"]: (c["from"], c["to"]) for c in history[1]["changes"]}
    assert changes == {
        "ownerId": (str(GlobalID("User", str(leaving.user_id))), heir_id),
        "temperature": ("warm", "hot"),
        "labels": (["keep", "old"], ["handover", "keep"]),
    }
    node = (await admin.ok(NODE, id=untouched["id"]))["node"]
    assert node["version"] == 1


async def test_update_history_says_who_changed_what_from_what(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "Deal", amount="100")
    await admin.ok(UPDATE, input={"dealId": deal["id"], "expectedVersion": 1, "amount": "250",
                                  "expectedCloseDate": "2027-03-31", "probabilityOverride": "0.4"})
    history = (await admin.ok(HISTORY, id=deal["id"]))["node"]["history"]
    updated = history[-1]
    assert updated["kind"] == "UPDATED"
    assert updated["actorUserId"] == str(GlobalID("User", str(t.admin.user_id)))
    assert {c["field"]: (c["from"], c["to"]) for c in updated["changes"]} == {
        "amount": ("100.00", "250"),
        "expectedCloseDate": (None, "2027-03-31"),
        "probabilityOverride": (None, "0.4"),
    }
    assert sorted(updated["data"]["changed"]) == ["amount", "expected_close_date",
                                                  "probability_override"]
