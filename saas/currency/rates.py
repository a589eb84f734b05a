"""Exchange rates: `rate` base-currency units per one unit of `currency`, from `valid_from`
on (until a later rate of the same currency). The tenant sets them (users:admin: tenant
settings); nothing is fetched from outside. Amounts in the base currency are converted with
the rate in force on the day asked about (today by default) and printed in its minor units;
a currency without a rate in force has no converted amount (null), never a guess.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import NotFound, ValidationFailed
from saas.money import check_currency, round_money
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_RATE = Decimal("1e12")


@dataclass
class Rates:
    """A tenant's rates, to convert many amounts with one read."""

    base: str
    by_currency: dict[str, list[tuple[date, Decimal]]] = field(default_factory=dict)

    def rate(self, currency: str, on: date) -> Decimal | None:
        currency = currency.strip()
        if currency == self.base:
            return Decimal(1)
        found = self.by_currency.get(currency)
        if not found:
            return None
        i = bisect.bisect_right([d for d, _ in found], on) - 1
        return found[i][1] if i >= 0 else None

    def convert(self, amount: Decimal, currency: str, on: date) -> Decimal | None:
        rate = self.rate(currency, on)
        return None if rate is None else round_money(amount * rate, self.base)

    def total(self, amounts: dict[str, Decimal], on: date) -> tuple[Decimal | None, list[str]]:
        """The sum in the base currency, and the currencies lacking a rate (then None)."""
        missing = sorted(c for c in amounts if self.rate(c, on) is None)
        if missing:
            return None, missing
        return round_money(sum((amounts[c] * (self.rate(c, on) or 0) for c in amounts),
                               Decimal(0)), self.base), []


async def load(uow: UnitOfWork) -> Rates:
    base: str = (await uow.session.execute(text(
        "SELECT base_currency FROM tenants WHERE id = :t"), {"t": uow.tenant_id})).scalar_one()
    rates = Rates(base.strip())
    rows = await uow.session.execute(text(
        "SELECT currency, valid_from, rate FROM exchange_rates ORDER BY currency, valid_from"))
    for r in rows:
        rates.by_currency.setdefault(r.currency.strip(), []).append((r.valid_from, r.rate))
    return rates


async def set_rate(*, uow: UnitOfWork, principal: Principal, currency: str, valid_from: date,
                   rate: Decimal) -> Rates:
    """Create or replace the rate of `currency` from `valid_from` on."""
    principal.require(Scope.USERS_ADMIN)
    check_currency(currency)
    rates = await load(uow)
    if currency == rates.base:
        raise ValidationFailed(f"{currency} is the base currency (its rate is always 1)",
                               field="currency")
    try:
        value = Decimal(str(rate))
    except InvalidOperation as e:
        raise ValidationFailed("rate must be a decimal number", field="rate") from e
    if not value.is_finite() or not Decimal(0) < value < MAX_RATE or \
            value.as_tuple().exponent < -10:  # type: ignore[operator]
        raise ValidationFailed("rate must be positive, below 1e12, with at most 10 decimals",
                               field="rate")
    await uow.session.execute(text(
        "INSERT INTO exchange_rates (tenant_id, currency, valid_from, rate, set_by) "
        "VALUES (:t, :c, :d, :r, :by) ON CONFLICT (tenant_id, currency, valid_from) "
        "DO UPDATE SET rate = EXCLUDED.rate, set_by = EXCLUDED.set_by, set_at = now()"),
        {"t": principal.tenant_id, "c": currency, "d": valid_from, "r": value,
         "by": principal.user_id})
    return await load(uow)


async def delete_rate(*, uow: UnitOfWork, principal: Principal, currency: str,
                      valid_from: date) -> None:
    principal.require(Scope.USERS_ADMIN)
    gone = (await uow.session.execute(text(
        "DELETE FROM exchange_rates WHERE currency = :c AND valid_from = :d RETURNING 1"),
        {"c": currency, "d": valid_from})).scalar_one_or_none()
    if gone is None:
        raise NotFound("no such exchange rate", field="validFrom")


