"""Configuration after creation: the stage-set rules in every mutation, segments (rename,
archive with its deals' fate, restore), the default template, custom fields (rename,
choices, archive; no type change), teams, activities and targets; each failure typed and
writing nothing, another tenant's ids "not found"."""

from __future__ import annotations

from typing import Any

import asyncpg
from strawberry.relay import GlobalID

from saas.pipelines.rules import ROTTING_MESSAGE
from tenants.principal import Role
from tests.deals.ops import CREATE_DEAL, CREATE_SEGMENT, create_deal, default_pipeline, stage_ids
from tests.factories import TenantFactory, all_tables_snapshot

UPDATE_SEGMENT = """mutation($input: UpdateSegmentInput!) { updateSegment(input: $input) {
  segment { id name pipeline { name } } errors { code field message } } }"""
ARCHIVE_SEGMENT = """mutation($input: SegmentRefInput!) { archiveSegment(input: $input) {
  segment { id } errors { code field message } } }"""
RESTORE_SEGMENT = """mutation($input: SegmentRefInput!) { restoreSegment(input: $input) {
  segment { id } errors { code field message } } }"""
TEMPLATE = """mutation($input: SetDefaultStageTemplateInput!) { setDefaultStageTemplate(
  input: $input) { stages { name kind probability rottingDays } errors { code field message } } }"""
ADD_STAGE = """mutation($input: AddStageInput!) { addStage(input: $input) {
  stage { id position } errors { code field message } } }"""
UPDATE_STAGE = """mutation($input: UpdateStageInput!) { updateStage(input: $input) {
  stage { id rottingDays } errors { code field message } } }"""
REORDER = """mutation($input: ReorderStagesInput!) { reorderStages(input: $input) {
  stages { id } errors { code field message } } }"""
ARCHIVE_STAGE = """mutation($input: StageRefInput!) { archiveStage(input: $input) {
  stage { id } errors { code field message } } }"""
DELETE_STAGE = """mutation($input: StageRefInput!) { deleteStage(input: $input) {
  deletedStageId errors { code field message } } }"""
DEFINE = """mutation($input: DefineCustomFieldInput!) { defineCustomField(input: $input) {
  field { key } errors { code field message } } }"""
UPDATE_FIELD = """mutation($input: UpdateCustomFieldInput!) { updateCustomField(input: $input) {
  field { key label choices required archivedAt } errors { code field message } } }"""
ARCHIVE_FIELD = """mutation($input: CustomFieldRefInput!) { archiveCustomField(input: $input) {
  field { key archivedAt } errors { code field message } } }"""
RESTORE_FIELD = """mutation($input: CustomFieldRefInput!) { restoreCustomField(input: $input) {
  field { key archivedAt } errors { code field message } } }"""
RENAME_TEAM = """mutation($input: RenameTeamInput!) { renameTeam(input: $input) {
  team { id name } errors { code field message } } }"""
DELETE_TEAM = """mutation($input: DeleteTeamInput!) { deleteTeam(input: $input) {
  deletedId errors { code field message } } }"""
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  activity { id } errors { code } } }"""
UPDATE_ACTIVITY = """mutation($input: UpdateActivityInput!) { updateActivity(input: $input) {
  activity { id kind subject note dueAt } errors { code field message } } }"""
DELETE_ACTIVITY = """mutation($input: DeleteActivityInput!) { deleteActivity(input: $input) {
  deletedId errors { code field message } } }"""
SET_TARGET = """mutation($input: SetTargetInput!) { setTarget(input: $input) {
  target { id } errors { code } } }"""
DELETE_TARGET = """mutation($input: DeleteTargetInput!) { deleteTarget(input: $input) {
  deletedId errors { code field message } } }"""
SEGMENTS = "query { segments { id name } }"
FIELDS = "query { customFields { key label } }"

STAGES = [{"name": "New", "probability": "0.2"}, {"name": "Won", "kind": "WON", "probability": "1"},
          {"name": "Lost", "kind": "LOST", "probability": "0"}]


def _gid(type_name: str, n: int) -> str:
    return str(GlobalID(type_name, f"00000000-0000-0000-0000-{n:012d}"))


async def test_stage_set_rules_hold_in_every_mutation(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    order = [st["id"] for st in sorted(pipeline["stages"], key=lambda x: x["position"])]

    def first_error(data: dict[str, Any]) -> tuple[str, str | None, str]:
        (result,) = data.values()
        e = result["errors"][0]
        return e["code"], e["field"], e["message"]

    no_lost = await admin.ok(CREATE_SEGMENT, name="X", stages=STAGES[:2])
    assert first_error(no_lost)[:2] == ("VALIDATION_FAILED", "stages")
    assert "missing: lost" in first_error(no_lost)[2]
    backwards = await admin.ok(CREATE_SEGMENT, name="X", stages=[STAGES[1], STAGES[0], STAGES[2]])
    assert first_error(backwards)[:2] == ("VALIDATION_FAILED", "stages")
    swapped = [order[-1], *order[:-1]]  # Lost first
    assert first_error(await admin.ok(REORDER, input={"pipelineId": pipeline["id"],
                                                      "stageIds": swapped}))[:2] == (
        "INVALID_STAGE", "stageIds")
    closed_first = await admin.ok(ADD_STAGE, input={"pipelineId": pipeline["id"], "position": 8,
                                                    "stage": {"name": "Late"}})
    assert first_error(closed_first)[:2] == ("INVALID_STAGE", "position")
    # Won and lost may swap among themselves.
    fine = [*order[:5], order[7], order[5], order[6]]
    reordered = await admin.ok(REORDER, input={"pipelineId": pipeline["id"], "stageIds": fine})
    assert reordered["reorderStages"]["errors"] == []
    assert first_error(await admin.ok(ARCHIVE_STAGE, input={"stageId": s["Lost"]})) == (
        "CONFLICT", "stageId", "a pipeline must keep at least one lost stage")
    assert first_error(await admin.ok(DELETE_STAGE, input={"stageId": s["Lost"]}))[:2] == (
        "CONFLICT", "stageId")
    # rottingDays: 0 is refused with the same message everywhere; null means never stale.
    zero = [
        await admin.ok(CREATE_SEGMENT, name="Y", stages=[{**STAGES[0], "rottingDays": 0},
                                                         *STAGES[1:]]),
        await admin.ok(ADD_STAGE, input={"pipelineId": pipeline["id"],
                                         "stage": {"name": "Z", "rottingDays": 0}}),
        await admin.ok(UPDATE_STAGE, input={"stageId": s["Proposal"], "rottingDays": 0}),
        await admin.ok(TEMPLATE, input={"stages": [{**STAGES[0], "rottingDays": 0},
                                                   *STAGES[1:]]}),
    ]
    assert {(first_error(z)[0], first_error(z)[2]) for z in zero} == {
        ("VALIDATION_FAILED", ROTTING_MESSAGE)}
    kept = await admin.ok(UPDATE_STAGE, input={"stageId": s["Proposal"], "name": "Offer"})
    assert kept["updateStage"]["stage"]["rottingDays"] == 21
    cleared = await admin.ok(UPDATE_STAGE, input={"stageId": s["Proposal"],
                                                  "clearRottingDays": True})
    assert cleared["updateStage"]["stage"]["rottingDays"] is None


async def test_segments_rename_archive_restore_and_the_default_template(
        tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    default = (await admin.ok(SEGMENTS))["segments"][0]
    template = await admin.ok(TEMPLATE, input={"stages": [
        {"name": "Intro", "probability": "0.1", "rottingDays": 7}, *STAGES[1:]]})
    assert template["setDefaultStageTemplate"]["stages"] == [
        {"name": "Intro", "kind": "OPEN", "probability": "0.1", "rottingDays": 7},
        {"name": "Won", "kind": "WON", "probability": "1", "rottingDays": None},
        {"name": "Lost", "kind": "LOST", "probability": "0", "rottingDays": None}]
    smb = (await admin.ok(CREATE_SEGMENT, name="SMB", stages=None))["createSegment"]["segment"]
    assert [st["name"] for st in smb["pipeline"]["stages"]] == ["Intro", "Won", "Lost"]
    renamed = await admin.ok(UPDATE_SEGMENT, input={"segmentId": smb["id"], "name": "Small"})
    assert renamed["updateSegment"]["segment"] == {"id": smb["id"], "name": "Small",
                                                   "pipeline": {"name": "Small"}}
    deal = await create_deal(admin, smb["pipeline"]["id"], "Open deal")
    refused = (await admin.ok(ARCHIVE_SEGMENT, input={"segmentId": smb["id"]}))
    assert [(e["code"], e["field"]) for e in refused["archiveSegment"]["errors"]] == [
        ("CONFLICT", "segmentId")]
    assert "1 active deal" in refused["archiveSegment"]["errors"][0]["message"]
    await admin.ok('mutation($id: ID!) { archiveDeal(input: {dealId: $id}) { errors { code } } }',
                   id=deal["id"])
    archived = await admin.ok(ARCHIVE_SEGMENT, input={"segmentId": smb["id"]})
    assert archived["archiveSegment"]["errors"] == []
    assert [x["name"] for x in (await admin.ok(SEGMENTS))["segments"]] == [default["name"]]
    new = await admin.ok(CREATE_DEAL, input={"pipelineId": smb["pipeline"]["id"], "title": "x"})
    assert [(e["code"], e["field"]) for e in new["createDeal"]["errors"]] == [
        ("CONFLICT", "pipelineId")]
    last = await admin.ok(ARCHIVE_SEGMENT, input={"segmentId": default["id"]})
    assert last["archiveSegment"]["errors"][0]["message"] == \
        "a tenant keeps at least one active segment"
    restored = await admin.ok(RESTORE_SEGMENT, input={"segmentId": smb["id"]})
    assert restored["restoreSegment"]["errors"] == []
    assert len((await admin.ok(SEGMENTS))["segments"]) == 2


async def test_custom_fields_teams_activities_and_targets(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    await admin.ok(DEFINE, input={"key": "tier", "label": "Tier", "type": "choice",
                                  "choices": ["gold"]})
    deal = await create_deal(admin, pipeline["id"], "D", customFields={"tier": "gold"})
    updated = await admin.ok(UPDATE_FIELD, input={"key": "tier", "label": "Service tier",
                                                  "addChoices": ["silver", "gold"]})
    assert updated["updateCustomField"]["field"] == {
        "key": "tier", "label": "Service tier", "choices": ["gold", "silver"],
        "required": False, "archivedAt": None}
    refused = await admin.ok(UPDATE_FIELD, input={"key": "tier", "type": "text"})
    error = refused["updateCustomField"]["errors"][0]
    assert (error["code"], error["field"]) == ("VALIDATION_FAILED", "type")
    assert "type cannot change (choice -> text)" in error["message"]
    archived = await admin.ok(ARCHIVE_FIELD, input={"key": "tier"})
    assert archived["archiveCustomField"]["field"]["archivedAt"] is not None
    assert (await admin.ok(FIELDS))["customFields"] == []
    node = await admin.ok("query($id: ID!) { node(id: $id) { ... on Deal { customFields } } }",
                          id=deal["id"])
    assert node["node"]["customFields"] == {"tier": "gold"}  # values kept
    write = await admin.ok('mutation($id: ID!) { updateDeal(input: {dealId: $id, '
                           'expectedVersion: 1, customFields: {tier: "silver"}}) '
                           '{ errors { code field message } } }', id=deal["id"])
    assert write["updateDeal"]["errors"] == [{"code": "VALIDATION_FAILED",
                                              "field": "customFields.tier",
                                              "message": "custom field 'tier' is archived"}]
    twice = await admin.ok(ARCHIVE_FIELD, input={"key": "tier"})
    assert [e["code"] for e in twice["archiveCustomField"]["errors"]] == ["CONFLICT"]
    restored = await admin.ok(RESTORE_FIELD, input={"key": "tier"})
    assert restored["restoreCustomField"]["field"]["archivedAt"] is None
    assert (await admin.ok(FIELDS))["customFields"] == [{"key": "tier", "label": "Service tier"}]

    team = await t.add_team("East")
    team_id = str(GlobalID("Team", str(team)))
    renamed = await admin.ok(RENAME_TEAM, input={"teamId": team_id, "name": "East coast"})
    assert renamed["renameTeam"]["team"] == {"id": team_id, "name": "East coast"}
    member = await t.add_user(Role.REP, team_id=team)
    busy = await admin.ok(DELETE_TEAM, input={"teamId": team_id})
    assert busy["deleteTeam"]["errors"][0]["code"] == "CONFLICT"
    empty = str(GlobalID("Team", str(await t.add_team("West"))))
    await admin.ok(SET_TARGET, input={"period": {"kind": "WEEK", "start": "2026-11-16"},
                                      "metric": "WON_COUNT", "value": "3", "teamId": empty})
    gone = await admin.ok(DELETE_TEAM, input={"teamId": empty})
    assert gone["deleteTeam"] == {"deletedId": empty, "errors": []}
    assert member.team_id == team

    created = await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL",
                                              "subject": "Call", "note": "first"})
    activity_id = created["createActivity"]["activity"]["id"]
    changed = await admin.ok(UPDATE_ACTIVITY, input={
        "activityId": activity_id, "kind": "MEETING", "note": None,
        "dueAt": "2030-01-01T10:00:00+00:00"})
    assert changed["updateActivity"]["activity"] == {
        "id": activity_id, "kind": "MEETING", "subject": "Call", "note": None,
        "dueAt": "2030-01-01T10:00:00+00:00"}
    deleted = await admin.ok(DELETE_ACTIVITY, input={"activityId": activity_id})
    assert deleted["deleteActivity"] == {"deletedId": activity_id, "errors": []}
    assert (await admin.ok("query($id: ID!) { node(id: $id) { id } }", id=activity_id))[
        "node"] is None

    target = await admin.ok(SET_TARGET, input={
        "period": {"kind": "WEEK", "start": "2026-11-16"}, "metric": "WON_COUNT", "value": "5",
        "userId": str(GlobalID("User", str(t.admin.user_id)))})
    target_id = target["setTarget"]["target"]["id"]
    removed = await admin.ok(DELETE_TARGET, input={"targetId": target_id})
    assert removed["deleteTarget"] == {"deletedId": target_id, "errors": []}


async def test_failures_are_typed_and_write_nothing(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    a, b = await tenants.create(), await tenants.create()
    admin = a.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    segment = (await admin.ok(SEGMENTS))["segments"][0]["id"]
    b_segment = (await b.admin_caller.ok(SEGMENTS))["segments"][0]["id"]
    deal = await create_deal(admin, pipeline["id"], "D")
    b_deal = await create_deal(b.admin_caller, (await default_pipeline(b.admin_caller))["id"],
                               "B")
    activity = (await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL",
                                                "subject": "c"}))["createActivity"]["activity"]
    b_activity = (await b.admin_caller.ok(ACTIVITY, input={
        "dealId": b_deal["id"], "kind": "CALL", "subject": "c"}))["createActivity"]["activity"]
    await admin.ok(DEFINE, input={"key": "seats", "label": "Seats", "type": "number"})
    team = str(GlobalID("Team", str(await a.add_team("East"))))
    b_team = str(GlobalID("Team", str(await b.add_team("B team"))))
    await admin.ok(CREATE_SEGMENT, name="SMB", stages=STAGES)
    rep = a.as_user(await a.add_user(Role.REP))
    cases: list[tuple[str, Any, str, dict[str, Any], str, str | None]] = [
        ("segment: rename other tenant's", admin, UPDATE_SEGMENT,
         {"segmentId": b_segment, "name": "x"}, "NOT_FOUND", "segmentId"),
        ("segment: rename to a taken name", admin, UPDATE_SEGMENT,
         {"segmentId": segment, "name": "SMB"}, "CONFLICT", "name"),
        ("segment: blank name", admin, UPDATE_SEGMENT, {"segmentId": segment, "name": " "},
         "VALIDATION_FAILED", "name"),
        ("segment: rename as a rep", rep, UPDATE_SEGMENT, {"segmentId": segment, "name": "x"},
         "FORBIDDEN", None),
        ("segment: archive with deals", admin, ARCHIVE_SEGMENT, {"segmentId": segment},
         "CONFLICT", "segmentId"),
        ("segment: restore active", admin, RESTORE_SEGMENT, {"segmentId": segment},
         "CONFLICT", "segmentId"),
        ("segment: archive unknown", admin, ARCHIVE_SEGMENT, {"segmentId": _gid("Segment", 1)},
         "NOT_FOUND", "segmentId"),
        ("template: no won stage", admin, TEMPLATE, {"stages": [STAGES[0], STAGES[2]]},
         "VALIDATION_FAILED", "stages"),
        ("template: duplicate names", admin, TEMPLATE,
         {"stages": [STAGES[0], {**STAGES[0]}, *STAGES[1:]]}, "VALIDATION_FAILED", "stages"),
        ("stage: other tenant's pipeline", admin, ADD_STAGE,
         {"pipelineId": (await default_pipeline(b.admin_caller))["id"],
          "stage": {"name": "x"}}, "NOT_FOUND", "pipelineId"),
        ("stage: open after the won stages", admin, ADD_STAGE,
         {"pipelineId": pipeline["id"], "position": 6, "stage": {"name": "Late"}},
         "INVALID_STAGE", "position"),
        ("stage: rotting 0", admin, UPDATE_STAGE, {"stageId": s["Proposal"], "rottingDays": 0},
         "VALIDATION_FAILED", "input.rottingDays"),
        ("stage: archive the only lost", admin, ARCHIVE_STAGE, {"stageId": s["Lost"]},
         "CONFLICT", "stageId"),
        ("field: unknown", admin, UPDATE_FIELD, {"key": "nope", "label": "x"}, "NOT_FOUND",
         "key"),
        ("field: type change", admin, UPDATE_FIELD, {"key": "seats", "type": "text"},
         "VALIDATION_FAILED", "type"),
        ("field: choices on a number", admin, UPDATE_FIELD,
         {"key": "seats", "addChoices": ["a"]}, "VALIDATION_FAILED", "addChoices"),
        ("field: blank label", admin, UPDATE_FIELD, {"key": "seats", "label": " "},
         "VALIDATION_FAILED", "label"),
        ("team: other tenant's", admin, RENAME_TEAM, {"teamId": b_team, "name": "x"},
         "NOT_FOUND", "teamId"),
        ("team: blank name", admin, RENAME_TEAM, {"teamId": team, "name": ""},
         "VALIDATION_FAILED", "name"),
        ("team: delete as a rep", rep, DELETE_TEAM, {"teamId": team}, "FORBIDDEN", None),
        ("team: delete other tenant's", admin, DELETE_TEAM, {"teamId": b_team}, "NOT_FOUND",
         "teamId"),
        ("activity: other tenant's", admin, UPDATE_ACTIVITY,
         {"activityId": b_activity["id"], "subject": "x"}, "NOT_FOUND", "activityId"),
        ("activity: blank subject", admin, UPDATE_ACTIVITY,
         {"activityId": activity["id"], "subject": " "}, "VALIDATION_FAILED", "subject"),
        ("activity: naive due time", admin, UPDATE_ACTIVITY,
         {"activityId": activity["id"], "dueAt": "2030-01-01T10:00:00"}, "VALIDATION_FAILED",
         "dueAt"),
        ("activity: rep, not their deal", rep, DELETE_ACTIVITY,
         {"activityId": activity["id"]}, "FORBIDDEN", None),
        ("activity: delete other tenant's", admin, DELETE_ACTIVITY,
         {"activityId": b_activity["id"]}, "NOT_FOUND", "activityId"),
        ("target: unknown", admin, DELETE_TARGET, {"targetId": _gid("Target", 4)},
         "NOT_FOUND", "targetId"),
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
        assert error["message"], name
        after = (await all_tables_snapshot(owner_conn, a.id),
                 await all_tables_snapshot(owner_conn, b.id))
        assert after == before, f"{name} changed the database"
