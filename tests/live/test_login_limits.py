"""Login throttling across two real API processes sharing Redis, aliases included; the same
answer for unknown accounts, wrong passwords and deactivated users; and password hashing
that does not block other requests during a login flood."""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from strawberry.relay import GlobalID

from saas.settings import Settings
from tenants.credentials import issue_jwt
from tenants.principal import Role
from tests.conftest import TEST_SECRET
from tests.factories import TenantFactory
from tests.live.support import ApiServer, RedisProcess

PER_ACCOUNT, PER_ADDRESS = 5, 20
LOGIN = """mutation($t: String!, $e: String!, $p: String!) {
  login(input: {tenant: $t, email: $e, password: $p}) {
    token errors { code message ... on RetryLaterError { retryAfterSeconds } } } }"""


def _env(owner_url: str, redis: RedisProcess, **extra: str) -> dict[str, str]:
    # With the default GRAPHQL_ANONYMOUS_MAX_TOKENS (200) the edge refuses a document of many
    # aliased logins before it runs; these servers raise it so the tests show that the
    # throttle itself counts every alias (defence in depth, whatever that limit is).
    return {"ENVIRONMENT": "test", "GRAPHQL_ANONYMOUS_MAX_TOKENS": "5000", "DATABASE_URL": owner_url, "REDIS_URL": redis.url,
            "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET,
            "LOG_LEVEL": "WARNING", "LIVE_CHANNEL_PREFIX": f"throttle-{uuid.uuid4().hex[:8]}",
            **extra}


@pytest.fixture(scope="module")
def limited(owner_url: str, live_redis: RedisProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    logs = tmp_path_factory.mktemp("limited")
    env = _env(owner_url, live_redis, LOGIN_MAX_PER_ACCOUNT=str(PER_ACCOUNT),
               LOGIN_MAX_PER_ADDRESS=str(PER_ADDRESS), LOGIN_WINDOW_SECONDS="120")
    pair = (ApiServer(env, logs / "a.log"), ApiServer(env, logs / "b.log"))
    try:
        for s in pair:
            s.start()
        for s in pair:
            s.wait_ready()
        yield pair
    finally:
        for s in pair:
            s.stop()


async def attempt(server: ApiServer, tenant: str, email: str, password: str,
                  aliases: int = 1) -> list[dict[str, Any]]:
    if aliases == 1:
        query = LOGIN
    else:
        fields = " ".join(f"a{i}: login(input: {{tenant: $t, email: $e, password: $p}}) "
                          "{ token errors { code message ... on RetryLaterError "
                          "{ retryAfterSeconds } } }" for i in range(aliases))
        query = f"mutation($t: String!, $e: String!, $p: String!) {{ {fields} }}"
    async with httpx.AsyncClient(base_url=server.http, timeout=120) as c:
        body = (await c.post("/graphql", json={"query": query, "variables": {
            "t": tenant, "e": email, "p": password}})).json()
    assert "errors" not in body, body
    return list(body["data"].values())


def outcome(result: dict[str, Any]) -> str:
    if result["token"]:
        return "ok"
    return str(result["errors"][0]["code"])


async def test_limits_per_account_and_per_address_hold_across_processes_and_aliases(
    live_tenants: TenantFactory, limited: tuple[ApiServer, ApiServer],
) -> None:
    a, b = limited
    t = await live_tenants.create()
    # Per account: wrong passwords on both processes count together.
    results = []
    for i in range(PER_ACCOUNT):
        results += await attempt((a, b)[i % 2], t.slug, t.admin_email, f"wrong-password-{i}")
    blocked = await attempt(a, t.slug, t.admin_email, t.admin_password)  # even the right one
    assert [outcome(r) for r in results] == ["UNAUTHENTICATED"] * PER_ACCOUNT
    assert outcome(blocked[0]) == "LIMIT_EXCEEDED"
    error = blocked[0]["errors"][0]
    assert 1 <= error["retryAfterSeconds"] <= 120
    assert error["message"] == f"too many login attempts; retry in {error['retryAfterSeconds']} s"

    # Aliases: each `login` field of one document is one attempt, counted atomically.
    rep = await t.add_user(Role.REP)
    async with live_tenants.db.unit_of_work(t.id) as uow:
        from tenants.models import User

        user = await uow.session.get(User, (t.id, rep.user_id))
        assert user is not None
        email = user.email
    aliased = await attempt(b, t.slug, email, "wrong-password-x", aliases=8)
    counts = {k: [outcome(r) for r in aliased].count(k) for k in ("UNAUTHENTICATED",
                                                                 "LIMIT_EXCEEDED")}
    assert counts == {"UNAUTHENTICATED": PER_ACCOUNT, "LIMIT_EXCEEDED": 8 - PER_ACCOUNT}

    # Per address: 6 + 8 attempts so far; fresh accounts pass until the address's limit.
    fresh = []
    for i in range(PER_ADDRESS - 6 - 8 + 1):
        fresh += await attempt((a, b)[i % 2], t.slug, f"nobody-{i}@example.com", "whatever-1")
    assert [outcome(r) for r in fresh] == ["UNAUTHENTICATED"] * (PER_ADDRESS - 14) + [
        "LIMIT_EXCEEDED"]


async def test_unknown_account_wrong_password_and_deactivated_user_get_the_same_answer(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    rep = await t.add_user(Role.REP)
    async with tenants.db.unit_of_work(t.id) as uow:
        from tenants.models import User

        user = await uow.session.get(User, (t.id, rep.user_id))
        assert user is not None
        rep_email = user.email
    await t.admin_caller.ok("mutation($u: ID!) { deactivateUser(input: {userId: $u}) "
                            "{ errors { code } } }", u=str(GlobalID("User", str(rep.user_id))))
    from tests.factories import Caller

    anonymous = Caller(tenants.client, {})
    cases = {
        "unknown tenant": ("no-such-tenant", t.admin_email, "whatever-pass"),
        "unknown account": (t.slug, "nobody@example.com", "whatever-pass"),
        "wrong password": (t.slug, t.admin_email, "wrong-password"),
        "deactivated, right password": (t.slug, rep_email, "password-123"),
        "deactivated, wrong password": (t.slug, rep_email, "wrong-password"),
    }
    answers, timings = {}, {}
    for name, (tenant, email, password) in cases.items():
        times = []
        for _ in range(5):  # the median of 5: a CI run saw two of 3 samples slowed by the box
            start = time.perf_counter()
            data = await anonymous.ok(LOGIN, t=tenant, e=email, p=password)
            times.append(time.perf_counter() - start)
        answers[name] = data["login"]
        timings[name] = statistics.median(times)
    assert all(a == {"token": None, "errors": [{"code": "UNAUTHENTICATED", "message":
                                                "wrong tenant, email or password"}]}
               for a in answers.values()), answers
    # Every case verifies an argon2 hash (a dummy one without an account): the timings are of
    # the same order (a loose bound: this box is shared).
    fastest, slowest = min(timings.values()), max(timings.values())
    assert slowest < 5 * fastest, timings


@pytest.fixture(scope="module")
def flood_server(owner_url: str, live_redis: RedisProcess,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = _env(owner_url, live_redis, LOGIN_MAX_PER_ACCOUNT="1000000",
               LOGIN_MAX_PER_ADDRESS="1000000")
    server = ApiServer(env, tmp_path_factory.mktemp("flood") / "api.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


async def test_a_login_flood_does_not_block_a_bystander(
    live_tenants: TenantFactory, settings: Settings, flood_server: ApiServer,
) -> None:
    """Bystander latency with and without 8 clients posting aliased login documents, in
    interleaved rounds. The flood comes from its own process at nice 10 (tests/live/
    login_flood.py): sharing this process's event loop, its 8 clients' own work showed up in
    the bystander's latency on a 2-core box. The bound is the issue's 50 ms; on a box already
    saturated by others (the quiet rounds' p99 above 25 ms, where 50 ms cannot be measured)
    the flood may at most triple the quiet p99: hashing on the event loop made it 1.4 s."""
    t = await live_tenants.create()
    token = issue_jwt(settings, t.admin)
    hashed = 0

    async def flood_started() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.live.login_flood", flood_server.http, t.slug,
             t.admin_email, "8", "5"],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.strip() == "started", line
        return proc

    def flood_stopped(proc: subprocess.Popen[str]) -> int:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        return int(out.split()[-1])

    async def bystander(c: httpx.AsyncClient, seconds: float) -> list[float]:
        latencies = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            r = await c.post("/graphql", json={"query": "{ me { tenantId } }"},
                             headers={"Authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - start)
            assert r.status_code == 200 and "errors" not in r.json()
            await asyncio.sleep(0.02)
        return latencies

    quiet: list[float] = []
    flooded: list[float] = []
    async with httpx.AsyncClient(base_url=flood_server.http, timeout=30) as c:
        await bystander(c, 0.5)  # warm
        for _ in range(4):
            quiet += await bystander(c, 2)
            flood = await flood_started()
            await asyncio.sleep(0.3)  # all eight clients under way
            try:
                flooded += await bystander(c, 2.5)
            finally:
                hashed += flood_stopped(flood)

    def p99(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    print(f"bystander p99: quiet {p99(quiet) * 1000:.1f} ms (n={len(quiet)}), during the "
          f"login flood {p99(flooded) * 1000:.1f} ms (n={len(flooded)}, p50 "
          f"{statistics.median(flooded) * 1000:.1f} ms); {hashed} login attempts")
    assert hashed >= 8  # every flooder got through at least once: the flood was real
    bound = 0.050 if p99(quiet) <= 0.025 else max(0.050, 3 * p99(quiet))
    assert p99(flooded) < bound
