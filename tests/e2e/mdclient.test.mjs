// Unit tests of the JavaScript client (clients/js/mdclient.js), no network:
//   node --test tests/e2e/mdclient.test.mjs
//
// Checksum vectors are the Python reference's values
// (mdgw_client.checksum = zlib.crc32(b"".join(struct.pack("<dd", p, q) ...))),
// and gateway_frames.jsonl is real JSON frames of a gateway (a depth-10 book and an
// aggregated book: snapshot then updates), whose checksums the server computed.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  LocalBook,
  MarketDataClient,
  checksum,
  crc32,
  parseFrame,
} from "../../clients/js/mdclient.js";

const FRAMES = readFileSync(new URL("./gateway_frames.jsonl", import.meta.url), "utf8")
  .split("\n")
  .filter(Boolean);

// ---- checksum ----------------------------------------------------------------------------

test("crc32 is zlib's", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test("checksum matches the Python reference", () => {
  // [asks, bids, zlib.crc32(...) computed by mdgw_client.checksum]
  const vectors = [
    [[], [], 0],
    [[[97001.0, 0.4]], [[97000.5, 1.2]], 1016261080],
    [
      [[100.5, 1.0], [101.0, 2.5], [101.25, 0.125]],
      [[100.0, 3.0], [99.75, 0.001], [99.5, 10.0]],
      2306550527,
    ],
    [
      [[1e-8, 1e8], [0.1, 0.2], [3.0000000000000004, 123456.789]],
      [[1e-9, 5e-324]],
      2447926086,
    ],
  ];
  for (const [asks, bids, expected] of vectors) assert.equal(checksum(asks, bids), expected);
});

test("checksum covers only the first 10 levels of each side", () => {
  // Python: asks = [(97001.0 + i*0.5, 0.1*(i+1)) ...], bids = [(97000.0 - i*0.5, 0.2*(i+1)) ...]
  const asks = Array.from({ length: 12 }, (_, i) => [97001.0 + i * 0.5, 0.1 * (i + 1)]);
  const bids = Array.from({ length: 12 }, (_, i) => [97000.0 - i * 0.5, 0.2 * (i + 1)]);
  assert.equal(checksum(asks, bids), 1534485546);
  assert.equal(checksum(asks.slice(0, 10), bids.slice(0, 10)), 1534485546);
});

test("checksum ignores the venues of aggregated levels", () => {
  assert.equal(checksum([[97001.0, 0.4, { KRAKEN: 0.4 }]], [[97000.5, 1.2, {}]]), 1016261080);
});

// ---- LocalBook -----------------------------------------------------------------------------

test("delta application: 0 removes, else sets; cut to depth; like LocalBook.apply", () => {
  const book = new LocalBook("X", 3);
  book.load([[100.0, 1.0], [99.0, 2.0], [98.0, 3.0]], [[101.0, 1.0], [102.0, 2.0], [103.0, 3.0]], 10);
  assert.equal(book.localChecksum(), 3612318221);
  book.apply([[99.0, 0.0], [100.5, 0.7], [97.0, 4.0]], [[100.8, 0.3], [103.0, 0.0]], 11);
  assert.deepEqual(book.topBids(), [[100.5, 0.7], [100.0, 1.0], [98.0, 3.0]]);
  assert.deepEqual(book.topAsks(), [[100.8, 0.3], [101.0, 1.0], [102.0, 2.0]]);
  assert.equal(book.localChecksum(), 1475933001);
  book.apply([[100.5, 0.0]], [[101.0, 5.0]], 12);
  assert.deepEqual(book.topBids(), [[100.0, 1.0], [98.0, 3.0]]);
  assert.deepEqual(book.topAsks(), [[100.8, 0.3], [101.0, 5.0], [102.0, 2.0]]);
  assert.equal(book.localChecksum(), 2521849695);
  assert.equal(book.sequence, 12n);
  assert.deepEqual(book.bestBid(), [100.0, 1.0]);
  assert.deepEqual(book.bestAsk(), [100.8, 0.3]);
});

test("a snapshot in any order is kept sorted, best first", () => {
  const book = new LocalBook("X", 0);
  book.load([[1, 1], [3, 1], [2, 1]], [[6, 1], [4, 1], [5, 1]], 1);
  assert.deepEqual(book.bids.map((l) => l[0]), [3, 2, 1]);
  assert.deepEqual(book.asks.map((l) => l[0]), [4, 5, 6]);
  book.apply([[2.5, 1], [0.5, 1]], [[4.5, 1], [7, 1]], 2); // depth 0: no cut
  assert.deepEqual(book.bids.map((l) => l[0]), [3, 2.5, 2, 1, 0.5]);
  assert.deepEqual(book.asks.map((l) => l[0]), [4, 4.5, 5, 6, 7]);
});

// ---- frames ----------------------------------------------------------------------------------

test("parseFrame: single message, batch array, exact uint64 sequences", () => {
  assert.deepEqual(parseFrame('{"type":"heartbeat","timestamp":1}'), [{ type: "heartbeat", timestamp: 1 }]);
  assert.equal(parseFrame('[{"type":"a"},{"type":"b"}]').length, 2);
  const [m] = parseFrame('{"type":"order_book_update","sequence":18446744073709551615,"prev_sequence":18446744073709551614}');
  assert.equal(m.sequence, 18446744073709551615n);
  assert.equal(m.prev_sequence, 18446744073709551614n);
  const [n] = parseFrame('{"type":"order_book_update","sequence":42,"prev_sequence":41}');
  assert.equal(n.sequence, 42);
});

// ---- the client over a fake socket --------------------------------------------------------------

class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  // test side
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(text) {
    this.onmessage?.({ data: text });
  }
}

function fakeTimers() {
  const timers = [];
  return {
    timers,
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      timers.push(t);
      return t;
    },
    clearTimeout: (t) => {
      const i = timers.indexOf(t);
      if (i >= 0) timers.splice(i, 1);
    },
    runNext() {
      const t = timers.shift();
      t.fn();
      return t.ms;
    },
  };
}

function newClient(options = {}) {
  FakeSocket.all = [];
  const timers = fakeTimers();
  const client = new MarketDataClient("ws://gw:8080/ws", {
    WebSocket: FakeSocket,
    timers,
    random: () => 0.5,
    idleTimeout: 0,
    ...options,
  });
  const events = [];
  client.on("*", (e) => events.push(e));
  client.connect();
  const ws = FakeSocket.all[0];
  ws.open();
  return { client, ws, timers, events };
}

const kinds = (events) => events.map((e) => e.kind);

test("connects in JSON with the subprotocol and subscribes", () => {
  const { client, ws } = newClient({ token: "t k" });
  assert.equal(ws.url, "ws://gw:8080/ws?format=json&token=t%20k");
  assert.deepEqual(ws.protocols, ["marketdata.v1.json"]);
  const id = client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  assert.deepEqual(ws.sent[0], {
    op: "subscribe", channel: "book", symbols: ["BINANCE:ETH-USDT"], depth: 10, speed: "raw", id,
  });
  client.subscribe("trades", ["BINANCE:ETH-USDT"]);
  assert.deepEqual(ws.sent[1].op, "subscribe");
  assert.equal("depth" in ws.sent[1], false);
});

test("real gateway frames verify: book and aggregated book, no resync", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  client.subscribe("aggregated_book", ["ETH-USD"], { depth: 10 });
  for (const f of FRAMES) ws.frame(f);
  assert.deepEqual(kinds(events).filter((k) => k !== "open"), Array(FRAMES.length).fill("book"));
  assert.equal(client.checksumFailures, 0);
  assert.equal(client.sequenceBreaks, 0);
  const book = client.book("BINANCE:ETH-USDT");
  assert.equal(book.valid, true);
  assert.equal(book.messages, 5);
  assert.equal(book.sequence, 1795644482445822n);
  assert.equal(book.lastCheck, "valid");
  const agg = client.book("ETH-USD");
  assert.equal(agg.messages, 5);
  assert.equal(agg.bids.length <= 10 && agg.asks.length <= 10, true);
  assert.equal(ws.sent.filter((m) => m.op === "resync").length, 0);
  assert.equal(client.messages, FRAMES.length);
});

test("a checksum mismatch sends resync and ignores updates until the snapshot", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  const [snap, u1, u2, u3] = FRAMES.map((f) => JSON.parse(f));
  ws.frame(JSON.stringify(snap));
  ws.frame(JSON.stringify({ ...u1, checksum: (u1.checksum + 1) >>> 0 }));
  assert.equal(events.at(-1).kind, "checksum_failure");
  assert.equal(client.checksumFailures, 1);
  assert.deepEqual(ws.sent.at(-1), { op: "resync", id: ws.sent.at(-1).id, symbols: ["BINANCE:ETH-USDT"] });
  const book = client.book("BINANCE:ETH-USDT");
  assert.equal(book.valid, false);
  assert.equal(book.lastCheck, "mismatch");
  const n = events.length;
  ws.frame(JSON.stringify(u2)); // ignored while waiting for the snapshot
  assert.equal(events.length, n);
  assert.equal(book.sequence, 1795644482445819n);
  ws.frame(JSON.stringify(snap)); // the fresh snapshot
  assert.equal(book.valid, true);
  assert.equal(book.lastCheck, "valid");
  assert.equal(book.resyncs, 1);
  // the stream goes on from the snapshot: u1 then u2, u3 verify again
  for (const m of [u1, u2, u3]) ws.frame(JSON.stringify(m));
  assert.deepEqual(kinds(events.slice(n)), ["book", "book", "book", "book"]);
});

test("a prev_sequence gap is a break: resync, then recovery from the snapshot", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  const [snap, , u2] = FRAMES.map((f) => JSON.parse(f));
  ws.frame(JSON.stringify(snap));
  ws.frame(JSON.stringify(u2)); // u1 missing: prev_sequence does not follow
  assert.equal(events.at(-1).kind, "break");
  assert.equal(client.sequenceBreaks, 1);
  assert.equal(ws.sent.at(-1).op, "resync");
  assert.equal(client.book("BINANCE:ETH-USDT").valid, false);
});

test("a non-increasing sequence is a break", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  const [snap] = FRAMES.map((f) => JSON.parse(f));
  ws.frame(JSON.stringify(snap));
  ws.frame(JSON.stringify({ ...snap, type: "order_book_update", prev_sequence: snap.sequence, sequence: snap.sequence, bids: [], asks: [] }));
  assert.equal(events.at(-1).kind, "break");
});

test("aggregated resync names the canonical symbol; status stale invalidates the book", () => {
  const { client, ws, events } = newClient();
  client.subscribe("aggregated_book", ["ETH-USD"], { depth: 10 });
  const agg = FRAMES.map((f) => JSON.parse(f)).filter((m) => m.type.startsWith("aggregated"));
  ws.frame(JSON.stringify(agg[0]));
  ws.frame(JSON.stringify({ ...agg[1], checksum: 1 }));
  assert.deepEqual(ws.sent.at(-1).symbols, ["ETH-USD"]);
  ws.frame(JSON.stringify(agg[0]));
  assert.equal(client.book("ETH-USD").valid, true);
  ws.frame(JSON.stringify({ type: "status", symbol: "ETH-USD", status: "stale", reason: "sequence gap" }));
  assert.equal(events.at(-1).kind, "status");
  assert.equal(client.book("ETH-USD").valid, false);
  assert.equal(client.book("ETH-USD").stale, true);
  ws.frame(JSON.stringify(agg[1])); // ignored
  assert.equal(events.at(-1).kind, "status");
});

test("status behind marks the book until caught_up or the next snapshot", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  const [snap] = FRAMES.map((f) => JSON.parse(f));
  ws.frame(JSON.stringify(snap));
  const told = { type: "status", exchange: "BINANCE", symbol: "ETH-USDT", reason: "lag" };
  ws.frame(JSON.stringify({ ...told, status: "behind", lag_ms: 612 }));
  assert.equal(events.at(-1).kind, "status");
  assert.equal(client.book("BINANCE:ETH-USDT").behind, true);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, true);
  ws.frame(JSON.stringify({ ...told, status: "caught_up" }));
  assert.equal(client.book("BINANCE:ETH-USDT").behind, false);
  ws.frame(JSON.stringify({ ...told, status: "behind" }));
  ws.frame(JSON.stringify({ ...told, status: "resync" }));
  ws.frame(JSON.stringify(snap));
  assert.equal(client.book("BINANCE:ETH-USDT").behind, false);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, true);
  ws.frame(JSON.stringify({ type: "status", status: "behind" })); // names no book
  ws.frame(JSON.stringify({ ...told, symbol: "NOPE", status: "behind" }));
  assert.equal(events.at(-1).kind, "status");
  assert.equal(client.book("BINANCE:ETH-USDT").behind, false);
});

test("messages of an unsubscribed book are reported, not applied", () => {
  const { client, ws, events } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  client.unsubscribe("book", ["BINANCE:ETH-USDT"]);
  assert.deepEqual(ws.sent.at(-1), { op: "unsubscribe", id: ws.sent.at(-1).id, channel: "book", symbols: ["BINANCE:ETH-USDT"] });
  assert.equal(client.subscriptions.length, 0);
  ws.frame(FRAMES[0]);
  assert.equal(events.at(-1).kind, "unsubscribed_book");
});

test("stats, trades and control messages become events", () => {
  const { ws, events } = newClient();
  ws.frame('{"type":"statistics","exchange":"KRAKEN","symbol":"BTC-USD","last":1}');
  ws.frame('{"type":"trade","exchange":"KRAKEN","symbol":"BTC-USD","price":1,"quantity":2,"side":"buy"}');
  ws.frame('{"type":"error","id":1,"code":"unknown_symbol","message":"x"}');
  assert.deepEqual(kinds(events).slice(1), ["stats", "trade", "error"]);
  assert.equal(events[1].key, "KRAKEN:BTC-USD");
});

test("reconnects with exponential backoff and jitter, resubscribing everything", () => {
  let r = 0.5;
  const { client, ws, timers } = newClient({ random: () => r, maxBackoff: 1.0 });
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  client.subscribe("trades", ["BINANCE:ETH-USDT"]);
  ws.frame(FRAMES[0]);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, true);

  ws.close(1006);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, false);
  assert.equal(client.reconnects, 1);
  assert.equal(timers.timers.length, 1);
  assert.equal(timers.timers[0].ms, 100); // 0.1 s * (0.5 + 0.5)
  // the next attempts fail at once: 0.2 s, 0.4 s, 0.8 s, then capped at 1 s
  const delays = [];
  for (let i = 0; i < 5; i++) {
    delays.push(timers.runNext());
    FakeSocket.all.at(-1).close(1006);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000]);
  r = 0; // jitter: delay * (0.5 + random)
  timers.runNext();
  const ws2 = FakeSocket.all.at(-1);
  ws2.open();
  assert.deepEqual(ws2.sent.map((m) => [m.op, m.channel]), [["subscribe", "book"], ["subscribe", "trades"]]);
  assert.equal(ws2.sent[0].depth, 10);
  // a frame resets the backoff
  ws2.frame(FRAMES[0]);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, true);
  ws2.close(1006);
  assert.equal(timers.timers.at(-1).ms, 50); // 0.1 s * (0.5 + 0)
  client.close();
  assert.equal(timers.timers.length, 0);
});

test("an idle connection is closed and reconnected by the watchdog", () => {
  let now = 0;
  FakeSocket.all = [];
  const timers = fakeTimers();
  const client = new MarketDataClient("ws://gw/ws", {
    WebSocket: FakeSocket, timers, random: () => 0.5, idleTimeout: 3, now: () => now,
  });
  client.connect();
  FakeSocket.all[0].open();
  now = 2000;
  timers.runNext(); // watchdog: 2 s idle, fine
  assert.equal(FakeSocket.all[0].readyState, 1);
  now = 3500;
  timers.runNext(); // 3.5 s idle: closed, reconnect scheduled
  assert.equal(FakeSocket.all[0].readyState, 3);
  assert.equal(client.reconnects, 1);
});

test("subscribing while disconnected sends on the next open, once", () => {
  FakeSocket.all = [];
  const client = new MarketDataClient("ws://gw/ws", { WebSocket: FakeSocket, timers: fakeTimers(), idleTimeout: 0 });
  client.connect();
  client.subscribe("stats", ["KRAKEN:BTC-USD"]);
  const ws = FakeSocket.all[0];
  assert.equal(ws.sent.length, 0);
  ws.open();
  assert.equal(ws.sent.length, 1);
  assert.equal(ws.sent[0].channel, "stats");
});

test("control messages are paced under the server's token bucket", () => {
  let now = 0;
  FakeSocket.all = [];
  const timers = fakeTimers();
  const client = new MarketDataClient("ws://gw/ws", {
    WebSocket: FakeSocket, timers, idleTimeout: 0, now: () => now, controlRate: 4, controlBurst: 3,
  });
  client.connect();
  const ws = FakeSocket.all[0];
  ws.open();
  for (let i = 0; i < 5; i++) client.send({ op: "ping", id: i });
  assert.deepEqual(ws.sent.map((m) => m.id), [0, 1, 2]); // the burst
  assert.equal(timers.timers.length, 1);
  now += timers.timers[0].ms; // one token later (250 ms + a margin)
  timers.runNext();
  assert.deepEqual(ws.sent.map((m) => m.id), [0, 1, 2, 3]);
  now += timers.timers[0].ms;
  timers.runNext();
  assert.deepEqual(ws.sent.map((m) => m.id), [0, 1, 2, 3, 4]); // in order, none lost
  assert.equal(timers.timers.length, 0);
  // a new connection: full bucket, the old queue dropped, subscriptions resent
  client.send({ op: "ping", id: 5 });
  client.send({ op: "ping", id: 6 });
  ws.close(1006);
  assert.equal(timers.timers.length, 1); // only the reconnect
});

// ---- resume after reconnect (docs/protocol.md §4.10) and bbo (§4.8) -------------------------------

const BINANCE = FRAMES.filter((f) => JSON.parse(f).exchange === "BINANCE");

function reconnected(client, ws, timers) {
  ws.close(1006);
  timers.runNext();
  const ws2 = FakeSocket.all.at(-1);
  ws2.open();
  return ws2;
}

test("a whole book resumes from its last sequence after a reconnect", () => {
  const { client, ws, timers } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  ws.frame(BINANCE[0]);
  ws.frame(BINANCE[1]);
  const seq = JSON.parse(BINANCE[1]).sequence;
  ws.close(1006);
  assert.equal(client.book("BINANCE:ETH-USDT").valid, false);
  FakeSocket.all = [];
  timers.runNext();
  FakeSocket.all[0].close(1006); // a failed attempt keeps what to resume from
  timers.runNext();
  const ws2 = FakeSocket.all.at(-1);
  ws2.open();
  assert.deepEqual(ws2.sent[0].since, { "BINANCE:ETH-USDT": seq });
  ws2.frame(`{"type":"subscribed","id":${ws2.sent[0].id},"channel":"book","symbols":["BINANCE:ETH-USDT"],"resumed":true}`);
  const book = client.book("BINANCE:ETH-USDT");
  assert.equal(book.valid, true);
  for (const f of BINANCE.slice(2)) ws2.frame(f);
  assert.equal(client.sequenceBreaks, 0);
  assert.equal(client.checksumFailures, 0);
  assert.equal(book.sequence, BigInt(JSON.parse(BINANCE.at(-1)).sequence));
  assert.equal(client.resumed, 1);
});

test("a refused resume waits for the snapshot; a broken book does not ask to resume", () => {
  const { client, ws, timers } = newClient();
  client.subscribe("book", ["BINANCE:ETH-USDT"], { depth: 10 });
  ws.frame(BINANCE[0]);
  const ws2 = reconnected(client, ws, timers);
  ws2.frame('{"type":"subscribed","id":9,"channel":"book","symbols":["BINANCE:ETH-USDT"],"resumed":false}');
  const book = client.book("BINANCE:ETH-USDT");
  assert.equal(book.valid, false);
  assert.equal(client.handle(JSON.parse(BINANCE[2]), 0), null); // ignored until the snapshot
  ws2.frame(BINANCE[0]);
  assert.equal(book.valid, true);
  assert.equal(client.notResumed, 1);
  ws2.frame('{"type":"status","exchange":"BINANCE","symbol":"ETH-USDT","status":"stale","reason":"gap"}');
  const ws3 = reconnected(client, ws2, timers);
  assert.equal("since" in ws3.sent[0], false);
});

test("bbo: latest per stream and symbol, chain breaks counted, a reconnect starts a new chain", () => {
  const { client, ws, timers, events } = newClient();
  client.subscribe("bbo", ["KRAKEN:BTC-USD", "BTC-USD"]);
  assert.deepEqual(ws.sent[0].symbols, ["KRAKEN:BTC-USD", "BTC-USD"]);
  const bbo = (seq, prev, venue) =>
    venue
      ? `{"type":"bbo","symbol":"BTC-USD","sequence":${seq},"prev_sequence":${prev},"bid":[1.0,2.0,"${venue}"],"ask":null}`
      : `{"type":"bbo","exchange":"KRAKEN","symbol":"BTC-USD","sequence":${seq},"prev_sequence":${prev},"bid":[1.0,2.0],"ask":[1.5,1.0]}`;
  ws.frame(bbo(7, 6));
  ws.frame(bbo(8, 7));
  ws.frame(bbo(3, 2, "COINBASE"));
  assert.equal(client.sequenceBreaks, 0);
  assert.deepEqual(client.bbo("BTC-USD").bid, [1.0, 2.0, "COINBASE"]);
  assert.equal(client.bbo("KRAKEN:BTC-USD").sequence, 8);
  assert.equal(events.at(-1).kind, "bbo");
  ws.frame(bbo(10, 9));
  assert.equal(client.sequenceBreaks, 1);
  const ws2 = reconnected(client, ws, timers);
  ws2.frame(bbo(40, 39));
  assert.equal(client.sequenceBreaks, 1);
});
