"""The seeded demo tenant: every first-start view has meaningful figures, from one seed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jwt

from saas.db import Database
from saas.demo.seed import DEMO_PASSWORD
from saas.planning.service import week_start
from saas.settings import Settings
from tests.demo.conftest import Demo, seed_tenant

LOGIN = ("mutation($t: String!, $e: String!, $p: String!) { login(input: {tenant: $t, "
         "email: $e, password: $p}) { token errors { code } } }")


async def _as(client: Any, demo: Demo, email: str) -> dict[str, str]:
    body = (await client.post("/graphql", json={"query": LOGIN, "variables": {
        "t": demo.slug, "e": email, "p": DEMO_PASSWORD}})).json()
    assert body["data"]["login"]["errors"] == [], body
    return {"Authorization": f"Bearer {body['data']['login']['token']}"}


async def _ok(client: Any, headers: dict[str, str], query: str, **variables: Any) -> Any:
    body = (await client.post("/graphql", json={"query": query, "variables": variables},
                              headers=headers)).json()
    assert "errors" not in body, body["errors"]
    return body["data"]


async def _segments(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    data = await _ok(client, headers, "{ segments { name pipeline { id stages { name kind } } } }")
    return {s["name"]: s["pipeline"] for s in data["segments"]}


async def test_demo_has_two_segments_teams_and_people(client: Any, demo: Demo) -> None:
    admin = await _as(client, demo, f"admin@{demo.slug}.example")
    segments = await _segments(client, admin)
    assert sorted(segments) == ["Default", "Renewals"]
    assert [s["name"] for s in segments["Renewals"]["stages"]] == [
        "Renewal due", "Contacted", "Quote sent", "Renewed", "Churned"]
    assert len(segments["Default"]["stages"]) == 8
    data = await _ok(client, admin, "{ teams { name } users { email role } }")
    assert sorted(t["name"] for t in data["teams"]) == ["Enterprise", "North", "South"]
    roles = [u["role"] for u in data["users"]]
    assert (roles.count("ADMIN"), roles.count("MANAGER"), roles.count("REP")) == (1, 3, 9)
    assert demo.summary.deals == 500 and demo.summary.events > 1500


async def test_board_is_full_of_cards_in_both_segments(client: Any, demo: Demo) -> None:
    admin = await _as(client, demo, f"admin@{demo.slug}.example")
    for name, pipeline in (await _segments(client, admin)).items():
        board = (await _ok(client, admin, """query($p: ID!) { board(pipelineId: $p) {
            columns { stage { name kind } dealCount deals { title amount owner { name }
            contact { name } } } } }""", p=pipeline["id"]))["board"]
        open_cols = [c for c in board["columns"] if c["stage"]["kind"] in ("open", "OPEN")]
        assert all(c["dealCount"] > 0 and c["deals"] for c in open_cols), (name, board)
        total = sum(c["dealCount"] for c in board["columns"])
        assert total == (400 if name == "Default" else 100)
        card = open_cols[0]["deals"][0]
        assert card["owner"]["name"] and card["contact"]["name"] and float(card["amount"]) > 0


async def test_analytics_stale_plan_fact_forecast_and_accuracy_are_not_empty(
        client: Any, demo: Demo) -> None:
    rep_headers = await _as(client, demo, f"admin@{demo.slug}.example")
    pipeline = (await _segments(client, rep_headers))["Default"]["id"]
    now = datetime.now(UTC)
    analytics = (await _ok(client, rep_headers, """query($p: ID!, $f: DateTime!, $t: DateTime!) {
        pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
          funnel { name count } conversion { name reached advanced }
          outcomes { won lost winRate lostReasons { reason count } }
          bottlenecks { name inflow outflow } } }""", p=pipeline,
        f=(now - timedelta(days=90)).isoformat(), t=now.isoformat()))["pipelineAnalytics"]
    assert sum(s["count"] for s in analytics["funnel"]) > 0
    assert any(c["advanced"] > 0 for c in analytics["conversion"])
    outcomes = analytics["outcomes"]
    assert outcomes["won"] > 0 and outcomes["lost"] > 0 and 0 < outcomes["winRate"] < 1
    assert outcomes["lostReasons"]
    assert any(b["inflow"] > 0 for b in analytics["bottlenecks"])

    stale = (await _ok(client, rep_headers, "{ staleDeals { ownerName deals { title daysOverdue } } }"
                       ))["staleDeals"]
    assert len(stale) >= 5 and all(o["deals"] for o in stale)
    assert all(d["daysOverdue"] > 0 for o in stale for d in o["deals"])

    plan = (await _ok(client, rep_headers, """query($s: Date!) { planFact(period: {kind: WEEK, start: $s}) {
        reps { name metrics { metric target actual } } teams { name metrics { metric target actual } } } }""",
        s=week_start(date.today()).isoformat()))["planFact"]
    assert len(plan["reps"]) == 12 and len(plan["teams"]) == 3
    assert all(m["target"] is not None for r in plan["reps"] for m in r["metrics"])
    assert sum(float(m["actual"]) for r in plan["reps"] for m in r["metrics"]) > 0
    history = (await _ok(client, rep_headers, """{ planFactHistory(metric: WON_AMOUNT, limit: 200) {
        periodStart subjectKind actual } }"""))["planFactHistory"]
    weeks = [week_start(date.today()) - timedelta(weeks=k) for k in range(1, 9)]
    assert sorted({h["periodStart"] for h in history}) == sorted(w.isoformat() for w in weeks)
    assert sum(h["subjectKind"] == "team" for h in history) == 3 * 8
    # Deals are in the tenant's base currency, so past weeks' won amounts count them.
    won = [h for h in history if h["subjectKind"] == "team" and float(h["actual"]) > 0]
    assert won, history

    forecasts = (await _ok(client, rep_headers, """query($p: ID!) { forecasts(pipelineId: $p) {
        status result } }""", p=pipeline))["forecasts"]
    assert [f["status"] for f in forecasts] == ["DONE"]
    assert forecasts[0]["result"]

    accuracy = await client.post("/graphql", headers=rep_headers, json={"query": """
        query($p: ID!, $a: DateTime!) { forecastAccuracy(pipelineId: $p, asOf: $a, horizon: 2) {
          horizon actualWonCount predictedWonCount } }""", "variables": {
        "p": pipeline, "a": (now - timedelta(days=75)).isoformat()}})
    acc = accuracy.json()
    assert "errors" not in acc, acc
    rows = acc["data"]["forecastAccuracy"]
    assert [r["horizon"] for r in rows] == [1, 2]
    assert sum(r["actualWonCount"] for r in rows) > 0 and sum(r["predictedWonCount"] for r in rows) > 0


async def test_seeding_is_deterministic_by_seed(db: Database, owner_conn: Any) -> None:
    now = datetime(2026, 11, 4, 10, 30, tzinfo=UTC)
    a = await seed_tenant(db, deals=60, seed_value=7, now=now)
    b = await seed_tenant(db, deals=60, seed_value=7, now=now)
    c = await seed_tenant(db, deals=60, seed_value=8, now=now)

    async def rows(t: Demo) -> list[Any]:
        return [tuple(r) for r in await owner_conn.fetch("""
            SELECT d.title, d.amount, s.name, d.version, d.stage_entered_at, d.labels,
                   (SELECT array_agg(e.kind || ':' || e.seq ORDER BY e.seq) FROM stage_events e
                    WHERE e.tenant_id = d.tenant_id AND e.deal_id = d.id)
            FROM deals d JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id
            WHERE d.tenant_id = $1 ORDER BY d.created_at, d.title""", t.tenant_id)]

    assert await rows(a) == await rows(b)
    assert await rows(a) != await rows(c)
    assert len(await rows(a)) == 60


def test_tenant_create_demo_seeds_a_new_tenant(settings: Any) -> None:
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ENVIRONMENT": "test"}
    out = subprocess.run([sys.executable, "-m", "saas.cli", "tenant", "create", "Acme Demo",
                          "--admin-email", f"boss@{slug}.example", "--slug", slug,
                          "--admin-password", "long-enough-pw-1", "--demo"],
                         # 2-3 s alone; after the rest of the suite has filled the session's
                         # database, one SELECT of the seeding has been seen to take ~3 min (a
                         # known problem, not yet explained): a generous bound, not a target.
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"slug {slug}" in out.stdout
    assert "500 deals" in out.stdout and "forecast done" in out.stdout


def test_the_dev_jwt_secret_is_long_enough_for_pyjwt() -> None:
    """PyJWT warns (an error under this suite's filterwarnings) about HS256 keys < 32 bytes."""
    secret = Settings(environment="dev").jwt_secret
    assert len(secret.encode()) >= 32
    token = jwt.encode({"sub": "x"}, secret, algorithm="HS256")
    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"sub": "x"}
