"""Two segments with different stage sets; deals move forward, back, to lost and back."""

from __future__ import annotations

from decimal import Decimal

from tests.deals.ops import (
    BOARD,
    CREATE_SEGMENT,
    HISTORY,
    create_deal,
    default_pipeline,
    move,
    stage_ids,
)
from tests.factories import TenantFactory


async def test_default_segment_has_the_default_stage_set(tenants: TenantFactory) -> None:
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    assert [(s["name"], s["kind"]) for s in pipeline["stages"]] == [
        ("Lead generation", "OPEN"), ("Lead qualification", "OPEN"), ("Needs analysis", "OPEN"),
        ("Proposal", "OPEN"), ("Negotiation", "OPEN"), ("Closing", "WON"),
        ("Retention", "WON"), ("Lost", "LOST"),
    ]
    assert [s["position"] for s in pipeline["stages"]] == list(range(8))


async def test_deals_move_through_two_segments_with_complete_history(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    smb = await admin.ok(CREATE_SEGMENT, name="SMB", stages=[
        {"name": "New", "probability": "0.2"},
        {"name": "Demo", "probability": "0.5"},
        {"name": "Won", "kind": "WON", "probability": "1"},
        {"name": "Lost", "kind": "LOST", "probability": "0"},
    ])
    enterprise = await admin.ok(CREATE_SEGMENT, name="Enterprise", stages=None)
    smb_pipeline = smb["createSegment"]["segment"]["pipeline"]
    ent_pipeline = enterprise["createSegment"]["segment"]["pipeline"]
    smb_stages, ent_stages = stage_ids(smb_pipeline), stage_ids(ent_pipeline)
    assert list(smb_stages) == ["New", "Demo", "Won", "Lost"]
    assert len(ent_stages) == 8

    deal = await create_deal(admin, ent_pipeline["id"], "Big rollout", amount="120000.50",
                             currency="EUR", labels=["vip", "q3", "vip"])
    assert deal["stage"]["name"] == "Lead generation"
    assert deal["version"] == 1
    assert deal["labels"] == ["q3", "vip"]
    assert Decimal(deal["amount"]) == Decimal("120000.50")
    v = 1
    steps = [("Needs analysis", None, "MOVED"), ("Proposal", None, "MOVED"),
             ("Lead qualification", None, "MOVED"),  # backward: cyclic movement is normal
             ("Lost", "budget cut", "LOST"), ("Proposal", None, "REOPENED"),
             ("Closing", None, "MOVED")]
    for name, reason, kind in steps:
        result = await move(admin, deal["id"], ent_stages[name], v, reason)
        assert result["errors"] == []
        assert result["deal"]["stage"]["name"] == name
        assert result["event"]["kind"] == kind
        v += 1
        assert result["deal"]["version"] == v
    small = await create_deal(admin, smb_pipeline["id"], "Small shop", amount="900")
    await move(admin, small["id"], smb_stages["Demo"], 1)

    history = (await admin.ok(HISTORY, id=deal["id"]))["node"]["history"]
    path = [(h["kind"], h["toStageId"]) for h in history]
    assert path == [("CREATED", ent_stages["Lead generation"])] + [
        (kind, ent_stages[name]) for name, _, kind in steps]
    assert [h["fromStageId"] for h in history[1:]] == [h["toStageId"] for h in history[:-1]]
    assert [h["lostReason"] for h in history if h["kind"] == "LOST"] == ["budget cut"]
    seqs = [h["seq"] for h in history]
    assert seqs == sorted(seqs)

    board = (await admin.ok(BOARD, p=smb_pipeline["id"], n=10))["board"]
    assert board["pipelineName"] == "SMB"
    assert [(c["stage"]["name"], c["dealCount"], [d["title"] for d in c["deals"]])
            for c in board["columns"]] == [
        ("New", 0, []), ("Demo", 1, ["Small shop"]), ("Won", 0, []), ("Lost", 0, [])]
    ent_board = (await admin.ok(BOARD, p=ent_pipeline["id"], n=10))["board"]
    closing = next(c for c in ent_board["columns"] if c["stage"]["name"] == "Closing")
    assert [d["title"] for d in closing["deals"]] == ["Big rollout"]
    assert closing["deals"][0]["owner"]["id"] == deal["owner"]["id"]


async def test_transfer_to_another_segment_maps_or_asks_for_the_stage(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    default = await default_pipeline(admin)
    smb = (await admin.ok(CREATE_SEGMENT, name="SMB", stages=[
        {"name": "Proposal", "probability": "0.3"}, {"name": "Paid", "kind": "WON",
                                                     "probability": "1"},
        {"name": "Gone", "kind": "LOST", "probability": "0"}]))
    smb_pipeline = smb["createSegment"]["segment"]["pipeline"]
    deal = await create_deal(admin, default["id"], "Moving on")
    transfer = """
    mutation($d: ID!, $p: ID!, $v: Int!, $s: ID) {
      transferDeal(input: {dealId: $d, toPipelineId: $p, expectedVersion: $v, toStageId: $s}) {
        deal { version stage { name } pipeline { id } } event { kind }
        errors { code field message } } }"""

    asked = await admin.ok(transfer, d=deal["id"], p=smb_pipeline["id"], v=1)
    await move(admin, deal["id"], stage_ids(default)["Proposal"], 1)
    mapped = await admin.ok(transfer, d=deal["id"], p=smb_pipeline["id"], v=2)

    assert asked["transferDeal"]["deal"] is None
    assert asked["transferDeal"]["errors"][0]["code"] == "INVALID_STAGE"
    assert asked["transferDeal"]["errors"][0]["field"] == "toStageId"
    assert mapped["transferDeal"]["errors"] == []
    assert mapped["transferDeal"]["deal"] == {
        "version": 3, "stage": {"name": "Proposal"}, "pipeline": {"id": smb_pipeline["id"]}}
    assert mapped["transferDeal"]["event"]["kind"] == "TRANSFERRED"


async def test_activities_and_next_activity(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "With tasks")
    create = """mutation($d: ID!, $k: ActivityKind!, $s: String!, $due: DateTime) {
      createActivity(input: {dealId: $d, kind: $k, subject: $s, dueAt: $due}) {
        activity { id subject } errors { code field } } }"""
    later = await admin.ok(create, d=deal["id"], k="MEETING", s="Demo", due="2030-01-02T10:00:00+00:00")
    soon = await admin.ok(create, d=deal["id"], k="CALL", s="Intro", due="2030-01-01T09:00:00+00:00")
    query = """query($id: ID!) { node(id: $id) { ... on Deal {
      nextActivity { subject } activities { subject kind dueAt doneAt } } } }"""

    before = (await admin.ok(query, id=deal["id"]))["node"]
    done = await admin.ok(
        "mutation($a: ID!) { completeActivity(input: {activityId: $a}) { activity { doneAt } "
        "errors { code } } }", a=soon["createActivity"]["activity"]["id"])
    after = (await admin.ok(query, id=deal["id"]))["node"]

    assert before["nextActivity"] == {"subject": "Intro"}
    assert [a["subject"] for a in before["activities"]] == ["Intro", "Demo"]
    assert done["completeActivity"]["activity"]["doneAt"] is not None
    assert after["nextActivity"] == {"subject": later["createActivity"]["activity"]["subject"]}
