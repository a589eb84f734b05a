"""Ordinary client errors are INFO lines without tracebacks; a bug is one ERROR with it."""

from __future__ import annotations

import logging

import httpx
import pytest
from graphql import GraphQLError

from schema.edge.logs import log_errors
from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory


async def test_twenty_client_errors_log_no_error_and_no_traceback(
    tenants: TenantFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    pipeline = (await default_pipeline(caller))["id"]
    unknown = "UGlwZWxpbmU6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAx"
    requests = [
        {"query": "{ me { tenantId }"},  # syntax
        {"query": "{ nope }"},  # validation
        {"query": "{ me { tenantId } }", "operationName": 7},  # envelope
        {"query": "query A { me { tenantId } } query B { me { tenantId } }"},  # two operations
        {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": pipeline, "title": "x",
                                                       "amount": "abc"}}},
        {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": pipeline, "title": "x",
                                                       "amount": "-1"}}},
        {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": unknown, "title": "x"}}},
        {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": pipeline, "title": " "}}},
        {"query": CREATE_DEAL, "variables": {"input": {"pipelineId": pipeline, "title": "x",
                                                       "customFields": [1, 2]}}},
        {"query": '{ stageEvents(after: "x") { endCursor } }'},
        {"query": '{ stageEvents(after: "99999999999999999999") { endCursor } }'},
        {"query": "query($n: Int) { deals(first: $n) { totalCount } }", "variables": {"n": "ten"}},
        {"query": "{ deals(first: 100000) { totalCount } }"},
        {"query": '{ node(id: "garbage!!") { id } }'},
    ]
    with caplog.at_level(logging.DEBUG):
        for body in requests:
            response = await client.post("/graphql", json=body, headers=caller.headers)
            assert response.status_code in (200, 400), response.text
            assert "INTERNAL" not in response.text, response.text
        for headers in ({}, {"Authorization": "Bearer nonsense"},
                        {"Authorization": "Bearer sp_unknown_key"}):
            response = await client.post("/graphql", json={"query": "{ me { tenantId } }"},
                                          headers=headers)
            assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        for raw in (b"{", b"[]", b'"x"'):
            response = await client.post("/graphql", content=raw,
                                         headers={**caller.headers, "content-type": "application/json"})
            assert response.status_code == 400
    assert len(requests) + 6 >= 20
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [(r.name, r.levelname, r.getMessage()) for r in loud]
    assert not [r for r in caplog.records if r.exc_info], "a client error logged a traceback"
    assert "Traceback" not in caplog.text


def test_an_unexpected_error_is_one_error_record_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise KeyError("bug")
    except KeyError as e:
        bug = GraphQLError("bug", original_error=e)
    client_error = GraphQLError("Cannot query field 'nope' on type 'Query'.")
    with caplog.at_level(logging.INFO, logger="saas.graphql"):
        log_errors([bug, client_error])
    levels = [(r.levelname, bool(r.exc_info)) for r in caplog.records]
    assert levels == [("ERROR", True), ("INFO", False)]
