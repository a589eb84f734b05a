"""Exchange rates the tenant sets: amounts in the base currency on deals and in analytics
totals, the rate in force by date, typed failures that write nothing, tenant isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from tenants.principal import Role
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory, all_tables_snapshot

SET = """mutation($input: SetExchangeRateInput!) { setExchangeRate(input: $input) {
  exchangeRates { baseCurrency rates { currency validFrom rate } }
  errors { code field message } } }"""
DELETE = """mutation($input: DeleteExchangeRateInput!) { deleteExchangeRate(input: $input) {
  exchangeRates { rates { currency } } errors { code field message } } }"""
RATES = "query { exchangeRates { baseCurrency rates { currency validFrom rate } } }"
DEAL = "query($id: ID!) { node(id: $id) { ... on Deal { amount currency amountInBaseCurrency } } }"
VALUE = """query($p: ID!, $f: DateTime!, $t: DateTime!) {
  pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
    openValue { currency amount } valueInBaseCurrency { currency weighted open missingRates } } }"""


async def test_base_currency_amounts_follow_the_rate_in_force(tenants: TenantFactory) -> None:
    t, other = await tenants.create(), await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    usd = await create_deal(admin, pipeline["id"], "US", amount="1000")
    eur = await create_deal(admin, pipeline["id"], "EU", amount="200.50", currency="EUR")
    jpy = await create_deal(admin, pipeline["id"], "JP", amount="10000", currency="JPY")
    assert (await admin.ok(DEAL, id=usd["id"]))["node"]["amountInBaseCurrency"] == "1000.00"
    assert (await admin.ok(DEAL, id=eur["id"]))["node"]["amountInBaseCurrency"] is None
    today = date.today()
    await admin.ok(SET, input={"currency": "EUR", "validFrom": "2020-01-01", "rate": "1.05"})
    await admin.ok(SET, input={"currency": "EUR", "validFrom": today.isoformat(),
                               "rate": "1.1"})
    await admin.ok(SET, input={"currency": "EUR",
                               "validFrom": (today + timedelta(days=30)).isoformat(),
                               "rate": "9"})  # not in force yet
    result = await admin.ok(SET, input={"currency": "JPY", "validFrom": "2020-01-01",
                                        "rate": "0.0067"})
    listed = result["setExchangeRate"]["exchangeRates"]
    assert listed["baseCurrency"] == "USD"
    assert [(r["currency"], r["rate"]) for r in listed["rates"]] == [
        ("EUR", "1.05"), ("EUR", "1.1"), ("EUR", "9"), ("JPY", "0.0067")]
    assert (await admin.ok(DEAL, id=eur["id"]))["node"]["amountInBaseCurrency"] == "220.55"
    assert (await admin.ok(DEAL, id=jpy["id"]))["node"]["amountInBaseCurrency"] == "67.00"
    now = datetime.now(UTC)
    value = (await admin.ok(VALUE, p=pipeline["id"], f=(now - timedelta(days=1)).isoformat(),
                            t=(now + timedelta(days=1)).isoformat()))["pipelineAnalytics"]
    assert value["openValue"] == [{"currency": "EUR", "amount": "200.50"},
                                  {"currency": "JPY", "amount": "10000"},
                                  {"currency": "USD", "amount": "1000.00"}]
    assert value["valueInBaseCurrency"] == {
        "currency": "USD", "weighted": "64.37", "open": "1287.55", "missingRates": []}
    # 50.00 + 10.02 (EUR, already in cents) x 1.1 + 500 x 0.0067, in cents
    # Another tenant sees none of these rates.
    assert (await other.admin_caller.ok(RATES))["exchangeRates"]["rates"] == []
    await admin.ok(DELETE, input={"currency": "JPY", "validFrom": "2020-01-01"})
    value = (await admin.ok(VALUE, p=pipeline["id"], f=(now - timedelta(days=1)).isoformat(),
                            t=(now + timedelta(days=1)).isoformat()))["pipelineAnalytics"]
    assert value["valueInBaseCurrency"] == {"currency": "USD", "weighted": None, "open": None,
                                            "missingRates": ["JPY"]}


async def test_rate_failures_are_typed_and_write_nothing(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    manager = t.as_user(await t.add_user(Role.MANAGER))
    before = await all_tables_snapshot(owner_conn, t.id)
    for name, caller, mutation, variables, code, field in [
        ("base currency", admin, SET, {"currency": "USD", "validFrom": "2026-01-01",
                                       "rate": "2"}, "VALIDATION_FAILED", "currency"),
        ("unknown currency", admin, SET, {"currency": "XYZ", "validFrom": "2026-01-01",
                                          "rate": "2"}, "VALIDATION_FAILED", "currency"),
        ("zero rate", admin, SET, {"currency": "EUR", "validFrom": "2026-01-01", "rate": "0"},
         "VALIDATION_FAILED", "rate"),
        ("too precise", admin, SET, {"currency": "EUR", "validFrom": "2026-01-01",
                                     "rate": "1.00000000001"}, "VALIDATION_FAILED", "rate"),
        ("manager", manager, SET, {"currency": "EUR", "validFrom": "2026-01-01", "rate": "2"},
         "FORBIDDEN", None),
        ("delete unknown", admin, DELETE, {"currency": "EUR", "validFrom": "2026-01-01"},
         "NOT_FOUND", "validFrom"),
    ]:
        (result,) = (await caller.ok(mutation, input=variables)).values()
        assert [(e["code"], e["field"]) for e in result["errors"]][:1] == [(code, field)] or (
            field is None and [e["code"] for e in result["errors"]] == [code]), name
        assert await all_tables_snapshot(owner_conn, t.id) == before, name
