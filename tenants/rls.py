"""Row-level security DDL used by migrations, so every tenant table gets the same policy."""

from __future__ import annotations

TENANT_PREDICATE = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def enable_tenant_rls(table: str) -> list[str]:
    """Statements that enable and force RLS on `table` with one USING + WITH CHECK policy."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})",
    ]


# Tables the application role may read and append to, but never change or delete from.
APPEND_ONLY_TABLES = ("audit_events",)


def grant_app_role(role: str) -> list[str]:
    """Give the application role data access (never ownership) to everything in `public`,
    then take back what it must never have: writes to Alembic's bookkeeping and changes to
    append-only tables (re-applied by every migration that grants, so a blanket grant cannot
    undo it)."""
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
        *(f"DO $$ BEGIN IF to_regclass('public.{table}') IS NOT NULL THEN "
          f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}; END IF; END $$"
          for table in APPEND_ONLY_TABLES),
    ]


def statements(sql: str) -> list[str]:
    """Split a DDL script on `;` line ends (asyncpg runs one statement per execute)."""
    return [s.strip() for s in sql.split(";\n") if s.strip().rstrip(";")]
