// Which trace of the list the dashboard draws by itself (no DOM): what traces.js asks.
//
// Input: the list of GET /api/v1/traces (docs/protocol.md §6.3). A message's whole path
// comes first: its origin present ("complete": the producer's send reached Jaeger; each
// process exports in its own batches, so the newest traces often lack it for a moment)
// and across services with the gateway's spans; then across services; then the newest.

export function rank(t) {
  const across = Array.isArray(t?.services) && t.services.length > 1 && t.spans >= 4;
  return (across ? 1 : 0) + (across && t.complete !== false ? 1 : 0);
}

// The best-ranked trace, the newest of equals (the list is newest first); null if none.
export function pickTrace(traces) {
  if (!Array.isArray(traces) || traces.length === 0) return null;
  return traces.reduce((best, t) => (rank(t) > rank(best) ? t : best), traces[0]);
}

// Whether the selection gives way to `best`: none yet, or the page's own earlier choice
// (of rank `pickedRank`) and `best` is fuller. A trace the user clicked (`pickedRank`
// null) always stays.
export function replaces(best, selected, pickedRank) {
  if (best == null) return false;
  if (!selected) return true;
  return pickedRank != null && rank(best) > pickedRank;
}
