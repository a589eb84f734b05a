"""Amounts and currencies: decimal amounts, ISO 4217 codes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from saas.errors import ValidationFailed

# Active ISO 4217 codes (2024). Kept here rather than pulling a locale library for one set.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()
)
MAX_AMOUNT = Decimal("9999999999999999.99")


def check_currency(code: str, *, field: str = "currency") -> str:
    if code not in ISO_4217:
        raise ValidationFailed(f"{code!r} is not an ISO 4217 currency code", field=field)
    return code


def check_amount(value: Decimal | str | int | float, *, field: str = "amount") -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as e:
        raise ValidationFailed("amount must be a decimal number", field=field) from e
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed("amount must not be negative", field=field)
    if amount > MAX_AMOUNT or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValidationFailed("amount must have at most 2 decimals and 16 digits", field=field)
    return amount

# ISO 4217 currencies without minor units (amounts print as whole numbers); every other
# currency prints two decimals, the precision amounts are stored with (numeric(18, 2)).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split())
RATE_DIGITS = 4  # conversion and win rates, probabilities
DAYS_DIGITS = 2  # durations in days


def minor_units(currency: str) -> int:
    return 0 if currency.strip() in ZERO_DECIMAL else 2


def round_money(amount: Decimal, currency: str) -> Decimal:
    """An amount as responses print it: the currency's minor units, rounded half-even."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-minor_units(currency)))


def round_rate(value: float | None) -> float | None:
    return None if value is None else round(value, RATE_DIGITS)


def round_days(value: float | None) -> float | None:
    return None if value is None else round(value, DAYS_DIGITS)
