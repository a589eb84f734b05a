"""Count the SQL a piece of code sends to PostgreSQL, as the driver sees it.

SQLAlchemy's `before_cursor_execute` sees its own statements; asyncpg's query logger sees
what goes straight through the driver (BEGIN and COMMIT of SQLAlchemy's transactions, and
the board cache's version check). Together they are every round trip, each counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event

from saas.db import Database


@asynccontextmanager
async def statements(db: Database) -> AsyncIterator[list[str]]:
    seen: list[str] = []
    drivers: list[Any] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    def on_driver_query(record: Any) -> None:
        seen.append(" ".join(record.query.split()).rstrip(";"))

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(on_driver_query)
        drivers.append(driver)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "checkout", on_checkout)
    try:
        yield seen
        await asyncio.sleep(0.01)  # asyncpg calls its query loggers with call_soon
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "checkout", on_checkout)
        for driver in drivers:
            driver.remove_query_logger(on_driver_query)
