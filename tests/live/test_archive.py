"""Archive, restore and permanent delete as a live board sees them: real API processes, real
Redis and PostgreSQL, real websockets (the mutation on one process, the board on the other)."""

from __future__ import annotations

from saas.settings import Settings
from tenants.credentials import issue_jwt
from tests.deals.ops import BOARD, create_deal, default_pipeline
from tests.factories import TenantFactory
from tests.live.support import ApiServer, WsClient

EVENTS = """
subscription($p: ID!, $after: String) { boardEvents(pipelineId: $p, after: $after) {
  __typename
  ... on DealEvent { seq dealId toStageId deal { id version } }
  ... on DealDeleted { permanent } } }"""
LOG = "query { stageEvents(first: 1000) { events { seq } } }"


async def test_a_live_board_sees_archive_restore_and_delete(
    live_tenants: TenantFactory, settings: Settings, servers: tuple[ApiServer, ApiServer],
) -> None:
    _, b = servers
    t = await live_tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "Duplicate")
    start = (await admin.ok(LOG))["stageEvents"]["events"][-1]["seq"]
    client = await WsClient.open(b.ws, issue_jwt(settings, t.admin))
    try:
        sid = await client.subscribe(EVENTS, p=pipeline["id"], after=str(start))
        archived = await admin.ok('mutation($id: ID!) { archiveDeal(input: {dealId: $id}) '
                                  '{ errors { code } } }', id=deal["id"])
        assert archived["archiveDeal"]["errors"] == []
        (gone,) = await client.events(sid, 1)
        assert (gone["__typename"], gone["dealId"], gone["permanent"]) == (
            "DealDeleted", deal["id"], False)
        assert gone["deal"] == {"id": deal["id"], "version": 2}
        board = (await admin.ok(BOARD, p=pipeline["id"], n=25))["board"]
        assert all(c["deals"] == [] for c in board["columns"])

        restored = await admin.ok('mutation($id: ID!) { restoreDeal(input: {dealId: $id}) '
                                  '{ errors { code } } }', id=deal["id"])
        assert restored["restoreDeal"]["errors"] == []
        (back,) = await client.events(sid, 1)
        assert (back["__typename"], back["dealId"], back["deal"]["version"]) == (
            "DealRestored", deal["id"], 3)
        assert back["toStageId"] == pipeline["stages"][0]["id"]

        deleted = await admin.ok('mutation($id: ID!) { deleteDeal(input: {dealId: $id}) '
                                 '{ errors { code } } }', id=deal["id"])
        assert deleted["deleteDeal"]["errors"] == []
        (purged,) = await client.events(sid, 1)
        assert (purged["__typename"], purged["dealId"], purged["permanent"], purged["deal"]) == (
            "DealDeleted", deal["id"], True, None)
        assert purged["seq"] > back["seq"] > gone["seq"] > start
        assert await client.quiet(sid) == []
    finally:
        await client.close()

    # A board reconnecting from the start cursor replays what is left: the permanent
    # deletion took the deal's earlier events with it, the tombstone stays.
    client = await WsClient.open(b.ws, issue_jwt(settings, t.admin))
    try:
        sid = await client.subscribe(EVENTS, p=pipeline["id"], after="0")
        (only,) = await client.events(sid, 1)
        assert (only["__typename"], only["permanent"]) == ("DealDeleted", True)
        assert await client.quiet(sid) == []
    finally:
        await client.close()
