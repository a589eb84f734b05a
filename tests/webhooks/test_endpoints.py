"""Managing endpoints: the secret shown once, rotation with both secrets signing, pause and
resume catching up, redelivery with the same webhook-id, typed failures writing nothing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from saas.webhooks.runner import Runner
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory, snapshot
from tests.webhooks.support import (
    CREATE,
    DELIVERIES,
    ENDPOINTS,
    Receiver,
    create_endpoint,
    verify,
    wait_for,
)

UPDATE = """mutation($id: ID!, $types: [String!], $url: String, $d: String) {
  updateWebhookEndpoint(input: {id: $id, eventTypes: $types, url: $url, description: $d}) {
    endpoint { id eventTypes url description } errors { code field message } } }"""
PAUSE = """mutation($id: ID!) { pauseWebhookEndpoint(input: {id: $id}) {
  endpoint { status } errors { code field message } } }"""
RESUME = """mutation($id: ID!) { resumeWebhookEndpoint(input: {id: $id}) {
  endpoint { status } errors { code field message } } }"""
ROTATE = """mutation($id: ID!, $g: Int!) {
  rotateWebhookSecret(input: {id: $id, gracePeriodSeconds: $g}) {
    endpoint { previousSecretExpiresAt } secret errors { code field message } } }"""
DELETE = """mutation($id: ID!) { deleteWebhookEndpoint(input: {id: $id}) {
  deletedId errors { code field message } } }"""
REDELIVER = """mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) {
  count errors { code field message } } }"""
REDELIVER_RANGE = """mutation($e: ID!, $a: Int!, $b: Int!) {
  redeliverWebhooks(input: {endpointId: $e, fromSeq: $a, toSeq: $b}) {
    count errors { code field message } } }"""


async def test_create_shows_the_secret_once_and_lists_without_it(
    hook_tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await hook_tenants.create()
    endpoint, secret = await create_endpoint(t.admin_caller, "http://127.0.0.1:9/x",
                                             ["deal.*", "contact.created"], d="CRM sync")
    assert secret.startswith("whsec_") and len(secret) > 40
    assert endpoint["status"] == "ACTIVE"
    assert endpoint["eventTypes"] == ["contact.created", "deal.*"]
    listed = (await t.admin_caller.ok(ENDPOINTS))["webhookEndpoints"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert listed[0]["description"] == "CRM sync"
    body = await t.admin_caller.gql("query { webhookEndpoints { secret } }")
    assert "Cannot query field 'secret'" in body["errors"][0]["message"]
    actions = await owner_conn.fetch(
        "SELECT action, details FROM audit_events WHERE tenant_id = $1 "
        "AND action LIKE 'webhook.%'", t.id)
    assert [a["action"] for a in actions] == ["webhook.created"]
    assert secret not in str(actions[0]["details"])


@pytest.mark.parametrize(("variables", "code", "field"), [
    ({"types": ["deal.exploded"]}, "VALIDATION_FAILED", "eventTypes"),
    ({"types": []}, "VALIDATION_FAILED", "eventTypes"),
    ({"pipelines": ["UGlwZWxpbmU6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"]},
     "NOT_FOUND", "pipelineIds"),
    ({"d": "x" * 501}, "VALIDATION_FAILED", "description"),
    ({"url": "x" * 2001}, "VALIDATION_FAILED", "url"),
])
async def test_bad_input_is_a_typed_error_and_writes_nothing(
    hook_tenants: TenantFactory, owner_conn: asyncpg.Connection, variables: dict[str, object],
    code: str, field: str,
) -> None:
    t = await hook_tenants.create()
    before = await snapshot(owner_conn, t.id)
    args = {"url": "http://127.0.0.1:9/x", "types": ["*"], **variables}
    result = (await t.admin_caller.ok(CREATE, **args))["createWebhookEndpoint"]
    assert result["endpoint"] is None and result["secret"] is None
    assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)]
    assert await snapshot(owner_conn, t.id) == before


async def test_a_tenant_has_at_most_the_configured_number_of_endpoints(
    hook_tenants: TenantFactory,
) -> None:
    t = await hook_tenants.create()
    limit = hook_tenants.settings.webhook_max_endpoints
    for _ in range(limit):
        await create_endpoint(t.admin_caller, "http://127.0.0.1:9/x")
    result = (await t.admin_caller.ok(CREATE, url="http://127.0.0.1:9/x", types=["*"])
              )["createWebhookEndpoint"]
    assert result["errors"][0]["code"] == "LIMIT_EXCEEDED"


async def test_update_pause_resume_delete(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    endpoint, secret = await create_endpoint(admin, "http://127.0.0.1:9/nowhere",
                                             ["contact.created"])
    updated = (await admin.ok(UPDATE, id=endpoint["id"], types=["deal.created"],
                              url=receiver.url, d="now real"))["updateWebhookEndpoint"]
    assert updated["errors"] == []
    assert updated["endpoint"]["eventTypes"] == ["deal.created"]
    assert updated["endpoint"]["url"] == receiver.url
    paused = (await admin.ok(PAUSE, id=endpoint["id"]))["pauseWebhookEndpoint"]
    assert paused["endpoint"] == {"status": "PAUSED"}
    again = (await admin.ok(PAUSE, id=endpoint["id"]))["pauseWebhookEndpoint"]
    assert again["errors"][0]["code"] == "CONFLICT"
    pipeline = await default_pipeline(admin)
    for i in range(3):
        await create_deal(admin, pipeline["id"], f"while paused {i}")
    await asyncio.sleep(1.0)
    assert receiver.requests == 0
    assert (await admin.ok(RESUME, id=endpoint["id"]))["resumeWebhookEndpoint"]["endpoint"] \
        == {"status": "ACTIVE"}
    await wait_for(lambda: len(receiver.ids()) == 3, 20, "the events made while paused")
    assert sorted(verify(secret, r)["data"]["deal"]["title"] for r in receiver.snapshot()) \
        == [f"while paused {i}" for i in range(3)]
    deleted = (await admin.ok(DELETE, id=endpoint["id"]))["deleteWebhookEndpoint"]
    assert deleted == {"deletedId": endpoint["id"], "errors": []}
    assert (await admin.ok(ENDPOINTS))["webhookEndpoints"] == []
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE tenant_id = $1", t.id) == 0
    gone = (await admin.ok(DELETE, id=endpoint["id"]))["deleteWebhookEndpoint"]
    assert gone["errors"][0]["code"] == "NOT_FOUND"
    actions = [r["action"] for r in await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND action LIKE 'webhook.%' "
        "ORDER BY occurred_at", t.id)]
    assert actions == ["webhook.created", "webhook.updated", "webhook.paused",
                       "webhook.resumed", "webhook.deleted"]


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    endpoint, old = await create_endpoint(admin, receiver.url, ["deal.created"])
    rotated = (await admin.ok(ROTATE, id=endpoint["id"], g=3600))["rotateWebhookSecret"]
    new = rotated["secret"]
    assert new != old and rotated["endpoint"]["previousSecretExpiresAt"] is not None
    pipeline = await default_pipeline(admin)
    await create_deal(admin, pipeline["id"], "during grace")
    await wait_for(lambda: len(receiver.ids()) == 1, 20, "a delivery")
    during = receiver.snapshot()[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, during) == verify(new, during)
    ended = (await admin.ok(ROTATE, id=endpoint["id"], g=0))["rotateWebhookSecret"]
    newest = ended["secret"]
    assert ended["endpoint"]["previousSecretExpiresAt"] is None
    await create_deal(admin, pipeline["id"], "after")
    await wait_for(lambda: len(receiver.ids()) == 2, 20, "a second delivery")
    after = next(r for r in receiver.snapshot() if r.id != during.id)
    assert verify(newest, after)["data"]["deal"]["title"] == "after"
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(stale).verify(after.body, after.headers)
    too_long = (await admin.ok(ROTATE, id=endpoint["id"], g=10**9))["rotateWebhookSecret"]
    assert too_long["errors"][0]["field"] == "gracePeriodSeconds"


async def test_redelivery_sends_again_with_the_same_webhook_id(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    endpoint, _ = await create_endpoint(admin, receiver.url, ["deal.created"])
    pipeline = await default_pipeline(admin)
    for i in range(3):
        await create_deal(admin, pipeline["id"], f"d{i}")
    await wait_for(lambda: len(receiver.ids()) == 3, 20, "three deliveries")
    await asyncio.sleep(0.3)
    page = (await admin.ok(DELIVERIES, e=endpoint["id"], first=2))["webhookDeliveries"]
    assert page["hasMore"] is True and len(page["deliveries"]) == 2
    older = (await admin.ok(DELIVERIES, e=endpoint["id"], first=2, before=page["endCursor"])
             )["webhookDeliveries"]
    assert len(older["deliveries"]) == 1 and older["hasMore"] is False
    newest = page["deliveries"][0]
    one = (await admin.ok(REDELIVER, id=newest["id"]))["redeliverWebhook"]
    assert one == {"count": 1, "errors": []}
    await wait_for(lambda: len(receiver.snapshot()) == 4, 20, "the redelivery")
    assert receiver.snapshot()[-1].id == newest["webhookId"]
    seqs = sorted(d["seq"] for d in page["deliveries"] + older["deliveries"])
    many = (await admin.ok(REDELIVER_RANGE, e=endpoint["id"], a=seqs[0], b=seqs[-1])
            )["redeliverWebhooks"]
    assert many == {"count": 3, "errors": []}
    await wait_for(lambda: len(receiver.snapshot()) == 7, 20, "the range")
    assert {r.id for r in receiver.snapshot()[4:]} == receiver.ids()
    bad = (await admin.ok(REDELIVER_RANGE, e=endpoint["id"], a=5, b=1))["redeliverWebhooks"]
    assert bad["errors"][0]["code"] == "VALIDATION_FAILED"
