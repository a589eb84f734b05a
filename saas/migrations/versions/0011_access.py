"""Access control: scoped keys, user lifecycle, sessions, the audit trail, least privilege.

- audit_events: append-only, per tenant (RLS). The app role may INSERT and SELECT only
  (tenants/rls.py re-applies that after every grant), and a trigger refuses UPDATE and
  DELETE for every role, so even a mistaken grant cannot rewrite history.
- api_keys: a list of scopes instead of read/read_write (existing keys keep exactly what
  their alias meant when migrated), an optional expiry, the creating key, last-used address,
  and rotation (the previous secret's hash with the end of its grace period).
- users: auth_epoch (bumped when every token of the user must end: password changed or
  reset, deactivation), deactivated_at, password_changed_at.
- auth_sessions and refresh_tokens: login sessions whose refresh tokens rotate on every use
  (a used token presented again revokes the whole session: reuse detection).
- user_tokens: single-use, expiring tokens of invitations and password resets (hashes only).
- tenants: readable and writable only for the tenant in force (RLS on id); login finds a
  tenant by slug through tenant_by_slug() and the workers' fan-outs list tenants through
  tenant_directory(), both SECURITY DEFINER functions returning only ids (and time zones).
- auth_state() / api_key_state(): one statement each that enters the tenant and reads what
  the per-process authorisation cache needs (tenants/authcache.py).

Revision ID: 0011
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


AUDIT = """
CREATE TABLE audit_events (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  action text NOT NULL CHECK (action ~ '^[a-z][a-z_]*(\\.[a-z][a-z_]*)+$'),
  actor_user_id uuid,
  actor_api_key_id uuid,
  target_type text,
  target_id uuid,
  address text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_recent ON audit_events (tenant_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, occurred_at DESC);
CREATE INDEX audit_events_target ON audit_events (tenant_id, target_id, occurred_at DESC)
  WHERE target_id IS NOT NULL;
"""
APPEND_ONLY = [
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_events is append-only'
             USING ERRCODE = 'insufficient_privilege'; END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
]


READ = ["deals:read", "contacts:read", "analytics:read", "campaigns:read"]
READ_WRITE = [*READ, "deals:write", "contacts:write", "forecasts:write", "targets:write",
              "campaigns:write"]

KEYS = f"""
ALTER TABLE api_keys ADD COLUMN scopes text[];
UPDATE api_keys SET scopes = CASE scope WHEN 'read' THEN ARRAY{READ!r}::text[]
                                        ELSE ARRAY{READ_WRITE!r}::text[] END;
ALTER TABLE api_keys ALTER COLUMN scopes SET NOT NULL;
ALTER TABLE api_keys DROP COLUMN scope;
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz,
  ADD COLUMN created_by_api_key uuid,
  ADD COLUMN last_used_address text,
  ADD COLUMN rotated_at timestamptz,
  ADD COLUMN previous_secret_hash text,
  ADD COLUMN previous_expires_at timestamptz,
  ADD CONSTRAINT api_keys_name_length CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE users ADD COLUMN auth_epoch integer NOT NULL DEFAULT 1,
  ADD COLUMN deactivated_at timestamptz,
  ADD COLUMN password_changed_at timestamptz;
CREATE TABLE auth_sessions (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  user_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  last_refreshed_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text,
  address text,
  user_agent text,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX auth_sessions_user ON auth_sessions (tenant_id, user_id) WHERE revoked_at IS NULL;
CREATE TABLE refresh_tokens (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  session_id uuid NOT NULL,
  token_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  used_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, session_id) REFERENCES auth_sessions (tenant_id, id)
    ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (tenant_id, session_id);
CREATE TABLE user_tokens (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  user_id uuid NOT NULL,
  purpose text NOT NULL CHECK (purpose IN ('invitation', 'password_reset')),
  token_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX user_tokens_user ON user_tokens (tenant_id, user_id, purpose)
"""

TENANT_PREDICATE = "id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"

FUNCTIONS = [
    # Login: the one way to find a tenant without being in it. Only the id comes back.
    """CREATE FUNCTION tenant_by_slug(_slug text) RETURNS uuid
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
       AS $$ SELECT id FROM tenants WHERE slug = _slug $$""",
    # The workers' per-tenant fan-outs: ids and time zones, never names or slugs.
    """CREATE FUNCTION tenant_directory() RETURNS TABLE (id uuid, timezone text)
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
       AS $$ SELECT id, timezone FROM tenants ORDER BY id $$""",
    # What the authorisation cache needs about a user (and a session), in one statement:
    # it enters the tenant (transaction-local) and reads under RLS (SECURITY INVOKER).
    """CREATE FUNCTION auth_state(_tenant uuid, _user uuid, _session uuid)
       RETURNS TABLE (role text, team_id uuid, is_active boolean, auth_epoch integer,
                      session_found boolean, session_revoked boolean,
                      session_expires_at timestamptz)
       LANGUAGE plpgsql AS $$
       #variable_conflict use_column
       BEGIN
         PERFORM set_config('app.tenant_id', _tenant::text, true);
         RETURN QUERY SELECT u.role, u.team_id, u.is_active, u.auth_epoch,
                             s.id IS NOT NULL, s.revoked_at IS NOT NULL, s.expires_at
           FROM users u LEFT JOIN auth_sessions s ON s.id = _session AND s.user_id = u.id
           WHERE u.id = _user;
       END $$""",
    """CREATE FUNCTION api_key_state(_tenant uuid, _key uuid)
       RETURNS TABLE (secret_hash text, scopes text[], revoked_at timestamptz,
                      expires_at timestamptz, previous_secret_hash text,
                      previous_expires_at timestamptz, last_used_at timestamptz)
       LANGUAGE plpgsql AS $$
       #variable_conflict use_column
       BEGIN
         PERFORM set_config('app.tenant_id', _tenant::text, true);
         RETURN QUERY SELECT k.secret_hash, k.scopes, k.revoked_at, k.expires_at,
                             k.previous_secret_hash, k.previous_expires_at, k.last_used_at
           FROM api_keys k WHERE k.id = _key;
       END $$""",
]


def upgrade() -> None:
    role = _app_role()
    for statement in [*statements(AUDIT), *APPEND_ONLY, *statements(KEYS)]:
        op.execute(statement)
    for table in ("audit_events", "auth_sessions", "refresh_tokens", "user_tokens"):
        for statement in enable_tenant_rls(table):
            op.execute(statement)
    for statement in ("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY",
                      "ALTER TABLE tenants FORCE ROW LEVEL SECURITY",
                      f"CREATE POLICY tenant_self ON tenants USING ({TENANT_PREDICATE}) "
                      f"WITH CHECK ({TENANT_PREDICATE})"):
        op.execute(statement)
    for statement in FUNCTIONS:
        op.execute(statement)
    for function in ("tenant_by_slug(text)", "tenant_directory()"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    for function in ("api_key_state(uuid, uuid)", "auth_state(uuid, uuid, uuid)",
                     "tenant_directory()", "tenant_by_slug(text)"):
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP POLICY tenant_self ON tenants")
    op.execute("ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants DISABLE ROW LEVEL SECURITY")
    op.execute("DROP TABLE user_tokens, refresh_tokens, auth_sessions, audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.execute("ALTER TABLE users DROP COLUMN auth_epoch, DROP COLUMN deactivated_at, "
               "DROP COLUMN password_changed_at")
    op.execute("ALTER TABLE api_keys ADD COLUMN scope text NOT NULL DEFAULT 'read'")
    op.execute("UPDATE api_keys SET scope = 'read_write' WHERE 'deals:write' = ANY(scopes)")
    op.execute("ALTER TABLE api_keys DROP COLUMN scopes, DROP COLUMN expires_at, "
               "DROP COLUMN created_by_api_key, DROP COLUMN last_used_address, "
               "DROP COLUMN rotated_at, DROP COLUMN previous_secret_hash, "
               "DROP COLUMN previous_expires_at, DROP CONSTRAINT api_keys_name_length")
