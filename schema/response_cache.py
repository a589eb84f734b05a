"""Rendered board responses, served only while the tenant's board version is unchanged.

A team board is the hottest read and the same for everyone in a tenant (every member and
every key reads every deal, see saas/deals/permissions.py). Rendering 200 cards through
GraphQL costs milliseconds; checking whether anything changed costs one indexed read. So the
API keeps the exact response bytes of a board query, keyed by tenant, document, operation
name and variables, with the tenant's board version at render time, and serves them again
only when the version read in the request's own RLS transaction is still that one.

Why this never serves a stale or another tenant's board:
- The key starts with the tenant of the authenticated principal; nothing client-supplied
  picks the tenant.
- Every committed write to a table a cacheable selection can read (CACHEABLE below; the
  tables are in migration 0007) bumps `board_versions` in the same transaction (a deferred
  trigger, so no code path can forget it).
- The version is read *before* rendering (its own statement, then the render's
  transaction): the rendering sees at least that version's data, so an entry never holds
  data older than its version. A request serves an entry only when the version it reads
  now equals the entry's.
- Only documents whose every field is in CACHEABLE are cached; anything else (history,
  activities, other root fields, mutations, errors) goes through GraphQL as usual.

Concurrent misses of the same key and version wait for one rendering instead of each
rendering the board (a writer invalidates every board of its tenant at once).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    visit,
)
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncTransaction

from saas.db import Database, UnitOfWork
from saas.errors import NotFound
from schema.nodes import decode_id

RESPONSE_CACHE = Counter("saas_board_cache_total",
                         "Board queries by how they were answered", ["result"])

# (type, field) pairs a cached board may select: board structure, stage, pipeline name and
# the card's own columns with owner, contact and company. Not history, activities or
# nextActivity (tables the version does not cover) and no other root field.
_ANY = "*"
CACHEABLE: dict[str, frozenset[str]] = {
    "Query": frozenset({"board"}),
    "Board": frozenset({_ANY}),
    "BoardColumn": frozenset({_ANY}),
    "Stage": frozenset({_ANY}),
    "Deal": frozenset({"id", "title", "amount", "currency", "temperature", "labels",
                       "customFields", "expectedCloseDate", "probabilityOverride",
                       "lostReason", "version", "stageEnteredAt", "createdAt", "updatedAt",
                       "stage", "owner", "contact", "company"}),
    "User": frozenset({_ANY}),
    "Contact": frozenset({_ANY}),
    "Company": frozenset({_ANY}),
}

# Set app.tenant_id and read the version in one statement: of one pipeline's boards
# (migration 0019) or, when the document's pipeline is not known, of all the tenant's (0007).
ENTER_SQL = "SELECT enter_tenant_board_version($1)"
ENTER_PIPELINE_SQL = "SELECT enter_board_version($1, $2)"


def _allowed(type_name: str, field: str) -> bool:
    fields = CACHEABLE.get(type_name)
    return (fields is not None and (_ANY in fields or field in fields)) or field == "__typename"


class _Check(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.ok = True
        self.pipelines: set[tuple[str, str] | None] = set()

    def enter_field(self, node: FieldNode, *_: Any) -> Any:
        parent = self.type_info.get_parent_type()
        if parent is None or not _allowed(parent.name, node.name.value):
            self.ok = False
            return self.BREAK
        if parent.name == "Query" and node.name.value == "board":
            argument = next((a.value for a in node.arguments or ()
                             if a.name.value == "pipelineId"), None)
            if isinstance(argument, StringValueNode):
                self.pipelines.add(("literal", argument.value))
            elif isinstance(argument, VariableNode):
                self.pipelines.add(("variable", argument.name.value))
            else:
                self.pipelines.add(None)
        return None


@dataclass(frozen=True)
class Cacheable:
    """A cacheable document, and where its one board's pipeline id is (a literal or a
    variable), when it has exactly one: its entries then follow that pipeline's version."""

    pipeline: tuple[str, str] | None


def cacheable(schema: GraphQLSchema, document: DocumentNode,
              operation: OperationDefinitionNode) -> Cacheable | None:
    """Is this a document of exactly one operation, a query, that only selects CACHEABLE
    fields? (The edge already parsed and validated it and picked the operation.)"""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operation.operation != OperationType.QUERY:
        return None
    type_info = TypeInfo(schema)
    check = _Check(type_info)
    visit(document, TypeInfoVisitor(type_info, check))
    if not check.ok:
        return None
    return Cacheable(next(iter(check.pipelines)) if len(check.pipelines) == 1 else None)


def pipeline_of(doc: Cacheable, variables: dict[str, Any] | None) -> uuid.UUID | None:
    """The pipeline whose version covers this request's board, or None: the tenant's."""
    if doc.pipeline is None:
        return None
    kind, value = doc.pipeline
    raw = value if kind == "literal" else (variables or {}).get(value)
    if not isinstance(raw, str):
        return None
    try:
        return decode_id(raw, "Pipeline", field="pipelineId")
    except NotFound:
        return None  # the resolver reports it; errors are never cached


class Lease:
    """One connection of the pool, used by one request of one tenant."""

    def __init__(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.transaction: AsyncTransaction | None = None
        self.sessions: list[AsyncSession] = []

    async def version(self, pipeline_id: uuid.UUID | None = None) -> int:
        """The board version of `pipeline_id` (or of all the tenant's boards): ONE statement
        and no explicit transaction (the function sets app.tenant_id and reads under RLS
        inside its implicit transaction). Straight on the driver connection: SQLAlchemy
        would open a transaction first."""
        driver = (await self.conn.get_raw_connection()).driver_connection
        assert driver is not None
        if pipeline_id is None:
            value = await driver.fetchval(ENTER_SQL, self.tenant_id)
        else:
            value = await driver.fetchval(ENTER_PIPELINE_SQL, self.tenant_id, pipeline_id)
        return int(value or 0)

    async def render(self) -> UnitOfWork:
        """A transaction and an ORM unit of work in it to render the board in: BEGIN, the
        board statement (board_rows enters the tenant itself, migration 0009), COMMIT."""
        self.transaction = await self.conn.begin()
        session = AsyncSession(bind=self.conn, expire_on_commit=False)
        self.sessions.append(session)
        return UnitOfWork(session=session, tenant_id=self.tenant_id)


@dataclass(frozen=True)
class Entry:
    version: int
    body: bytes


Key = tuple[uuid.UUID, str, str | None, bytes]


class ResponseCache:
    """Per-process LRU of board responses; see the module docstring for why it is safe."""

    def __init__(self, schema: GraphQLSchema, db: Database, *, max_entries: int,
                 max_entry_bytes: int, max_bytes: int = 256 * 1024 * 1024,
                 max_documents: int = 256) -> None:
        self.schema = schema
        self.db = db
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self.max_bytes = max_bytes  # all entries' bodies together
        self.size_bytes = 0
        self.max_documents = max_documents
        # by document digest
        self._documents: OrderedDict[str, Cacheable | None] = OrderedDict()
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._inflight: dict[tuple[Key, int], asyncio.Future[bytes | None]] = {}

    def is_cacheable(self, sha256: str, document: DocumentNode,
                     operation: OperationDefinitionNode) -> Cacheable | None:
        if sha256 not in self._documents:
            known = cacheable(self.schema, document, operation)
            self._documents[sha256] = known
            if len(self._documents) > self.max_documents:
                self._documents.popitem(last=False)
        else:
            known = self._documents[sha256]
            self._documents.move_to_end(sha256)
        return known

    @staticmethod
    def key(tenant_id: uuid.UUID, sha256: str, operation_name: str | None,
            variables: object) -> Key:
        return (tenant_id, sha256, operation_name,
                orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))

    @asynccontextmanager
    async def enter(self, tenant_id: uuid.UUID) -> AsyncIterator[Lease]:
        """A pooled connection for one request of `tenant_id`: `version()` checks the board
        version in one statement; `render()` opens the transaction a miss renders in."""
        async with self.db.engine.connect() as conn:
            lease = Lease(conn, tenant_id)
            try:
                yield lease
                if lease.transaction is not None:
                    await lease.transaction.commit()
            finally:
                for session in lease.sessions:
                    await session.close()

    def get(self, key: Key, version: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry.version != version:
            return None
        self._entries.move_to_end(key)
        return entry.body

    def put(self, key: Key, version: int, body: bytes) -> None:
        if len(body) > min(self.max_entry_bytes, self.max_bytes):
            return
        current = self._entries.get(key)
        if current is not None and current.version > version:
            return  # a newer rendering is already there
        if current is not None:
            self.size_bytes -= len(current.body)
        self._entries[key] = Entry(version, body)
        self._entries.move_to_end(key)
        self.size_bytes += len(body)
        while len(self._entries) > self.max_entries or self.size_bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size_bytes -= len(evicted.body)

    def inflight(self, key: Key, version: int) -> asyncio.Future[bytes | None] | None:
        return self._inflight.get((key, version))

    def lead(self, key: Key, version: int) -> asyncio.Future[bytes | None]:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._inflight[(key, version)] = future
        return future

    def finish(self, key: Key, version: int, body: bytes | None) -> None:
        future = self._inflight.pop((key, version), None)
        if body is not None:
            self.put(key, version, body)
        if future is not None and not future.done():
            future.set_result(body)
