// The npm package mdgw-client as a user sees it: imported by its name (Node resolves a
// package's own name through its "exports"), driven through a whole session over a
// WebSocket class passed in (no network, no timers of its own).
//   cd clients/js && node --test test/

import assert from "node:assert/strict";
import { test } from "node:test";

import { JSON_PROTOCOL, LocalBook, MarketDataClient, checksum } from "mdgw-client";

/** A stand-in WebSocket: records what the client sends, lets the test play the server. */
class FakeSocket {
  static made = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  serverOpens() {
    this.readyState = 1;
    this.onopen?.();
  }
  serverSends(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

function manualTimers() {
  const pending = new Map();
  let next = 1;
  return {
    pending,
    setTimeout: (fn, ms) => (pending.set(next, { fn, ms }), next++),
    clearTimeout: (id) => pending.delete(id),
    runAll() {
      const due = [...pending.values()];
      pending.clear();
      for (const t of due) t.fn();
    },
  };
}

const STREAM = "BINANCE:BTC-USDT";
// checksums computed by the Python reference (mdgw_client.checksum, zlib.crc32)
const SNAPSHOT = {
  type: "order_book_snapshot", exchange: "BINANCE", symbol: "BTC-USDT", timestamp: 1,
  sequence: 41, depth: 10, bids: [[100.0, 3.0], [99.0, 1.5]], asks: [[101.0, 1.0], [102.0, 2.0]],
  checksum: 2641465976,
};
const UPDATE = {
  type: "order_book_update", exchange: "BINANCE", symbol: "BTC-USDT", timestamp: 2,
  sequence: 42, prev_sequence: 41, bids: [[100.0, 0.0]], asks: [[101.5, 0.5]],
  checksum: 2844807952,
};

test("the package exports the client and its pure parts", () => {
  assert.equal(JSON_PROTOCOL, "marketdata.v1.json");
  assert.equal(checksum([[101.0, 1.0], [102.0, 2.0]], [[100.0, 3.0], [99.0, 1.5]]), 2641465976);
  const book = new LocalBook(STREAM, 10);
  book.load(SNAPSHOT.bids, SNAPSHOT.asks, SNAPSHOT.sequence);
  assert.equal(book.localChecksum(), SNAPSHOT.checksum);
});

test("a session: subscribe, verified book, break and resync, reconnect", () => {
  FakeSocket.made = [];
  const timers = manualTimers();
  const client = new MarketDataClient("ws://gw.test/ws", {
    WebSocket: FakeSocket, timers, now: () => 0, random: () => 0.5, idleTimeout: 0,
  });
  const kinds = [];
  client.on("*", (ev) => kinds.push(ev.kind));
  client.connect();
  const ws = FakeSocket.made[0];
  assert.equal(ws.url, "ws://gw.test/ws?format=json");
  assert.deepEqual(ws.protocols, [JSON_PROTOCOL]);
  ws.serverOpens();
  const id = client.subscribe("book", [STREAM], { depth: 10 });
  assert.deepEqual(ws.sent, [
    { op: "subscribe", channel: "book", symbols: [STREAM], depth: 10, speed: "raw", id },
  ]);

  ws.serverSends({ type: "subscribed", id, channel: "book", symbols: [STREAM] });
  ws.serverSends(SNAPSHOT);
  ws.serverSends(UPDATE);
  const book = client.book(STREAM);
  assert.deepEqual(book.topBids(), [[99.0, 1.5]]);
  assert.deepEqual(book.topAsks(), [[101.0, 1.0], [101.5, 0.5], [102.0, 2.0]]);
  assert.equal(book.sequence, 42n);
  assert.equal(book.lastCheck, "valid");

  // a message that does not chain on 42: counted, the book waits for a fresh snapshot
  ws.serverSends({ ...UPDATE, sequence: 44, prev_sequence: 43, bids: [[98.0, 1.0]], checksum: 1163030688 });
  assert.equal(client.sequenceBreaks, 1);
  assert.equal(book.valid, false);
  assert.deepEqual(ws.sent.at(-1), { op: "resync", id: ws.sent.at(-1).id, symbols: [STREAM] });
  assert.deepEqual(kinds, ["open", "subscribed", "book", "book", "break"]);

  // the connection drops: one reconnect is scheduled, and the subscription is sent again
  ws.close(1006, "");
  assert.equal(timers.pending.size, 1);
  timers.runAll();
  const again = FakeSocket.made[1];
  again.serverOpens();
  assert.equal(client.reconnects, 1);
  assert.deepEqual(again.sent.map((m) => [m.op, m.channel, m.symbols]), [["subscribe", "book", [STREAM]]]);
  client.close();
});
