// Log in, pick a segment, switch between the board and the charts.
import "./style.css";
import { disconnect, gql, login, onConnection, session } from "./api.js";
import { Board, describe } from "./board.js";
import { showDeal, showForecast, showFunnel, showPlanFact } from "./insights.js";
import { el, notice } from "./ui.js";

const $ = (id) => document.getElementById(id);
const board = new Board($("view-board"), { onOpen: (id) => showDeal($("drawer"), id).catch(fail) });
let view = "board";
let pipelineId = null;

function fail(e) {
  notice(describe(e), "error");
}

onConnection((state) => {
  $("live").textContent = state === "connected" ? "live" : "reconnecting…";
  $("live").className = `live ${state}`;
});

async function render() {
  for (const name of ["board", "funnel", "forecast", "planfact"]) $(`view-${name}`).hidden = name !== view;
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  if (view === "funnel") await showFunnel(pipelineId);
  if (view === "forecast") await showForecast(pipelineId);
  if (view === "planfact") await showPlanFact($("view-planfact"));
}

async function start() {
  $("login").hidden = true;
  $("shell").hidden = false;
  const data = await gql(`{ tenant { name } me { user { name email role } }
    segments { name pipeline { id } } }`);
  $("tenant-name").textContent = data.tenant.name;
  $("me").textContent = `${data.me.user.name} (${data.me.user.role.toLowerCase()})`;
  $("segment").replaceChildren(...data.segments.map((s) => el("option", { value: s.pipeline.id }, s.name)));
  pipelineId = data.segments[0].pipeline.id;
  await board.show(pipelineId);
  await render();
  document.body.dataset.ready = "true";
}

$("segment").addEventListener("change", async (e) => {
  pipelineId = e.target.value;
  await board.show(pipelineId).catch(fail);
  await render().catch(fail);
});

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  view = b.dataset.view;
  render().catch(fail);
}));

$("logout").addEventListener("click", async () => {
  await gql("mutation { logout { errors { code } } }").catch(() => {});
  session.set(null);
  disconnect();
  location.reload();
});

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    await login(f.get("tenant"), f.get("email"), f.get("password"));
    await start();
  } catch (err) {
    $("login-error").textContent = describe(err);
  }
});

if (session.get()) start().catch(() => { session.set(null); $("login").hidden = false; });
else $("login").hidden = false;
