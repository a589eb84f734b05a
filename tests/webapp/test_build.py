"""The committed build in saas/webapp/static was made from the current web/ sources, and the
API serves it at /app (so a fresh clone needs no npm step)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx

from saas.webapp import STATIC
from tests.conftest import ROOT

WEB = ROOT / "web"
# The same list and algorithm as web/hash.mjs.
SOURCES = ("index.html", "package.json", "package-lock.json", "vite.config.js", "hash.mjs", "vendor.mjs", "src")


def source_hash(root: Path) -> str:
    files = []
    for name in SOURCES:
        path = root / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for rel in sorted(p.relative_to(root).as_posix() for p in files):
        digest.update(rel.encode() + b"\0")
        digest.update((root / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def test_the_committed_build_matches_the_sources() -> None:
    committed = (STATIC / "source-hash.txt").read_text().strip()
    assert committed == source_hash(WEB), (
        "saas/webapp/static is older than web/: run `cd web && npm ci && npm run build` "
        "and commit the result")
    assert (STATIC / "assets" / "app.js").stat().st_size > 10_000
    index = (STATIC / "index.html").read_text()
    assert "/app/assets/app.js" in index and "/app/assets/index.css" in index


async def test_the_api_serves_the_app(client: httpx.AsyncClient) -> None:
    redirect = await client.get("/app")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/app/")
    page = await client.get("/app/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    assert '<form id="login"' in page.text
    bundle = await client.get("/app/assets/app.js")
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert bundle.content == (STATIC / "assets" / "app.js").read_bytes()
    assert (await client.get("/app/assets/missing.js")).status_code == 404


async def test_graphiql_loads_its_assets_from_the_api_not_a_cdn(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={  # what a browser sends
        "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert "https://" not in page.text.split("<body>")[0]  # no external asset in the head
    assets = re.findall(r'(?:src|href)="(/app/graphiql/[^"]+)"\s+integrity="(sha384-[^"]+)"',
                        page.text)
    assert len(assets) == 7, assets
    for url, integrity in assets:
        response = await client.get(url)
        assert response.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url  # the browser's SRI check passes
