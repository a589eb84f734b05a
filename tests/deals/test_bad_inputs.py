"""Every mutation's bad inputs: a typed error with a stable code, and nothing written."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from strawberry.relay import GlobalID

from tests.deals.ops import (
    CREATE_DEAL,
    CREATE_SEGMENT,
    MOVE,
    create_deal,
    default_pipeline,
    stage_ids,
)
from tests.factories import TenantFactory, snapshot

UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) {
  deal { id } errors { code field message } } }"""
TRANSFER = """mutation($input: TransferDealInput!) { transferDeal(input: $input) {
  deal { id } errors { code field message } } }"""
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  activity { id } errors { code field message } } }"""
ADD_STAGE = """mutation($input: AddStageInput!) { addStage(input: $input) {
  stage { id } errors { code field message } } }"""
ARCHIVE = """mutation($id: ID!) { archiveStage(input: {stageId: $id}) {
  stage { id } errors { code field message } } }"""
DELETE = """mutation($id: ID!) { deleteStage(input: {stageId: $id}) {
  deletedStageId errors { code field message } } }"""
REORDER = """mutation($p: ID!, $ids: [ID!]!) { reorderStages(input: {pipelineId: $p, stageIds: $ids}) {
  stages { id } errors { code field message } } }"""
FIELD = """mutation($input: DefineCustomFieldInput!) { defineCustomField(input: $input) {
  field { key } errors { code field message } } }"""
CONTACT = """mutation($input: CreateContactInput!) { createContact(input: $input) {
  contact { id } errors { code field message } } }"""


@pytest.fixture
async def world(tenants: TenantFactory) -> dict[str, Any]:
    """Tenant A with a deal in progress and a second segment; tenant B with its own deal."""
    a = await tenants.create()
    b = await tenants.create()
    admin = a.admin_caller
    pipeline = await default_pipeline(admin)
    other = (await admin.ok(CREATE_SEGMENT, name="SMB", stages=[
        {"name": "Open", "probability": "0.5"}, {"name": "Won", "kind": "WON", "probability": "1"},
        {"name": "Gone", "kind": "LOST", "probability": "0"}
    ]))["createSegment"]["segment"]["pipeline"]
    await admin.ok(FIELD, input={"key": "seats", "label": "Seats", "type": "number"})
    deal = await create_deal(admin, pipeline["id"], "Target deal", amount="100")
    b_pipeline = await default_pipeline(b.admin_caller)
    b_deal = await create_deal(b.admin_caller, b_pipeline["id"], "B's deal")
    return {"a": a, "b": b, "pipeline": pipeline, "stages": stage_ids(pipeline), "other": other,
            "deal": deal, "b_pipeline": b_pipeline, "b_deal": b_deal,
            "b_stages": stage_ids(b_pipeline)}


def _cases(w: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str, str | None]]:
    """(name, mutation, variables, expected code, expected field)."""
    p, s, d = w["pipeline"]["id"], w["stages"], w["deal"]["id"]
    unknown_deal = str(GlobalID("Deal", "00000000-0000-0000-0000-000000000001"))
    other_stage = w["other"]["stages"][0]["id"]
    create = lambda **kw: {"input": {"pipelineId": p, "title": "x", **kw}}  # noqa: E731
    return [
        ("create: unknown pipeline", CREATE_DEAL,
         {"input": {"pipelineId": str(GlobalID("Pipeline", "00000000-0000-0000-0000-000000000002")),
                    "title": "x"}}, "NOT_FOUND", "pipelineId"),
        ("create: other tenant's pipeline", CREATE_DEAL,
         {"input": {"pipelineId": w["b_pipeline"]["id"], "title": "x"}}, "NOT_FOUND", "pipelineId"),
        ("create: garbage id", CREATE_DEAL, {"input": {"pipelineId": "nope", "title": "x"}},
         "NOT_FOUND", "pipelineId"),
        ("create: negative amount", CREATE_DEAL, create(amount="-5"), "VALIDATION_FAILED",
         "amount"),
        ("create: bad currency", CREATE_DEAL, create(currency="XYZ"), "VALIDATION_FAILED",
         "currency"),
        ("create: empty title", CREATE_DEAL, {"input": {"pipelineId": p, "title": "  "}},
         "VALIDATION_FAILED", "title"),
        ("create: stage of another pipeline", CREATE_DEAL, create(stageId=other_stage),
         "INVALID_STAGE", "stageId"),
        ("create: starts in won", CREATE_DEAL, create(stageId=s["Closing"]), "INVALID_STAGE",
         "stageId"),
        ("create: unknown custom field", CREATE_DEAL, create(customFields={"colour": "red"}),
         "VALIDATION_FAILED", "customFields.colour"),
        ("create: custom field of wrong type", CREATE_DEAL,
         create(customFields={"seats": "many"}), "VALIDATION_FAILED", "customFields.seats"),
        ("create: other tenant's owner", CREATE_DEAL,
         create(ownerId=str(GlobalID("User", str(w["b"].admin.user_id)))), "NOT_FOUND",
         "ownerId"),
        ("move: unknown deal", MOVE, {"deal": unknown_deal, "to": s["Proposal"], "v": 1},
         "NOT_FOUND", "dealId"),
        ("move: other tenant's deal", MOVE, {"deal": w["b_deal"]["id"], "to": w["b_stages"]["Proposal"],
                                             "v": 1}, "NOT_FOUND", "dealId"),
        ("move: other tenant's stage", MOVE, {"deal": d, "to": w["b_stages"]["Proposal"], "v": 1},
         "NOT_FOUND", "toStageId"),
        ("move: stage of another pipeline", MOVE, {"deal": d, "to": other_stage, "v": 1},
         "INVALID_STAGE", "toStageId"),
        ("move: lost without reason", MOVE, {"deal": d, "to": s["Lost"], "v": 1},
         "VALIDATION_FAILED", "lostReason"),
        ("move: blank lost reason", MOVE, {"deal": d, "to": s["Lost"], "v": 1, "reason": "  "},
         "VALIDATION_FAILED", "lostReason"),
        ("move: stale version", MOVE, {"deal": d, "to": s["Proposal"], "v": 7},
         "VERSION_CONFLICT", "expectedVersion"),
        ("move: same stage", MOVE, {"deal": d, "to": s["Lead generation"], "v": 1},
         "INVALID_STAGE", "toStageId"),
        ("update: negative amount", UPDATE,
         {"input": {"dealId": d, "expectedVersion": 1, "amount": "-1"}}, "VALIDATION_FAILED",
         "amount"),
        ("update: bad currency", UPDATE,
         {"input": {"dealId": d, "expectedVersion": 1, "currency": "usd"}}, "VALIDATION_FAILED",
         "currency"),
        ("update: stale version", UPDATE,
         {"input": {"dealId": d, "expectedVersion": 3, "title": "new"}}, "VERSION_CONFLICT",
         "expectedVersion"),
        ("update: other tenant's contact", UPDATE,
         {"input": {"dealId": d, "expectedVersion": 1,
                    "contactId": str(GlobalID("Contact", "00000000-0000-0000-0000-000000000003"))}},
         "NOT_FOUND", "contactId"),
        ("transfer: same pipeline", TRANSFER,
         {"input": {"dealId": d, "toPipelineId": p, "expectedVersion": 1}}, "VALIDATION_FAILED",
         "toPipelineId"),
        ("transfer: other tenant's pipeline", TRANSFER,
         {"input": {"dealId": d, "toPipelineId": w["b_pipeline"]["id"], "expectedVersion": 1}},
         "NOT_FOUND", "pipelineId"),
        ("transfer: no stage to map to", TRANSFER,
         {"input": {"dealId": d, "toPipelineId": w["other"]["id"], "expectedVersion": 1}},
         "INVALID_STAGE", "toStageId"),
        ("activity: naive due time", ACTIVITY,
         {"input": {"dealId": d, "kind": "CALL", "subject": "x", "dueAt": "2030-01-01T10:00:00"}},
         "VALIDATION_FAILED", "dueAt"),
        ("activity: other tenant's deal", ACTIVITY,
         {"input": {"dealId": w["b_deal"]["id"], "kind": "CALL", "subject": "x"}}, "NOT_FOUND",
         "dealId"),
        ("add stage: probability > 1", ADD_STAGE,
         {"input": {"pipelineId": p, "stage": {"name": "X", "probability": "1.5"}}},
         "VALIDATION_FAILED", "input.probability"),
        ("add stage: duplicate name", ADD_STAGE,
         {"input": {"pipelineId": p, "stage": {"name": "proposal"}}}, "CONFLICT", "name"),
        ("archive: stage with deals", ARCHIVE, {"id": s["Lead generation"]}, "CONFLICT",
         "stageId"),
        ("delete: stage with deals", DELETE, {"id": s["Lead generation"]}, "CONFLICT", "stageId"),
        ("reorder: missing stages", REORDER, {"p": p, "ids": [s["Proposal"]]}, "INVALID_STAGE",
         "stageIds"),
        ("segment: duplicate name", CREATE_SEGMENT, {"name": "SMB", "stages": None}, "CONFLICT",
         "name"),
        ("segment: no open stage", CREATE_SEGMENT,
         {"name": "Odd", "stages": [{"name": "W", "kind": "WON", "probability": "1"}]},
         "VALIDATION_FAILED", "stages"),
        ("custom field: bad key", FIELD, {"input": {"key": "Bad Key", "label": "x", "type": "text"}},
         "VALIDATION_FAILED", "key"),
        ("contact: bad email", CONTACT, {"input": {"name": "X", "email": "not-an-email"}},
         "VALIDATION_FAILED", "email"),
    ]


async def test_bad_inputs_give_typed_errors_and_write_nothing(
    world: dict[str, Any], owner_conn: asyncpg.Connection
) -> None:
    a, b = world["a"], world["b"]
    before = (await snapshot(owner_conn, a.id), await snapshot(owner_conn, b.id))
    for name, mutation, variables, code, field in _cases(world):
        body = await a.admin_caller.gql(mutation, **variables)
        assert "errors" not in body, (name, body)
        (result,) = body["data"].values()
        assert len(result["errors"]) == 1, (name, result)
        error = result["errors"][0]
        assert (error["code"], error["field"]) == (code, field), (name, error)
        assert error["message"], name
        after = (await snapshot(owner_conn, a.id), await snapshot(owner_conn, b.id))
        assert after == before, f"{name} changed the database"
