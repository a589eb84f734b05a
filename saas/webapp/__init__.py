"""The reference web app (built from web/ into static/, committed), served at /app.

It is static files only: the browser talks to the public GraphQL API like any client.
tests/webapp/test_build.py checks that static/ was built from the current web/ sources.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")


class _Files(StaticFiles):
    """Static files; index.html is never cached (it names the current bundle)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if path in (".", "", "index.html"):
            response.headers["cache-control"] = "no-cache"
        return response


async def _to_app(request: object) -> Response:
    return RedirectResponse("/app/", status_code=308)


CDN = "https://unpkg.com/"


def local_graphiql(html: str) -> str:
    """GraphiQL's HTML pointing at the copies under /app/graphiql/ (same paths as the CDN's)."""
    return html.replace(CDN, "/app/graphiql/")


def routes() -> list[Route | Mount]:
    return [Route("/app", _to_app), Mount("/app", _Files(directory=STATIC, html=True))]
