"""Per-tenant custom field definitions and the type check of deals' values."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.deals.models import CustomFieldDef
from saas.errors import Conflict, NotFound, ValidationFailed
from tenants.principal import Principal
from tenants.scopes import Scope

TYPES = ("text", "number", "boolean", "date", "choice")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_TEXT = 2000


async def define(
    *, uow: UnitOfWork, principal: Principal, key: str, label: str, type: str,
    choices: list[str] | None, required: bool,
) -> CustomFieldDef:
    principal.require(Scope.PIPELINES_WRITE)
    if not KEY.match(key):
        raise ValidationFailed("key must be snake_case, starting with a letter", field="key")
    if type not in TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TYPES)}", field="type")
    if type == "choice" and not choices:
        raise ValidationFailed("a choice field needs choices", field="choices")
    definition = CustomFieldDef(tenant_id=principal.tenant_id, id=uuid.uuid4(), key=key,
                                label=label.strip() or key, type=type,
                                choices=choices if type == "choice" else None, required=required)
    try:
        async with uow.session.begin_nested():
            uow.session.add(definition)
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a custom field {key!r} already exists", field="key") from e
    return definition


async def definitions(uow: UnitOfWork, *, include_archived: bool = False
                      ) -> dict[str, CustomFieldDef]:
    query = select(CustomFieldDef).order_by(CustomFieldDef.key)
    if not include_archived:
        query = query.where(CustomFieldDef.archived_at.is_(None))
    rows = await uow.session.execute(query)
    return {d.key: d for d in rows.scalars()}


async def _get(uow: UnitOfWork, key: str) -> CustomFieldDef:
    found = (await uow.session.execute(
        select(CustomFieldDef).where(CustomFieldDef.key == key).with_for_update())
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no custom field {key!r}", field="key")
    return found


async def update(*, uow: UnitOfWork, principal: Principal, key: str, label: str | None,
                 add_choices: list[str] | None, type: str | None,
                 required: bool | None) -> CustomFieldDef:
    """Rename a field, add choices, make it (not) required. A type never changes: values
    stored under the old type would no longer mean what they said."""
    principal.require(Scope.PIPELINES_WRITE)
    definition = await _get(uow, key)
    if type is not None and type != definition.type:
        raise ValidationFailed(
            f"a field's type cannot change ({definition.type} -> {type}): deals hold values "
            "of the current type; define a new field and archive this one", field="type")
    if label is not None:
        label = label.strip()
        if not label or len(label) > 200:
            raise ValidationFailed("label must be 1-200 characters", field="label")
        definition.label = label
    if add_choices:
        if definition.type != "choice":
            raise ValidationFailed("only choice fields have choices", field="addChoices")
        new = [c.strip() for c in add_choices]
        if any(not c or len(c) > 200 for c in new):
            raise ValidationFailed("choices are 1-200 characters", field="addChoices")
        current = list(definition.choices or [])
        definition.choices = current + [c for c in dict.fromkeys(new) if c not in current]
    if required is not None:
        definition.required = required
    await uow.session.flush()
    return definition


async def set_archived(*, uow: UnitOfWork, principal: Principal, key: str,
                       archived: bool) -> CustomFieldDef:
    """Archive (hidden, no new values; deals keep theirs) or restore a field."""
    principal.require(Scope.PIPELINES_WRITE)
    definition = await _get(uow, key)
    if (definition.archived_at is not None) == archived:
        raise Conflict(f"the field is {'already' if archived else 'not'} archived",
                       field="key")
    definition.archived_at = func.now() if archived else None
    await uow.session.flush()
    await uow.session.refresh(definition)
    return definition


def _check(definition: CustomFieldDef, value: Any) -> Any:
    field = f"customFields.{definition.key}"
    kind = definition.type
    if kind == "text" and isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    if kind == "choice" and value in (definition.choices or []):
        return value
    raise ValidationFailed(f"{definition.key} must be a valid {kind}", field=field)


async def validate(
    uow: UnitOfWork, values: dict[str, Any], *, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Merge `values` into `existing`; unknown keys and wrongly typed values are refused.
    A null value removes the field (unless it is required)."""
    if not isinstance(values, dict):  # the JSON scalar lets any JSON value through
        raise ValidationFailed("customFields must be an object of field keys to values",
                               field="customFields")
    every = await definitions(uow, include_archived=True)
    defs = {k: d for k, d in every.items() if d.archived_at is None}
    merged = dict(existing or {})
    for key, value in values.items():
        if key in every and key not in defs:
            raise ValidationFailed(f"custom field {key!r} is archived",
                                   field=f"customFields.{key}")
        if key not in defs:
            raise ValidationFailed(f"unknown custom field {key!r}", field=f"customFields.{key}")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _check(defs[key], value)
    missing = [k for k, d in defs.items() if d.required and k not in merged]
    if missing:
        raise ValidationFailed(f"required custom field {missing[0]!r} is missing",
                               field=f"customFields.{missing[0]}")
    return merged
