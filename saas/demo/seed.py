"""Fill a freshly provisioned tenant with six months of believable history (deterministic by seed).

Two segments with different stage sets (the default funnel and a renewals pipeline), three
teams, a manager per team and reps, ~500 deals whose stage histories come from
saas/demo/history.py (the benchmark data's generator), activities done and due, weekly and
monthly targets, a campaign, plan-fact snapshots of past weeks, and one finished forecast.

Rows are written as the application role under the tenant's row-level security, through
the same unit of work as every request; people, segments and the campaign go through their
services (so they are validated and audited like any other).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import text

from saas.campaigns import service as campaigns
from saas.db import Database, UnitOfWork
from saas.demo import history
from saas.demo.people import COMPANIES, FIRST_NAMES, LAST_NAMES, TEAMS
from saas.forecasting import service as forecasting
from saas.pipelines import service as pipelines
from saas.pipelines.templates import StageSpec
from saas.planning import service as planning
from tenants import service as tenant_service
from tenants import users
from tenants.principal import Principal, Role

DEMO_SEED = 18
DEMO_PASSWORD = "demo-password"
HISTORY_DAYS = 183
EVENTS_PER_DEAL = 6.0
RENEWALS = "Renewals"
RENEWAL_STAGES = (
    StageSpec("Renewal due", "open", Decimal("0.30"), 30),
    StageSpec("Contacted", "open", Decimal("0.50"), 14),
    StageSpec("Quote sent", "open", Decimal("0.75"), 10),
    StageSpec("Renewed", "won", Decimal("1")),
    StageSpec("Churned", "lost", Decimal("0")),
)
LABELS = ("vip", "partner", "expansion", "inbound", "q-end")
ACTIVITY_KINDS = ("call", "meeting", "email", "task")
ACTIVITY_SUBJECTS = {"call": "Discovery call", "meeting": "Demo meeting",
                     "email": "Send follow-up", "task": "Prepare proposal"}


@dataclass(frozen=True)
class DemoSummary:
    """What seeding wrote (printed by `saas dev` and `saas tenant create --demo`)."""

    users: int
    deals: int
    events: int
    activities: int
    forecast_status: str


def _uuids(rng: np.random.Generator, n: int) -> list[uuid.UUID]:
    raw = rng.bytes(16 * n)
    return [uuid.UUID(bytes=raw[i:i + 16], version=4) for i in range(0, 16 * n, 16)]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


async def _people(uow: UnitOfWork, admin: Principal) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Three teams, each with a manager and three reps; returns (user, team) of each."""
    people = []
    for t, team_name in enumerate(TEAMS):
        team = await tenant_service.create_team(uow=uow, principal=admin, name=team_name)
        for j in range(4):
            first = FIRST_NAMES[(t * 4 + j) % len(FIRST_NAMES)]
            last = LAST_NAMES[(t * 7 + j * 3) % len(LAST_NAMES)]
            role = Role.MANAGER if j == 0 else Role.REP
            email = f"{first.lower()}@demo.example"
            user, _ = await users.create(uow=uow, principal=admin, email=email,
                                         name=f"{first} {last}", role=role, team_id=team.id,
                                         password=DEMO_PASSWORD)
            people.append((user.id, team.id))
    return people


async def _contacts(uow: UnitOfWork, rng: np.random.Generator, tenant_id: uuid.UUID,
                    n: int) -> list[tuple[uuid.UUID, str]]:
    """Companies and their contacts; returns (contact, company name) of each contact."""
    company_ids = _uuids(rng, len(COMPANIES))
    await uow.session.execute(text(
        "INSERT INTO companies (tenant_id, id, name, domain) VALUES (:t, :id, :name, :domain)"),
        [{"t": tenant_id, "id": c, "name": name,
          "domain": name.lower().replace(" ", "") + ".example"}
         for c, name in zip(company_ids, COMPANIES, strict=True)])
    contact_ids = _uuids(rng, n)
    rows = []
    for k, c in enumerate(contact_ids):
        first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
        last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
        company = k % len(COMPANIES)
        domain = COMPANIES[company].lower().replace(" ", "") + ".example"
        rows.append({"t": tenant_id, "id": c, "name": f"{first} {last}",
                     "email": f"{first.lower()}.{last.lower()}{k}@{domain}",
                     "company": company_ids[company]})
    await uow.session.execute(text(
        "INSERT INTO contacts (tenant_id, id, name, email, company_id) "
        "VALUES (:t, :id, :name, :email, :company)"), rows)
    return [(c, COMPANIES[k % len(COMPANIES)]) for k, c in enumerate(contact_ids)]


@dataclass
class _PipelineRun:
    pipeline_id: uuid.UUID
    stage_ids: list[uuid.UUID]
    lost_stage: int
    h: history.Histories
    deal_ids: list[uuid.UUID]
    owners: list[uuid.UUID]


async def _stage_ids(uow: UnitOfWork, pipeline_id: uuid.UUID) -> tuple[list[uuid.UUID],
                                                                         list[str]]:
    stages = await pipelines.list_stages(uow=uow, pipeline_id=pipeline_id)
    return [s.id for s in stages], [s.kind for s in stages]


def _simulate(rng: np.random.Generator, pipeline_id: uuid.UUID, stage_ids: list[uuid.UUID],
              kinds: list[str], deals: int, end_s: float,
              reps: list[uuid.UUID]) -> _PipelineRun:
    layout = history.Layout.of(kinds)
    deal_ids = _uuids(rng, deals)
    h = history.simulate(rng, deals, end_s=end_s, history_days=HISTORY_DAYS,
                         events_per_deal=EVENTS_PER_DEAL, layout=layout)
    owners = [reps[int(i)] for i in rng.integers(0, len(reps), deals)]
    return _PipelineRun(pipeline_id, stage_ids, layout.lost, h, deal_ids, owners)


async def _write_deals(uow: UnitOfWork, rng: np.random.Generator, tenant_id: uuid.UUID,
                       runs: list[_PipelineRun], contacts: list[tuple[uuid.UUID, str]],
                       now: datetime, currency: str) -> int:
    """Deals and their stage events; one per-tenant seq across pipelines, in time order."""
    all_times = np.concatenate([r.h.times for r in runs])
    order = np.argsort(all_times, kind="stable")
    seqs = np.empty(all_times.size, dtype=np.int64)
    seqs[order] = np.arange(1, all_times.size + 1)
    offset = 0
    deal_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    n = 0
    for r in runs:
        h = r.h
        amounts = np.round(rng.lognormal(8.6, 0.9, len(r.deal_ids)) / 50) * 50
        temps = np.array(["hot", "warm", "cold"])[rng.integers(0, 3, len(r.deal_ids))]
        close_days = rng.integers(-20, 120, len(r.deal_ids))
        label_pick = rng.random((len(r.deal_ids), len(LABELS))) < 0.12
        contact_pick = rng.integers(0, len(contacts), len(r.deal_ids))
        for d, deal_id in enumerate(r.deal_ids):
            first, last = int(h.starts[d]), int(h.starts[d] + h.n_ev[d] - 1)
            stage = int(h.stage[d])
            amount = Decimal(int(max(amounts[d], 100)))
            lost_reason = (history.LOST_REASONS[int(h.reason[h.last_lost[d]])]
                           if stage == r.lost_stage else None)
            contact, company_name = contacts[int(contact_pick[d])]
            deal_rows.append({
                "t": tenant_id, "id": deal_id, "p": r.pipeline_id, "s": r.stage_ids[stage],
                "owner": r.owners[d], "contact": contact,
                "title": f"{company_name}: {_TITLES[(n + d) % len(_TITLES)]}",
                "amount": amount, "cur": currency,
                "close": (now + timedelta(days=int(close_days[d]))).date(),
                "temp": str(temps[d]),
                "labels": [lab for lab, on in zip(LABELS, label_pick[d], strict=True) if on],
                "lost": lost_reason, "version": int(h.n_ev[d]),
                "entered": _when(h.times[h.entered[d]]), "created": _when(h.times[first]),
                "updated": _when(h.times[last])})
            for i in range(first, last + 1):
                kind = history.KINDS[int(h.kind[i])]
                event_rows.append({
                    "t": tenant_id, "seq": int(seqs[offset + i]), "deal": deal_id,
                    "p": r.pipeline_id, "kind": kind,
                    "from": r.stage_ids[int(h.from_stage[i])] if h.from_stage[i] >= 0 else None,
                    "to": r.stage_ids[int(h.to_stage[i])], "actor": r.owners[d],
                    "amount": amount, "cur": currency,
                    "reason": history.LOST_REASONS[int(h.reason[i])] if kind == "lost" else None,
                    "data": '{"changed": ["amount"]}' if kind == "updated" else "{}",
                    "at": _when(h.times[i])})
        offset += h.n_events
        n += len(r.deal_ids)
    await uow.session.execute(text("""
        INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, owner_id, contact_id, title,
                           amount, currency, expected_close_date, temperature, labels,
                           lost_reason, version, stage_entered_at, created_at, updated_at)
        VALUES (:t, :id, :p, :s, :owner, :contact, :title, :amount, :cur, :close, :temp,
                :labels, :lost, :version, :entered, :created, :updated)"""), deal_rows)
    await uow.session.execute(text("""
        INSERT INTO stage_events (tenant_id, seq, deal_id, pipeline_id, kind, from_stage_id,
                                  to_stage_id, actor_user_id, amount, currency, lost_reason,
                                  data, occurred_at)
        VALUES (:t, :seq, :deal, :p, :kind, :from, :to, :actor, :amount, :cur, :reason,
                CAST(:data AS jsonb), :at)"""), event_rows)
    await uow.session.execute(text("UPDATE tenant_counters SET event_seq = :n"),
                              {"n": len(event_rows)})
    return len(event_rows)


_TITLES = ("CRM rollout", "Analytics add-on", "Support plan", "Team licences", "Data migration",
           "Onboarding package", "API integration", "Annual subscription", "Pilot project",
           "Security review", "Training days", "Platform upgrade")


async def _activities(uow: UnitOfWork, rng: np.random.Generator, tenant_id: uuid.UUID,
                      runs: list[_PipelineRun], now: datetime) -> int:
    """Done activities along each deal's life; an upcoming (or overdue) one on open deals."""
    rows = []
    now_s = now.timestamp()
    for r in runs:
        h = r.h
        done_counts = rng.poisson(1.5, len(r.deal_ids))
        for d, deal_id in enumerate(r.deal_ids):
            t0 = float(h.times[h.starts[d]])
            for _ in range(int(done_counts[d])):
                kind = ACTIVITY_KINDS[int(rng.integers(len(ACTIVITY_KINDS)))]
                done = t0 + float(rng.random()) * (now_s - 600 - t0)
                rows.append({"t": tenant_id, "id": uuid.UUID(bytes=rng.bytes(16), version=4),
                             "deal": deal_id, "kind": kind, "subject": ACTIVITY_SUBJECTS[kind],
                             "owner": r.owners[d], "due": _when(done), "done": _when(done),
                             "created": _when(t0)})
            if int(h.stage[d]) < r.lost_stage and r.stage_ids and rng.random() < 0.7:
                kind = ACTIVITY_KINDS[int(rng.integers(len(ACTIVITY_KINDS)))]
                due = now_s + float(rng.uniform(-3, 10)) * 86400
                rows.append({"t": tenant_id, "id": uuid.UUID(bytes=rng.bytes(16), version=4),
                             "deal": deal_id, "kind": kind, "subject": ACTIVITY_SUBJECTS[kind],
                             "owner": r.owners[d], "due": _when(due), "done": None,
                             "created": _when(min(due, now_s) - 86400)})
    await uow.session.execute(text("""
        INSERT INTO activities (tenant_id, id, deal_id, kind, subject, owner_id, due_at, done_at,
                                created_at)
        VALUES (:t, :id, :deal, :kind, :subject, :owner, :due, :done, :created)"""), rows)
    return len(rows)


async def _targets(uow: UnitOfWork, rng: np.random.Generator, tenant_id: uuid.UUID,
                   people: list[tuple[uuid.UUID, uuid.UUID]], admin: uuid.UUID,
                   today: date) -> list[date]:
    """Weekly targets for the last eight weeks and this one, monthly ones for this month."""
    this_week = planning.week_start(today)
    weeks = [this_week - timedelta(weeks=k) for k in range(8, -1, -1)]
    rows = []
    for user_id, _team in people:
        for w in weeks:
            for metric, value in (("won_amount", 2500 + 500 * int(rng.integers(0, 6))),
                                  ("won_count", 1 + int(rng.integers(0, 2))),
                                  ("new_deals", 2 + int(rng.integers(0, 3))),
                                  ("activities_done", 3 + int(rng.integers(0, 4)))):
                rows.append({"t": tenant_id, "id": uuid.UUID(bytes=rng.bytes(16), version=4),
                             "u": user_id, "team": None, "k": "week", "s": w, "m": metric,
                             "v": Decimal(value), "by": admin})
    for team_id in sorted({team for _, team in people}):
        rows.append({"t": tenant_id, "id": uuid.UUID(bytes=rng.bytes(16), version=4),
                     "u": None, "team": team_id, "k": "month", "s": today.replace(day=1),
                     "m": "won_amount", "v": Decimal(40000), "by": admin})
    await uow.session.execute(text("""
        INSERT INTO targets (tenant_id, id, user_id, team_id, period_kind, period_start, metric,
                             value, set_by)
        VALUES (:t, :id, :u, :team, :k, :s, :m, :v, :by)"""), rows)
    return weeks[:-1]


async def _campaign(uow: UnitOfWork, admin: Principal, pipeline_id: uuid.UUID) -> None:
    spec = campaigns.CampaignSpec(
        name="Welcome new leads", trigger="deal_created", recipient="contact",
        pipeline_ids=[pipeline_id],
        steps=[campaigns.StepSpec(
            subject="Thanks for your interest, {{ contact.first_name }}",
            body=("Hello {{ contact.first_name }},\n\nthanks for talking to us about "
                  "{{ deal.title }}. {{ owner.name }} will be in touch this week.\n\n"
                  "-- {{ tenant.name }}\n")),
            campaigns.StepSpec(
            subject="Any questions about {{ deal.title }}?",
            body=("Hello {{ contact.first_name }},\n\njust checking in.\n\n"
                  "-- {{ owner.name }}\n"),
            delay_days=3)])
    await campaigns.create(uow=uow, principal=admin, spec=spec)


async def seed(*, db: Database, admin: Principal, seed: int = DEMO_SEED,
               deals: int = 500, now: datetime | None = None) -> DemoSummary:
    """Seed the admin's (new, empty) tenant; the same seed and `now` give the same rows."""
    tenant_id = admin.tenant_id
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rng = np.random.default_rng([seed, 0])
    async with db.unit_of_work(tenant_id) as uow:
        people = await _people(uow, admin)
        (_seg, default_pipeline), = await pipelines.list_segments(uow=uow)
        _segment, renewals = await pipelines.create_segment(
            uow=uow, principal=admin, name=RENEWALS, stages=RENEWAL_STAGES)
        contacts = await _contacts(uow, rng, tenant_id, max(50, deals // 2))
        reps = [u for u, _ in people]
        runs = []
        for pipeline_id, share in ((default_pipeline.id, 0.8), (renewals.id, 0.2)):
            ids, kinds = await _stage_ids(uow, pipeline_id)
            runs.append(_simulate(rng, pipeline_id, ids, kinds, round(deals * share),
                                  now.timestamp(), reps))
        # The tenant's base currency, so plan-fact's won amounts (base currency) count them.
        currency = str((await uow.session.execute(text(
            "SELECT base_currency FROM tenants WHERE id = :t"), {"t": tenant_id})).scalar_one())
        events = await _write_deals(uow, rng, tenant_id, runs, contacts, now, currency.strip())
        acts = await _activities(uow, rng, tenant_id, runs, now)
        past_weeks = await _targets(uow, rng, tenant_id, people, admin.user_id or reps[0],
                                    now.date())
        await _campaign(uow, admin, default_pipeline.id)
    async with db.unit_of_work(tenant_id) as uow:
        for week in past_weeks:
            await planning.snapshot(uow=uow, kind="week", start=week)
        forecast = await forecasting.request(
            uow=uow, principal=admin, relay=None, enqueue=False, pipeline_id=default_pipeline.id,
            horizon_months=6, team_id=None, owner_id=None)
    status = await forecasting.run(db=db, tenant_id=tenant_id, forecast_id=forecast.id)
    return DemoSummary(users=len(people) + 1, deals=sum(len(r.deal_ids) for r in runs),
                       events=events, activities=acts, forecast_status=status)
