// The dashboard's ?ws= check (api/static/wsurl.js): node --test tests/e2e/wsurl.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import { chooseWsUrl } from "../../api/static/wsurl.js";

const page = { protocol: "http:", hostname: "md.example", host: "md.example:8000" };

test("no parameter: the page's own host on 8080", () => {
  assert.deepEqual(chooseWsUrl(null, page), { url: "ws://md.example:8080/ws", refused: null });
});

test("the page's own host on any port is allowed", () => {
  assert.equal(chooseWsUrl("ws://md.example:9000/ws", page).url, "ws://md.example:9000/ws");
  assert.equal(chooseWsUrl("wss://md.example/ws", page).refused, null);
});

test("another host is refused unless configured", () => {
  const evil = "wss://attacker.example/ws";
  assert.deepEqual(chooseWsUrl(evil, page), { url: "ws://md.example:8080/ws", refused: evil });
  assert.equal(chooseWsUrl(evil, page, ["attacker.example"]).refused, null);
  assert.equal(chooseWsUrl("ws://gw.example:8080/ws", page, ["gw.example:8080"]).refused, null);
  assert.notEqual(chooseWsUrl("ws://gw.example:9999/ws", page, ["gw.example:8080"]).refused, null);
});

test("other schemes, credentials and junk are refused", () => {
  for (const bad of ["http://md.example/ws", "javascript:alert(1)", "not a url", "ws://u:p@md.example/ws"]) {
    assert.notEqual(chooseWsUrl(bad, page).refused, null, bad);
  }
});
