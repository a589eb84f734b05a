"""Every class of bad request gets its precise status and code, no Python text, and changes
nothing (row-hash snapshot of both tenants after each case)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory, snapshot

G = "application/graphql-response+json"
J = "application/json"
# What Python leaks when an exception reaches a client: reprs, type names, tracebacks.
PYTHON_TEXT = re.compile(
    r"Traceback|File \"|line \d+, in|<class |object at 0x|\w+Error\b|\bNone\b|\{'|"
    r"'\w+' object|NoneType|\[<|Decimal\('|datetime\.|unhashable|subscriptable")
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  activity { id } errors { code field message } } }"""
DEALS = "query($n: Int, $o: DealOrder) { deals(first: $n, orderBy: $o) { totalCount } }"
UPDATE_STAGE = """mutation($input: UpdateStageInput!) { updateStage(input: $input) {
  stage { id } errors { code field message } } }"""


@dataclass
class Case:
    name: str
    body: Any = None  # JSON body (POST) unless `raw` or `params`
    status: int = 200
    code: str | None = None  # top-level extensions.code, or the payload error's code
    field: str | None = None
    method: str = "POST"
    accept: str | None = None
    content_type: str | None = J
    raw: bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def _cases(p: str, deal: str, stage: str) -> list[Case]:
    def deal_input(**kw: Any) -> dict[str, Any]:
        return {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": p, "title": "x", **kw}}}

    nested = b'{"query": "{ __typename }", "variables": {"x": ' + b"[" * 2000 + b"1" + b"]" * 2000 + b"}}"
    shallow: Any = 1
    for _ in range(40):
        shallow = {"a": shallow}
    me = "query { me { tenantId } }"
    two = "mutation A { logout { loggedOut } } query B { me { tenantId } }"
    return [
        # envelopes and content types
        Case("no content type", {"query": me}, 415, "UNSUPPORTED_MEDIA_TYPE", content_type=None),
        Case("text/plain", {"query": me}, 415, "UNSUPPORTED_MEDIA_TYPE", content_type="text/plain"),
        Case("form urlencoded", raw=b"query=%7B__typename%7D", status=415,
             code="UNSUPPORTED_MEDIA_TYPE", content_type="application/x-www-form-urlencoded"),
        Case("multipart", raw=b"--x\r\n\r\n--x--", status=415, code="UNSUPPORTED_MEDIA_TYPE",
             content_type="multipart/form-data; boundary=x"),
        Case("latin-1 charset", {"query": me}, 415, "UNSUPPORTED_MEDIA_TYPE",
             content_type="application/json; charset=latin-1"),
        Case("empty body", raw=b"", status=400, code="BAD_REQUEST"),
        Case("not JSON", raw=b'{"query": ', status=400, code="BAD_REQUEST"),
        Case("not JSON, graphql-response", raw=b"{oops", status=400, code="BAD_REQUEST", accept=G),
        Case("NaN literal in JSON", raw=b'{"query": "{ __typename }", "variables": {"a": NaN}}',
             status=400, code="BAD_REQUEST"),
        Case("batch array", [{"query": me}], 400, "BAD_REQUEST"),
        Case("JSON string body", "query", 400, "BAD_REQUEST"),
        Case("query is a number", {"query": 7}, 400, "BAD_REQUEST"),
        Case("query is an object", {"query": {"q": 1}}, 400, "BAD_REQUEST"),
        Case("no query", {"variables": {}}, 400, "BAD_REQUEST"),
        Case("empty query", {"query": ""}, 400, "BAD_REQUEST"),
        Case("operationName is a number", {"query": me, "operationName": 7}, 400, "BAD_REQUEST"),
        Case("operationName is a list", {"query": me, "operationName": []}, 400, "BAD_REQUEST"),
        Case("variables is a string", {"query": me, "variables": "{}"}, 400, "BAD_REQUEST"),
        Case("variables is a list", {"query": me, "variables": [1]}, 400, "BAD_REQUEST"),
        Case("extensions is a string", {"query": me, "extensions": "x"}, 400, "BAD_REQUEST"),
        Case("extensions is a number", {"query": me, "extensions": 5}, 400, "BAD_REQUEST",
             accept=G),
        Case("accepts only HTML", {"query": me}, 406, "NOT_ACCEPTABLE", accept="text/html"),
        Case("PUT", {"query": me}, 405, "METHOD_NOT_ALLOWED", method="PUT"),
        Case("DELETE", None, 405, "METHOD_NOT_ALLOWED", method="DELETE"),
        # sizes and nesting
        Case("JSON nested 2000 deep", raw=nested, status=400, code="BAD_REQUEST"),
        Case("JSON nested 40 deep", {"query": me, "variables": {"x": shallow}}, 400, "BAD_REQUEST"),
        Case("body over 1 MiB", {"query": me, "variables": {"x": "a" * (1024 * 1024)}}, 413,
             "REQUEST_TOO_LARGE"),
        Case("declared length over 1 MiB", raw=b'{"query": "{ __typename }"}', status=413,
             code="REQUEST_TOO_LARGE", headers={"content-length": str(5 * 1024 * 1024)}),
        Case("list of 1001 labels", deal_input(labels=["a"] * 1001), 200, "BAD_USER_INPUT",
             "input.labels"),
        Case("string over the limit", deal_input(title="t" * 20001), 200, "BAD_USER_INPUT",
             "input.title"),
        Case("search string of 1 MiB", {"query": "query($s: String) { deals(filter: {search: $s}) "
                                                 "{ totalCount } }",
                                        "variables": {"s": "s" * (1024 * 1024 - 200)}},
             200, "BAD_USER_INPUT", "s"),
        # documents
        Case("syntax error", {"query": "query { me { tenantId }"}, 200, "GRAPHQL_PARSE_FAILED"),
        Case("syntax error, graphql-response", {"query": "{"}, 400, "GRAPHQL_PARSE_FAILED", accept=G),
        Case("unknown field", {"query": "{ nope }"}, 200, "GRAPHQL_VALIDATION_FAILED"),
        Case("unknown field, graphql-response", {"query": "{ nope }"}, 400,
             "GRAPHQL_VALIDATION_FAILED", accept=G),
        Case("too many tokens", {"query": "{ me { " + "tenantId " * 4001 + "} }"}, 200,
             "GRAPHQL_PARSE_FAILED"),
        Case("too deep", {"query": "{ " + "node(id: \"x\") { ... on Deal { stage { " * 8 + "id"
                                   + " } } }" * 8 + " }"}, 200, "GRAPHQL_VALIDATION_FAILED"),
        # The depth rule reports while it is made: the 21st error's abort used to be a 500.
        Case("21 operations too deep", {"query": " ".join(
            f"query Q{i} {{ ...F }}" for i in range(21))
            + " fragment F on Query { deals(first: 1) { edges { node { "
            + "owner { deals(first: 1) { edges { node { " * 3 + "id" + " } } } }" * 3
            + " } } } }", "operationName": "Q0"}, 200, "GRAPHQL_VALIDATION_FAILED"),
        Case("spread of an undefined fragment", {"query": "{ me { ...Missing } }"}, 200,
             "GRAPHQL_VALIDATION_FAILED"),
        Case("spread of an undefined fragment, graphql-response",
             {"query": "query { me { tenantId ...Missing } }"}, 400,
             "GRAPHQL_VALIDATION_FAILED", accept=G),
        Case("too many aliases", {"query": "{ " + " ".join(f"a{i}: me {{ tenantId }}"
                                                         for i in range(31)) + " }"},
             200, "GRAPHQL_VALIDATION_FAILED"),
        Case("field repeated 800 times", {"query": "{ " + "me { tenantId } " * 800 + "}"}, 200,
             "GRAPHQL_VALIDATION_FAILED"),
        Case("NUL in a string literal", {"query": 'mutation { createDeal(input: {pipelineId: "%s", '
                                                  'title: "a\\u0000b"}) { errors { code } } }' % p},
             200, "GRAPHQL_VALIDATION_FAILED"),
        Case("Decimal literal not a number", {"query": 'mutation { createDeal(input: {pipelineId: '
                                                       '"%s", title: "a", amount: "abc"}) '
                                                       '{ errors { code } } }' % p},
             200, "GRAPHQL_VALIDATION_FAILED"),
        Case("Int literal given a string", {"query": '{ deals(first: "ten") { totalCount } }'},
             200, "GRAPHQL_VALIDATION_FAILED"),
        Case("enum literal unknown", {"query": "{ deals(orderBy: AMOUNT_DESCENDING) { totalCount } }"},
             200, "GRAPHQL_VALIDATION_FAILED"),
        # operations
        Case("two operations, no name", {"query": two}, 200, "OPERATION_RESOLUTION_FAILURE"),
        Case("two operations, no name, graphql-response", {"query": two}, 400,
             "OPERATION_RESOLUTION_FAILURE", accept=G),
        Case("unknown operation name", {"query": two, "operationName": "C"}, 200,
             "OPERATION_RESOLUTION_FAILURE"),
        Case("subscription over HTTP", {"query": "subscription { dealEvents { __typename } }"},
             400, "OPERATION_NOT_ALLOWED"),
        # GET
        Case("mutation over GET", method="GET", params={"query": "mutation { logout { loggedOut } }"},
             status=405, code="METHOD_NOT_ALLOWED"),
        Case("named mutation over GET", method="GET", params={"query": two, "operationName": "A"},
             status=405, code="METHOD_NOT_ALLOWED"),
        Case("GET variables not JSON", method="GET", params={"query": me, "variables": "{x"},
             status=400, code="BAD_REQUEST"),
        Case("GET extensions not an object", method="GET", params={"query": me, "extensions": "[]"},
             status=400, code="BAD_REQUEST"),
        Case("GET without query", method="GET", params={"variables": "{}"}, status=400,
             code="BAD_REQUEST", accept=J),
        # variable coercion
        Case("amount not a number", deal_input(amount="abc"), 200, "BAD_USER_INPUT", "input.amount"),
        Case("amount not a number, graphql-response", deal_input(amount="abc"), 400,
             "BAD_USER_INPUT", "input.amount", accept=G),
        Case("amount NaN", deal_input(amount="NaN"), 200, "BAD_USER_INPUT", "input.amount"),
        Case("amount Infinity", deal_input(amount="Infinity"), 200, "BAD_USER_INPUT", "input.amount"),
        Case("amount -Infinity", deal_input(amount="-Infinity"), 200, "BAD_USER_INPUT",
             "input.amount"),
        Case("amount huge exponent", deal_input(amount="1e999"), 200, "BAD_USER_INPUT",
             "input.amount"),
        Case("amount a boolean", deal_input(amount=True), 200, "BAD_USER_INPUT", "input.amount"),
        Case("amount negative", deal_input(amount="-5"), 200, "VALIDATION_FAILED", "amount"),
        Case("date out of calendar", deal_input(expectedCloseDate="2026-13-45"), 200,
             "BAD_USER_INPUT", "input.expectedCloseDate"),
        Case("date year 9999", deal_input(expectedCloseDate="9999-12-31"), 200, "BAD_USER_INPUT",
             "input.expectedCloseDate"),
        Case("date a number", deal_input(expectedCloseDate=20260101), 200, "BAD_USER_INPUT",
             "input.expectedCloseDate"),
        Case("datetime not a time", {"query": ACTIVITY, "variables": {"input": {
            "dealId": deal, "kind": "CALL", "subject": "x", "dueAt": "tomorrow"}}},
             200, "BAD_USER_INPUT", "input.dueAt"),
        Case("enum value unknown", {"query": ACTIVITY, "variables": {"input": {
            "dealId": deal, "kind": "FAX", "subject": "x"}}}, 200, "BAD_USER_INPUT", "input.kind"),
        Case("Int given a word", {"query": DEALS, "variables": {"n": "ten"}}, 200,
             "BAD_USER_INPUT", "n"),
        Case("Int beyond 32 bits", {"query": DEALS, "variables": {"n": 2**40}}, 200,
             "BAD_USER_INPUT", "n"),
        Case("Int given a float", {"query": DEALS, "variables": {"n": 1.5}}, 200, "BAD_USER_INPUT",
             "n"),
        Case("order enum unknown", {"query": DEALS, "variables": {"o": "AMOUNT_DESCENDING"}}, 200,
             "BAD_USER_INPUT", "o"),
        Case("title a number", deal_input(title=5), 200, "BAD_USER_INPUT", "input.title"),
        Case("labels of numbers", deal_input(labels=[1]), 200, "BAD_USER_INPUT", "input.labels.0"),
        Case("unknown input field", deal_input(colour="red"), 200, "BAD_USER_INPUT", "input.colour"),
        Case("missing required field", {"query": CREATE_DEAL, "variables": {"input": {"title": "x"}}},
             200, "BAD_USER_INPUT", "input.pipelineId"),
        Case("input null", {"query": CREATE_DEAL, "variables": {"input": None}}, 200,
             "BAD_USER_INPUT", "input"),
        Case("input a list", {"query": CREATE_DEAL, "variables": {"input": [p]}}, 200,
             "BAD_USER_INPUT", "input"),
        Case("variable missing", {"query": CREATE_DEAL}, 200, "BAD_USER_INPUT", "input"),
        Case("NUL in a variable", deal_input(title="a\x00b"), 200, "BAD_USER_INPUT", "input.title"),
        Case("NUL in a custom field", deal_input(customFields={"seats": "a\x00"}), 200,
             "BAD_USER_INPUT", "input.customFields.seats"),
        Case("NUL in a stage name", {"query": UPDATE_STAGE, "variables": {"input": {
            "stageId": stage, "name": "x\x00"}}}, 200, "BAD_USER_INPUT", "input.name"),
        Case("custom fields a list", deal_input(customFields=[1, 2]), 200, "VALIDATION_FAILED",
             "customFields"),
        Case("custom fields a string", deal_input(customFields="seats"), 200, "VALIDATION_FAILED",
             "customFields"),
        Case("cursor beyond bigint", {"query": '{ stageEvents(after: "99999999999999999999") '
                                               '{ endCursor } }'}, 200, "VALIDATION_FAILED", "after"),
        Case("cursor of unicode digits", {"query": '{ stageEvents(after: "\u00b2") { endCursor } }'},
             200, "VALIDATION_FAILED", "after"),
    ]


@pytest.fixture
async def world(tenants: TenantFactory) -> dict[str, Any]:
    a, b = await tenants.create(), await tenants.create()
    pipeline = await default_pipeline(a.admin_caller)
    await a.admin_caller.ok("""mutation { defineCustomField(input: {key: "seats", label: "Seats",
        type: "number"}) { errors { code } } }""")
    deal = (await a.admin_caller.ok(CREATE_DEAL, input={"pipelineId": pipeline["id"],
                                                       "title": "kept"}))["createDeal"]["deal"]
    return {"a": a, "b": b, "pipeline": pipeline["id"], "deal": deal["id"],
            "stage": pipeline["stages"][0]["id"]}


async def send(client: httpx.AsyncClient, case: Case, auth: dict[str, str]) -> httpx.Response:
    headers = {**auth, **case.headers}
    if case.accept is not None:
        headers["accept"] = case.accept
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    if case.method == "GET":
        return await client.get("/graphql", params=case.params, headers=headers)
    content = case.raw if case.raw is not None else (
        json.dumps(case.body).encode() if case.body is not None else b"")
    return await client.request(case.method, "/graphql", content=content, headers=headers)


def first_error(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(code, field) of the top-level error, else of the mutation payload's error."""
    if body.get("errors"):
        extensions = body["errors"][0].get("extensions", {})
        return extensions.get("code"), extensions.get("field")
    for value in (body.get("data") or {}).values():
        if isinstance(value, dict) and value.get("errors"):
            return value["errors"][0]["code"], value["errors"][0]["field"]
    return None, None


async def test_every_bad_request_is_refused_precisely_and_changes_nothing(
    world: dict[str, Any], client: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    a, b = world["a"], world["b"]
    cases = _cases(world["pipeline"], world["deal"], world["stage"])
    assert len(cases) >= 60
    before = (await snapshot(owner_conn, a.id), await snapshot(owner_conn, b.id))
    for case in cases:
        response = await send(client, case, a.admin_caller.headers)
        assert response.status_code == case.status, (case.name, response.text[:300])
        assert "charset=utf-8" in response.headers["content-type"], case.name
        expected_type = G if case.accept == G else J
        assert response.headers["content-type"].startswith(expected_type), case.name
        body = response.json()
        assert first_error(body) == (case.code, case.field), (case.name, body)
        if body.get("errors") and case.code != "VALIDATION_FAILED":
            assert "data" not in body, (case.name, body)  # nothing ran
        assert not PYTHON_TEXT.search(response.text), (case.name, response.text[:300])
        assert "INTERNAL" not in response.text, case.name
        after = (await snapshot(owner_conn, a.id), await snapshot(owner_conn, b.id))
        assert after == before, f"{case.name} changed the database"


async def test_several_operations_without_a_name_run_none_of_them(
    world: dict[str, Any], client: httpx.AsyncClient
) -> None:
    caller = world["a"].admin_caller
    mutation_first = ("mutation M { createDeal(input: {pipelineId: \"%s\", title: \"never\"}) "
                      "{ deal { id } } } query Q { deals(first: 5) { totalCount } }"
                      % world["pipeline"])
    response = await client.post("/graphql", json={"query": mutation_first}, headers=caller.headers)
    assert response.json()["errors"][0]["extensions"]["code"] == "OPERATION_RESOLUTION_FAILURE"
    count = await caller.ok("query { deals(first: 50) { totalCount edges { node { title } } } }")
    assert [e["node"]["title"] for e in count["deals"]["edges"]] == ["kept"]
    named = await client.post("/graphql", json={"query": mutation_first, "operationName": "Q"},
                              headers=caller.headers)
    assert named.json()["data"] == {"deals": {"totalCount": 1}}
    assert named.json()["extensions"]["cost"] == {"requested": 1, "limit": 20_000}
