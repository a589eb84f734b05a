"""Alembic migrations: the schema's source of truth, run as the owner role."""
