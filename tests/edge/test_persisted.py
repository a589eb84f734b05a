"""Persisted operations: Apollo Client's persisted-queries link round trip against a running
server, the protocol's failures, and trusted documents refusing unregistered documents."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, print_ast

from saas.app import create_app
from saas.settings import Settings
from tests.factories import TenantFactory
from tests.live.support import ApiServer

NODE_DIR = Path(__file__).parent / "node"
ME = "query Me { me { tenantId } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_apollo_client_s_persisted_queries_link_round_trip(
    edge_server: ApiServer, tenants: TenantFactory, event_loop_tenant: Any,
) -> None:
    tenant, token = event_loop_tenant
    node = shutil.which("node")
    assert node is not None and (NODE_DIR / "node_modules" / "@apollo" / "client").is_dir(), \
        "run scripts/bootstrap (node packages of tests/edge/node)"
    query = f"query Me_{uuid.uuid4().hex} {{ me {{ tenantId }} }}"  # never persisted before
    out = subprocess.run([node, str(NODE_DIR / "apq.mjs"), f"{edge_server.http}/graphql", token,
                          query],
                         capture_output=True, text=True, timeout=120, check=True)
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["me"]["tenantId"] for r in run["results"]] == [str(tenant), str(tenant)]
    sent = run["sent"]
    # First run: the hash alone (unknown), then the document with its hash; second run
    # (a new client, another "page load"): the hash alone, found.
    assert ["query" in body for body in sent] == [False, True, False], sent
    digests = {body["extensions"]["persistedQuery"]["sha256Hash"] for body in sent}
    assert digests == {sha(sent[1]["query"])}


@pytest.fixture
async def event_loop_tenant(tenants: TenantFactory) -> tuple[Any, str]:
    t = await tenants.create()
    return t.id, t.admin_caller.headers["Authorization"].removeprefix("Bearer ")


async def test_the_protocol_s_failures(tenants: TenantFactory, client: httpx.AsyncClient) -> None:
    t = await tenants.create()
    headers = t.admin_caller.headers
    unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
    missing = await client.post("/graphql", json=unknown, headers=headers)
    assert missing.status_code == 200
    assert missing.json()["errors"][0] == {"message": "PersistedQueryNotFound", "extensions": {
        "code": "PERSISTED_QUERY_NOT_FOUND"}}
    wrong = await client.post("/graphql", headers=headers, json={"query": ME, "extensions": {
        "persistedQuery": {"version": 1, "sha256Hash": "1" * 64}}})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    bad = await client.post("/graphql", headers=headers, json={"query": ME, "extensions": {
        "persistedQuery": {"version": 2, "sha256Hash": sha(ME)}}})
    assert bad.status_code == 400
    invalid = "query Nope { nope }"
    refused = await client.post("/graphql", headers=headers, json={"query": invalid, "extensions": {
        "persistedQuery": {"version": 1, "sha256Hash": sha(invalid)}}})
    assert refused.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    # An invalid document is never kept: its hash alone is still unknown.
    again = await client.post("/graphql", headers=headers, json={"extensions": {
        "persistedQuery": {"version": 1, "sha256Hash": sha(invalid)}}})
    assert again.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.fixture
async def trusted_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"trusted_documents": True,
                                                 "db_pool_size": 2, "db_max_overflow": 0}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            yield client


async def test_trusted_documents_run_only_registered_operations_for_first_party_apps(
    tenants: TenantFactory, trusted_client: httpx.AsyncClient, tmp_path: Path,
    settings: Settings,
) -> None:
    t = await tenants.create()
    user = t.admin_caller.headers
    partner = t.key_caller(await t.api_key("read")).headers
    registered = "query Tenant { me { tenantId } }"
    (tmp_path / "app.graphql").write_text(registered + "\nquery Other { segments { id } }\n")
    cli = subprocess.run([sys.executable, "-m", "saas.cli", "documents", "register",
                          str(tmp_path / "app.graphql")], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "REDIS_URL": settings.redis_url or ""})
    assert cli.returncode == 0, cli.stderr
    assert [line.split()[1] for line in cli.stdout.splitlines()] == ["Tenant", "Other"]
    ok = await trusted_client.post("/graphql", json={"query": registered}, headers=user)
    assert "data" in ok.json(), ok.text
    assert ok.json()["data"] == {"me": {"tenantId": str(t.id)}}
    by_hash = await trusted_client.post("/graphql", headers=user, json={"extensions": {
        "persistedQuery": {"version": 1, "sha256Hash": sha(print_ast(parse(registered)))}}})
    assert by_hash.json()["data"] == {"me": {"tenantId": str(t.id)}}
    unregistered = "query Mine { me { tenantId } segments { id } }"
    refused = await trusted_client.post("/graphql", json={"query": unregistered}, headers=user)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "TRUSTED_DOCUMENT_REQUIRED"
    assert "data" not in refused.json()
    partner_answer = await trusted_client.post("/graphql", json={"query": unregistered},
                                               headers=partner)
    assert partner_answer.json()["data"]["me"]["tenantId"] == str(t.id)
