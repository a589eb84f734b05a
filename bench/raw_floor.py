"""The raw floor: the least a board endpoint can do on this stack, as a bare ASGI app.

    python -m bench.raw_floor          # DATABASE_URL (owner URL; the app role is derived),
                                       # JWT_SECRET, PORT; uvicorn + uvloop + httptools

Per request it reads the GraphQL-shaped POST body (variables p, n: the board; first: the
deal list of bench.cold_reads), verifies the JWT like the
API does (tenant from the token only), opens a transaction on a pooled asyncpg connection as
the application role (RLS on), sets app.tenant_id with set_config(..., true), builds the
whole board response -- the same JSON the GraphQL board query returns -- in ONE SQL
statement (json_build_object / json_agg) and returns its bytes. No GraphQL, no ORM.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import asyncpg
import orjson

from saas.settings import Settings
from tenants.tokens import Verifier

# The same cards as the board query (board_rows, migration 0009: LATERAL first N per stage) and
# the same response as bench.board.QUERY, global ids included.
FLOOR_SQL = """
SELECT json_build_object('data', json_build_object('board', json_build_object(
  'pipelineName', p.name,
  'columns', COALESCE((
    SELECT json_agg(json_build_object(
      'stage', json_build_object(
        'id', encode(convert_to('Stage:' || s.id::text, 'UTF8'), 'base64'),
        'name', s.name, 'kind', upper(s.kind), 'position', s.position),
      'dealCount', (SELECT count(*) FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id),
      'deals', COALESCE((
        SELECT json_agg(json_build_object(
          'id', encode(convert_to('Deal:' || d.id::text, 'UTF8'), 'base64'),
          'title', d.title, 'amount', d.amount::text, 'currency', d.currency,
          'version', d.version,
          'owner', CASE WHEN u.id IS NULL THEN NULL ELSE json_build_object(
            'id', encode(convert_to('User:' || u.id::text, 'UTF8'), 'base64'),
            'name', u.name) END,
          'contact', CASE WHEN c.id IS NULL THEN NULL ELSE json_build_object(
            'id', encode(convert_to('Contact:' || c.id::text, 'UTF8'), 'base64'),
            'name', c.name) END)
          ORDER BY d.updated_at DESC, d.id DESC)
        FROM (SELECT * FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id
              ORDER BY x.updated_at DESC, x.id DESC LIMIT $2) d
        LEFT JOIN users u ON u.id = d.owner_id
        LEFT JOIN contacts c ON c.id = d.contact_id), '[]'::json))
      ORDER BY s.position)
    FROM stages s WHERE s.pipeline_id = p.id AND s.archived_at IS NULL), '[]'::json))))::text
FROM pipelines p WHERE p.id = $1
"""
# bench.cold_reads.DEALS: the first page of deals(first: $first), newest first, with owner,
# contact and company, cursors and pageInfo, in one statement.
_UTC = "(d.updated_at AT TIME ZONE 'UTC')"
_CURSOR = (
    "rtrim(translate(encode(convert_to('[\"' || to_char(" + _UTC + ", 'YYYY-MM-DD HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM d.updated_at)::bigint % 1000000 = 0 THEN ''"
    " ELSE to_char(" + _UTC + ", '.US') END || '+00:00\", \"' || d.id::text || '\"]',"
    " 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')")
DEALS_SQL = f"""
SELECT json_build_object('data', json_build_object('deals', json_build_object(
  'edges', COALESCE(json_agg(json_build_object(
    'cursor', {_CURSOR},
    'node', json_build_object(
      'id', encode(convert_to('Deal:' || d.id::text, 'UTF8'), 'base64'),
      'title', d.title, 'amount', d.amount::text, 'currency', d.currency,
      'version', d.version,
      'owner', CASE WHEN u.id IS NULL THEN NULL ELSE json_build_object(
        'id', encode(convert_to('User:' || u.id::text, 'UTF8'), 'base64'), 'name', u.name) END,
      'contact', CASE WHEN c.id IS NULL THEN NULL ELSE json_build_object(
        'id', encode(convert_to('Contact:' || c.id::text, 'UTF8'), 'base64'),
        'name', c.name) END,
      'company', CASE WHEN co.id IS NULL THEN NULL ELSE json_build_object(
        'id', encode(convert_to('Company:' || co.id::text, 'UTF8'), 'base64'),
        'name', co.name) END))
    ORDER BY d.rn) FILTER (WHERE d.rn <= $1), '[]'::json),
  'pageInfo', json_build_object(
    'hasNextPage', count(*) > $1,
    'endCursor', (array_agg({_CURSOR} ORDER BY d.rn DESC) FILTER (WHERE d.rn <= $1))[1]))
))::text
FROM (SELECT x.*, row_number() OVER (ORDER BY x.updated_at DESC, x.id DESC) AS rn
      FROM deals x ORDER BY x.updated_at DESC, x.id DESC LIMIT $1 + 1) d
LEFT JOIN users u ON u.id = d.owner_id
LEFT JOIN contacts c ON c.id = d.contact_id
LEFT JOIN companies co ON co.id = d.company_id
"""
# bench.cold_reads.CONTACTS: the first page of contactsConnection(first: $1) by
# lower(name), id, with each contact's company, cursors, pageInfo and totalCount.
_CONTACT_CURSOR = ("rtrim(translate(encode(convert_to('[' || to_json(k.key)::text || ', \"'"
                   " || k.id::text || '\"]', 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')")
CONTACTS_SQL = f"""
SELECT json_build_object('data', json_build_object('contactsConnection', json_build_object(
  'totalCount', (SELECT count(*) FROM contacts),
  'edges', COALESCE(json_agg(json_build_object(
    'cursor', {_CONTACT_CURSOR},
    'node', json_build_object(
      'id', encode(convert_to('Contact:' || k.id::text, 'UTF8'), 'base64'),
      'name', k.name, 'email', k.email,
      'company', CASE WHEN co.id IS NULL THEN NULL ELSE json_build_object(
        'id', encode(convert_to('Company:' || co.id::text, 'UTF8'), 'base64'),
        'name', co.name) END))
    ORDER BY k.rn) FILTER (WHERE k.rn <= $1), '[]'::json),
  'pageInfo', json_build_object(
    'hasNextPage', count(*) > $1,
    'endCursor', (array_agg({_CONTACT_CURSOR} ORDER BY k.rn DESC) FILTER (WHERE k.rn <= $1))[1]))
))::text
FROM (SELECT x.*, lower(x.name) AS key, row_number() OVER (ORDER BY lower(x.name), x.id) AS rn
      FROM contacts x ORDER BY lower(x.name), x.id LIMIT $1 + 1) k
LEFT JOIN companies co ON co.id = k.company_id
"""
NOT_FOUND = b'{"data":null,"errors":[{"message":"pipeline not found"}]}'


def decode_gid(value: str) -> uuid.UUID:
    kind, _, raw = base64.b64decode(value).decode().partition(":")
    if kind != "Pipeline":
        raise ValueError("not a pipeline id")
    return uuid.UUID(raw)


class Floor:
    def __init__(self) -> None:
        self.settings = Settings()
        self.verifier = Verifier(self.settings)
        self.pool: asyncpg.Pool | None = None

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                url = self.settings.resolved_app_database_url()
                dsn = url.replace("postgresql+asyncpg://", "postgresql://")
                self.pool = await asyncpg.create_pool(
                    dsn, min_size=self.settings.db_pool_size,
                    max_size=self.settings.db_pool_size)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] != "/graphql":
            await _respond(send, 200, b"ok", b"text/plain")
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode()
        if not authorization or not authorization.startswith("Bearer "):
            await _respond(send, 401, b'{"errors":[{"message":"authentication required"}]}')
            return
        principal = await self.verifier.verify(authorization[7:].strip())
        variables = orjson.loads(body)["variables"]
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)",
                               str(principal.tenant_id))
            if "first" in variables:  # the deal list
                result = await conn.fetchval(DEALS_SQL, int(variables["first"]))
            elif "contacts" in variables:  # the contact list
                result = await conn.fetchval(CONTACTS_SQL, int(variables["contacts"]))
            else:
                result = await conn.fetchval(FLOOR_SQL, decode_gid(variables["p"]),
                                             int(variables["n"]))
        await _respond(send, 200, result.encode() if result is not None else NOT_FOUND)


async def _respond(send: Any, status: int, body: bytes,
                   content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Floor:
    return Floor()


def main() -> None:
    import uvicorn

    uvicorn.run("bench.raw_floor:create_app", factory=True, host="127.0.0.1",
                port=int(os.environ.get("PORT", "8001")), loop="uvloop", http="httptools",
                log_level=os.environ.get("LOG_LEVEL", "warning").lower())


if __name__ == "__main__":
    main()
