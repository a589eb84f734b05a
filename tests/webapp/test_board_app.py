"""The web app at /app in a real Chromium: log in, the board, drag to move, live updates
between two users, a conflict in a stale page, a restarted API, and the charts."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, WebSocketRoute

from saas.embedded import free_port
from saas.settings import Settings
from schema.nodes import decode_id, gid
from tests.demo.conftest import Demo
from tests.webapp.conftest import ApiServer, admin_email, board_state, open_app

MANAGER = "maria@demo.example"  # the first team's manager (saas/demo/seed.py)


async def stages(owner_conn: Any, demo: Demo, pipeline: str = "Default") -> list[Any]:
    return list(await owner_conn.fetch("""
        SELECT s.id, s.name, s.kind, (SELECT count(*) FROM deals d WHERE d.tenant_id = s.tenant_id
               AND d.stage_id = s.id) AS n
        FROM stages s JOIN pipelines p ON p.tenant_id = s.tenant_id AND p.id = s.pipeline_id
        WHERE s.tenant_id = $1 AND p.name = $2 ORDER BY s.position""", demo.tenant_id, pipeline))


async def deal_row(owner_conn: Any, demo: Demo, global_id: str) -> Any:
    return await owner_conn.fetchrow(
        "SELECT d.version, s.name AS stage FROM deals d JOIN stages s ON s.tenant_id = d.tenant_id "
        "AND s.id = d.stage_id WHERE d.tenant_id = $1 AND d.id = $2",
        demo.tenant_id, decode_id(global_id, "Deal", field="id"))


def card(page: Page, deal_id: str, stage: str | None = None) -> Any:
    column = f'.column[data-stage="{stage}"] ' if stage else ""
    return page.locator(f'{column}.card[data-deal-id="{deal_id}"]')


async def first_card(page: Page, stage: str) -> str:
    deal_id = await page.locator(f'.column[data-stage="{stage}"] .card').first.get_attribute("data-deal-id")
    assert deal_id
    return deal_id


async def drag(page: Page, deal_id: str, to_stage: str, *, expect: str | None = None) -> None:
    """Drag a card onto a column and wait for moveDeal's answer: no errors, or `expect`."""
    async with page.expect_response(lambda r: r.url.endswith("/graphql")
                                    and "moveDeal" in (r.request.post_data or "")) as response:
        await card(page, deal_id).drag_to(page.locator(f'.column[data-stage="{to_stage}"]'))
    body = await (await response.value).json()
    codes = [e["code"] for e in body["data"]["moveDeal"]["errors"]]
    assert codes == ([expect] if expect else []), body


async def test_login_shows_the_board_with_its_columns_cards_and_drawer(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any, output_dir: Path) -> None:
    page = await open_app(browser, api_server, demo, admin_email(demo))
    shown = await board_state(page)
    expected = await stages(owner_conn, demo)
    assert list(shown) == [s["name"] for s in expected]
    for s in expected:
        assert re.fullmatch(rf"{s['n']} · \$[\d,]+", shown[s["name"]]["count"]), shown[s["name"]]
        assert len(shown[s["name"]]["cards"]) == min(25, s["n"])
    assert sum(s["n"] for s in expected) == 400
    # A card says what it is: title, amount, owner and contact, temperature, days in stage.
    text = await page.locator(".card").first.inner_text()
    assert re.search(r"\$[\d,]+", text) and " d in stage" in text and " · " in text
    assert await page.locator(".card.stale .stale-mark").count() > 0
    await page.screenshot(path=output_dir / "board.png", full_page=True)

    await page.locator(".card").first.click()
    await page.wait_for_selector("#drawer:not([hidden]) .history li")
    drawer = await page.locator("#drawer").inner_text()
    assert "History" in drawer and "Next activity" in drawer and "created" in drawer
    await page.screenshot(path=output_dir / "drawer.png")
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()


async def test_dragging_a_card_moves_the_deal(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any, output_dir: Path) -> None:
    page = await open_app(browser, api_server, demo, admin_email(demo))
    deal_id = await first_card(page, "Needs analysis")
    before = await deal_row(owner_conn, demo, deal_id)
    await drag(page, deal_id, "Proposal")
    await card(page, deal_id, "Proposal").wait_for()
    after = await deal_row(owner_conn, demo, deal_id)
    assert (after["stage"], after["version"]) == ("Proposal", before["version"] + 1)
    assert await card(page, deal_id, "Needs analysis").count() == 0
    await page.screenshot(path=output_dir / "after-drag.png")
    await page.context.close()


async def test_a_move_by_one_user_appears_for_another_within_a_second(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any, output_dir: Path) -> None:
    admin = await open_app(browser, api_server, demo, admin_email(demo))
    manager = await open_app(browser, api_server, demo, MANAGER)
    reasons: list[str] = []

    async def lost_reason(dialog: Any) -> None:
        reasons.append(dialog.message)
        await dialog.accept("competitor")

    admin.on("dialog", lost_reason)
    delays = []
    for from_stage, to_stage in (("Lead generation", "Lead qualification"),
                                 ("Proposal", "Negotiation"), ("Negotiation", "Lost")):
        deal_id = await first_card(admin, from_stage)
        await card(manager, deal_id, from_stage).wait_for()
        await drag(admin, deal_id, to_stage)
        moved = time.monotonic()
        await card(manager, deal_id, to_stage).wait_for(timeout=5_000)
        delays.append(time.monotonic() - moved)
        assert await card(manager, deal_id, from_stage).count() == 0
        assert (await deal_row(owner_conn, demo, deal_id))["stage"] == to_stage
    (output_dir / "live-delays.json").write_text(json.dumps({"seconds": delays}))
    assert max(delays) < 1.0, delays
    assert len(reasons) == 1 and reasons[0].startswith("Why was")
    lost = await owner_conn.fetchval("SELECT lost_reason FROM deals WHERE tenant_id = $1 AND id = $2",
                                     demo.tenant_id, decode_id(deal_id, "Deal", field="id"))
    assert lost == "competitor"
    # Both pages agree on every column, counts included.
    assert await board_state(admin) == await board_state(manager)
    await manager.screenshot(path=output_dir / "second-user.png")
    await admin.context.close()
    await manager.context.close()


async def test_a_conflicting_move_in_a_stale_page_shows_the_conflict(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any, output_dir: Path) -> None:
    stale = await open_app(browser, api_server, demo, admin_email(demo))
    # From here on this page hears nothing from the server's websocket: it goes stale.
    deaf = asyncio.Event()

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda m: server.send(m))
        server.on_message(lambda m: None if deaf.is_set() else ws.send(m))

    await stale.route_web_socket(re.compile(r"/graphql$"), route)
    await stale.reload()
    await stale.wait_for_selector("body[data-ready=true]")
    await stale.wait_for_selector("#live.connected")
    deaf.set()
    other = await open_app(browser, api_server, demo, admin_email(demo))
    deal_id = await first_card(other, "Lead qualification")
    await drag(other, deal_id, "Needs analysis")
    moved = await deal_row(owner_conn, demo, deal_id)
    assert moved["stage"] == "Needs analysis"

    await card(stale, deal_id, "Lead qualification").wait_for()  # still where it was
    await drag(stale, deal_id, "Proposal", expect="VERSION_CONFLICT")
    notice = stale.locator("#notice.conflict")
    await notice.wait_for()
    assert "changed by someone else" in await notice.inner_text()
    await card(stale, deal_id, "Needs analysis").wait_for()  # the card was reloaded
    assert await deal_row(owner_conn, demo, deal_id) == moved  # the stale move wrote nothing
    await stale.screenshot(path=output_dir / "conflict.png")
    await stale.context.close()
    await other.context.close()


async def _move_elsewhere(client: httpx.AsyncClient, owner_conn: Any, demo: Demo, deal_id: str,
                         to_stage: str) -> None:
    """moveDeal through the in-process API (same database and Redis as the API process)."""
    token = (await client.post("/graphql", json={"query": """mutation($t: String!, $e: String!) {
        login(input: {tenant: $t, email: $e, password: "demo-password"}) { token } }""",
        "variables": {"t": demo.slug, "e": admin_email(demo)}})).json()["data"]["login"]["token"]
    row = await deal_row(owner_conn, demo, deal_id)
    stage_id = await owner_conn.fetchval(
        "SELECT s.id FROM stages s JOIN pipelines p ON p.tenant_id = s.tenant_id AND p.id = s.pipeline_id "
        "WHERE s.tenant_id = $1 AND s.name = $2 AND p.name = 'Default'", demo.tenant_id, to_stage)
    body = (await client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": "mutation($i: MoveDealInput!) { moveDeal(input: $i) { errors { code } } }",
        "variables": {"i": {"dealId": deal_id, "toStageId": gid("Stage", stage_id),
                            "expectedVersion": row["version"]}}})).json()
    assert body["data"]["moveDeal"]["errors"] == [], body


async def test_the_page_reconnects_to_a_restarted_api_and_shows_the_moves_it_missed(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any, client: httpx.AsyncClient,
        output_dir: Path) -> None:
    page = await open_app(browser, api_server, demo, admin_email(demo))
    await page.evaluate("window.__sameDocument = true")
    seen = await first_card(page, "Needs analysis")
    await _move_elsewhere(client, owner_conn, demo, seen, "Proposal")
    await card(page, seen, "Proposal").wait_for()  # live: the page now holds a cursor
    missed = {await first_card(page, "Lead generation"): "Needs analysis",
              await first_card(page, "Negotiation"): "Closing"}
    api_server.kill()
    await page.wait_for_selector("#live:not(.connected)")
    for deal_id, to_stage in missed.items():
        await _move_elsewhere(client, owner_conn, demo, deal_id, to_stage)
    api_server.start()
    for deal_id, to_stage in missed.items():
        await card(page, deal_id, to_stage).wait_for(timeout=15_000)
    assert await page.evaluate("window.__sameDocument") is True  # no page reload
    await page.wait_for_selector("#live.connected")
    await page.screenshot(path=output_dir / "after-reconnect.png")
    await page.context.close()


async def test_funnel_forecast_segments_and_plan_fact_views(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any,
        output_dir: Path) -> None:
    page = await open_app(browser, api_server, demo, admin_email(demo))
    await page.click("nav button[data-view=funnel]")
    await page.wait_for_selector("#funnel-chart[data-ready=true]")
    await page.locator("#view-funnel").screenshot(path=output_dir / "funnel.png")
    await page.click("nav button[data-view=forecast]")
    await page.wait_for_selector("#forecast-chart[data-ready=true]")
    assert "open deals" in await page.locator("#forecast-note").inner_text()
    await page.locator("#view-forecast").screenshot(path=output_dir / "forecast.png")
    await page.click("nav button[data-view=board]")
    await page.select_option("#segment", label="Renewals")
    await page.locator('.column[data-stage="Renewal due"]').wait_for()
    renewals = await board_state(page)
    assert list(renewals) == [s["name"] for s in await stages(owner_conn, demo, "Renewals")]
    assert sum(int(c["count"].split(" ")[0]) for c in renewals.values()) == 100
    await page.screenshot(path=output_dir / "renewals-board.png")
    await page.click("nav button[data-view=planfact]")
    rows = page.locator(".planfact tbody tr")
    await rows.first.wait_for()
    assert await rows.count() == 12
    assert "%" in await page.locator(".planfact").inner_text()
    await page.screenshot(path=output_dir / "planfact.png")
    assert page.errors == []  # type: ignore[attr-defined]
    await page.context.close()


async def test_graphiql_works_without_the_internet(
        browser: Browser, api_server: ApiServer, output_dir: Path) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    outside: list[str] = []

    async def only_local(route: Any) -> None:
        if route.request.url.startswith(api_server.base) or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_local)
    await page.goto(f"{api_server.base}/graphql")
    await page.wait_for_selector(".graphiql-container .graphiql-query-editor", timeout=20_000)
    await page.screenshot(path=output_dir / "graphiql.png")
    assert outside == []
    await context.close()


async def test_the_app_on_another_origin_calls_the_api_through_cors(
        browser: Browser, api_server: ApiServer, demo: Demo, settings: Settings,
        output_dir: Path) -> None:
    """The page from http://localhost:P, the API at http://127.0.0.1:Q (`/app/?api=`): allowed
    by ALLOWED_ORIGINS, the board loads and goes live; without it the browser refuses."""
    port = free_port()
    page_origin = f"http://localhost:{port}"
    api = ApiServer(settings.model_copy(update={"allowed_origins": [page_origin]}), port)
    api.start()
    try:
        page = await open_app(browser, api, demo, admin_email(demo), origin=page_origin,
                              query=f"?api={api.base}")
        assert await page.evaluate("location.origin") == page_origin
        assert len((await board_state(page))["Lead generation"]["cards"]) > 0
        await page.screenshot(path=output_dir / "cross-origin.png")
        await page.context.close()

        # The session-wide API allows no other origin: the same page cannot log in there.
        context = await browser.new_context()
        refused = await context.new_page()
        await refused.goto(f"{page_origin}/app/?api={api_server.base}")
        await refused.fill("input[name=tenant]", demo.slug)
        await refused.fill("input[name=email]", admin_email(demo))
        await refused.fill("input[name=password]", "demo-password")
        await refused.click("button[type=submit]")
        error = refused.locator("#login-error")
        await error.filter(has_text="fetch").wait_for()
        assert await refused.locator("body[data-ready=true]").count() == 0
        await context.close()
    finally:
        api.stop()


async def test_a_move_between_loading_the_board_and_subscribing_is_not_missed(
        browser: Browser, api_server: ApiServer, demo: Demo, owner_conn: Any,
        client: httpx.AsyncClient) -> None:
    """The page's subscribe message is held back until the board has loaded and a deal has
    moved; the subscription starts after the cursor read before the board, so the server
    replays that move and the page shows it."""
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    page = await context.new_page()
    held: list[str] = []
    release = asyncio.Event()

    async def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda m: ws.send(m))

        def from_page(message: str | bytes) -> None:
            if isinstance(message, str) and '"subscribe"' in message and not release.is_set():
                held.append(message)
            else:
                server.send(message)

        ws.on_message(from_page)

        async def flush() -> None:
            await release.wait()
            for message in held:
                server.send(message)

        asyncio.get_running_loop().create_task(flush())

    await page.route_web_socket(re.compile(r"/graphql$"), route)
    await page.goto(f"{api_server.base}/app/")
    await page.fill("input[name=tenant]", demo.slug)
    await page.fill("input[name=email]", admin_email(demo))
    await page.fill("input[name=password]", "demo-password")
    await page.click("button[type=submit]")
    await page.wait_for_selector("body[data-ready=true]")
    # The client sends `subscribe` once the socket's connection_ack arrives, which may come
    # after the board has rendered: wait for it rather than race it.
    for _ in range(200):
        if held:
            break
        await asyncio.sleep(0.05)
    assert len(held) == 1 and '"after":"' in held[0]  # subscribed with a cursor
    deal_id = await first_card(page, "Lead qualification")
    await _move_elsewhere(client, owner_conn, demo, deal_id, "Needs analysis")
    release.set()
    await card(page, deal_id, "Needs analysis").wait_for(timeout=10_000)
    await context.close()
