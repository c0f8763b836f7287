// The dashboard's choice of trace (api/static/tracepick.js): node --test tests/e2e/tracepick.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import { pickTrace, rank, replaces } from "../../api/static/tracepick.js";

const whole = { trace_id: "w", spans: 6, services: ["mdgw-api", "mdgw-gateway", "mdgw-producer"], complete: true };
const partial = { trace_id: "p", spans: 4, services: ["mdgw-api", "mdgw-gateway"], complete: false };
const producerOnly = { trace_id: "o", spans: 1, services: ["mdgw-producer"], complete: true };

test("a whole path beats one without its producer span, which beats one service", () => {
  assert.ok(rank(whole) > rank(partial));
  assert.ok(rank(partial) > rank(producerOnly));
  assert.equal(pickTrace([producerOnly, partial, whole]).trace_id, "w");
  assert.equal(pickTrace([producerOnly, partial]).trace_id, "p");
});

test("the newest of equals, and the newest when none crossed services", () => {
  const older = { ...whole, trace_id: "w2" };
  assert.equal(pickTrace([whole, older]).trace_id, "w");
  assert.equal(pickTrace([producerOnly, { ...producerOnly, trace_id: "o2" }]).trace_id, "o");
});

test("a list from an API without 'complete' still ranks (older servers)", () => {
  const { complete, ...old } = whole;
  assert.equal(rank(old), rank(whole));
});

test("nothing to pick from, and junk entries, do not throw", () => {
  assert.equal(pickTrace([]), null);
  assert.equal(pickTrace(undefined), null);
  assert.equal(rank({}), 0);
  assert.equal(rank(null), 0);
});

test("the page's own choice gives way to a fuller trace; a clicked one stays", () => {
  assert.equal(replaces(whole, "", null), true);
  assert.equal(replaces(whole, "p", rank(partial)), true);
  assert.equal(replaces(partial, "p", rank(partial)), false);
  assert.equal(replaces(whole, "p", null), false);
  assert.equal(replaces(null, "", null), false);
});
