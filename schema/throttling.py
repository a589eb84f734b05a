"""Rate limits at the edge: an operation's static cost spent from its buckets before it runs.

    cost > what a bucket can hold     refused before running: MAX_COST_EXCEEDED (no waiting
                                      would help), the cost and the bucket in the message
    buckets cannot pay now            429 THROTTLED, `retryAfterSeconds`, Retry-After and
                                      RateLimit-* headers; nothing ran, nothing was charged
    it ran                            what it requested but did not return is given back;
                                      `extensions.cost` has requested, actual and
                                      throttleStatus {maximumAvailable, currentlyAvailable,
                                      restoreRate} of the bucket that binds

The buckets (saas/ratelimit.py) are per API key (or user) and per tenant, in Redis.
"""

from __future__ import annotations

from typing import Any

import orjson

from saas import ratelimit
from saas.idempotency import principal_key
from schema.context import Context

Refusal = tuple[int, str, str, dict[str, Any], dict[str, str]]


async def spend(context: Context) -> Refusal | None:
    """Charge the operation; a refusal (status 0: a request error) when it cannot run."""
    limiter: ratelimit.Limiter | None = context.services.limiter
    principal, cost = context.principal, context.cost
    if limiter is None or principal is None or cost is None:
        return None
    budget = await limiter.budget(principal.tenant_id)
    largest = int(min(budget.key_maximum, budget.tenant_maximum))
    if cost.requested > largest:
        return (0, "MAX_COST_EXCEEDED",
                f"this operation costs {cost.requested} points, more than its rate-limit "
                f"bucket can hold ({largest}); ask for fewer objects (smaller `first`)",
                {"cost": {"requested": cost.requested, "maximumAvailable": largest}}, {})
    decision = await limiter.spend(principal.tenant_id, principal_key(principal),
                                   cost.requested, budget)
    if decision is None:  # Redis unreachable: let it through
        return None
    context.throttle = decision
    if decision.allowed:
        return None
    status = decision.throttle_status()
    return (429, "THROTTLED",
            f"throttled: this operation costs {cost.requested} points and the "
            f"{decision.bucket} bucket has {status['currentlyAvailable']}, restoring "
            f"{status['restoreRate']:g} per second: retry in {decision.retry_after} s",
            {"retryAfterSeconds": decision.retry_after,
             "cost": {"requested": cost.requested, "throttleStatus": status}},
            decision.headers())


async def settle(context: Context, data: Any) -> dict[str, Any]:
    """After the run: refund what was not returned; the cost extension's other fields."""
    decision: ratelimit.Decision | None = context.throttle
    if decision is None or context.principal is None or context.cost is None:
        return {}
    actual = max(ratelimit.objects_in(data) - 1, 0) if data is not None else 0
    # A compiled read's data is not inspectable here (JSON spliced as orjson.Fragment at its
    # root fields, beside resolver answers in a partial plan): charge what was asked.
    if actual == 0 or (isinstance(data, dict)
                       and any(isinstance(v, orjson.Fragment) for v in data.values())):
        actual = context.cost.requested
    actual = min(actual, context.cost.requested)
    refund = context.cost.requested - actual
    limiter: ratelimit.Limiter = context.services.limiter
    await limiter.refund(context.principal.tenant_id, principal_key(context.principal), refund,
                         decision.budget)
    status = decision.throttle_status()
    status["currentlyAvailable"] = min(status["maximumAvailable"],
                                       status["currentlyAvailable"] + refund)
    return {"actual": actual, "throttleStatus": status}
