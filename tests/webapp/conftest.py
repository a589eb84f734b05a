"""The web app in a real Chromium (Debian's, driven by Playwright) against a real API process.

The API runs as `saas serve` in a child process on the session's database and Redis, so a
test can kill and restart it; the demo tenant is seeded once per module. Screenshots go to
`.data/test-output/webapp/<test>/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from saas.db import Database
from saas.embedded import free_port
from saas.settings import Settings
from tests.conftest import ROOT
from tests.demo.conftest import Demo, seed_tenant

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = ROOT / ".data" / "test-output" / "webapp"


@dataclass
class ApiServer:
    """`saas serve` as a child process; kill() and start() keep the same port."""

    settings: Settings
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "APP_DATABASE"))}
        env.update(ENVIRONMENT="test", DATABASE_URL=s.database_url or "", REDIS_URL=s.redis_url or "",
                   JWT_SECRET=s.jwt_secret, UNSUBSCRIBE_SECRET=s.unsubscribe_secret,
                   ARQ_QUEUE_NAME=s.arq_queue_name, HOST="127.0.0.1", PORT=str(self.port),
                   LOGIN_MAX_PER_ADDRESS="1000000", LOG_LEVEL="WARNING", DB_POOL_SIZE="4",
                   DB_MAX_OVERFLOW="4", GRACEFUL_SHUTDOWN_SECONDS="2",
                   ALLOWED_ORIGINS=",".join(s.allowed_origins))
        return env

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "saas.cli", "serve"], env=self.env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the API process exited"
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the API did not become ready")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def api_server(settings: Settings) -> Iterator[ApiServer]:
    server = ApiServer(settings, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def demo(db: Database) -> Demo:
    return await seed_tenant(db)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    assert os.path.exists(CHROMIUM), (
        "Debian's chromium is needed for the browser tests: scripts/test installs it "
        "(scripts/bootstrap --with-browser), or apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        chromium = await pw.chromium.launch(executable_path=chromium_path,
                                            args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        await chromium.close()


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Path:
    path = OUTPUT / request.node.name.replace("/", "_")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


async def open_app(browser: Browser, server: ApiServer, demo: Demo, email: str,
                   *, query: str = "", origin: str | None = None) -> Page:
    """A new browser context logged in through the form; the board is shown."""
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{origin or server.base}/app/{query}")
    await page.fill("input[name=tenant]", demo.slug)
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", "demo-password")
    await page.click("button[type=submit]")
    try:
        await page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    except PlaywrightTimeout as e:
        shown = await page.evaluate("""() => [document.getElementById('login-error').textContent,
            document.getElementById('notice').textContent]""")
        raise AssertionError(f"the app did not start: {shown} {errors}") from e
    await page.wait_for_selector("#live.connected", timeout=10_000)
    return page


def admin_email(demo: Demo) -> str:
    return f"admin@{demo.slug}.example"


async def board_state(page: Page) -> dict[str, Any]:
    """Column name -> (header text, card deal ids) as the page shows it."""
    return await page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.column')]
        .map(c => [c.dataset.stage, {count: c.querySelector('.count').textContent,
                   cards: [...c.querySelectorAll('.card')].map(x => x.dataset.dealId)}]))""")
