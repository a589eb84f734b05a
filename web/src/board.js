// The board: stages as columns, deals as cards; drag to move (moveDeal with expectedVersion),
// other users' moves arrive through the boardEvents subscription and are applied in seq order.
import { ApiError, gql, onConnection, subscribe } from "./api.js";
import { el, money, notice, daysSince } from "./ui.js";

const CARD = `id title amount currency version temperature labels stageEnteredAt
  stage { id } owner { name } contact { name }`;
const BOARD = `query Board($p: ID!, $f: DateTime!, $t: DateTime!) {
  board(pipelineId: $p, dealsPerStage: 25) { pipelineName columns {
    stage { id name kind rottingDays } dealCount deals { ${CARD} } } }
  pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
    funnel { stageId amounts { amount currency } } } }`;
const DEAL = `query($id: ID!) { node(id: $id) { ... on Deal { ${CARD} } } }`;
const MOVE = `mutation($input: MoveDealInput!) { moveDeal(input: $input) {
  deal { ${CARD} } errors { code message ... on VersionConflictError { currentVersion currentStageId } } } }`;
// The last event of the pipeline's most recently updated deal: a cursor read before the board,
// so subscribing after it replays whatever the board's read might not include yet.
const HEAD = `query($p: ID!) { deals(first: 1, filter: {pipelineId: $p}, orderBy: UPDATED_AT_DESC) {
  edges { node { history { seq cursor } } } } }`;
const EVENTS = `subscription($p: ID!, $after: String) { boardEvents(pipelineId: $p, after: $after) {
  __typename
  ... on DealEvent { cursor seq dealId fromStageId toStageId occurredAt amount
    deal { id title amount currency version temperature stageId } }
  ... on ResyncRequired { reason lastCursor } } }`;

export class Board {
  constructor(root, { onOpen }) {
    this.root = root;
    this.onOpen = onOpen;
    this.cards = new Map(); // deal id -> card data
    this.columns = new Map(); // stage id -> {stage, count, amount, list element}
    this.lastSeq = 0;
    this.unsubscribe = null;
    this.wasConnected = false;
    onConnection((state) => {
      // A reconnect resubscribes after the last event seen (the payload holds its cursor).
      // Before the first event there is no cursor: reload the board's data instead.
      if (state === "connected" && this.wasConnected && this.pipelineId
          && this.payload.variables.after === null) this.load().catch(() => {});
      if (state === "connected") this.wasConnected = true;
    });
  }

  async show(pipelineId) {
    this.unsubscribe?.();
    this.pipelineId = pipelineId;
    this.lastSeq = 0;
    this.pending = [];
    this.loaded = false;
    // Cursor first, subscribe second, load third: every event after the cursor is replayed,
    // and those that arrive while the board loads are applied after it (a card's version
    // tells which of the two is newer, so what the board already shows is not applied twice).
    const head = (await gql(HEAD, { p: pipelineId })).deals.edges[0]?.node.history ?? [];
    const last = head.reduce((a, e) => (a && a.seq > e.seq ? a : e), null);
    this.payload = { query: EVENTS, variables: { p: pipelineId, after: last?.cursor ?? null } };
    this.unsubscribe = subscribe(this.payload, (data) => this.event(data.boardEvents),
      (e) => notice(`Live updates failed: ${e.message || e}`));
    await this.load();
  }

  async load() {
    const now = new Date();
    const from = new Date(now.getTime() - 90 * 86400e3);
    const data = await gql(BOARD, { p: this.pipelineId, f: from.toISOString(), t: now.toISOString() });
    const amounts = new Map(data.pipelineAnalytics.funnel.map((f) => [f.stageId, f.amounts]));
    this.cards.clear();
    this.columns.clear();
    this.root.replaceChildren(...data.board.columns.map((c) => this.column(c, amounts.get(c.stage.id) || [])));
    this.loaded = true;
    for (const event of this.pending.splice(0)) this.apply(event);
  }

  column({ stage, dealCount, deals }, amounts) {
    const list = el("ol", { class: "cards" });
    const head = el("header", {}, el("h2", {}, stage.name), el("span", { class: "count" }));
    const currency = amounts[0]?.currency || "USD"; // one currency per column; others not summed
    const amount = amounts.filter((a) => a.currency === currency).reduce((s, a) => s + Number(a.amount), 0);
    const col = { stage, count: dealCount, amount, currency, list, head };
    this.columns.set(stage.id, col);
    const section = el("section", { class: `column ${stage.kind.toLowerCase()}`, "data-stage-id": stage.id,
      "data-stage": stage.name }, head, list);
    section.addEventListener("dragover", (e) => { e.preventDefault(); section.classList.add("over"); });
    section.addEventListener("dragleave", () => section.classList.remove("over"));
    section.addEventListener("drop", (e) => {
      e.preventDefault();
      section.classList.remove("over");
      this.move(e.dataTransfer.getData("text/deal-id"), stage.id);
    });
    deals.forEach((d) => list.append(this.card(d)));
    this.header(col);
    return section;
  }

  header(col) {
    col.head.querySelector(".count").textContent = `${col.count} · ${money(col.amount, col.currency)}`;
  }

  card(deal) {
    const stage = this.columns.get(deal.stage.id)?.stage;
    const days = daysSince(deal.stageEnteredAt);
    const stale = stage?.kind === "OPEN" && stage.rottingDays && days > stage.rottingDays;
    const node = el("li", { class: `card ${deal.temperature.toLowerCase()}${stale ? " stale" : ""}`,
      draggable: "true", "data-deal-id": deal.id, "data-version": deal.version, title: deal.title },
    el("strong", { class: "title" }, deal.title),
    el("span", { class: "amount" }, money(deal.amount, deal.currency)),
    el("span", { class: "who" }, [deal.owner?.name, deal.contact?.name].filter(Boolean).join(" · ")),
    el("span", { class: "meta" }, `${deal.temperature.toLowerCase()} · ${Math.floor(days)} d in stage`,
      stale ? el("b", { class: "stale-mark" }, " stale") : ""),
    el("span", { class: "labels" }, ...deal.labels.map((l) => el("i", {}, l))));
    node.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/deal-id", deal.id));
    node.addEventListener("click", () => this.onOpen(deal.id));
    this.cards.set(deal.id, { ...deal, node });
    return node;
  }

  /** Show `deal` in its stage's column (first), keeping the columns' counts and amounts:
   * `before` is where it was if it is not on the board (a card beyond the first 25). */
  place(deal, before = null) {
    const old = this.cards.get(deal.id);
    const prev = old ? { stageId: old.stage.id, amount: old.amount } : before;
    old?.node.remove();
    const from = prev && this.columns.get(prev.stageId);
    const to = this.columns.get(deal.stage.id);
    if (from) {
      from.count -= 1;
      from.amount -= Number(prev.amount);
      this.header(from);
    }
    if (to) {
      to.count += 1;
      to.amount += Number(deal.amount);
      this.header(to);
      to.list.prepend(this.card(deal));
    } else {
      this.cards.delete(deal.id);
    }
  }

  async move(dealId, toStageId) {
    const card = this.cards.get(dealId);
    if (!card || card.stage.id === toStageId) return;
    const input = { dealId, toStageId, expectedVersion: card.version };
    if (this.columns.get(toStageId)?.stage.kind === "LOST") {
      input.lostReason = prompt(`Why was “${card.title}” lost?`, "price");
      if (!input.lostReason) return;
    }
    const { moveDeal } = await gql(MOVE, { input });
    const [error] = moveDeal.errors;
    if (!error) return this.place(moveDeal.deal);
    if (error.code === "VERSION_CONFLICT") {
      notice(`“${card.title}” was changed by someone else meanwhile; it is shown as it is now. Try again if you still want to move it.`, "conflict");
      return this.reload(dealId);
    }
    notice(error.message, "error");
  }

  async reload(dealId, before = null) {
    const { node } = await gql(DEAL, { id: dealId });
    if (node) this.place(node, before);
  }

  event(event) {
    if (event.__typename === "ResyncRequired") {
      this.payload.variables.after = event.lastCursor;
      return this.load();
    }
    if (!this.loaded) return this.pending.push(event);
    this.apply(event);
  }

  apply(event) {
    if (event.seq <= this.lastSeq) return; // replayed after a reconnect: seen already
    this.lastSeq = event.seq;
    this.payload.variables.after = event.cursor; // a reconnect resumes from here
    const card = this.cards.get(event.dealId);
    const d = event.deal;
    if (!d || (card && card.version >= d.version)) return;
    if (!card) {
      const before = event.fromStageId ? { stageId: event.fromStageId, amount: event.amount } : null;
      return this.reload(event.dealId, before);
    }
    const moved = card.stage.id !== d.stageId;
    this.place({ ...card, ...d, stage: { id: d.stageId },
      stageEnteredAt: moved ? event.occurredAt : card.stageEnteredAt });
  }
}

export function describe(error) {
  return error instanceof ApiError ? error.message : String(error);
}
