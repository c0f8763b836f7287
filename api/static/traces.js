// The dashboard's trace view: recent sampled messages and one trace's waterfall
// (producer -> Kafka -> gateway process/encode/broadcast), read from Jaeger through
// the REST service (GET /api/v1/traces, /api/v1/traces/{id}: docs/protocol.md §6.3).
//
// Shown only when the API has a Jaeger URL (dashboard.json "traces": true); otherwise
// the panel stays hidden and nothing is requested. ?key= is sent as X-API-Key.

import { pickTrace, rank, replaces } from "./tracepick.js";
import { fmtDuration, layout } from "./waterfall.js";

const LIST_EVERY_MS = 5000;
const LIST_LIMIT = 15;
const params = new URLSearchParams(location.search);
const headers = params.get("key") ? { "X-API-Key": params.get("key") } : {};
const panel = document.getElementById("traces");

// pickedRank: the selection was the page's own choice, of this rank (a fuller trace may
// replace it); null when the user clicked it
const state = { selected: "", pickedRank: null, traces: [], loaded: 0, error: "" };
window.mdgwTraces = state; // for the console and the browser tests

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

async function getJson(path) {
  const res = await fetch(path, { headers, cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function build() {
  panel.replaceChildren();
  const h = el("h2", null, "Traces ");
  h.id = "h-traces";
  h.append(el("small", null, "sampled messages, from Jaeger"));
  const body = el("div", "trace-body");
  const list = el("ol", "trace-list");
  list.id = "trace-list";
  const wf = el("div", "waterfall");
  wf.id = "waterfall";
  wf.dataset.spans = "0";
  const status = el("p", "trace-status");
  status.id = "trace-status";
  body.append(list, wf);
  panel.append(h, status, body);
  panel.setAttribute("aria-labelledby", "h-traces");
  panel.hidden = false;
  document.body.classList.add("has-traces");
}

function fmtClock(us) {
  return new Date(us / 1000).toISOString().slice(11, 23);
}

function renderList() {
  const list = document.getElementById("trace-list");
  list.replaceChildren(
    ...state.traces.map((t) => {
      const li = el("li", t.trace_id === state.selected ? "sel" : "");
      const b = el("button");
      b.type = "button";
      b.dataset.trace = t.trace_id;
      b.append(
        el("span", "t-time", fmtClock(t.start_us)),
        el("span", "t-stream", t.stream || t.root),
        el("span", "t-dur", fmtDuration(t.duration_us)),
        el("span", "t-n", t.complete === false ? `${t.spans} spans, partial` : `${t.spans} spans`),
      );
      if (t.complete === false) b.title = "its producer span has not reached Jaeger (yet)";
      b.addEventListener("click", () => select(t.trace_id, null));
      li.append(b);
      return li;
    }),
  );
  const status = document.getElementById("trace-status");
  status.textContent = state.error || (state.traces.length ? "" : "no sampled traces yet (MDGW_TELEMETRY_TRACING=1)");
}

function renderWaterfall(trace) {
  const wf = document.getElementById("waterfall");
  const { rows, duration } = layout(trace);
  const head = el("div", "wf-head");
  head.append(
    el("span", "wf-id", trace.trace_id),
    el("span", null, `${fmtDuration(duration)} · ${trace.services.join(", ")}`),
  );
  const scale = el("div", "wf-row wf-scale");
  scale.append(el("span", "wf-name", "span"), el("span", "wf-dur", "duration"));
  const ticks = el("span", "wf-track");
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const t = el("span", "wf-tick", fmtDuration(duration * f));
    t.style.left = `${f * 100}%`;
    ticks.append(t);
  }
  scale.append(ticks);
  const out = [head, scale];
  for (const r of rows) {
    const row = el("div", `wf-row k-${r.kind}`);
    row.dataset.service = r.service;
    row.dataset.operation = r.operation;
    const name = el("span", "wf-name");
    name.style.paddingLeft = `${r.depth * 14}px`;
    name.append(el("b", `svc svc-${r.service.replace(/[^a-z0-9-]/gi, "")}`, r.service), el("span", null, ` ${r.operation}`));
    name.title = Object.entries(r.attributes || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    const track = el("span", "wf-track");
    const bar = el("span", "wf-bar");
    bar.style.left = `${r.left}%`;
    bar.style.width = `${Math.min(r.width, 100 - r.left)}%`;
    track.append(bar);
    row.append(name, el("span", "wf-dur", fmtDuration(r.duration_us)), track);
    out.push(row);
  }
  wf.replaceChildren(...out);
  wf.dataset.spans = String(rows.filter((r) => r.kind !== "kafka").length);
  wf.dataset.trace = trace.trace_id;
}

async function select(id, pickedRank) {
  state.selected = id;
  state.pickedRank = pickedRank;
  renderList();
  try {
    const trace = await getJson(`api/v1/traces/${encodeURIComponent(id)}`);
    // another selection made meanwhile wins: answers may come back out of order
    if (state.selected === id) renderWaterfall(trace);
  } catch (e) {
    if (state.selected !== id) return;
    state.error = `trace ${id.slice(0, 8)}…: ${e.message}`;
    renderList();
  }
}

async function refresh() {
  try {
    const body = await getJson(`api/v1/traces?limit=${LIST_LIMIT}`);
    state.traces = body.traces;
    state.error = "";
    state.loaded += 1;
  } catch (e) {
    state.error = `traces: ${e.message}`;
  }
  renderList();
  // the page's own choice gives way to a fuller trace; a clicked one stays
  const best = pickTrace(state.traces);
  if (replaces(best, state.selected, state.pickedRank)) await select(best.trace_id, rank(best));
}

async function main() {
  if (!panel) return;
  const conf = await fetch("dashboard.json").then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
  if (conf.traces !== true) return;
  build();
  await refresh();
  setInterval(refresh, LIST_EVERY_MS);
}

main();
