"""Per-request DataLoaders: one query per type per batch, under the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from schema.context import Info


def by_id(info: Info, model: Any) -> DataLoader[uuid.UUID, Any]:
    """The request's loader of `model` rows by id (missing ids load as None)."""
    key = f"by_id:{model.__tablename__}"
    loaders = info.context.loaders
    if key not in loaders:
        context = info.context

        async def load(ids: list[uuid.UUID]) -> list[Any]:
            async with context.uow() as uow:
                rows = await uow.session.execute(select(model).where(model.id.in_(ids)))
                items: list[Any] = list(rows.scalars())
                found: dict[uuid.UUID, Any] = {r.id: r for r in items}
            return [found.get(i) for i in ids]

        loaders[key] = DataLoader(load_fn=load)
    loader: DataLoader[uuid.UUID, Any] = loaders[key]
    return loader
