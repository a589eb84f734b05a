"""Every benchmark runs at a tiny size and writes its JSON with sane figures.

Not a performance test: it keeps bench/ working. Uses the session's PostgreSQL and Redis
(embedded or external, like every test), its own databases, wrk when installed and the
httpx load loop otherwise (the tenant-count run always uses the httpx loop, so both paths
are exercised).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bench import loadgen
from bench.common import drop_database
from bench.run_all import Config, run_all


@pytest.fixture
def bench_env(server_urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BENCH_PG_URL", server_urls[0])
    monkeypatch.setenv("BENCH_REDIS_URL", server_urls[1])
    return f"saas_bench_smoke_{uuid.uuid4().hex[:8]}"


async def test_every_benchmark_runs_at_tiny_size(bench_env: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = bench_env
    real_run_load = loadgen.run_load
    tools: list[str] = []

    async def run_load(*args: object, **kwargs: object) -> dict[str, object]:
        result = await real_run_load(*args, **kwargs)  # type: ignore[arg-type]
        tools.append(str(result["tool"]))
        return result

    monkeypatch.setattr("bench.board.run_load", run_load)
    monkeypatch.setattr("bench.cold_reads.run_load", run_load)
    cfg = Config(db=db, scale=0.0005, tenants=3, board_seconds=1, warmup=0, connections=4,
                 writer_rate=5, max_requests=200, live_subscribers=[2], live_rate=10,
                 live_moves=3, idle_steps=[3, 6], mutation_connections=2,
                 mutation_subscribers=2, mutation_seconds=1, forecast_repeat=1,
                 analytics_repeat=1, cold_rounds=1, cold_boards=3, results=tmp_path)
    try:
        # The tenant-count run goes through the httpx fallback whatever is installed.
        real_have_wrk = loadgen.have_wrk
        results = await run_all(Config(**{**cfg.__dict__, "only": {
            "generate", "board", "cold_reads", "forecast", "analytics", "live_latency",
            "subscribers", "mutations"}}))
        monkeypatch.setattr(loadgen, "have_wrk", lambda: False)
        results |= await run_all(Config(**{**cfg.__dict__, "only": {"tenant_count"}}))
        monkeypatch.setattr(loadgen, "have_wrk", real_have_wrk)
    finally:
        for name in (db, db + "_t10", db + "_live"):
            await drop_database(name)

    for name in ("generate", "board", "cold_reads", "tenant_count", "forecast", "analytics",
                 "live_latency", "subscribers", "mutations", "summary"):
        assert json.loads((tmp_path / f"{name}.json").read_text())["benchmark"] == name

    gen = results["generate"]["in_database"]
    assert gen["tenants"] == 3 and gen["deals"] > 0 and gen["events"] >= gen["deals"]

    board = results["board"]
    assert board["same_response_as_floor"]
    assert board["board"]["stages"] == 8 and board["board"]["cards"] > 0
    for run in ("graphql", "floor", "graphql_with_writer", "floor_with_writer"):
        assert board["runs"][run]["requests"] > 0 and board["runs"][run]["errors"] == 0
        assert board["runs"][run]["latency_ms"]["p99"] > 0
    assert board["runs"]["graphql_with_writer"]["writer"]["moves"] > 0
    assert board["ratio_graphql_to_floor"] > 0
    statements = board["statements_per_request"]
    assert statements["constant"]
    assert (statements["statements_miss"], statements["statements_hit"]) == (2, 1)
    assert "httpx" in tools  # the fallback served the tenant-count run

    cold = results["cold_reads"]
    for name in ("cold_board", "cold_deals", "cold_contacts", "warm_board",
                 "warm_board_writer_same_board", "warm_board_writes_over_boards"):
        run = cold[name]["rounds"][0]
        side = "cold" if name.startswith("cold") else "warm"
        assert run[side]["requests"] > 0 and run["floor"]["requests"] > 0, name
        assert run[side]["errors"] == 0 and run[side]["server_cpu_ms_per_request"] > 0
    assert cold["cold_board"]["cold_connections_opened_max"] == 0
    assert cold["warm_board_writer_same_board"]["writer"]["moves"] > 0
    assert cold["warm_board_writes_over_boards"]["writer"]["moves"] > 0
    assert 0 < cold["warm_board_writes_over_boards"]["cache_hit_ratio"] <= 1

    tc = results["tenant_count"]
    assert tc["small"]["tenants"] <= tc["big"]["tenants"]
    assert tc["ratio_latency_p50_big_to_small"] > 0
    assert tc["uncached_ratio_latency_p50_big_to_small"] > 0

    fc = results["forecast"]
    assert fc["largest_tenant"]["median_s"] > 0 and fc["all_tenants"]["tenants"] == 3

    assert all(q["median_ms"] >= 0 for q in results["analytics"]["queries"].values())

    live = results["live_latency"]["results"][0]
    assert live["bad_subscribers"] == 0 and live["deliveries"] == live["expected_deliveries"]

    subs = results["subscribers"]
    assert subs["max_subscriptions_held"] == 6
    assert subs["steps"][-1]["server_rss_mb"] > 0

    mut = results["mutations"]
    assert mut["moves"] > 0 and mut["subscribers_with_loss_dup_or_disorder"] == 0
