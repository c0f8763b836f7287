// mdclient.js: the reference JavaScript client of the gateway's WebSocket protocol
// (docs/protocol.md §4, §5), the twin of the Python mdgw_client. Plain ES module, no build
// step, no dependency; runs in browsers and in Node (the WebSocket class can be passed in).
// It is the npm package clients/js (README there); the dashboard serves this same file
// (api/static/mdclient.js is a link to it).
//
//   import { MarketDataClient } from "mdgw-client";   // or "./mdclient.js"
//   const client = new MarketDataClient("ws://127.0.0.1:8080/ws");
//   client.on("book", (ev) => console.log(client.book(ev.key).bestBid()));
//   client.connect();
//   client.subscribe("book", ["BINANCE:BTC-USDT"], { depth: 20 });
//
// Every book message is checked exactly like the Python client does: its
// prev_sequence must equal the sequence of the previous message of that
// subscription, and the §5 checksum must match the local book after applying it.
// On any mismatch the client sends {"op":"resync"} and ignores updates of that
// book until the fresh snapshot. A dropped connection is reconnected with
// exponential backoff and jitter, and every subscription is sent again; a book that
// was whole when the connection dropped asks to resume ("since": its last sequence,
// docs/protocol.md §4.10), so the server sends only what it missed (or a snapshot).
// "bbo" messages (docs/protocol.md §4.8) are whole tops: client.bbo(name) is the latest.
//
// The pure part (crc32, checksum, LocalBook, parseFrame, MarketDataClient.handle)
// does no I/O, so it is unit-tested without a network (tests/e2e/mdclient.test.mjs,
// clients/js/test/).

export const JSON_PROTOCOL = "marketdata.v1.json";
export const BOOK_CHANNELS = ["book", "aggregated_book"];

// ---- docs/protocol.md §5 checksum ----------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** zlib's CRC-32 of a Uint8Array, as an unsigned 32-bit number. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * docs/protocol.md §5: CRC-32 over little-endian float64 (price, quantity) pairs of the
 * first 10 asks (ascending) then the first 10 bids (descending). Levels are
 * [price, quantity, ...] arrays, best first; extra items (venues) are ignored.
 */
export function checksum(asks, bids) {
  const a = asks.slice(0, 10);
  const b = bids.slice(0, 10);
  const view = new DataView(new ArrayBuffer((a.length + b.length) * 16));
  let off = 0;
  for (const lv of a.concat(b)) {
    view.setFloat64(off, lv[0], true);
    view.setFloat64(off + 8, lv[1], true);
    off += 16;
  }
  return crc32(new Uint8Array(view.buffer));
}

// ---- one side of a book: levels kept sorted best first --------------------------------

/** Index of price in levels (sorted by better(a, b) < 0 first), or -(insertion point) - 1. */
function search(levels, price, ascending) {
  let lo = 0;
  let hi = levels.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const p = levels[mid][0];
    if (p === price) return mid;
    if (ascending ? p < price : p > price) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}

function setLevel(levels, level, ascending) {
  const i = search(levels, level[0], ascending);
  // Python: `if lv[1]: side[p] = q else: side.pop(p)`; 0 (and a missing qty) removes.
  if (level[1]) {
    if (i >= 0) levels[i] = level;
    else levels.splice(-i - 1, 0, level);
  } else if (i >= 0) {
    levels.splice(i, 1);
  }
}

/** A snapshot side, sorted best first; like Python's SortedDict(levels): every level kept, last wins. */
function sortedLevels(levels, ascending) {
  const byPrice = new Map();
  for (const lv of levels) byPrice.set(lv[0], lv);
  const out = [...byPrice.values()];
  out.sort(ascending ? (a, b) => a[0] - b[0] : (a, b) => b[0] - a[0]);
  return out;
}

/** One subscription's book as the client holds it (LocalBook of mdgw_client). */
export class LocalBook {
  constructor(key, depth) {
    this.key = key;
    this.depth = depth;
    this.bids = []; // [price, qty, venues?], descending price
    this.asks = []; // ascending price
    this.sequence = -1n;
    this.valid = false; // false until a snapshot arrives, and again after a break
    this.checksum = 0; // the server's checksum of the last message applied
    this.lastCheck = "pending"; // pending | valid | mismatch
    this.stale = false; // the server said "stale" and no snapshot came since
    this.behind = false; // the server said "behind": whole but old until resync/caught_up
    this.messages = 0;
    this.breaks = 0;
    this.resyncs = 0;
    this.timestamp = 0; // exchange time (ns, as a Number) of the last message
    this.resumeFrom = null; // sequence to resume from after a reconnect (BigInt), or null
  }

  topBids(n = 0) {
    return n ? this.bids.slice(0, n) : this.bids.slice();
  }

  topAsks(n = 0) {
    return n ? this.asks.slice(0, n) : this.asks.slice();
  }

  bestBid() {
    return this.bids.length ? this.bids[0] : null;
  }

  bestAsk() {
    return this.asks.length ? this.asks[0] : null;
  }

  localChecksum() {
    return checksum(this.asks, this.bids);
  }

  /** Replace the whole book with a snapshot's levels. */
  load(bids, asks, sequence) {
    this.resumeFrom = null;
    this.bids = sortedLevels(bids, false);
    this.asks = sortedLevels(asks, true);
    this.sequence = BigInt(sequence);
    this.valid = true;
    this.stale = false;
    this.behind = false;
  }

  /** Apply a delta (quantity 0 removes the level, else sets it), then cut to depth. */
  apply(bids, asks, sequence) {
    for (const lv of bids) setLevel(this.bids, lv, false);
    for (const lv of asks) setLevel(this.asks, lv, true);
    if (this.depth) {
      if (this.bids.length > this.depth) this.bids.length = this.depth;
      if (this.asks.length > this.depth) this.asks.length = this.depth;
    }
    this.sequence = BigInt(sequence);
  }
}

// ---- frames ---------------------------------------------------------------------------

const BIG_SEQ = /([^\\])"(sequence|prev_sequence)":(\d{16,})/g;

/**
 * A JSON text frame as a list of messages (a batch is a JSON array). Sequences
 * are uint64 on the wire: those above 2^53 are read from the text exactly (as
 * BigInt) instead of being rounded by JSON.parse.
 */
export function parseFrame(text) {
  let data = JSON.parse(text);
  if (hasUnsafeSequence(data)) {
    data = JSON.parse(text.replace(BIG_SEQ, '$1"$2":"$3"'), (key, value) =>
      (key === "sequence" || key === "prev_sequence") && typeof value === "string"
        ? BigInt(value)
        : value,
    );
  }
  return Array.isArray(data) ? data : [data];
}

function hasUnsafeSequence(data) {
  const list = Array.isArray(data) ? data : [data];
  for (const m of list) {
    if (m === null || typeof m !== "object") continue;
    if (typeof m.sequence === "number" && !Number.isSafeInteger(m.sequence)) return true;
    if (typeof m.prev_sequence === "number" && !Number.isSafeInteger(m.prev_sequence)) return true;
  }
  return false;
}

function toBig(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return null;
}

/** Key of a book subscription: the stream, or "agg:SYMBOL" for an aggregated book. */
export function bookKey(channel, symbol) {
  return channel === "aggregated_book" ? `agg:${symbol}` : symbol;
}

// ---- candles -----------------------------------------------------------------------------

/**
 * The candles of one (stream, interval) subscription (docs/protocol.md §4.9): the closed
 * ones, oldest first (the last `keep`), and the open one. `load` merges REST history
 * (GET /api/v1/candles) under what the channel sent.
 */
export class CandleSeries {
  constructor(keep = 1000) {
    this.keep = keep;
    this.closed = [];
    this.open = null;
  }

  update(c) {
    if (c.closed) {
      const last = this.closed[this.closed.length - 1];
      if (last && last.open_time === c.open_time) this.closed[this.closed.length - 1] = c;
      else if (!last || last.open_time < c.open_time) this.closed.push(c);
      if (this.closed.length > this.keep) this.closed.splice(0, this.closed.length - this.keep);
      if (this.open && this.open.open_time <= c.open_time) this.open = null;
    } else if (!this.open || this.open.open_time <= c.open_time) {
      this.open = c;
    }
  }

  load(candles) {
    const first = this.closed.length ? this.closed[0].open_time : Infinity;
    const older = candles.filter((c) => c.closed && c.open_time < first);
    this.closed = older.concat(this.closed).slice(-this.keep);
    const last = candles[candles.length - 1];
    if (last && !last.closed) this.update(last);
  }

  /** Every candle, oldest first, the open one last. */
  all() {
    return this.open ? this.closed.concat([this.open]) : this.closed.slice();
  }
}

export function candleKey(stream, interval) {
  return `${stream}|${interval}`;
}

// ---- the client ------------------------------------------------------------------------

/**
 * A verifying, reconnecting client of the gateway (MarketDataClient of
 * mdgw_client). Events, by kind: book, break, checksum_failure,
 * unsubscribed_book, trade, stats, candle, status, heartbeat, subscribed, error, pong,
 * open, close; "*" receives every one. An event is {kind, key, data, receivedNs}.
 */
export class MarketDataClient {
  constructor(url, options = {}) {
    this.url = url;
    this.format = "json"; // protobuf is not implemented in JS: JSON text frames
    this.batch = Boolean(options.batch);
    this.token = options.token || null;
    this.reconnect = options.reconnect !== false;
    this.maxBackoff = options.maxBackoff ?? 5.0; // seconds
    this.idleTimeout = options.idleTimeout ?? 15.0; // seconds without a frame: reconnect
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.random = options.random || Math.random;
    this.timers = options.timers || { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t) };
    this.now = options.now || (() => Date.now());
    // Control messages are paced below the server's per-connection token bucket
    // (gateway.control_rate 5/s, control_burst 20): over it the server refuses them,
    // and closes the connection after repeated refusals.
    this.controlRate = options.controlRate ?? 4;
    this.controlBurst = options.controlBurst ?? 16;
    this.ws = null;
    this.books = new Map();
    this.candles = new Map(); // candleKey(stream, interval) -> CandleSeries
    this.subscriptions = [];
    this.reconnects = 0;
    this.checksumFailures = 0;
    this.sequenceBreaks = 0;
    this.resumed = 0; // book views resumed after a reconnect (no snapshot needed)
    this.notResumed = 0; // asked to resume, got a snapshot
    this.bbos = new Map(); // latest bbo message per stream or symbol
    this._bboSeq = new Map(); // last bbo sequence per stream or symbol (null: new chain)
    this.messages = 0;
    this.lastFrameAt = 0;
    this.connectedOnce = false;
    this._ids = 0;
    this._closed = false;
    this._backoff = 0.1;
    this._retry = null;
    this._watchdog = null;
    this._listeners = new Map();
    this._outbox = [];
    this._tokens = 0;
    this._tokensAt = 0;
    this._flushTimer = null;
  }

  // ---- events

  on(kind, fn) {
    if (!this._listeners.has(kind)) this._listeners.set(kind, new Set());
    this._listeners.get(kind).add(fn);
    return () => this._listeners.get(kind).delete(fn);
  }

  _emit(event) {
    for (const kind of [event.kind, "*"]) {
      for (const fn of this._listeners.get(kind) || []) fn(event);
    }
  }

  // ---- connection

  fullUrl() {
    const sep = this.url.includes("?") ? "&" : "?";
    let url = `${this.url}${sep}format=${this.format}`;
    if (this.batch) url += "&batch=true";
    if (this.token) url += `&token=${encodeURIComponent(this.token)}`;
    return url;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  /** Open the connection; on open, every book is invalid and every subscription is sent again. */
  connect() {
    this._closed = false;
    this._open();
  }

  _open() {
    this._retry = null;
    let ws;
    try {
      ws = new this.WebSocket(this.fullUrl(), [JSON_PROTOCOL]);
    } catch (err) {
      this._emit({ kind: "close", key: "", data: { error: String(err) }, receivedNs: 0 });
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.connectedOnce = true;
      this.lastFrameAt = this.now();
      this._resetOutbox(this.controlBurst);
      for (const sub of this.subscriptions) this._send(this._resubscribe(sub));
      this._armWatchdog();
      this._emit({ kind: "open", key: "", data: { url: this.url }, receivedNs: 0 });
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      if (typeof e.data === "string") this.receive(e.data);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._disarmWatchdog();
      this._resetOutbox(0);
      for (const book of this.books.values()) {
        // a whole book can be resumed on the next connection from where it stopped
        if (book.valid) book.resumeFrom = book.sequence; // else: still the last one, or null
        book.valid = false;
      }
      this._emit({ kind: "close", key: "", data: { code: e.code, reason: e.reason }, receivedNs: 0 });
      if (this.reconnect && !this._closed) this._scheduleReconnect();
    };
    ws.onerror = () => {}; // always followed by close
  }

  _scheduleReconnect() {
    if (this._retry !== null || this._closed) return;
    this.reconnects += 1;
    const delay = this._backoff * (0.5 + this.random());
    this._backoff = Math.min(this.maxBackoff, this._backoff * 2);
    this._retry = this.timers.setTimeout(() => this._open(), delay * 1000);
  }

  _armWatchdog() {
    this._disarmWatchdog();
    if (!this.idleTimeout) return;
    const check = () => {
      const idle = (this.now() - this.lastFrameAt) / 1000;
      if (idle >= this.idleTimeout && this.ws) {
        this.ws.close(4000, "idle"); // a half-open connection: start over
        return;
      }
      this._watchdog = this.timers.setTimeout(check, 1000);
    };
    this._watchdog = this.timers.setTimeout(check, 1000);
  }

  _disarmWatchdog() {
    if (this._watchdog !== null) this.timers.clearTimeout(this._watchdog);
    this._watchdog = null;
  }

  close() {
    this._closed = true;
    this._disarmWatchdog();
    this._resetOutbox(0);
    if (this._retry !== null) this.timers.clearTimeout(this._retry);
    this._retry = null;
    if (this.ws) this.ws.close(1000, "bye");
  }

  _nextId() {
    this._ids += 1;
    return this._ids;
  }

  /** Queue a control message for this connection; false when there is none open. */
  _send(msg) {
    if (!this.isOpen) return false;
    this._outbox.push(JSON.stringify(msg));
    this._flush();
    return true;
  }

  _flush() {
    const now = this.now();
    this._tokens = Math.min(this.controlBurst, this._tokens + ((now - this._tokensAt) / 1000) * this.controlRate);
    this._tokensAt = now;
    while (this._outbox.length && this._tokens >= 1 && this.isOpen) {
      this.ws.send(this._outbox.shift());
      this._tokens -= 1;
    }
    if (this._outbox.length && this._flushTimer === null) {
      const wait = ((1 - this._tokens) / this.controlRate) * 1000 + 5;
      this._flushTimer = this.timers.setTimeout(() => {
        this._flushTimer = null;
        this._flush();
      }, wait);
    }
  }

  /** A new connection starts with a full bucket and nothing queued (subscriptions are resent). */
  _resetOutbox(tokens) {
    if (this._flushTimer !== null) this.timers.clearTimeout(this._flushTimer);
    this._flushTimer = null;
    this._outbox = [];
    this._tokens = tokens;
    this._tokensAt = this.now();
  }

  /** A subscription sent again on a new connection: whole books ask to resume. */
  _resubscribe(sub) {
    const msg = { ...sub, id: this._nextId() };
    if (sub.channel === "bbo") for (const s of sub.symbols) this._bboSeq.set(s, null);
    if (!BOOK_CHANNELS.includes(sub.channel)) return msg;
    const since = {};
    for (const s of sub.symbols) {
      const book = this.books.get(bookKey(sub.channel, s));
      if (!book) continue;
      // JSON numbers are exact to 2^53: a larger sequence starts from a snapshot
      const from = book.resumeFrom;
      if (from !== null && from >= 0n && from <= BigInt(Number.MAX_SAFE_INTEGER)) since[s] = Number(from);
      else book.resumeFrom = null;
    }
    if (Object.keys(since).length) msg.since = since;
    return msg;
  }

  // ---- requests

  /** Subscribe (sent now if open, else on the next open); returns the request id. */
  subscribe(channel, symbols, { depth = 20, speed = "raw", interval = "1m" } = {}) {
    const msg = { op: "subscribe", channel, symbols: [...symbols] };
    if (channel === "candles") {
      msg.interval = interval;
      for (const s of symbols) {
        if (!this.candles.has(candleKey(s, interval))) this.candles.set(candleKey(s, interval), new CandleSeries());
      }
    }
    if (BOOK_CHANNELS.includes(channel)) {
      Object.assign(msg, { depth, speed });
      for (const s of symbols) this.books.set(bookKey(channel, s), new LocalBook(s, depth));
    } else if (channel === "bbo") {
      for (const s of symbols) this._bboSeq.set(s, null);
    }
    this.subscriptions.push(msg);
    const id = this._nextId();
    this._send({ ...msg, id });
    return id;
  }

  /** Unsubscribe and forget the symbols' subscriptions and books. */
  unsubscribe(channel, symbols) {
    const drop = new Set(symbols);
    this.subscriptions = this.subscriptions
      .map((s) => (s.channel === channel ? { ...s, symbols: s.symbols.filter((x) => !drop.has(x)) } : s))
      .filter((s) => s.symbols.length);
    if (BOOK_CHANNELS.includes(channel)) for (const s of symbols) this.books.delete(bookKey(channel, s));
    if (channel === "candles") {
      for (const k of [...this.candles.keys()]) if (drop.has(k.slice(0, k.indexOf("|")))) this.candles.delete(k);
    }
    const id = this._nextId();
    this._send({ op: "unsubscribe", id, channel, symbols: [...symbols] });
    return id;
  }

  /** Send a raw control message (ping, replay, ...). */
  send(msg) {
    return this._send(msg);
  }

  resync(symbol) {
    return this._send({ op: "resync", id: this._nextId(), symbols: [symbol] });
  }

  /** The latest bbo of a stream (EXCHANGE:SYMBOL) or of a symbol across venues. */
  bbo(name) {
    return this.bbos.get(name) || null;
  }

  book(symbol) {
    return this.books.get(symbol) || this.books.get(`agg:${symbol}`) || null;
  }

  /** The CandleSeries of a candles subscription, or null. */
  candleSeries(stream, interval) {
    return this.candles.get(candleKey(stream, interval)) || null;
  }

  // ---- incoming data (pure: no I/O except the resync request)

  /** Feed one text frame; returns the events it produced (also emitted). */
  receive(text, receivedNs = this.now() * 1e6) {
    this.lastFrameAt = this.now();
    this._backoff = 0.1;
    const events = [];
    for (const msg of parseFrame(text)) {
      this.messages += 1;
      const event = this.handle(msg, receivedNs);
      if (event) {
        events.push(event);
        this._emit(event);
      }
    }
    return events;
  }

  /** One decoded message -> an event, or null for an update ignored while resyncing. */
  handle(msg, now) {
    const kind = msg.type || "";
    if (kind.endsWith("_snapshot") || kind.endsWith("book_update")) {
      const agg = kind.startsWith("aggregated");
      const key = agg ? `agg:${msg.symbol}` : `${msg.exchange}:${msg.symbol}`;
      const book = this.books.get(key);
      if (!book) return { kind: "unsubscribed_book", key, data: msg, receivedNs: now };
      return this._apply(book, msg, kind.endsWith("_snapshot"), now);
    }
    if (kind === "bbo") return this._bbo(msg, now);
    const key = `${msg.exchange ?? ""}:${msg.symbol ?? ""}`;
    if (kind === "subscribed" && "resumed" in msg) this._resumed(msg);
    const statusBook = () => this.books.get("exchange" in msg ? key : `agg:${msg.symbol ?? ""}`);
    if (kind === "status" && (msg.status === "behind" || msg.status === "caught_up")) {
      const book = statusBook();
      if (book) book.behind = msg.status === "behind";
    }
    if (kind === "status" && (msg.status === "stale" || msg.status === "resync")) {
      const book = statusBook();
      if (book) {
        book.valid = false;
        book.resumeFrom = null;
        book.stale = msg.status === "stale";
      }
      const bboKey = "exchange" in msg ? key : msg.symbol ?? "";
      if (this._bboSeq.has(bboKey)) this._bboSeq.set(bboKey, null);
    }
    if (kind === "candle") this.candles.get(candleKey(key, msg.interval))?.update(msg);
    return { kind: kind === "statistics" ? "stats" : kind, key, data: msg, receivedNs: now };
  }

  _bbo(msg, now) {
    const key = msg.exchange ? `${msg.exchange}:${msg.symbol}` : msg.symbol;
    const last = this._bboSeq.get(key) ?? null;
    const seq = toBig(msg.sequence);
    if (last !== null && (toBig(msg.prev_sequence) !== last || seq === null || seq <= last)) {
      this.sequenceBreaks += 1;
    }
    this._bboSeq.set(key, seq);
    this.bbos.set(key, msg);
    return { kind: "bbo", key, data: msg, receivedNs: now };
  }

  /** A subscribed reply to a resume: resumed books are whole again (the missed
   * messages follow); the others wait for their snapshot. */
  _resumed(msg) {
    const r = msg.resumed;
    const bySymbol = r !== null && typeof r === "object" ? r : { [msg.symbols?.[0]]: r };
    for (const [s, ok] of Object.entries(bySymbol)) {
      const book = this.books.get(bookKey(msg.channel, s));
      if (ok) this.resumed += 1;
      else this.notResumed += 1;
      if (!book) continue;
      if (ok && book.resumeFrom !== null) book.valid = true;
      book.resumeFrom = null;
    }
  }

  _apply(book, msg, snapshot, now) {
    book.timestamp = msg.timestamp;
    if (snapshot) {
      book.load(msg.bids, msg.asks, msg.sequence);
    } else if (!book.valid) {
      return null;
    } else {
      const prev = toBig(msg.prev_sequence);
      const seq = toBig(msg.sequence);
      if (prev === null || seq === null || prev !== book.sequence || seq <= book.sequence) {
        this.sequenceBreaks += 1;
        book.breaks += 1;
        this._break(book);
        return { kind: "break", key: book.key, data: msg, receivedNs: now };
      }
      book.apply(msg.bids, msg.asks, seq);
    }
    book.messages += 1;
    book.checksum = msg.checksum;
    if (book.localChecksum() !== msg.checksum) {
      this.checksumFailures += 1;
      book.lastCheck = "mismatch";
      this._break(book);
      return { kind: "checksum_failure", key: book.key, data: msg, receivedNs: now };
    }
    book.lastCheck = "valid";
    return { kind: "book", key: book.key, data: msg, receivedNs: now };
  }

  _break(book) {
    book.valid = false;
    book.resumeFrom = null;
    book.resyncs += 1;
    if (this.ws) this.resync(book.key.replace(/^agg:/, ""));
  }
}
