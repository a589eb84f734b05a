"""Shared plumbing of the benchmarks: databases, servers, tokens, percentiles, result files.

Configuration (environment):
- BENCH_PG_URL: a PostgreSQL server URL as a superuser (default
  postgresql://postgres@127.0.0.1:5432/postgres); benchmarks create their own databases on it.
- BENCH_REDIS_URL: Redis (default redis://127.0.0.1:6379/0).
- BENCH_MIGRATE_REVISION: migrate benchmark databases to this revision (default head).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET = "bench-secret-" + "x" * 40
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_DB = "saas_bench"


def pg_server_url() -> str:
    return os.environ.get("BENCH_PG_URL", DEFAULT_PG)


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)


def db_url(name: str, server_url: str | None = None) -> str:
    """The owner URL of database `name` on the benchmark server."""
    url = make_url(server_url or pg_server_url()).set(database=name)
    return url.render_as_string(hide_password=False)


def dsn(url: str) -> str:
    """SQLAlchemy-style URL -> a DSN asyncpg understands."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def settings_for(owner_url: str, redis: str | None = None, **extra: Any) -> Any:
    from saas.settings import Settings

    return Settings(environment="test", database_url=owner_url, redis_url=redis or redis_url(),
                    jwt_secret=SECRET, unsubscribe_secret=SECRET, **extra)


async def database_exists(name: str, server_url: str | None = None) -> bool:
    conn = await asyncpg.connect(dsn(db_url("postgres", server_url)))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def ensure_database(name: str, server_url: str | None = None, *,
                          fresh: bool = False) -> str:
    """Create (or recreate, with `fresh`) database `name` and migrate it; its owner URL."""
    admin = await asyncpg.connect(dsn(db_url("postgres", server_url)))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = db_url(name, server_url)
    from saas import migrate

    revision = os.environ.get("BENCH_MIGRATE_REVISION", "head")
    await asyncio.to_thread(migrate.upgrade, url, settings_for(url), revision)
    return url


async def drop_database(name: str, server_url: str | None = None) -> None:
    admin = await asyncpg.connect(dsn(db_url("postgres", server_url)))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def jwt_for(tenant_id: Any, user_id: Any, role: str = "admin", ttl: int = 24 * 3600) -> str:
    from saas.settings import Settings
    from tenants.credentials import issue_jwt
    from tenants.principal import Principal, Role

    principal = Principal(tenant_id=tenant_id, user_id=user_id, role=Role(role))
    return issue_jwt(Settings(environment="test", jwt_secret=SECRET), principal, ttl=ttl)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary_ms(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of durations given in seconds."""
    ms = [v * 1000 for v in values_s]
    if not ms:
        return {}
    return {"p50": round(pct(ms, 50), 3), "p90": round(pct(ms, 90), 3),
            "p99": round(pct(ms, 99), 3), "max": round(max(ms), 3),
            "mean": round(statistics.fmean(ms), 3), "n": len(ms)}


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    import importlib.metadata as md

    versions = {}
    for dist in ("strawberry-graphql", "starlette", "uvicorn", "uvloop", "httptools",
                 "sqlalchemy", "asyncpg", "orjson", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    wrk = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
        wrk = (out.stdout or out.stderr).splitlines()[0].strip()
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "wrk": wrk, "packages": versions}


def write_result(name: str, result: dict[str, Any], out: str | Path | None = None) -> Path:
    """Print the figures and write them to bench/results/<name>.json (or `out`)."""
    result = {"benchmark": name, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **result,
              "environment": environment()}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process on a free loopback port (the API via `saas serve`, or the floor)."""

    argv: list[str]
    env: dict[str, str]
    name: str = "server"
    port: int = field(default_factory=free_port)
    ready_path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def log_path(self) -> Path:
        return RESULTS / "logs" / f"{self.name}.log"

    def start(self, timeout: float = 120) -> Server:
        # Generous: on a machine shared with other work a server can take a minute to start.
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.http + self.ready_path, timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} not ready: {self.log_path.read_text()[-3000:]}")

    def rss_bytes(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
            self._log.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_server(owner_url: str, redis: str | None = None, name: str = "api",
               **env: str) -> Server:
    """`saas serve` with production settings (secrets set, introspection off). Rate limits by
    cost are off: a load generator on one key is what they exist to refuse, and the board
    figures measure the read path (pass RATE_LIMIT_ENABLED="true" to include them)."""
    return Server(
        argv=[sys.executable, "-m", "saas.cli", "serve"],
        env={"ENVIRONMENT": "production", "DATABASE_URL": owner_url,
             "REDIS_URL": redis or redis_url(), "JWT_SECRET": SECRET,
             "UNSUBSCRIBE_SECRET": SECRET, "LOG_LEVEL": "warning",
             "RATE_LIMIT_ENABLED": "false", **env},
        name=name, ready_path="/readyz")
