// Unit tests of the candles helpers (api/static/mdclient.js CandleSeries, candles.js
// layout), no network:  node --test tests/e2e/candles.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import { layout } from "../../api/static/candles.js";
import { CandleSeries, MarketDataClient } from "../../api/static/mdclient.js";

const c = (t, o, h, l, cl, closed, extra = {}) => ({
  type: "candle", exchange: "KRAKEN", symbol: "BTC-USD", interval: "1m",
  open_time: t, close_time: t + 59, open: o, high: h, low: l, close: cl, volume: 1,
  quote_volume: o, trades: 1, vwap: o, closed, ...extra,
});

test("the open candle is replaced on every message and closed ones pile up", () => {
  const s = new CandleSeries(3);
  s.update(c(0, 1, 2, 1, 2, false));
  s.update(c(0, 1, 3, 1, 3, false));
  assert.equal(s.open.high, 3);
  s.update(c(0, 1, 3, 1, 3, true));
  assert.equal(s.open, null);
  assert.deepEqual(s.closed.map((x) => x.open_time), [0]);
  s.update(c(60, 3, 3, 3, 3, true)); // closed without an open one seen
  s.update(c(60, 3, 3, 3, 3, true)); // a repeat replaces, never duplicates
  s.update(c(120, 3, 4, 3, 4, true));
  s.update(c(180, 4, 4, 4, 4, true));
  assert.deepEqual(s.closed.map((x) => x.open_time), [60, 120, 180]); // keep = 3
  s.update(c(240, 4, 5, 4, 5, false));
  assert.deepEqual(s.all().map((x) => x.open_time), [60, 120, 180, 240]);
});

test("REST history goes under what the channel sent", () => {
  const s = new CandleSeries();
  s.update(c(120, 1, 1, 1, 1, true));
  s.update(c(180, 1, 1, 1, 1, false));
  s.load([c(0, 1, 1, 1, 1, true), c(60, 1, 1, 1, 1, true), c(120, 9, 9, 9, 9, true), c(180, 7, 7, 7, 7, false)]);
  assert.deepEqual(s.all().map((x) => [x.open_time, x.open]), [[0, 1], [60, 1], [120, 1], [180, 7]]);
});

test("the client keeps a series per (stream, interval) subscription", () => {
  const client = new MarketDataClient("ws://x", { WebSocket: class {} });
  client.subscribe("candles", ["KRAKEN:BTC-USD"], { interval: "1m" });
  assert.deepEqual(client.subscriptions[0], { op: "subscribe", channel: "candles", symbols: ["KRAKEN:BTC-USD"], interval: "1m" });
  const [ev] = client.receive(JSON.stringify(c(0, 1, 2, 1, 2, false)));
  assert.equal(ev.kind, "candle");
  assert.equal(client.candleSeries("KRAKEN:BTC-USD", "1m").open.close, 2);
  client.receive(JSON.stringify(c(0, 1, 2, 1, 2, false, { interval: "5m" }))); // not subscribed
  assert.equal(client.candleSeries("KRAKEN:BTC-USD", "5m"), null);
  client.unsubscribe("candles", ["KRAKEN:BTC-USD"]);
  assert.equal(client.candleSeries("KRAKEN:BTC-USD", "1m"), null);
});

test("layout scales prices into the box and right-aligns the candles", () => {
  const candles = [c(0, 10, 12, 9, 11, true), c(60, 11, 11, 8, 8, false)];
  const { bars, low, high } = layout(candles, 200, 100, { max: 10, pad: { l: 0, r: 0, t: 0, b: 0 } });
  assert.equal(low, 8);
  assert.equal(high, 12);
  assert.equal(bars.length, 2);
  assert.ok(bars[0].x < bars[1].x && bars[1].x < 200);
  assert.equal(bars[0].high, 0); // the highest high at the top
  assert.equal(bars[1].low, 80); // the lowest low at the bottom of the price area (80 %)
  assert.ok(bars[0].up && !bars[1].up);
  assert.deepEqual(layout([], 200, 100).bars, []);
  const flat = layout([c(0, 5, 5, 5, 5, true)], 200, 100);
  assert.ok(flat.high > flat.low);
});
