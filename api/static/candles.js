// The dashboard's candlestick chart (docs/protocol.md §4.9, §6.2): REST history under the
// live `candles` channel, drawn on a canvas. No third-party script: the layout math is
// the pure `layout()` below (tested under Node), the drawing is plain 2D canvas.

import { candleKey } from "./mdclient.js";

export const INTERVALS = ["1s", "1m", "5m", "15m", "1h"];
const UP = "#2ebd85";
const DOWN = "#f0616d";

/**
 * Where each candle goes in a w x h box: the last `max` candles right-aligned, prices
 * scaled to [low, high] of what is shown, volume bars in the bottom fifth.
 * Returns {bars: [{x, w, open, close, high, low, vol, up}], low, high} in pixels.
 */
export function layout(candles, w, h, { max = 90, pad = { l: 8, r: 78, t: 18, b: 4 } } = {}) {
  const shown = candles.slice(-max);
  const slots = Math.max(30, shown.length); // few candles: wider bodies, still right-aligned
  if (!shown.length) return { bars: [], low: 0, high: 0, pad };
  let low = Infinity;
  let high = -Infinity;
  let vmax = 0;
  for (const c of shown) {
    low = Math.min(low, c.low);
    high = Math.max(high, c.high);
    vmax = Math.max(vmax, c.volume);
  }
  if (high === low) {
    high += Math.abs(high) * 1e-4 || 1;
    low -= Math.abs(low) * 1e-4 || 1;
  }
  const plotW = Math.max(1, w - pad.l - pad.r);
  const plotH = Math.max(1, h - pad.t - pad.b);
  const priceH = plotH * 0.8;
  const step = plotW / slots;
  const y = (p) => pad.t + ((high - p) / (high - low)) * priceH;
  const bars = shown.map((c, i) => ({
    x: pad.l + plotW - (shown.length - i) * step + step / 2,
    w: Math.max(1, step * 0.7),
    open: y(c.open),
    close: y(c.close),
    high: y(c.high),
    low: y(c.low),
    vol: vmax > 0 ? (c.volume / vmax) * plotH * 0.18 : 0,
    up: c.close >= c.open,
    closed: c.closed,
  }));
  return { bars, low, high, pad, priceH, plotH };
}

export class CandlePanel {
  constructor(client, { canvas, buttons, name, apiBase = "", headers = () => ({}), fmt = String }) {
    this.client = client;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.name = name;
    this.apiBase = apiBase;
    this.headers = headers;
    this.fmt = fmt;
    this.stream = null;
    this.interval = INTERVALS[0];
    this.dirty = true;
    buttons.replaceChildren(
      ...INTERVALS.map((iv) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = iv;
        b.dataset.interval = iv;
        b.addEventListener("click", () => this.select(this.stream, iv));
        return b;
      }),
    );
    this.buttons = buttons;
    client.on("candle", (ev) => {
      if (ev.key === this.stream && ev.data.interval === this.interval) this.dirty = true;
    });
    new ResizeObserver(() => (this.dirty = true)).observe(canvas.parentElement);
  }

  series() {
    return this.stream ? this.client.candleSeries(this.stream, this.interval) : null;
  }

  /** Show `stream` at `interval`: unsubscribe the old pair, subscribe, load REST history. */
  select(stream, interval = this.interval) {
    if (!stream || (stream === this.stream && interval === this.interval)) return;
    if (this.stream) this.client.unsubscribe("candles", [this.stream]);
    this.stream = stream;
    this.interval = interval;
    this.client.subscribe("candles", [stream], { interval });
    for (const b of this.buttons.children) b.classList.toggle("on", b.dataset.interval === interval);
    this.name.textContent = `${stream} · ${interval}`;
    this.dirty = true;
    this.loadHistory(stream, interval);
  }

  async loadHistory(stream, interval) {
    let body;
    try {
      const url = `${this.apiBase}api/v1/candles/${encodeURIComponent(stream)}?interval=${interval}&limit=120`;
      const r = await fetch(url, { headers: this.headers(), cache: "no-store" });
      if (!r.ok) return;
      body = await r.json();
    } catch {
      return; // the live channel fills the chart anyway
    }
    const series = this.client.candles.get(candleKey(stream, interval));
    if (!series || !Array.isArray(body.candles)) return;
    series.load(body.candles);
    this.dirty = true;
  }

  /** Redraw if something changed (called from the page's animation frame). */
  render() {
    if (!this.dirty) return;
    this.dirty = false;
    const candles = this.series()?.all() || [];
    this.canvas.dataset.candles = String(candles.length);
    this.canvas.dataset.closed = String(candles.filter((c) => c.closed).length);
    this.draw(candles);
  }

  draw(candles) {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(10, Math.floor(box.width));
    const h = Math.max(10, Math.floor(box.height));
    if (this.canvas.width !== w * dpr || this.canvas.height !== h * dpr) {
      this.canvas.width = w * dpr;
      this.canvas.height = h * dpr;
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${h}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const { bars, low, high, pad, priceH, plotH } = layout(candles, w, h);
    ctx.font = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
    ctx.fillStyle = "#7d8799";
    if (!bars.length) {
      ctx.textAlign = "center";
      ctx.fillText("waiting for trades…", w / 2, h / 2);
      return;
    }
    // price grid on the right
    ctx.strokeStyle = "rgba(255,255,255,0.06)";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    const ticks = priceH < 110 ? 2 : 4; // a short chart: fewer labels, none overlapping
    for (let i = 0; i <= ticks; i++) {
      const py = Math.round(pad.t + (i * priceH) / ticks) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.l, py);
      ctx.lineTo(w - pad.r, py);
      ctx.stroke();
      ctx.fillText(this.fmt(high - (i * (high - low)) / ticks), w - pad.r + 6, py);
    }
    const base = pad.t + plotH;
    for (const b of bars) {
      const color = b.up ? UP : DOWN;
      ctx.globalAlpha = b.closed ? 1 : 0.75;
      ctx.fillStyle = color;
      ctx.globalAlpha *= 0.35;
      ctx.fillRect(b.x - b.w / 2, base - b.vol, b.w, b.vol);
      ctx.globalAlpha = b.closed ? 1 : 0.75;
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.moveTo(Math.round(b.x) + 0.5, b.high);
      ctx.lineTo(Math.round(b.x) + 0.5, b.low);
      ctx.stroke();
      const top = Math.min(b.open, b.close);
      ctx.fillRect(b.x - b.w / 2, top, b.w, Math.max(1, Math.abs(b.close - b.open)));
    }
    ctx.globalAlpha = 1;
    const last = candles[candles.length - 1];
    ctx.fillStyle = last.close >= last.open ? UP : DOWN;
    ctx.textBaseline = "top";
    ctx.fillText(`${this.fmt(last.close)}  ${last.trades} trades`, pad.l, 2);
  }
}
