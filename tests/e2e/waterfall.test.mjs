// The trace view's layout (api/static/waterfall.js): node --test tests/e2e/waterfall.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import { fmtDuration, layout } from "../../api/static/waterfall.js";

const span = (span_id, parent_id, service, operation, kind, start_us, duration_us) => ({
  span_id, parent_id, service, operation, kind, start_us, duration_us, attributes: {},
});

const trace = {
  trace_id: "ab",
  spans: [
    span("s", "", "mdgw-producer", "send marketdata.book", "producer", 1000, 100),
    span("p", "s", "mdgw-gateway", "process marketdata.book", "consumer", 1500, 400),
    span("e", "p", "mdgw-gateway", "encode", "internal", 1600, 50),
    span("b", "p", "mdgw-gateway", "broadcast", "internal", 1650, 350),
  ],
};

test("tree order, depth, and a derived Kafka hop between producer and consumer", () => {
  const { rows, start, duration } = layout(trace);
  assert.equal(start, 1000);
  assert.equal(duration, 1000);
  assert.deepEqual(
    rows.map((r) => [r.operation, r.depth]),
    [["send marketdata.book", 0], ["in Kafka", 1], ["process marketdata.book", 1], ["encode", 2], ["broadcast", 2]],
  );
  const kafka = rows[1];
  assert.equal(kafka.kind, "kafka");
  assert.equal(kafka.start_us, 1100);
  assert.equal(kafka.duration_us, 400);
  assert.equal(kafka.left, 10);
  assert.equal(kafka.width, 40);
  const b = rows[4];
  assert.equal(b.left, 65);
  assert.equal(b.width, 35);
});

test("children are ordered by start and orphans become roots", () => {
  const t = { spans: [span("x", "missing", "a", "late", "internal", 5, 1), span("y", "", "a", "early", "internal", 0, 10), span("z", "y", "a", "child", "internal", 2, 1)] };
  assert.deepEqual(layout(t).rows.map((r) => [r.operation, r.depth]), [["late", 0], ["early", 0], ["child", 1]]);
});

test("hostile input: cycles, bad numbers and nothing at all", () => {
  const cyc = { spans: [span("a", "b", "s", "A", "internal", 0, 1), span("b", "a", "s", "B", "internal", 1, 1)] };
  assert.deepEqual(layout(cyc).rows.map((r) => [r.operation, r.depth]), [["A", 0], ["B", 1]]);
  const bad = { spans: [{ span_id: "a", start_us: "x", duration_us: 1 }, null, span("c", "", "s", "C", "internal", 0, -1)] };
  assert.deepEqual(layout(bad).rows, []);
  assert.deepEqual(layout(null).rows, []);
  const zero = layout({ spans: [span("a", "", "s", "A", "internal", 7, 0)] });
  assert.equal(zero.rows[0].width, 0.2); // still visible
});

test("durations read like a trace viewer's", () => {
  assert.equal(fmtDuration(850), "850 µs");
  assert.equal(fmtDuration(1234), "1.23 ms");
  assert.equal(fmtDuration(12_345), "12.3 ms");
  assert.equal(fmtDuration(1_200_000), "1.20 s");
  assert.equal(fmtDuration(NaN), "—");
});
