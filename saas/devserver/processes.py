"""Child processes of the dev supervisor: started in their own session, killed with it.

Each child runs in a new session (a terminal's Ctrl+C reaches only the supervisor, which
stops the children in order) and gets the kernel's parent-death signal (PR_SET_PDEATHSIG),
so a supervisor killed with SIGKILL still takes its direct children along. PostgreSQL is
the exception (pg_ctl daemonises it); the PID file (saas/devserver/pidfile.py) covers it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """A named child process and how to ask it to stop."""

    name: str
    proc: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def spawn(name: str, argv: Sequence[str], *, env: dict[str, str],
          stop_signal: int = signal.SIGTERM, quiet: bool = False) -> Child:
    """Start `argv` as a supervised child (output to our stdout/stderr unless quiet)."""
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(list(argv), env=env, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                            stdout=out, stderr=out)
    return Child(name, proc, stop_signal)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def stop(children: Sequence[Child], *, timeout: float) -> None:
    """Ask each child to stop, then wait for all of them; kill what is left at the deadline."""
    for child in children:
        if child.alive():
            try:
                child.proc.send_signal(child.stop_signal)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


def terminate_pid(pid: int, created: float | None, *, sig: int = signal.SIGTERM,
                  timeout: float = 10.0) -> bool:
    """Stop a process we started earlier (matched by pid and start time, so a recycled pid
    is left alone); SIGKILL after the timeout. True if it was running."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 1.0:
            return False
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        try:
            proc.kill()
            proc.wait(5)
        except psutil.NoSuchProcess:
            pass
    except psutil.NoSuchProcess:
        pass
    return True


def create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None


def is_running(pid: int, created: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        same = created is None or abs(proc.create_time() - created) <= 1.0
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def environ(**updates: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(updates)
    return env
