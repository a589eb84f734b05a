"""A campaign e-mail of the seeded demo tenant reaches the dev mail sink (the process `saas dev`
runs) with a List-Unsubscribe header that mail clients can read and whose link unsubscribes;
/dev/mail shows it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from saas.app import create_app
from saas.campaigns import engine
from saas.campaigns.mailer import SmtpMailer
from saas.db import Database
from saas.embedded import free_port
from saas.settings import Settings
from schema.nodes import gid
from tests.demo.conftest import Demo, seed_tenant


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, directory = free_port(), tmp_path / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "saas.devserver.mailsink", "--port", str(port),
                             "--dir", str(directory)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not directory.exists():  # the handler creates it once the server is up
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield port, directory
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "[mail] to " in out  # announced on the console


async def _login(client: httpx.AsyncClient, demo: Demo) -> dict[str, str]:
    body = (await client.post("/graphql", json={"query": """mutation($t: String!, $e: String!) {
        login(input: {tenant: $t, email: $e, password: "demo-password"}) { token } }""",
        "variables": {"t": demo.slug, "e": f"admin@{demo.slug}.example"}})).json()
    return {"Authorization": f"Bearer {body['data']['login']['token']}"}


async def test_a_demo_campaign_mail_reaches_the_sink_and_its_unsubscribe_link_works(
        db: Database, settings: Settings, client: httpx.AsyncClient, owner_conn: Any,
        sink: tuple[int, Path]) -> None:
    port, directory = sink
    demo = await seed_tenant(db, deals=40)
    headers = await _login(client, demo)
    contact = await owner_conn.fetchrow(
        "SELECT id, email FROM contacts WHERE tenant_id = $1 AND unsubscribed_at IS NULL "
        "ORDER BY email LIMIT 1", demo.tenant_id)
    pipeline = await owner_conn.fetchval(
        "SELECT id FROM pipelines WHERE tenant_id = $1 AND name = 'Default'", demo.tenant_id)
    created = (await client.post("/graphql", headers=headers, json={"query": """
        mutation($i: CreateDealInput!) { createDeal(input: $i) { deal { id } errors { code } } }""",
        "variables": {"i": {"pipelineId": gid("Pipeline", pipeline), "title": "Fleet renewal",
                            "amount": "9000", "currency": "EUR",
                            "contactId": gid("Contact", contact["id"])}}})).json()
    assert created["data"]["createDeal"]["errors"] == [], created

    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    now = datetime.now(UTC) + timedelta(minutes=1)
    for _ in range(3):  # enroll, then send (the first step has no delay)
        await engine.tick(db, mail_settings, demo.tenant_id, now, SmtpMailer(mail_settings))
        if list(directory.glob("*.eml")):
            break
        now += timedelta(minutes=1)
    [path] = list(directory.glob("*.eml"))
    raw = path.read_bytes()
    # The header is on the wire as clients read it: not RFC 2047-encoded, not folded.
    [line] = [x for x in raw.split(b"\r\n") if x.startswith(b"List-Unsubscribe:")]
    assert line.startswith(b"List-Unsubscribe: <http") and b"=?" not in line
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == contact["email"]
    assert message["Subject"].startswith("Thanks for your interest, ")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<") and header.endswith(">")
    url = header[1:-1]
    assert url.startswith(f"{settings.public_base_url}/unsubscribe/")
    assert url in message.get_body(preferencelist=("plain",)).get_content()

    # RFC 8058 one-click: a POST to the header's URL unsubscribes the contact.
    response = await client.post(url.removeprefix(settings.public_base_url),
                                 content=b"List-Unsubscribe=One-Click",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and "unsubscribed" in response.text
    row = await owner_conn.fetchrow(
        "SELECT c.unsubscribed_at, e.status, e.stop_reason FROM contacts c "
        "JOIN campaign_enrollments e ON e.tenant_id = c.tenant_id AND e.contact_id = c.id "
        "WHERE c.tenant_id = $1 AND c.id = $2", demo.tenant_id, contact["id"])
    assert row["unsubscribed_at"] is not None
    assert (row["status"], row["stop_reason"]) == ("stopped", "unsubscribed")

    # /dev/mail (served by the API when saas dev runs the sink) shows the message.
    app = create_app(settings.model_copy(update={"dev_mail_dir": str(directory)}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://dev") as dev:
            shown = (await dev.get("/dev/mail", headers={"accept": "application/json"})).json()
            page = await dev.get("/dev/mail")
    finally:
        await app.state.services.db.dispose()
        await app.state.services.redis.aclose()
    [item] = shown["messages"]
    assert (item["to"], item["listUnsubscribe"]) == (contact["email"], header)
    assert item["subject"] in page.text and page.headers["content-type"].startswith("text/html")


def test_dev_mail_is_not_served_outside_dev(settings: Settings, tmp_path: Path) -> None:
    prod = settings.model_copy(update={"environment": "production", "dev_mail_dir": str(tmp_path),
                                       "jwt_secret": "p" * 40, "unsubscribe_secret": "q" * 40})
    app = create_app(prod)
    assert "/dev/mail" not in {getattr(r, "path", None) for r in app.routes}
