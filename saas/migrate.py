"""Run the Alembic migrations programmatically (the `saas migrate` command and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from saas.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(owner_url: str, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    config.attributes["app_role"] = settings.app_db_role
    config.attributes["app_password"] = settings.app_db_password
    return config


def upgrade(owner_url: str, settings: Settings, revision: str = "head") -> None:
    """Bring the database to `revision` as the owner role (creates the app role if needed)."""
    command.upgrade(alembic_config(owner_url, settings), revision)
