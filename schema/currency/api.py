"""Exchange rates (read: deals:read; set/delete: users:admin) and base-currency amounts."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import strawberry

from saas.currency import rates as rate_book
from schema.context import Info
from schema.errors import UserError
from schema.mutations import payload
from tenants.scopes import Scope


@strawberry.type(description="Base-currency units per one unit of `currency`, from validFrom.")
class ExchangeRate:
    currency: str
    valid_from: date
    rate: Decimal


@strawberry.type
class ExchangeRates:
    base_currency: str
    rates: list[ExchangeRate]

    @classmethod
    def of(cls, r: rate_book.Rates) -> ExchangeRates:
        return cls(base_currency=r.base, rates=[
            ExchangeRate(currency=c, valid_from=d, rate=v.normalize())
            for c, found in sorted(r.by_currency.items()) for d, v in found])


@strawberry.type
class ExchangeRatesPayload:
    exchange_rates: ExchangeRates | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetExchangeRateInput:
    currency: str
    valid_from: date
    rate: Decimal = strawberry.field(description="Base-currency units per one unit.")


@strawberry.input
class DeleteExchangeRateInput:
    currency: str
    valid_from: date


@strawberry.type
class CurrencyQuery:
    @strawberry.field(description="The tenant's base currency and the rates it set.")
    async def exchange_rates(self, info: Info) -> ExchangeRates:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            return ExchangeRates.of(await rate_book.load(uow))


@strawberry.type
class CurrencyMutation:
    @strawberry.mutation(description="Create or replace a rate from a date on (tenant settings).")
    async def set_exchange_rate(self, info: Info,
                                input: SetExchangeRateInput) -> ExchangeRatesPayload:
        principal = info.context.require_principal()

        async def act() -> ExchangeRatesPayload:
            principal.require(Scope.USERS_ADMIN)
            async with info.context.uow() as uow:
                found = await rate_book.set_rate(uow=uow, principal=principal,
                                             currency=input.currency,
                                             valid_from=input.valid_from, rate=input.rate)
            return ExchangeRatesPayload(exchange_rates=ExchangeRates.of(found))

        return await payload(ExchangeRatesPayload, act)

    @strawberry.mutation
    async def delete_exchange_rate(self, info: Info,
                                   input: DeleteExchangeRateInput) -> ExchangeRatesPayload:
        principal = info.context.require_principal()

        async def act() -> ExchangeRatesPayload:
            principal.require(Scope.USERS_ADMIN)
            async with info.context.uow() as uow:
                await rate_book.delete_rate(uow=uow, principal=principal, currency=input.currency,
                                        valid_from=input.valid_from)
                found = await rate_book.load(uow)
            return ExchangeRatesPayload(exchange_rates=ExchangeRates.of(found))

        return await payload(ExchangeRatesPayload, act)


async def request_rates(info: Info) -> rate_book.Rates:
    """The tenant's rates, read once per request, however many fields ask at once (without
    the lock, 6,000 deals' amountInBaseCurrency each opened a unit of work and queued for
    the pool, and cancelling them when the client left took 0.6 s of CPU)."""
    loaders = info.context.loaders
    if "rates" not in loaders:
        async with loaders.setdefault("rates-lock", asyncio.Lock()):
            if "rates" not in loaders:
                async with info.context.uow() as uow:
                    loaders["rates"] = await rate_book.load(uow)
    found: rate_book.Rates = loaders["rates"]
    return found
