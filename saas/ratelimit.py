"""Rate limits by query cost: a leaky bucket per API key (or user) and one per tenant, in Redis.

Each bucket holds up to `maximum` points and refills at `restore_rate` points per second. An
operation costs its static cost (schema/cost.py), known before it runs; it runs only if both
of its buckets hold that much, and then both are charged, in one Lua script, so every API
process shares the same buckets and two of them cannot both spend the last points. After
the operation ran, what it requested but did not return is given back (`refund`). An
operation that costs more than a bucket can ever hold is refused without waiting.

Budgets come from the tenant's plan (RATE_LIMIT_PLANS). When Redis is unreachable the
limiter lets requests through (and logs it): rate limiting protects availability, it must
not take it away.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy import text

from saas.db import Database

log = logging.getLogger("saas.ratelimit")
PLAN_CACHE_SECONDS = 60.0

# KEYS: key bucket, tenant bucket. ARGV: cost, now, key max, key rate, tenant max, tenant rate.
# A bucket is a hash {level, at}. Returns {allowed, key level, tenant level, wait seconds}.
_SPEND = """
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local levels = {}
for i = 1, 2 do
  local max = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level = tonumber(state[1]) or max
  local at = tonumber(state[2]) or now
  level = math.min(max, level + math.max(0, now - at) * rate)
  levels[i] = level
end
local wait = 0
for i = 1, 2 do
  local rate = tonumber(ARGV[2 + 2 * i])
  if levels[i] < cost then
    wait = math.max(wait, (cost - levels[i]) / rate)
  end
end
local allowed = 0
if wait == 0 then
  allowed = 1
  for i = 1, 2 do levels[i] = levels[i] - cost end
end
for i = 1, 2 do
  local max = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', KEYS[i], 'level', tostring(levels[i]), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[i], math.ceil(max / rate) + 60)
end
return {allowed, tostring(levels[1]), tostring(levels[2]), tostring(wait)}
"""
# KEYS: key bucket, tenant bucket. ARGV: points, key max, tenant max.
_REFUND = """
for i = 1, 2 do
  local level = tonumber(redis.call('HGET', KEYS[i], 'level'))
  if level then
    local max = tonumber(ARGV[1 + i])
    redis.call('HSET', KEYS[i], 'level', tostring(math.min(max, level + tonumber(ARGV[1]))))
  end
end
return 1
"""


class Budget(BaseModel):
    """The buckets of one plan: per API key (or user) and per tenant."""

    key_maximum: float = Field(default=2000, ge=1)
    key_restore_rate: float = Field(default=100.0, gt=0)
    tenant_maximum: float = Field(default=10000, ge=1)
    tenant_restore_rate: float = Field(default=500.0, gt=0)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    cost: int
    budget: Budget
    key_level: float
    tenant_level: float
    wait_seconds: float
    bucket: str  # which bucket decides: "key" or "tenant"

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.wait_seconds))

    def throttle_status(self) -> dict[str, Any]:
        """Shopify's shape, for the bucket that binds (the fuller of the two is irrelevant)."""
        if self.bucket == "key":
            maximum, level, rate = (self.budget.key_maximum, self.key_level,
                                    self.budget.key_restore_rate)
        else:
            maximum, level, rate = (self.budget.tenant_maximum, self.tenant_level,
                                    self.budget.tenant_restore_rate)
        return {"bucket": self.bucket, "maximumAvailable": int(maximum),
                "currentlyAvailable": max(0, math.floor(level)), "restoreRate": rate}

    def headers(self) -> dict[str, str]:
        status = self.throttle_status()
        remaining = status["currentlyAvailable"]
        reset = math.ceil((status["maximumAvailable"] - remaining) / status["restoreRate"])
        window = math.ceil(status["maximumAvailable"] / status["restoreRate"])
        result = {"RateLimit-Limit": str(status["maximumAvailable"]),
                  "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset),
                  "RateLimit-Policy": f"{status['maximumAvailable']};w={window}"}
        if not self.allowed:
            result["Retry-After"] = str(self.retry_after)
        return result


class Limiter:
    """Spends operation costs from Redis buckets shared by every API process."""

    def __init__(self, redis: Any, db: Database, plans: dict[str, Budget], prefix: str,
                 default_plan: str = "standard") -> None:
        self.redis = redis
        self.db = db
        self.plans = plans
        self.prefix = prefix
        self.default_plan = default_plan
        self._plans: dict[uuid.UUID, tuple[float, str]] = {}
        self._spend = redis.register_script(_SPEND)
        self._refund = redis.register_script(_REFUND)

    async def budget(self, tenant_id: uuid.UUID) -> Budget:
        cached = self._plans.get(tenant_id)
        now = time.monotonic()
        if cached is None or now - cached[0] > PLAN_CACHE_SECONDS:
            async with self.db.unit_of_work(tenant_id) as uow:
                plan = (await uow.session.execute(text(
                    "SELECT plan FROM tenants WHERE id = :t"), {"t": tenant_id})).scalar()
            cached = (now, str(plan or self.default_plan))
            self._plans[tenant_id] = cached
        return self.plans.get(cached[1]) or self.plans[self.default_plan]

    def _keys(self, tenant_id: uuid.UUID, principal_key: str) -> list[str]:
        return [f"{self.prefix}:key:{tenant_id}:{principal_key}",
                f"{self.prefix}:tenant:{tenant_id}"]

    async def spend(self, tenant_id: uuid.UUID, principal_key: str, cost: int,
                    budget: Budget) -> Decision | None:
        """Charge `cost` to both buckets if they hold it; None when Redis is unreachable."""
        try:
            allowed, key_level, tenant_level, wait = await self._spend(
                keys=self._keys(tenant_id, principal_key),
                args=[cost, time.time(), budget.key_maximum, budget.key_restore_rate,
                      budget.tenant_maximum, budget.tenant_restore_rate])
        except RedisError as e:
            log.warning("rate limits not applied: Redis unreachable (%s)", e)
            return None
        key_level, tenant_level = float(key_level), float(tenant_level)
        key_wait = max(0.0, (cost - key_level) / budget.key_restore_rate)
        tenant_wait = max(0.0, (cost - tenant_level) / budget.tenant_restore_rate)
        if int(allowed):
            bucket = ("key" if key_level / budget.key_maximum
                      <= tenant_level / budget.tenant_maximum else "tenant")
        else:
            bucket = "key" if key_wait >= tenant_wait else "tenant"
        return Decision(bool(int(allowed)), cost, budget, key_level, tenant_level,
                        float(wait), bucket)

    async def refund(self, tenant_id: uuid.UUID, principal_key: str, points: int,
                     budget: Budget) -> None:
        if points <= 0:
            return
        try:
            await self._refund(keys=self._keys(tenant_id, principal_key),
                               args=[points, budget.key_maximum, budget.tenant_maximum])
        except RedisError as e:
            log.warning("rate limit refund skipped: Redis unreachable (%s)", e)


def objects_in(data: Any) -> int:
    """The objects a response's `data` holds: what the operation actually cost."""
    if isinstance(data, dict):
        return 1 + sum(objects_in(v) for v in data.values())
    if isinstance(data, list):
        return sum(objects_in(v) for v in data)
    return 0
