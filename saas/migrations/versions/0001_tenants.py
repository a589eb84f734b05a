"""Tenants, teams, users, API keys, the application role and its grants.

Revision ID: 0001
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _app_role() -> tuple[str, str | None]:
    attrs = op.get_context().config.attributes
    return attrs.get("app_role", "saas_app"), attrs.get("app_password")


def upgrade() -> None:
    role, password = _app_role()
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$;
        """
    )
    if password:
        op.execute(f"ALTER ROLE {role} PASSWORD '{password.replace(chr(39), chr(39) * 2)}'")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in statements(
        """
        CREATE TABLE tenants (
          id uuid PRIMARY KEY,
          slug varchar(63) NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
          name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
          base_currency char(3) NOT NULL DEFAULT 'USD',
          timezone text NOT NULL DEFAULT 'UTC',
          sender_email text,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE teams (
          tenant_id uuid NOT NULL REFERENCES tenants(id),
          id uuid NOT NULL,
          name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (tenant_id, id),
          UNIQUE (tenant_id, name)
        );
        CREATE TABLE users (
          tenant_id uuid NOT NULL REFERENCES tenants(id),
          id uuid NOT NULL,
          email text NOT NULL,
          name text NOT NULL,
          role text NOT NULL CHECK (role IN ('admin', 'manager', 'rep')),
          team_id uuid,
          password_hash text,
          is_active boolean NOT NULL DEFAULT true,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (tenant_id, id),
          FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id)
        );
        CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, lower(email));
        CREATE TABLE api_keys (
          tenant_id uuid NOT NULL REFERENCES tenants(id),
          id uuid NOT NULL,
          name text NOT NULL,
          secret_hash text NOT NULL,
          scope text NOT NULL CHECK (scope IN ('read', 'read_write')),
          created_by uuid,
          created_at timestamptz NOT NULL DEFAULT now(),
          revoked_at timestamptz,
          last_used_at timestamptz,
          PRIMARY KEY (tenant_id, id),
          FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
        );
        """
    ):
        op.execute(statement)
    for table in ("teams", "users", "api_keys"):
        for statement in enable_tenant_rls(table):
            op.execute(statement)
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE api_keys, users, teams, tenants")
