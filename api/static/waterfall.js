// Pure layout of one trace's waterfall (no DOM): what traces.js draws.
//
// Input: GET /api/v1/traces/{id} (docs/protocol.md §6.3): spans sorted by start, each
// with span_id, parent_id, service, operation, kind, start_us, duration_us.
// Output: rows in tree order (a parent, then its children by start), each with its
// nesting depth and its bar as percentages of the trace's time span. Between a
// PRODUCER span and the CONSUMER span that continues it, a derived "kafka" row shows
// the time the record spent in Kafka (send end -> process start; the two clocks are
// the same host's in the demo, so the gap is honest there, approximate elsewhere).

export function layout(trace) {
  const spans = Array.isArray(trace?.spans) ? trace.spans.filter(validSpan) : [];
  if (spans.length === 0) return { rows: [], start: 0, duration: 0 };
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const parent = s.parent_id && s.parent_id !== s.span_id ? byId.get(s.parent_id) : undefined;
    if (parent) {
      if (!children.has(parent.span_id)) children.set(parent.span_id, []);
      children.get(parent.span_id).push(s);
    } else {
      roots.push(s);
    }
  }
  const start = Math.min(...spans.map((s) => s.start_us));
  const end = Math.max(...spans.map((s) => s.start_us + s.duration_us));
  const duration = Math.max(1, end - start);
  const pct = (us) => (100 * (us - start)) / duration;
  const rows = [];
  const seen = new Set();
  const visit = (s, depth, parent) => {
    if (seen.has(s.span_id)) return; // a cycle in hostile input: draw each span once
    seen.add(s.span_id);
    if (parent && parent.kind === "producer" && s.kind === "consumer") {
      const from = parent.start_us + parent.duration_us;
      const gap = Math.max(0, s.start_us - from);
      rows.push({
        kind: "kafka",
        service: "kafka",
        operation: "in Kafka",
        depth,
        start_us: from,
        duration_us: gap,
        left: pct(from),
        width: Math.max(0.2, (100 * gap) / duration),
      });
    }
    rows.push({
      kind: s.kind || "internal",
      service: s.service,
      operation: s.operation,
      span_id: s.span_id,
      attributes: s.attributes || {},
      depth,
      start_us: s.start_us,
      duration_us: s.duration_us,
      left: pct(s.start_us),
      width: Math.max(0.2, (100 * s.duration_us) / duration),
    });
    for (const c of children.get(s.span_id) || []) visit(c, depth + 1, s);
  };
  for (const r of roots) visit(r, 0, null);
  for (const s of spans) visit(s, 0, null); // spans in a parent cycle (hostile input)
  return { rows, start, duration };
}

function validSpan(s) {
  return (
    s &&
    typeof s.span_id === "string" &&
    Number.isFinite(s.start_us) &&
    Number.isFinite(s.duration_us) &&
    s.duration_us >= 0
  );
}

// "850 µs", "12.3 ms", "1.20 s"
export function fmtDuration(us) {
  if (!Number.isFinite(us)) return "—";
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}
