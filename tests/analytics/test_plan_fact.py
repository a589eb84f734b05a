"""Targets and plan-fact in a non-UTC tenant (Europe/Berlin, UTC+1 in January).

Week of Monday 2026-01-12 in Berlin = [2026-01-11 23:00Z, 2026-01-18 23:00Z). Times just
inside it are Sunday in UTC (23:30Z on the 11th) and times just outside it are still Sunday
in UTC (23:30Z on the 18th), so a UTC week rule would get both wrong.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func

from saas.db import Database
from saas.planning import service as planning
from saas.settings import Settings
from tenants.principal import Principal, Role
from tests.analytics.history import History
from tests.analytics.test_funnel import LG, N, gid
from tests.factories import TenantFactory, TenantHandle
from workers.planfact import planfact_fanout, planfact_tenant
from workers.settings import WorkerSettings

WEEK = "2026-01-12"
START = datetime(2026, 1, 11, 23, 0, tzinfo=UTC)  # Monday 00:00 Berlin
END = datetime(2026, 1, 18, 23, 0, tzinfo=UTC)  # next Monday 00:00 Berlin
SEC = timedelta(seconds=1)

SET_TARGET = """
mutation($input: SetTargetInput!) { setTarget(input: $input) {
  target { id userId teamId periodKind periodStart metric value } errors { code field } } }"""
PLAN_FACT = """
query($start: Date!, $team: ID, $user: ID) {
  planFact(period: {kind: WEEK, start: $start}, teamId: $team, userId: $user) {
    period { start end startsAt endsAt timezone isCurrent } currency
    reps { subjectId name teamId metrics { metric target actual attainmentPercent gap projected } }
    teams { subjectId name metrics { metric target actual attainmentPercent gap projected } }
  }
}"""
HISTORY = """
query($user: ID, $team: ID) { planFactHistory(userId: $user, teamId: $team, limit: 100) {
  periodStart subjectKind subjectId metric target actual } }"""


class Org:
    t: TenantHandle
    h: History
    north: uuid.UUID
    south: uuid.UUID
    m_north: Principal
    m_south: Principal
    r1: Principal
    r2: Principal
    r3: Principal


async def target(caller: Any, user: Principal | None = None, team: uuid.UUID | None = None,
                 metric: str = "WON_AMOUNT", value: str = "0", start: str = WEEK) -> dict[str, Any]:
    data = await caller.ok(SET_TARGET, input={
        "period": {"kind": "WEEK", "start": start}, "metric": metric, "value": value,
        "userId": gid("User", user.user_id) if user else None,  # type: ignore[arg-type]
        "teamId": gid("Team", team) if team else None})
    result: dict[str, Any] = data["setTarget"]
    return result


@pytest.fixture
async def org(tenants: TenantFactory, db: Database, owner_conn: asyncpg.Connection) -> Org:
    o = Org()
    o.t = await tenants.create()
    await owner_conn.execute(
        "UPDATE tenants SET timezone = 'Europe/Berlin', base_currency = 'EUR' WHERE id = $1",
        o.t.id)
    o.north, o.south = await o.t.add_team("North"), await o.t.add_team("South")
    o.m_north = await o.t.add_user(Role.MANAGER, team_id=o.north, name="M North")
    o.m_south = await o.t.add_user(Role.MANAGER, team_id=o.south, name="M South")
    o.r1 = await o.t.add_user(Role.REP, team_id=o.north, name="R1")
    o.r2 = await o.t.add_user(Role.REP, team_id=o.north, name="R2")
    o.r3 = await o.t.add_user(Role.REP, team_id=o.south, name="R3")
    h = o.h = await History(db, o.t.id).load()
    created = datetime(2026, 1, 5, 10, tzinfo=UTC)  # the week before

    async def won(owner: Principal, amount: str, at: datetime, currency: str = "EUR",
                  reopen: datetime | None = None, created_at: datetime = created) -> uuid.UUID:
        path: list[tuple[Any, ...]] = [(LG, created_at), ("Closing", at)]
        if reopen:
            path.append((N, reopen))
        return await h.deal(f"w-{amount}", owner.user_id, amount, currency, path,
                            created_at=created_at)

    w1 = await won(o.r1, "1200", datetime(2026, 1, 11, 23, 30, tzinfo=UTC))  # Mon 00:30: in
    await won(o.r1, "700", datetime(2026, 1, 18, 23, 30, tzinfo=UTC))        # next Mon: out
    await won(o.r1, "300", END - SEC)                                         # Sun 23:59:59: in
    await won(o.r1, "900", START - SEC)                                       # previous week
    await won(o.r2, "400", datetime(2026, 1, 14, tzinfo=UTC), currency="USD")  # not base currency
    await won(o.r2, "250", datetime(2026, 1, 14, tzinfo=UTC))
    await won(o.r3, "100", datetime(2026, 1, 13, tzinfo=UTC),
              created_at=datetime(2026, 1, 12, 10, tzinfo=UTC))  # also a new deal this week
    await won(o.r3, "150", datetime(2026, 1, 13, tzinfo=UTC),
              reopen=datetime(2026, 1, 15, tzinfo=UTC))  # won then reopened: not won
    for at in (START, START - SEC, END - SEC, END):  # in, out, in, out
        await h.activity(w1, o.r1.user_id, at)  # type: ignore[arg-type]
    admin = o.t.admin_caller
    assert (await target(admin, o.r1, value="1000"))["errors"] == []
    assert (await target(admin, o.r1, metric="ACTIVITIES_DONE", value="3"))["errors"] == []
    assert (await target(admin, o.r2, value="500"))["errors"] == []
    assert (await target(admin, o.r3, metric="WON_COUNT", value="2"))["errors"] == []
    assert (await target(o.t.as_user(o.m_north), team=o.north, value="2000"))["errors"] == []
    return o


def metrics(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric"]: m for m in row["metrics"]}


def fact(m: dict[str, Any]) -> tuple[Any, ...]:
    att = m["attainmentPercent"]
    return (m["target"], m["actual"], None if att is None else round(att, 2), m["gap"])


async def test_plan_fact_week_in_tenant_time_zone(org: Org) -> None:
    pf = (await org.t.admin_caller.ok(PLAN_FACT, start=WEEK))["planFact"]
    assert pf["period"] == {"start": "2026-01-12", "end": "2026-01-19",
                            "startsAt": "2026-01-11T23:00:00+00:00",
                            "endsAt": "2026-01-18T23:00:00+00:00",
                            "timezone": "Europe/Berlin", "isCurrent": False}
    assert pf["currency"] == "EUR"
    reps = {r["name"]: metrics(r) for r in pf["reps"]}
    assert set(reps) == {"M North", "M South", "R1", "R2", "R3"}
    # R1 won 1200 (Mon 00:30 Berlin) + 300 (Sun 23:59:59) = 1500; 700 and 900 are outside.
    # 1500 / 1000 = 150 %, gap -500.
    assert fact(reps["R1"]["WON_AMOUNT"]) == ("1000.00", "1500.00", 150.0, "-500.00")
    assert reps["R1"]["WON_COUNT"]["actual"] == "2"
    # Activities at Mon 00:00:00 and Sun 23:59:59 count; one second earlier/later do not.
    assert fact(reps["R1"]["ACTIVITIES_DONE"]) == ("3.00", "2", 66.67, "1.00")
    # R2: 250 EUR counts, the 400 USD deal does not (won_amount is in the base currency),
    # but both are won deals: 250 / 500 = 50 %.
    assert fact(reps["R2"]["WON_AMOUNT"]) == ("500.00", "250.00", 50.0, "250.00")
    assert reps["R2"]["WON_COUNT"]["actual"] == "2"
    # R3: one won; the other was reopened before the week ended. 1 / 2 = 50 %.
    assert fact(reps["R3"]["WON_COUNT"]) == ("2.00", "1", 50.0, "1.00")
    assert reps["R3"]["NEW_DEALS"]["actual"] == "1"
    assert reps["R3"]["WON_AMOUNT"]["target"] is None
    assert reps["R3"]["WON_AMOUNT"]["attainmentPercent"] is None
    assert all(m["projected"] is None for r in reps.values() for m in r.values())  # past week
    teams = {t["name"]: metrics(t) for t in pf["teams"]}
    # North: explicit target 2000; actual R1 1500 + R2 250 = 1750 -> 87.5 %, gap 250.
    assert fact(teams["North"]["WON_AMOUNT"]) == ("2000.00", "1750.00", 87.5, "250.00")
    assert teams["North"]["WON_COUNT"]["actual"] == "4"
    # South: no team target, so its members' targets add up: won_count 2, actual 1.
    assert fact(teams["South"]["WON_COUNT"]) == ("2.00", "1", 50.0, "1.00")


async def test_rep_sees_own_row_and_team_total_manager_sees_team(org: Org) -> None:
    rep = (await org.t.as_user(org.r1).ok(PLAN_FACT, start=WEEK))["planFact"]
    assert [r["name"] for r in rep["reps"]] == ["R1"]
    assert [t["name"] for t in rep["teams"]] == ["North"]
    assert metrics(rep["teams"][0])["WON_AMOUNT"]["actual"] == "1750.00"  # whole team's total
    body = await org.t.as_user(org.r1).gql(PLAN_FACT, start=WEEK, user=gid("User", org.r2.user_id))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mgr = (await org.t.as_user(org.m_north).ok(PLAN_FACT, start=WEEK))["planFact"]
    assert sorted(r["name"] for r in mgr["reps"]) == ["M North", "R1", "R2"]
    assert [t["name"] for t in mgr["teams"]] == ["North"]
    body = await org.t.as_user(org.m_south).gql(PLAN_FACT, start=WEEK, team=gid("Team", org.north))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    one = (await org.t.admin_caller.ok(PLAN_FACT, start=WEEK,
                                       team=gid("Team", org.south)))["planFact"]
    assert sorted(r["name"] for r in one["reps"]) == ["M South", "R3"]
    assert [t["name"] for t in one["teams"]] == ["South"]


async def test_set_target_permissions_upsert_and_validation(org: Org) -> None:
    denied = await target(org.t.as_user(org.r1), org.r1, value="5")
    assert denied["errors"] == [{"code": "FORBIDDEN", "field": None}]
    other_team = await target(org.t.as_user(org.m_south), org.r1, value="5")
    assert other_team["errors"][0]["code"] == "FORBIDDEN"
    ok = await target(org.t.as_user(org.m_north), org.r1, value="1100")
    assert ok["errors"] == [] and ok["target"]["value"] == "1100.00"
    pf = (await org.t.admin_caller.ok(PLAN_FACT, start=WEEK,
                                      user=gid("User", org.r1.user_id)))["planFact"]
    assert metrics(pf["reps"][0])["WON_AMOUNT"]["target"] == "1100.00"  # replaced, not added
    tuesday = await target(org.t.admin_caller, org.r1, value="1", start="2026-01-13")
    assert tuesday["errors"] == [{"code": "VALIDATION_FAILED", "field": "period.start"}]
    fraction = await target(org.t.admin_caller, org.r1, metric="WON_COUNT", value="1.5")
    assert fraction["errors"] == [{"code": "VALIDATION_FAILED", "field": "value"}]


async def test_projection_for_the_current_week(org: Org, db: Database) -> None:
    async with db.unit_of_work(org.t.id) as uow:
        today = await planning.local_today(uow)
    week = planning.week_start(today)
    # An open deal of R2 in Negotiation (p .60), 1000 EUR, expected to close this week.
    now = datetime.now(UTC) - timedelta(minutes=1)
    await org.h.deal("open", org.r2.user_id, "1000", "EUR", [(N, now)], expected_close=today)
    pf = (await org.t.as_user(org.r2).ok(PLAN_FACT, start=week.isoformat()))["planFact"]
    assert pf["period"]["isCurrent"] is True
    m = metrics(pf["reps"][0])
    assert float(m["WON_AMOUNT"]["projected"]) == 600.0  # 0 won + 1000 x .60
    assert float(m["WON_COUNT"]["projected"]) == 0.6
    assert m["NEW_DEALS"]["projected"] is None


async def snapshot_rows(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[Any]:
    # The test owner may be a superuser (RLS bypassed), so filter on the tenant explicitly.
    return list(await owner_conn.fetch(
        "SELECT period_start, subject_kind, subject_id, metric, target, actual "
        "FROM plan_fact_snapshots WHERE tenant_id = $1 ORDER BY 1, 2, 3, 4", tenant_id))


async def test_weekly_job_twice_gives_one_snapshot_and_history(
    org: Org, db: Database, owner_conn: asyncpg.Connection
) -> None:
    ctx = {"db": db}
    assert await planfact_tenant(ctx, str(org.t.id), WEEK) == 7 * 4  # 5 users + 2 teams
    first = await snapshot_rows(owner_conn, org.t.id)
    assert await planfact_tenant(ctx, str(org.t.id), WEEK) == 7 * 4
    assert await snapshot_rows(owner_conn, org.t.id) == first
    assert len(first) == 28
    r1 = {r["metric"]: r for r in first if r["subject_id"] == org.r1.user_id}
    assert (r1["won_amount"]["target"], r1["won_amount"]["actual"]) == (1000, 1500)
    hist = (await org.t.as_user(org.r1).ok(HISTORY))["planFactHistory"]
    subjects = {(h["subjectKind"], h["subjectId"]) for h in hist}
    assert subjects == {("user", gid("User", org.r1.user_id)), ("team", gid("Team", org.north))}
    assert len(hist) == 8
    body = await org.t.as_user(org.r1).gql(HISTORY, user=gid("User", org.r3.user_id))
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    admin = (await org.t.admin_caller.ok(HISTORY, team=gid("Team", org.south)))["planFactHistory"]
    assert len(admin) == 3 * 4  # South, M South, R3


async def test_fanout_via_arq_burst_worker(
    org: Org, db: Database, settings: Settings, owner_conn: asyncpg.Connection
) -> None:
    queue = f"test-planfact-{uuid.uuid4().hex[:8]}"
    redis_settings = RedisSettings.from_dsn(settings.redis_url or "")
    pool: ArqRedis = await create_pool(
        redis_settings, job_serializer=WorkerSettings.job_serializer,
        job_deserializer=WorkerSettings.job_deserializer, default_queue_name=queue)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = db

    try:
        async with db.unit_of_work(org.t.id) as uow:
            today = await planning.local_today(uow)
        week = (planning.week_start(today) - timedelta(days=7)).isoformat()
        job_id = f"planfact:{org.t.id}:{week}"
        await pool.enqueue_job("planfact_fanout")
        worker = Worker(
            functions=[func(planfact_fanout), func(planfact_tenant)], redis_pool=pool,
            queue_name=queue, burst=True, on_startup=startup, poll_delay=0.05,
            job_serializer=WorkerSettings.job_serializer,
            job_deserializer=WorkerSettings.job_deserializer, max_jobs=20, handle_signals=False)
        await worker.main()
        assert worker.jobs_failed == 0
        # The same deterministic id cannot be enqueued again while its result is kept.
        assert await pool.enqueue_job("planfact_tenant", str(org.t.id), week,
                                      _job_id=job_id) is None
        rows = [r for r in await snapshot_rows(owner_conn, org.t.id)
                if r["period_start"] == date.fromisoformat(week)]
        assert len(rows) == 28

    finally:
        await pool.aclose()
