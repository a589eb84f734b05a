"""Where a board request's time goes: the real app in-process, profiled, grouped by layer.

    python -m bench.profile_board [--db saas_bench] [--requests 200] [--pyinstrument]

Builds the app (production settings) in this process, sends the board query of the "board"
tenant (8 stages x 25 cards) through httpx's ASGI transport, and profiles --requests of
them with cProfile. Own time (tottime) is grouped by layer: graphql-core's executor,
Strawberry, Starlette/middleware, SQLAlchemy, asyncpg and the event loop (includes waiting
for PostgreSQL), this project's code, the rest. It also times variants of the query
(fewer selected fields) to show the per-field cost. --pyinstrument prints a call tree too.
Writes bench/results/profile_board.json. (py-spy works as well against a running
`saas serve`: py-spy record -o board.svg --pid <pid> while bench.board runs.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import time
from typing import Any

import httpx

from bench.board import QUERY, board_target
from bench.common import DEFAULT_DB, db_url, settings_for, write_result

VARIANTS = {
    "full (cards with owner and contact)": QUERY,
    "cards without owner/contact": """query Board($p: ID!, $n: Int!) {
      board(pipelineId: $p, dealsPerStage: $n) { pipelineName columns {
        stage { id name kind position } dealCount deals { id title amount currency version } } } }""",
    "cards with one field": """query Board($p: ID!, $n: Int!) {
      board(pipelineId: $p, dealsPerStage: $n) { pipelineName columns { dealCount
        deals { title } } } }""",
    "no cards (counts only)": """query Board($p: ID!, $n: Int!) {
      board(pipelineId: $p, dealsPerStage: $n) { pipelineName columns { dealCount } } }""",
}
LAYERS = (
    ("graphql-core executor/validation", ("/graphql/",)),
    ("strawberry", ("/strawberry/",)),
    ("starlette + middleware", ("/starlette/", "asgi_correlation_id", "/observability/")),
    ("sqlalchemy", ("/sqlalchemy/",)),
    ("asyncpg + event loop + sockets (incl. waiting for PostgreSQL)",
     ("/asyncpg/", "/asyncio/", "select.epoll", "_socket", "uvloop")),
    ("project code (saas/, schema/, tenants/)", ("/saas/", "/schema/", "/tenants/")),
    ("json / jwt / uuid / enum / dataclasses", ("/json/", "/jwt/", "uuid.py", "enum.py",
                                                "orjson", "dataclasses")),
)


def _layer(filename: str) -> str:
    for name, needles in LAYERS:
        if any(n in filename for n in needles):
            return name
    return "other (incl. httpx test client)"


async def run(*, owner_url: str, requests: int, tree: bool) -> dict[str, Any]:
    from saas.app import create_app

    target = await board_target(owner_url)
    settings = settings_for(owner_url).model_copy(update={"environment": "production"})
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
    out: dict[str, Any] = {"requests": requests}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            variants = {}
            for name, query in VARIANTS.items():
                body = json.dumps({"query": query, "variables": {"p": target.pipeline_gid,
                                                                 "n": 25}})
                for _ in range(5):
                    r = await client.post("/graphql", content=body, headers=headers)
                    assert "errors" not in r.json(), r.text[:500]
                times = []
                for _ in range(max(20, requests // 4)):
                    t = time.perf_counter()
                    await client.post("/graphql", content=body, headers=headers)
                    times.append(time.perf_counter() - t)
                variants[name] = round(statistics.median(times) * 1000, 2)
            out["median_ms_by_selection"] = variants
            body = target.body()
            profile = cProfile.Profile()
            t = time.perf_counter()
            profile.enable()
            for _ in range(requests):
                await client.post("/graphql", content=body, headers=headers)
            profile.disable()
            out["profiled_ms_per_request"] = round((time.perf_counter() - t) / requests * 1000, 2)
            if tree:
                from pyinstrument import Profiler

                p = Profiler(interval=0.0005, async_mode="enabled")
                p.start()
                for _ in range(min(requests, 50)):
                    await client.post("/graphql", content=body, headers=headers)
                p.stop()
                print(p.output_text(unicode=False, color=False))
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    layers: dict[str, float] = {}
    functions = []
    total = 0.0
    for (filename, line, func), (_, calls, tottime, _cumtime, _) in stats.items():
        layer = _layer(f"{filename}:{func}")
        layers[layer] = layers.get(layer, 0.0) + tottime
        total += tottime
        functions.append((tottime, calls, f"{filename.split('site-packages/')[-1]}:{line}({func})"))
    out["own_time_share_by_layer"] = {k: round(v / total, 3) for k, v in
                                      sorted(layers.items(), key=lambda kv: -kv[1])}
    out["top_functions_own_ms_per_request"] = [
        {"function": f, "calls_per_request": round(c / requests, 1),
         "ms_per_request": round(tt / requests * 1000, 3)}
        for tt, c, f in sorted(functions, reverse=True)[:25]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pyinstrument", action="store_true", help="also print a call tree")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(owner_url=db_url(args.db), requests=args.requests,
                             tree=args.pyinstrument))
    write_result("profile_board", result, args.out)


if __name__ == "__main__":
    main()
