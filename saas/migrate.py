"""Run the Alembic migrations programmatically (the `saas migrate` command and tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from saas.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(owner_url: str, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    role, password = settings.app_role_credentials()
    if not role.isidentifier():
        raise ValueError(f"the application role name {role!r} is not a plain identifier")
    config.attributes["app_role"] = role
    config.attributes["app_password"] = password
    return config


def upgrade(owner_url: str, settings: Settings, revision: str = "head") -> None:
    """Bring the database to `revision` as the owner role (creates the app role if needed)."""
    config = alembic_config(owner_url, settings)
    command.upgrade(config, revision)
    if config.attributes["app_password"]:
        # Applied on every run (not only when the role is created), so rotating it works.
        asyncio.run(_set_password(owner_url, config.attributes["app_role"],
                                  config.attributes["app_password"]))


async def _set_password(owner_url: str, role: str, password: str) -> None:
    import asyncpg

    dsn = make_url(owner_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        literal = await conn.fetchval("SELECT quote_literal($1)", password)
        await conn.execute(f"ALTER ROLE {role} PASSWORD {literal}")
    finally:
        await conn.close()
