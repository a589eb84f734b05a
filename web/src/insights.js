// Funnel and forecast charts (Chart.js), this week's plan-fact per rep, and the deal drawer.
import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController,
  LineElement, PointElement, Tooltip,
} from "chart.js";
import { gql } from "./api.js";
import { el, money } from "./ui.js";

Chart.register(BarController, BarElement, CategoryScale, Filler, Legend, LinearScale,
  LineController, LineElement, PointElement, Tooltip);
Chart.defaults.animation = false; // charts are read, not watched (and screenshots are stable)

const charts = {};
function draw(id, config) {
  charts[id]?.destroy();
  charts[id] = new Chart(document.getElementById(id), config);
  document.getElementById(id).dataset.ready = "true";
}

const FUNNEL = `query($p: ID!, $f: DateTime!, $t: DateTime!) {
  pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
    conversion { name kind reached advanced rate } outcomes { won lost winRate } } }`;

export async function showFunnel(pipelineId) {
  const now = new Date();
  const { pipelineAnalytics: a } = await gql(FUNNEL, { p: pipelineId,
    f: new Date(now.getTime() - 90 * 86400e3).toISOString(), t: now.toISOString() });
  const stages = a.conversion.filter((c) => c.kind !== "lost");
  draw("funnel-chart", {
    type: "bar",
    data: { labels: stages.map((s) => s.name), datasets: [
      { label: "reached (last 90 days)", data: stages.map((s) => s.reached), backgroundColor: "#4f7cac" },
      { label: "advanced", data: stages.map((s) => s.advanced), backgroundColor: "#9bc1bc" }] },
    options: { indexAxis: "y", plugins: { title: { display: true },
      legend: { position: "bottom" } } },
  });
}

const FORECASTS = `query($p: ID!) { forecasts(pipelineId: $p, first: 5) { status finishedAt result } }`;

export async function showForecast(pipelineId) {
  const { forecasts } = await gql(FORECASTS, { p: pipelineId });
  const done = forecasts.find((f) => f.status === "DONE");
  const note = document.getElementById("forecast-note");
  if (!done) {
    note.textContent = "No finished forecast yet for this pipeline.";
    return;
  }
  const r = done.result;
  note.textContent = `Forecast of ${new Date(r.asOf).toLocaleDateString()} from ${r.openDeals} open deals and ${r.eventsUsed} events: expected deals per stage and won amount per month, with its 80% band.`;
  const months = r.horizons.map((h) => `+${h.horizon} mo`);
  const open = r.stages.filter((s) => s.kind === "open");
  const colors = ["#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"];
  const won = (h, key) => h.expectedWonAmount.reduce((s, m) => s + m[key], 0);
  draw("forecast-chart", {
    data: { labels: months, datasets: [
      ...open.map((s, i) => ({ type: "bar", label: s.name, stack: "occupancy", yAxisID: "deals",
        data: r.horizons.map((h) => h.occupancy[s.id]), backgroundColor: colors[i % colors.length], order: 2 })),
      { type: "line", label: "won amount, low", yAxisID: "amount", data: r.horizons.map((h) => won(h, "low")),
        borderColor: "rgba(230,120,40,.5)", pointRadius: 0, fill: false, order: 1, band: true },
      { type: "line", label: "won amount, high", yAxisID: "amount", data: r.horizons.map((h) => won(h, "high")),
        borderColor: "rgba(230,120,40,.5)", backgroundColor: "rgba(230,120,40,.3)", pointRadius: 0, fill: "-1", order: 1, band: true },
      { type: "line", label: "won amount (expected)", yAxisID: "amount", data: r.horizons.map((h) => won(h, "amount")),
        borderColor: "#e67828", backgroundColor: "#e67828", borderWidth: 3, order: 0 }] },
    options: { scales: {
      deals: { type: "linear", position: "left", stacked: true, title: { display: true, text: "open deals per stage" } },
      amount: { type: "linear", position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "won amount" } },
      x: { stacked: true } },
    plugins: { legend: { position: "bottom", labels: { filter: (item, data) => !data.datasets[item.datasetIndex].band } } } },
  });
}

const PLAN_FACT = `query($s: Date!) { planFact(period: {kind: WEEK, start: $s}) {
  period { start end } currency reps { name metrics { metric target actual attainmentPercent } } } }`;
const METRICS = ["WON_AMOUNT", "WON_COUNT", "NEW_DEALS", "ACTIVITIES_DONE"];

function monday(d = new Date()) {
  const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
  return day.toISOString().slice(0, 10);
}

export async function showPlanFact(root) {
  const { planFact } = await gql(PLAN_FACT, { s: monday() });
  const head = el("tr", {}, el("th", {}, "Rep"), ...METRICS.map((m) => el("th", {}, m.toLowerCase().replace("_", " "))));
  const cell = (f, m) => {
    if (!f) return el("td", {}, "–");
    const v = (x) => (m === "WON_AMOUNT" ? money(x, planFact.currency) : Number(x).toFixed(0));
    const pct = f.attainmentPercent === null ? "" : ` (${Math.round(f.attainmentPercent)}%)`;
    return el("td", {}, `${v(f.actual)} / ${f.target === null ? "–" : v(f.target)}${pct}`);
  };
  const rows = planFact.reps.map((r) => el("tr", {}, el("th", {}, r.name),
    ...METRICS.map((m) => cell(r.metrics.find((f) => f.metric === m), m))));
  root.replaceChildren(el("h2", {}, `Plan-fact, week of ${planFact.period.start} (actual / target)`),
    el("table", { class: "planfact" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

const DEAL = `query($id: ID!) { node(id: $id) { ... on Deal { id title amount currency temperature
  stage { name } owner { name } contact { name email } company { name }
  nextActivity { kind subject dueAt }
  history { seq kind fromStageId toStageId occurredAt lostReason } pipeline { stages { id name } } } } }`;

export async function showDeal(drawer, dealId) {
  const { node: d } = await gql(DEAL, { id: dealId });
  const names = new Map(d.pipeline.stages.map((s) => [s.id, s.name]));
  const when = (iso) => new Date(iso).toLocaleDateString();
  const step = (e) => el("li", {}, `${when(e.occurredAt)} ${e.kind.toLowerCase()}`,
    e.toStageId && e.kind !== "UPDATED" ? ` → ${names.get(e.toStageId) || "?"}` : "",
    e.lostReason ? ` (${e.lostReason})` : "");
  const next = d.nextActivity;
  drawer.replaceChildren(
    el("button", { class: "close", type: "button", "aria-label": "Close" }, "×"),
    el("h2", {}, d.title),
    el("p", {}, `${money(d.amount, d.currency)} · ${d.stage.name} · ${d.temperature.toLowerCase()}`),
    el("p", {}, `Owner: ${d.owner?.name || "–"} · Contact: ${d.contact?.name || "–"}${d.company ? ` (${d.company.name})` : ""}`),
    el("h3", {}, "Next activity"),
    el("p", { class: "next" }, next ? `${next.kind.toLowerCase()}: ${next.subject}, due ${when(next.dueAt)}` : "none planned"),
    el("h3", {}, "History"),
    el("ol", { class: "history" }, ...[...d.history].reverse().map(step)));
  drawer.hidden = false;
  drawer.querySelector(".close").addEventListener("click", () => (drawer.hidden = true));
}
