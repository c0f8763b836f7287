// The live dashboard: one stream's verified book, depth, trades and 24h stats, the
// cross-exchange book of its canonical symbol, and the connection's health.
//
// Page parameters: ?ws=ws://host:port/ws (default ws(s)://<page host>:8080/ws; another
// host only if listed in api.dashboard_ws_hosts),
// ?stream=EXCHANGE:SYMBOL, ?depth=20, ?token=<JWT> (gateway auth), ?key=<API key>.
// Everything the page shows comes from mdclient.js (the verifying WebSocket client)
// and GET /api/v1/symbols on the page's own origin (the REST API).

import { CandlePanel } from "./candles.js";
import { MarketDataClient } from "./mdclient.js";
import { chooseWsUrl } from "./wsurl.js";

const params = new URLSearchParams(location.search);
// ?ws= may name only this page's host or one the operator allowed (wsurl.js says why).
const WS_HOSTS = await fetch("dashboard.json")
  .then((r) => (r.ok ? r.json() : {}))
  .then((c) => (Array.isArray(c.ws_hosts) ? c.ws_hosts : []))
  .catch(() => []);
const WS_CHOICE = chooseWsUrl(params.get("ws"), location, WS_HOSTS);
if (WS_CHOICE.refused) {
  console.warn(`?ws=${WS_CHOICE.refused} refused: not this page's host nor in api.dashboard_ws_hosts`);
}
const WS_URL = WS_CHOICE.url;
const DEPTH = [10, 20, 50, 100].includes(Number(params.get("depth"))) ? Number(params.get("depth")) : 20;
const LADDER_ROWS = 17;
const AGG_ROWS = 10;
const TAPE_ROWS = 40;
const VENUES = ["BINANCE", "COINBASE", "KRAKEN"];
const STALE_MS = 6000; // no frame for this long while open: stale (heartbeats come every 5 s)
const RENDER_MS = 60;

const $ = (id) => document.getElementById(id);

// ---- state ------------------------------------------------------------------------------

const client = new MarketDataClient(WS_URL, { token: params.get("token") || null });
const view = {
  streams: [], // every EXCHANGE:SYMBOL of GET /api/v1/symbols
  stream: "", // EXCHANGE:SYMBOL
  symbol: "", // canonical, for the aggregated book
  priceDp: 2,
  trades: [],
  tradesDirty: false,
  stats: null,
  bookDirty: false,
  aggDirty: false,
  bookUpdates: 0,
  latency: [], // [ms since epoch received, latency ms]
  rate: [], // [ms, client.messages]
};
window.mdgw = { client, view }; // for the console and the browser tests

// ---- formatting -------------------------------------------------------------------------

function decimals(x) {
  const s = String(x);
  const i = s.indexOf(".");
  if (s.includes("e")) return 8;
  return i < 0 ? 0 : Math.min(8, s.length - i - 1);
}

const fmtPrice = (p) => (p == null ? "—" : p.toLocaleString("en-US", { minimumFractionDigits: view.priceDp, maximumFractionDigits: view.priceDp }));

function fmtQty(q) {
  if (q == null) return "—";
  if (q >= 100000) return q.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (q >= 1000) return q.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  return q.toFixed(4);
}

function fmtBig(x) {
  if (x == null || !isFinite(x)) return "—";
  const abs = Math.abs(x);
  if (abs >= 1e9) return (x / 1e9).toFixed(2) + "B";
  if (abs >= 1e6) return (x / 1e6).toFixed(2) + "M";
  if (abs >= 1e4) return (x / 1e3).toFixed(1) + "k";
  return x.toFixed(abs >= 100 ? 1 : 4);
}

function fmtTime(ns) {
  const d = new Date(Number(ns) / 1e6);
  return isNaN(d.getTime()) ? "—" : d.toISOString().slice(11, 23);
}

function canonical(stream) {
  return stream.slice(stream.indexOf(":") + 1);
}

// ---- fixed DOM rows (built once, updated in place) ---------------------------------------

function makeRows(container, n, cls, cells) {
  const rows = [];
  for (let i = 0; i < n; i++) {
    const row = document.createElement("div");
    row.className = `${cls}${i >= 10 ? " extra" : ""}`;
    const bar = document.createElement("i");
    bar.className = "bar";
    row.append(bar);
    const spans = [];
    for (let c = 0; c < cells; c++) {
      const s = document.createElement("span");
      row.append(s);
      spans.push(s);
    }
    container.append(row);
    rows.push({ row, bar, spans });
  }
  return rows;
}

const ladder = {
  asks: makeRows($("ladder-asks"), LADDER_ROWS, "lrow", 3).reverse(), // best ask nearest the spread
  bids: makeRows($("ladder-bids"), LADDER_ROWS, "lrow", 3),
};
const aggRows = {
  asks: makeRows($("agg-asks"), AGG_ROWS, "arow", 2).reverse(),
  bids: makeRows($("agg-bids"), AGG_ROWS, "arow", 2),
};
for (const side of [aggRows.asks, aggRows.bids]) {
  for (const r of side) {
    const venues = document.createElement("span");
    venues.className = "venues";
    r.row.append(venues);
    r.venues = venues;
    r.segs = VENUES.map((v) => {
      const seg = document.createElement("b");
      seg.className = `seg v-${v.toLowerCase()}`;
      venues.append(seg);
      return seg;
    });
  }
}

function renderLegend(venues) {
  const items = venues.map((v) => {
    const item = document.createElement("span");
    const swatch = document.createElement("b");
    swatch.className = `seg v-${v.toLowerCase()}`;
    item.append(swatch, v);
    return item;
  });
  $("agg-legend").replaceChildren(...items);
}
renderLegend(VENUES);

// ---- rendering ---------------------------------------------------------------------------

function fillSide(rows, levels, maxQty) {
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const lv = levels[i];
    if (!lv) {
      r.spans[0].textContent = r.spans[1].textContent = r.spans[2].textContent = "";
      r.bar.style.width = "0";
      continue;
    }
    total += lv[1];
    r.spans[0].textContent = fmtPrice(lv[0]);
    r.spans[1].textContent = fmtQty(lv[1]);
    r.spans[2].textContent = fmtQty(total);
    r.bar.style.width = `${Math.min(100, (lv[1] / maxQty) * 100).toFixed(1)}%`;
  }
}

function renderBook() {
  const book = client.book(view.stream);
  if (!book) return;
  const asks = book.topAsks(LADDER_ROWS);
  const bids = book.topBids(LADDER_ROWS);
  const maxQty = Math.max(1e-12, ...asks.map((l) => l[1]), ...bids.map((l) => l[1]));
  fillSide(ladder.asks, asks, maxQty);
  fillSide(ladder.bids, bids, maxQty);
  const bb = book.bestBid();
  const ba = book.bestAsk();
  const spread = bb && ba ? ba[0] - bb[0] : null;
  $("spread-mid").textContent = bb && ba ? fmtPrice((bb[0] + ba[0]) / 2) : "—";
  $("spread-val").textContent = spread == null ? "" : `spread ${spread.toFixed(view.priceDp)}`;
  $("q-bid").textContent = bb ? fmtPrice(bb[0]) : "—";
  $("q-ask").textContent = ba ? fmtPrice(ba[0]) : "—";
  $("q-spread").textContent = spread == null ? "" : `Δ ${spread.toFixed(view.priceDp)}`;
  $("ladder").dataset.updates = String(view.bookUpdates);
  drawDepth(book);
}

function renderAgg() {
  const book = client.book(`agg:${view.symbol}`);
  if (!book) return;
  const asks = book.topAsks(AGG_ROWS);
  const bids = book.topBids(AGG_ROWS);
  const maxQty = Math.max(1e-12, ...asks.map((l) => l[1]), ...bids.map((l) => l[1]));
  for (const [rows, levels] of [[aggRows.asks, asks], [aggRows.bids, bids]]) {
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const lv = levels[i];
      r.spans[0].textContent = lv ? fmtPrice(lv[0]) : "";
      r.spans[1].textContent = lv ? fmtQty(lv[1]) : "";
      const venues = (lv && lv[2]) || {};
      r.row.title = lv ? VENUES.filter((v) => venues[v]).map((v) => `${v} ${fmtQty(venues[v])}`).join(" · ") : "";
      VENUES.forEach((v, k) => {
        r.segs[k].style.width = `${lv ? Math.min(100, ((venues[v] || 0) / maxQty) * 100).toFixed(1) : 0}%`;
      });
    }
  }
  const bb = book.bestBid();
  const ba = book.bestAsk();
  $("agg-mid").textContent = bb && ba ? fmtPrice((bb[0] + ba[0]) / 2) : "—";
  $("agg-spread-val").textContent = bb && ba ? `spread ${(ba[0] - bb[0]).toFixed(view.priceDp)}` : "";
}

function renderTrades() {
  const tape = $("tape");
  const items = view.trades.map((t) => {
    const li = document.createElement("li");
    li.className = t.side === "sell" ? "sell" : "buy";
    for (const text of [fmtTime(t.timestamp), fmtPrice(t.price), fmtQty(t.quantity)]) {
      const cell = document.createElement("span");
      cell.textContent = text;
      li.append(cell);
    }
    return li;
  });
  tape.replaceChildren(...items);
}

function renderStats() {
  const s = view.stats;
  const set = (id, text, cls) => {
    const el = $(id);
    el.textContent = text;
    if (cls !== undefined) el.className = cls;
  };
  if (!s) {
    for (const id of ["s-last", "s-change", "s-high", "s-low", "s-volume", "s-qvolume", "s-vwap", "s-count"]) set(id, "—");
    return;
  }
  const change = s.open ? ((s.last - s.open) / s.open) * 100 : 0;
  set("s-last", fmtPrice(s.last));
  set("s-change", `${change >= 0 ? "+" : ""}${change.toFixed(3)}%`, change >= 0 ? "up" : "down");
  set("s-high", fmtPrice(s.high));
  set("s-low", fmtPrice(s.low));
  set("s-volume", fmtBig(s.volume));
  set("s-qvolume", fmtBig(s.quote_volume));
  set("s-vwap", fmtPrice(s.vwap));
  set("s-count", String(s.trade_count));
}

// ---- depth chart ---------------------------------------------------------------------------

const canvas = $("depth");
const ctx = canvas.getContext("2d");

function sizeCanvas() {
  const box = canvas.parentElement.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(10, Math.floor(box.width));
  const h = Math.max(10, Math.floor(box.height));
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) {
    canvas.width = w * dpr;
    canvas.height = h * dpr;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
  }
  return { w, h, dpr };
}

function cumulative(levels) {
  let total = 0;
  return levels.map((lv) => [lv[0], (total += lv[1])]);
}

function drawDepth(book) {
  const { w, h, dpr } = sizeCanvas();
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const bids = cumulative(book.bids);
  const asks = cumulative(book.asks);
  if (!bids.length || !asks.length) return;
  const pad = { l: 8, r: 8, t: 10, b: 22 };
  const mid = (bids[0][0] + asks[0][0]) / 2;
  const half = Math.max(mid - bids[bids.length - 1][0], asks[asks.length - 1][0] - mid) || 1;
  const maxY = Math.max(bids[bids.length - 1][1], asks[asks.length - 1][1]) * 1.08;
  const x = (p) => pad.l + ((p - (mid - half)) / (2 * half)) * (w - pad.l - pad.r);
  const y = (q) => h - pad.b - (q / maxY) * (h - pad.t - pad.b);

  // grid and price axis
  ctx.strokeStyle = "rgba(255,255,255,0.06)";
  ctx.fillStyle = "#7d8799";
  ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
  ctx.textBaseline = "top";
  ctx.lineWidth = 1;
  const ticks = w < 520 ? 2 : 4;
  for (let i = 0; i <= ticks; i++) {
    const p = mid - half + (i * 2 * half) / ticks;
    const px = Math.round(x(p)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(px, pad.t);
    ctx.lineTo(px, h - pad.b);
    ctx.stroke();
    ctx.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center";
    ctx.fillText(fmtPrice(p), px, h - pad.b + 6);
  }
  ctx.textAlign = "left";
  ctx.fillText(fmtQty(maxY / 1.08), pad.l + 2, pad.t);

  const area = (points, dir, stroke, fill) => {
    ctx.beginPath();
    ctx.moveTo(x(mid), y(0));
    ctx.lineTo(x(points[0][0]), y(0));
    let prev = 0;
    for (const [p, q] of points) {
      ctx.lineTo(x(p), y(prev));
      ctx.lineTo(x(p), y(q));
      prev = q;
    }
    const end = dir < 0 ? mid - half : mid + half;
    ctx.lineTo(x(end), y(prev));
    ctx.strokeStyle = stroke;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(x(end), y(0));
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
  };
  area(bids, -1, "#2ebd85", "rgba(46,189,133,0.18)");
  area(asks, 1, "#f0616d", "rgba(240,97,109,0.18)");

  ctx.strokeStyle = "rgba(255,255,255,0.25)";
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  ctx.moveTo(Math.round(x(mid)) + 0.5, pad.t);
  ctx.lineTo(Math.round(x(mid)) + 0.5, h - pad.b);
  ctx.stroke();
  ctx.setLineDash([]);
}

// ---- connection panel -----------------------------------------------------------------------

function subscribedBooks() {
  return [client.book(view.stream), client.book(`agg:${view.symbol}`)].filter(Boolean);
}

function connectionState() {
  if (!client.isOpen) return client.connectedOnce ? "reconnecting" : "connecting";
  const books = subscribedBooks();
  if (books.some((b) => b.stale)) return "stale";
  if (books.some((b) => !b.valid)) return "resyncing";
  if (Date.now() - client.lastFrameAt > STALE_MS) return "stale";
  return "connected";
}

function checksumState() {
  const books = subscribedBooks();
  if (!books.length) return "pending";
  if (books.some((b) => b.lastCheck === "mismatch" && !b.valid)) return "mismatch";
  if (books.every((b) => b.valid && b.lastCheck === "valid")) return "valid";
  return "pending";
}

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

function renderConnection() {
  const now = Date.now();
  view.rate.push([now, client.messages]);
  while (view.rate.length > 2 && now - view.rate[0][0] > 2000) view.rate.shift();
  const [t0, m0] = view.rate[0];
  const rate = now > t0 ? ((client.messages - m0) * 1000) / (now - t0) : 0;
  while (view.latency.length && now - view.latency[0][0] > 2000) view.latency.shift();
  const lat = view.latency.map((s) => s[1]).sort((a, b) => a - b);

  const state = connectionState();
  const crc = checksumState();
  const book = client.book(view.stream);
  const conn = $("conn");
  Object.assign(conn.dataset, {
    stream: view.stream,
    state,
    checksum: crc,
    mismatches: String(client.checksumFailures),
    breaks: String(client.sequenceBreaks),
    messages: String(client.messages),
    reconnects: String(client.reconnects),
    sequence: book && book.sequence >= 0n ? String(book.sequence) : "",
    bookMessages: String(book ? book.messages : 0),
  });
  $("c-state").textContent = state;
  $("c-state").className = `st-${state}`;
  $("c-rate").textContent = rate.toFixed(0);
  $("c-seq").textContent = conn.dataset.sequence || "—";
  $("c-lat").textContent = lat.length
    ? `${percentile(lat, 0.5).toFixed(1)} / ${lat[lat.length - 1].toFixed(1)} ms`
    : "—";
  $("c-crc").textContent = crc === "valid" ? "✓ valid" : crc;
  $("c-crc").className = `crc-${crc}`;
  $("c-mis").textContent = String(client.checksumFailures);
  $("c-mis").className = client.checksumFailures ? "down" : "";
  $("c-breaks").textContent = String(client.sequenceBreaks);
  $("c-rec").textContent = String(client.reconnects);
  $("c-url").textContent = WS_URL;
  $("ladder").classList.toggle("dim", Boolean(book) && !book.valid);
  const agg = client.book(`agg:${view.symbol}`);
  $("agg").classList.toggle("dim", Boolean(agg) && !agg.valid);
  const badge = $("badge");
  badge.dataset.state = state;
  $("badge-text").textContent = state;
}

// ---- subscriptions ------------------------------------------------------------------------------

function selectStream(stream) {
  if (!stream || stream === view.stream) return;
  const old = view.stream;
  const oldSymbol = view.symbol;
  const symbol = canonical(stream);
  if (old) {
    client.unsubscribe("book", [old]);
    client.unsubscribe("trades", [old]);
    client.unsubscribe("stats", [old]);
    if (oldSymbol !== symbol) client.unsubscribe("aggregated_book", [oldSymbol]);
  }
  view.stream = stream;
  view.symbol = symbol;
  view.trades = [];
  view.stats = null;
  view.tradesDirty = view.bookDirty = view.aggDirty = true;
  client.subscribe("book", [stream], { depth: DEPTH });
  client.subscribe("trades", [stream]);
  client.subscribe("stats", [stream]);
  candles.select(stream);
  if (oldSymbol !== symbol) client.subscribe("aggregated_book", [symbol], { depth: 20 });
  $("ladder-name").textContent = stream;
  $("agg-name").textContent = symbol;
  const listing = view.streams.filter((s) => canonical(s) === symbol).map((s) => s.slice(0, s.indexOf(":")));
  renderLegend(listing.length ? listing : VENUES);
  $("stats-name").textContent = stream;
  $("trades-name").textContent = stream;
  document.title = `${stream} · mdgw`;
  const url = new URL(location.href);
  url.searchParams.set("stream", stream);
  history.replaceState(null, "", url);
  renderStats();
  renderConnection();
  loadRecentTrades(stream);
}

/** Fill the tape with the REST API's recent trades, merged with those already streamed. */
async function loadRecentTrades(stream) {
  let body;
  try {
    const res = await fetch(`api/v1/trades/${encodeURIComponent(stream)}?limit=${TAPE_ROWS}`, { headers: apiHeaders(), cache: "no-store" });
    if (!res.ok) return;
    body = await res.json();
  } catch {
    return; // the live tape fills anyway
  }
  if (stream !== view.stream || !Array.isArray(body.trades)) return;
  const seen = new Set(view.trades.map((t) => t.trade_id));
  const merged = view.trades.concat(body.trades.filter((t) => !seen.has(t.trade_id)));
  merged.sort((a, b) => Number(b.timestamp) - Number(a.timestamp));
  view.trades = merged.slice(0, TAPE_ROWS);
  view.tradesDirty = true;
}

function apiHeaders() {
  return params.get("key") ? { "X-API-Key": params.get("key") } : {};
}

const candles = new CandlePanel(client, {
  canvas: $("candles"),
  buttons: $("candle-intervals"),
  name: $("candles-name"),
  headers: apiHeaders,
  fmt: (p) => fmtPrice(p),
});

client.on("book", (ev) => {
  const msg = ev.data;
  if (msg.ingest_ts) view.latency.push([Date.now(), (ev.receivedNs - msg.ingest_ts) / 1e6]);
  if (msg.type.startsWith("aggregated")) {
    if (ev.key === view.symbol) view.aggDirty = true;
    return;
  }
  if (ev.key !== view.stream) return;
  if (msg.type === "order_book_snapshot") {
    const prices = msg.bids.concat(msg.asks).slice(0, 40).map((l) => decimals(l[0]));
    view.priceDp = Math.max(2, ...prices);
  }
  view.bookUpdates += 1;
  view.bookDirty = true;
});

client.on("trade", (ev) => {
  const t = ev.data;
  if (t.ingest_ts) view.latency.push([Date.now(), (ev.receivedNs - t.ingest_ts) / 1e6]);
  if (ev.key !== view.stream) return;
  view.trades.unshift(t);
  if (view.trades.length > TAPE_ROWS) view.trades.length = TAPE_ROWS;
  view.tradesDirty = true;
});

client.on("stats", (ev) => {
  if (ev.key !== view.stream) return;
  view.stats = ev.data;
  renderStats();
});

client.on("error", (ev) => showNotice(`gateway: ${ev.data.code}: ${ev.data.message}`));
client.on("subscribed", () => showNotice(""));

function showNotice(text) {
  const el = $("notice");
  el.textContent = text;
  el.hidden = !text;
}

// ---- streams from the REST API ------------------------------------------------------------------

async function loadStreams(attempt = 0) {
  let items;
  try {
    const res = await fetch("api/v1/symbols", { headers: apiHeaders(), cache: "no-store" });
    if (!res.ok) throw new Error(`GET /api/v1/symbols: HTTP ${res.status}`);
    items = await res.json();
  } catch (err) {
    showNotice(`${err.message}; retrying`);
    setTimeout(() => loadStreams(attempt + 1), Math.min(10000, 1000 * 2 ** attempt));
    return;
  }
  showNotice(items.length ? "" : "no streams yet; retrying");
  if (!items.length) {
    setTimeout(() => loadStreams(attempt + 1), 2000);
    return;
  }
  const streams = items.map((s) => `${s.exchange}:${s.symbol}`).sort();
  view.streams = streams;
  const select = $("stream");
  const groups = new Map();
  for (const s of streams) {
    const ex = s.slice(0, s.indexOf(":"));
    if (!groups.has(ex)) {
      const g = document.createElement("optgroup");
      g.label = ex;
      groups.set(ex, g);
    }
    groups.get(ex).append(new Option(s, s));
  }
  select.replaceChildren(...groups.values());
  select.disabled = false;
  const wanted = params.get("stream");
  const venues = (sym) => streams.filter((s) => canonical(s) === sym).length;
  const fallback = [...streams].sort((a, b) => venues(canonical(b)) - venues(canonical(a)) || (b.includes("BTC") - a.includes("BTC")))[0];
  const initial = streams.includes(wanted) ? wanted : fallback;
  select.value = initial;
  selectStream(initial);
}

// Debounced: flipping through the list with the keyboard subscribes only to where it stops.
let switchTimer = null;
$("stream").addEventListener("change", (e) => {
  clearTimeout(switchTimer);
  switchTimer = setTimeout(() => selectStream(e.target.value), 200);
});

// ---- loop -----------------------------------------------------------------------------------------

let lastRender = 0;
function frame(t) {
  if (t - lastRender >= RENDER_MS) {
    lastRender = t;
    if (view.bookDirty) {
      view.bookDirty = false;
      renderBook();
    }
    if (view.aggDirty) {
      view.aggDirty = false;
      renderAgg();
    }
    if (view.tradesDirty) {
      view.tradesDirty = false;
      renderTrades();
    }
    candles.render();
  }
  requestAnimationFrame(frame);
}

new ResizeObserver(() => {
  const book = client.book(view.stream);
  if (book) drawDepth(book);
}).observe(canvas.parentElement);

client.connect();
loadStreams();
renderConnection();
setInterval(renderConnection, 250);
requestAnimationFrame(frame);
