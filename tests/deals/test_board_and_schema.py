"""The board costs a fixed number of SQL statements; the committed SDL matches the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saas.db import Database
from saas.observability.statements import statements
from saas.settings import Settings
from schema.root import build_schema
from tests.deals.ops import BOARD, create_deal, default_pipeline
from tests.factories import TenantFactory

SDL = Path(__file__).resolve().parents[2] / "schema" / "schema.graphql"


async def _statements_for_board(db: Database, caller: Any, pipeline_id: str,
                                n: int) -> list[str]:
    # The caller's authorisation state is read once per AUTH_CACHE_TTL_SECONDS (one
    # statement, tenants/authcache.py), not per request: refresh it so the count is the board's.
    await caller.ok("query { me { tenantId } }")
    async with statements(db) as seen:
        data = await caller.ok(BOARD, p=pipeline_id, n=n)
    assert data["board"]["columns"]
    return seen


async def test_board_round_trips_do_not_grow_with_its_size(
    tenants: TenantFactory, app: Any
) -> None:
    db = app.state.services.db
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    contact = (await admin.ok('mutation { createContact(input: {name: "Ann"}) { contact { id } } }'))
    contact_id = contact["createContact"]["contact"]["id"]
    await create_deal(admin, pipeline["id"], "first", contactId=contact_id)
    small = await _statements_for_board(db, admin, pipeline["id"], 25)
    for i in range(40):
        await create_deal(admin, pipeline["id"], f"deal {i}", contactId=contact_id)
    large = await _statements_for_board(db, admin, pipeline["id"], 25)
    again = await _statements_for_board(db, admin, pipeline["id"], 25)

    # A miss: the version check, then the board's JSON built by one statement over
    # board_rows (which enters the tenant first; schema/compiled/). (Sorted: the driver's
    # query log may arrive in either order.)
    def shape(seen: list[str]) -> list[str]:
        return sorted("board statement" if "FROM board_rows(" in s else s for s in seen)

    miss = sorted(["SELECT enter_board_version($1, $2)", "board statement"])
    assert shape(small) == shape(large) == miss
    assert sorted(small) == sorted(large)  # the same statement text whatever the size
    # A hit: the version check alone.
    assert again == ["SELECT enter_board_version($1, $2)"]


def test_committed_sdl_matches_the_code() -> None:
    current = build_schema(Settings(environment="test")).as_str() + "\n"
    assert SDL.read_text() == current, (
        "schema/schema.graphql is stale: regenerate it with "
        "python -c \"from saas.settings import Settings; from schema.root import build_schema; "
        "open('schema/schema.graphql','w').write(build_schema(Settings()).as_str()+'\\n')\"")
