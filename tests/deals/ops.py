"""GraphQL operations the deals tests share."""

from __future__ import annotations

from typing import Any

from tests.factories import Caller

SEGMENTS = "query { segments { id name pipeline { id name stages { id name kind position } } } }"
CREATE_SEGMENT = """
mutation($name: String!, $stages: [StageInput!]) {
  createSegment(input: {name: $name, stages: $stages}) {
    segment { id name pipeline { id stages { id name kind position probability } } }
    errors { code field message }
  }
}"""
CREATE_DEAL = """
mutation($input: CreateDealInput!) {
  createDeal(input: $input) {
    deal { id title amount currency version stage { id name } owner { id } labels customFields }
    errors { code field message }
  }
}"""
MOVE = """
mutation($deal: ID!, $to: ID!, $v: Int!, $reason: String) {
  moveDeal(input: {dealId: $deal, toStageId: $to, expectedVersion: $v, lostReason: $reason}) {
    deal { id version stage { id name } lostReason }
    event { seq kind fromStageId toStageId }
    errors { code field message ... on VersionConflictError { currentVersion currentStageId } }
  }
}"""
HISTORY = """
query($id: ID!) { node(id: $id) { ... on Deal { history { seq kind fromStageId toStageId
  lostReason amount data } } } }"""
BOARD = """
query($p: ID!, $n: Int!) { board(pipelineId: $p, dealsPerStage: $n) {
  pipelineName columns { stage { id name kind } dealCount
    deals { id title amount owner { id name } contact { id name } } } } }"""


async def default_pipeline(caller: Caller) -> dict[str, Any]:
    data = await caller.ok(SEGMENTS)
    pipeline: dict[str, Any] = data["segments"][0]["pipeline"]
    return pipeline


def stage_ids(pipeline: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["id"] for s in pipeline["stages"]}


async def create_deal(caller: Caller, pipeline_id: str, title: str, **fields: Any) -> dict[str, Any]:
    data = await caller.ok(CREATE_DEAL, input={"pipelineId": pipeline_id, "title": title, **fields})
    assert data["createDeal"]["errors"] == [], data
    deal: dict[str, Any] = data["createDeal"]["deal"]
    return deal


async def move(caller: Caller, deal_id: str, to: str, version: int,
               reason: str | None = None) -> dict[str, Any]:
    data = await caller.ok(MOVE, deal=deal_id, to=to, v=version, reason=reason)
    result: dict[str, Any] = data["moveDeal"]
    return result
