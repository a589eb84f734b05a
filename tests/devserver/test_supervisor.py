"""`scripts/dev` (the README's first command) on embedded servers: it says what it does,
serves the demo tenant, and no process it started survives SIGTERM, SIGINT or SIGHUP; after
a `kill -9` of it, the next start cleans up what was left and works.

One data directory for the module: the first start runs initdb and seeds the demo tenant,
the later ones reuse both (as a developer's restarts do)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from saas.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from saas.embedded import free_port
from tests.conftest import ROOT

LOGIN = ("mutation($t: String!, $e: String!, $p: String!) { login(input: {tenant: $t, "
         "email: $e, password: $p}) { token errors { code } } }")


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    port: int
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the run to end and its output to be read; its exit code."""
        code = self.proc.wait(timeout=timeout)
        assert self.reader is not None
        self.reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "[dev] ready in" in self.output:
                return
            assert self.proc.poll() is None, self.output
            time.sleep(0.2)
        raise AssertionError(f"not ready within {timeout} s:\n{self.output}")

    def processes(self) -> list[psutil.Process]:
        """Every process this run started: the supervisor's descendants and PostgreSQL
        (daemonised by pg_ctl) with its backends, from the PID file."""
        record = json.loads((self.data_dir / "dev.pid.json").read_text())
        assert record["pid"] == self.proc.pid
        found = psutil.Process(self.proc.pid).children(recursive=True)
        names = {c["name"] for c in record["children"]}
        assert names == {"postgres", "redis", "mail sink", "worker", "api"}, record
        postgres = psutil.Process(next(c["pid"] for c in record["children"]
                                       if c["name"] == "postgres"))
        found += [postgres, *postgres.children(recursive=True)]
        assert len(found) >= 6
        return found


def start_dev(data_dir: Path) -> Dev:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "APP_DATABASE_URL", "SMTP_HOST",
                        "PUBLIC_BASE_URL")}
    env.update(ENVIRONMENT="dev", DATA_DIR=str(data_dir))
    proc = subprocess.Popen([str(ROOT / "scripts" / "dev"), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dev = Dev(proc, port, data_dir)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            dev.lines.append(line)

    dev.reader = threading.Thread(target=read, daemon=True)
    dev.reader.start()
    return dev


def gone(procs: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    """The processes still running (not zombies) after waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def login(dev: Dev) -> str:
    body = httpx.post(f"{dev.base}/graphql", json={"query": LOGIN, "variables": {
        "t": DEMO_SLUG, "e": DEMO_EMAIL, "p": DEMO_PASSWORD}}, timeout=10).json()
    token: str = body["data"]["login"]["token"]
    return token


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("dev") / "data"
    yield path
    # A failed test may leave a run behind: stop what the PID file names.
    record = path / "dev.pid.json"
    if record.exists():
        for child in json.loads(record.read_text())["children"]:
            try:
                psutil.Process(child["pid"]).kill()
            except psutil.NoSuchProcess:
                pass


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_stops_every_process_it_started(data_dir: Path, sig: int) -> None:
    dev = start_dev(data_dir)
    try:
        dev.wait_ready()
        token = login(dev)
        me = httpx.post(f"{dev.base}/graphql", headers={"Authorization": f"Bearer {token}"},
                        json={"query": "{ me { user { email role } } tenant { slug } }"}).json()
        assert me["data"] == {"me": {"user": {"email": DEMO_EMAIL, "role": "ADMIN"}},
                              "tenant": {"slug": DEMO_SLUG}}
        assert "errors" not in me
        assert httpx.get(f"{dev.base}/readyz").json() == {"ready": True, "postgres": "ok",
                                                          "redis": "ok"}
        procs = dev.processes()
    finally:
        dev.proc.send_signal(sig)
        dev.finish()
    assert dev.proc.returncode == 0, dev.output
    assert gone(procs, timeout=5) == []
    assert not (data_dir / "dev.pid.json").exists()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    out = dev.output
    assert f"{signal.Signals(sig).name} received" in out and "[dev] stopped" in out
    # It said what it was doing, in order.
    steps = ["[dev] starting PostgreSQL", "[dev] starting Redis", "[dev] starting the dev mail sink",
             "[dev] migrating the database", "demo tenant", "[dev] starting the worker",
             "[dev] starting the API", "[dev] ready in", f"{dev.base}/app"]
    positions = [out.index(s) for s in steps]
    assert positions == sorted(positions), out


@pytest.mark.slow
def test_a_restart_after_kill_9_cleans_up_and_works_and_a_second_run_is_refused(data_dir: Path) -> None:
    first = start_dev(data_dir)
    first.wait_ready()
    left = first.processes()
    first.proc.kill()
    first.finish()
    second = start_dev(data_dir)
    try:
        second.wait_ready()
        assert "left by an earlier run" in second.output, second.output
        assert f"(pid {first.proc.pid})" in second.output
        assert gone(left, timeout=1) == [], "the earlier run's processes still run"
        assert login(second)
        procs = second.processes()
        # A second supervisor on the same data is refused and touches nothing.
        third = start_dev(data_dir)
        assert third.finish() == 1
        assert f"already runs with this data directory (pid {second.proc.pid})" in third.output
        assert login(second)
    finally:
        second.proc.send_signal(signal.SIGTERM)
        second.finish()
    assert second.proc.returncode == 0, second.output
    assert gone(procs, timeout=5) == []
