"""`saas dev` (behind scripts/dev) starts embedded servers, migrates, provisions the demo
tenant and serves: /readyz answers and the demo admin can log in and query `me`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from saas.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from saas.embedded import free_port

LOGIN = ("mutation($t: String!, $e: String!, $p: String!) { login(input: {tenant: $t, "
         "email: $e, password: $p}) { token errors { code } } }")


def test_saas_dev_serves_the_demo_tenant_on_embedded_servers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "APP_DATABASE_URL")}
    env.update(ENVIRONMENT="dev", DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "saas.cli", "dev"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert ready is not None and ready.json() == {"ready": True, "postgres": "ok",
                                                      "redis": "ok"}
        login = httpx.post(f"{base}/graphql", json={"query": LOGIN, "variables": {
            "t": DEMO_SLUG, "e": DEMO_EMAIL, "p": DEMO_PASSWORD}}).json()
        token = login["data"]["login"]["token"]
        me = httpx.post(f"{base}/graphql", headers={"Authorization": f"Bearer {token}"},
                        json={"query": "{ me { user { email role } } tenant { slug } }"}).json()
        assert me == {"data": {"me": {"user": {"email": DEMO_EMAIL, "role": "ADMIN"}},
                               "tenant": {"slug": DEMO_SLUG}}}
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert f"password {DEMO_PASSWORD!r}" in output
    assert proc.returncode == 0, output
