"""Isolation enforced by PostgreSQL: catalog checks and cross-tenant attempts."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from saas.db import Database
from tenants.principal import Role
from tests.factories import TenantFactory

PREDICATE = "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"


async def tenant_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1
        """
    )
    return [r["relname"] for r in rows]


async def test_every_tenant_table_forces_rls_with_using_and_with_check(
    owner_conn: asyncpg.Connection,
) -> None:
    tables = await tenant_tables(owner_conn)
    assert {"teams", "users", "api_keys"} <= set(tables)
    for table in tables:
        flags = await owner_conn.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = $1 AND relnamespace = 'public'::regnamespace", table)
        assert (flags["relrowsecurity"], flags["relforcerowsecurity"]) == (True, True), table
        policies = await owner_conn.fetch(
            "SELECT cmd, permissive, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = $1", table)
        assert len(policies) == 1, (table, policies)
        policy = policies[0]
        assert (policy["cmd"], policy["permissive"]) == ("ALL", "PERMISSIVE"), table
        assert policy["qual"] == PREDICATE, (table, policy["qual"])
        assert policy["with_check"] == PREDICATE, (table, policy["with_check"])


async def test_app_role_owns_nothing_and_cannot_bypass(
    owner_conn: asyncpg.Connection, db: Database
) -> None:
    async with db.engine.connect() as conn:
        role = (await conn.execute(text("SELECT current_user"))).scalar_one()
    attrs = await owner_conn.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = $1", role)
    owned = await owner_conn.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = $1", role)
    assert role == "saas_app"
    assert dict(attrs) == {"rolsuper": False, "rolbypassrls": False,
                           "rolcreaterole": False, "rolcreatedb": False}
    assert owned == 0


async def test_every_unique_constraint_and_index_on_tenant_tables_includes_tenant_id(
    owner_conn: asyncpg.Connection,
) -> None:
    tables = await tenant_tables(owner_conn)
    rows = await owner_conn.fetch(
        """
        SELECT t.relname AS table, i.relname AS index,
               array(SELECT a.attname FROM unnest(x.indkey) k
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k) AS cols
        FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indisunique AND t.relname = ANY($1::text[])
        """, tables)
    assert rows, "expected unique indexes on tenant tables"
    offenders = [(r["table"], r["index"]) for r in rows if "tenant_id" not in r["cols"]]
    assert offenders == []


async def test_every_foreign_key_of_tenant_tables_includes_tenant_id(
    owner_conn: asyncpg.Connection,
) -> None:
    tables = await tenant_tables(owner_conn)
    rows = await owner_conn.fetch(
        """
        SELECT c.conname, t.relname AS table,
               array(SELECT a.attname FROM unnest(c.conkey) k
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k) AS cols
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE c.contype = 'f' AND t.relname = ANY($1::text[])
        """, tables)
    offenders = [(r["table"], r["conname"]) for r in rows if "tenant_id" not in r["cols"]]
    assert offenders == []


async def test_no_tenant_set_sees_zero_rows_and_cannot_write(
    tenants: TenantFactory, db: Database
) -> None:
    t = await tenants.create()
    async with db.unit_of_work(None) as uow:
        counts = [
            (await uow.session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("users", "teams", "api_keys")
        ]
    assert counts == [0, 0, 0]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.unit_of_work(None) as uow:
            await uow.session.execute(
                text("INSERT INTO teams (tenant_id, id, name) VALUES (:t, :i, 'x')"),
                {"t": t.id, "i": uuid.uuid4()},
            )


async def test_tenant_a_cannot_read_or_write_tenant_b_directly(
    tenants: TenantFactory, db: Database, owner_conn: asyncpg.Connection
) -> None:
    a = await tenants.create()
    b = await tenants.create()
    b_team = await b.add_team("B team")

    async with db.unit_of_work(a.id) as uow:
        visible = (await uow.session.execute(
            text("SELECT count(*) FROM users WHERE tenant_id = :b"), {"b": b.id})).scalar_one()
        updated = (await uow.session.execute(
            text("UPDATE teams SET name = 'hijacked' WHERE id = :id"), {"id": b_team})).rowcount
        deleted = (await uow.session.execute(
            text("DELETE FROM users WHERE tenant_id = :b"), {"b": b.id})).rowcount
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.unit_of_work(a.id) as uow:
            await uow.session.execute(
                text("INSERT INTO teams (tenant_id, id, name) VALUES (:b, :i, 'planted')"),
                {"b": b.id, "i": uuid.uuid4()},
            )

    assert (visible, updated, deleted) == (0, 0, 0)
    names = await owner_conn.fetch("SELECT name FROM teams WHERE tenant_id = $1", b.id)
    assert [r["name"] for r in names] == ["B team"]
    assert await owner_conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1", b.id) == 1


async def test_tenant_a_cannot_reach_b_through_graphql(tenants: TenantFactory) -> None:
    a = await tenants.create()
    b = await tenants.create()
    b_team = await b.add_team("Secret team")
    b_user = await b.add_user(Role.REP, team_id=b_team)
    from strawberry.relay import GlobalID

    data = await a.admin_caller.ok(
        "query($t: ID!, $u: ID!) { teams { name } users { email } "
        "t: node(id: $t) { id } u: node(id: $u) { id } }",
        t=str(GlobalID("Team", str(b_team))), u=str(GlobalID("User", str(b_user.user_id))),
    )
    bad_team = await a.admin_caller.ok(
        "mutation($t: ID!) { createUser(input: {email: \"x@y.io\", name: \"x\", role: REP, "
        "teamId: $t}) { user { id } errors { code field } } }",
        t=str(GlobalID("Team", str(b_team))),
    )

    assert data["teams"] == []
    assert [u["email"] for u in data["users"]] == [a.admin_email]
    assert data["t"] is None and data["u"] is None
    assert bad_team["createUser"] == {"user": None,
                                      "errors": [{"code": "NOT_FOUND", "field": "input.teamId"}]}


async def test_tenant_setting_never_leaks_across_pooled_connections(
    tenants: TenantFactory,
) -> None:
    handles = [await tenants.create() for _ in range(4)]
    callers = [(h, h.admin_caller) for h in handles]
    order = [random.Random(7).choice(callers) for _ in range(200)]

    async def one(handle, caller) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        data = await caller.ok("query { me { tenantId } tenant { slug } users { email } }")
        assert [u["email"] for u in data["users"]] == [handle.admin_email]
        return data["tenant"]["slug"], handle.slug

    results = await asyncio.gather(*(one(h, c) for h, c in order))

    mismatches = [r for r in results if r[0] != r[1]]
    assert len(results) == 200
    assert mismatches == []


async def test_unit_of_work_tenant_is_transaction_local(tenants: TenantFactory, db: Database) -> None:
    t = await tenants.create()
    async with db.unit_of_work(t.id) as uow:
        inside = (await uow.session.execute(
            text("SELECT current_setting('app.tenant_id', true)"))).scalar_one()
    # Hammer the pool so the same physical connections are reused.
    seen = set()
    for _ in range(30):
        async with db.unit_of_work(None) as uow:
            seen.add((await uow.session.execute(
                text("SELECT coalesce(current_setting('app.tenant_id', true), '')"))).scalar_one())
    assert inside == str(t.id)
    assert seen == {""}


async def test_every_tenant_table_primary_key_leads_with_tenant_id(
    owner_conn: asyncpg.Connection,
) -> None:
    """Citus readiness: each tenant table can be distributed by tenant_id and co-located
    (primary key, unique constraints and foreign keys all carry it; the last two are checked
    above)."""
    tables = await tenant_tables(owner_conn)
    rows = await owner_conn.fetch(
        """
        SELECT t.relname AS table,
               array(SELECT a.attname FROM unnest(c.conkey) k
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k) AS cols
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        WHERE c.contype = 'p' AND t.relname = ANY($1::text[])
        """, tables)
    with_pk = {r["table"]: list(r["cols"]) for r in rows}
    assert sorted(with_pk) == sorted(tables), "every tenant table needs a primary key"
    assert {t: cols[0] for t, cols in with_pk.items()} == {t: "tenant_id" for t in tables}


TENANT_SELF = "(id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"


async def test_tenants_are_readable_only_for_the_tenant_in_force(
    owner_conn: asyncpg.Connection, tenants: TenantFactory, db: Database,
) -> None:
    flags = await owner_conn.fetchrow(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'tenants' "
        "AND relnamespace = 'public'::regnamespace")
    policies = await owner_conn.fetch(
        "SELECT cmd, qual, with_check FROM pg_policies WHERE tablename = 'tenants'")
    assert (flags["relrowsecurity"], flags["relforcerowsecurity"]) == (True, True)
    assert [dict(p) for p in policies] == [{"cmd": "ALL", "qual": TENANT_SELF,
                                           "with_check": TENANT_SELF}]
    a, b = await tenants.create("Alpha"), await tenants.create("Beta")
    async with db.unit_of_work(a.id) as uow:
        seen = (await uow.session.execute(text("SELECT slug FROM tenants"))).scalars().all()
        renamed = (await uow.session.execute(
            text("UPDATE tenants SET name = 'taken' WHERE id = :b"), {"b": b.id})).rowcount
        found_b = (await uow.session.execute(text("SELECT tenant_by_slug(:s)"),
                                             {"s": b.slug})).scalar_one()
    async with db.unit_of_work(None) as uow:
        none_seen = (await uow.session.execute(text("SELECT count(*) FROM tenants"))).scalar_one()
        directory = (await uow.session.execute(
            text("SELECT * FROM tenant_directory() WHERE id = ANY(:ids)"),
            {"ids": [a.id, b.id]})).all()
    assert list(seen) == [a.slug]
    assert (renamed, none_seen) == (0, 0)
    assert found_b == b.id  # login's lookup: an id, nothing else
    assert {tuple(r._mapping.keys()) for r in directory} == {("id", "timezone")}
    assert await owner_conn.fetchval("SELECT name FROM tenants WHERE id = $1", b.id) == "Beta"


async def test_the_app_role_cannot_write_migration_bookkeeping_or_rewrite_the_audit_trail(
    owner_conn: asyncpg.Connection, db: Database,
) -> None:
    rows = await owner_conn.fetch(
        "SELECT t, p, has_table_privilege('saas_app', t, p) AS granted FROM "
        "unnest(ARRAY['alembic_version', 'audit_events']) t, "
        "unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p")
    granted = {(r["t"], r["p"]) for r in rows if r["granted"]}
    assert granted == {("audit_events", "INSERT")}
    with pytest.raises(DBAPIError, match="permission denied"):
        async with db.unit_of_work(None) as uow:
            await uow.session.execute(text("UPDATE alembic_version SET version_num = 'x'"))


async def test_security_definer_functions_are_pinned_owned_by_the_owner_and_not_public(
    owner_conn: asyncpg.Connection,
) -> None:
    rows = await owner_conn.fetch(
        "SELECT p.proname, pg_get_userbyid(p.proowner) AS owner, p.proconfig, "
        "has_function_privilege('saas_app', p.oid, 'EXECUTE') AS app, "
        "EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) AS public "
        "FROM pg_proc p "
        "WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace ORDER BY 1")
    assert [r["proname"] for r in rows] == ["job_outbox_tenants", "tenant_by_slug",
                                           "tenant_directory", "webhook_tenants"]
    for r in rows:
        assert r["owner"] != "saas_app"
        assert r["proconfig"] == ["search_path=public, pg_temp"], r
        assert (r["app"], r["public"]) == (True, False), r
