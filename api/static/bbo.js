// The dashboard's best bid/offer panel (docs/protocol.md §4.8): the selected stream's
// top and the best over every venue listing its symbol, from the gateway's `bbo`
// channel on the page's own client (window.mdgw, api/static/app.js). The client checks
// each bbo's prev_sequence chain (breaks show in the Connection panel's count).

const panel = document.getElementById("bbo");
const state = { stream: "", symbol: "", messages: 0, drawn: 0 };
window.mdgwBbo = state; // for the console and the browser tests

function canonical(stream) {
  return stream.slice(stream.indexOf(":") + 1);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function fmt(n, dp) {
  return n == null ? "—" : Number(n).toFixed(dp);
}

function decimals(price) {
  return price >= 1000 ? 2 : price >= 1 ? 4 : 6;
}

/** One row: label, bid qty @ price, ask price x qty, spread, venue of each side. */
function row(label, msg) {
  const r = el("div", "bbo-row");
  r.append(el("span", "bbo-name", label));
  if (!msg) {
    r.append(el("span", "bbo-wait", "waiting for the first top…"));
    return r;
  }
  const { bid, ask } = msg;
  const dp = decimals((bid || ask || [1])[0]);
  const side = (q, cls) => {
    const s = el("span", `bbo-side ${cls}`);
    s.append(el("b", "", q ? fmt(q[0], dp) : "—"), el("small", "", q ? fmt(q[1], 4) : ""));
    if (q && q.length > 2) s.append(el("i", `venue v-${q[2].toLowerCase()}`, q[2]));
    return s;
  };
  r.append(side(bid, "bid"), side(ask, "ask"));
  const spread = bid && ask ? fmt(ask[0] - bid[0], dp) : "—";
  r.append(el("span", "bbo-spread", spread));
  r.dataset.sequence = String(msg.sequence);
  return r;
}

function draw() {
  const { client } = window.mdgw;
  const head = el("h2", "", "Best bid / offer ");
  head.append(el("small", "", `bbo · ${state.messages} msgs`));
  const body = el("div", "bbo");
  body.append(row(state.stream, client.bbo(state.stream)), row(`${state.symbol} · all venues`, client.bbo(state.symbol)));
  panel.replaceChildren(head, body);
  state.drawn = state.messages;
}

/** Follow the page's stream: subscribe to its bbo and its symbol's. */
function follow() {
  const { client, view } = window.mdgw;
  if (!view.stream || view.stream === state.stream) return;
  const subs = [];
  if (state.stream) client.unsubscribe("bbo", [state.stream]);
  if (state.symbol && state.symbol !== view.symbol) client.unsubscribe("bbo", [state.symbol]);
  subs.push(view.stream);
  if (state.symbol !== canonical(view.stream)) subs.push(canonical(view.stream));
  state.stream = view.stream;
  state.symbol = canonical(view.stream);
  client.subscribe("bbo", subs);
  draw();
}

function start() {
  if (!panel) return;
  if (!window.mdgw) {
    setTimeout(start, 50); // app.js awaits its settings before it creates the client
    return;
  }
  panel.hidden = false;
  window.mdgw.client.on("bbo", () => {
    state.messages += 1;
  });
  setInterval(follow, 250);
  // at most one redraw per frame however fast the tops change
  const tick = () => {
    if (state.messages !== state.drawn) draw();
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  follow();
}

start();
