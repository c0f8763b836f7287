package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"sync"
)

var (
	bookPrefix   = []byte(`{"type":"order_book_`)
	updatePrefix = []byte(`{"type":"order_book_update"`)
	bboPrefix    = []byte(`{"type":"bbo"`)
	ingestKey    = []byte(`"ingest_ts":`)
)

// nBuckets is one more than the largest bucket of a non-negative int64 (bucket(1<<63-1)).
const nBuckets = (57 << 5) + 63 + 1

// bucket is bench.latency_stats.bucket: the log-linear histogram bucket of a latency in µs
// (exact below 64 µs, then 32 buckets per power of two; negative values count as 0).
func bucket(us int64) int {
	if us < 64 {
		if us > 0 {
			return int(us)
		}
		return 0
	}
	shift := bits.Len64(uint64(us)) - 6
	return (shift << 5) + int(us>>shift)
}

// floorDiv is Python's a // b for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

// recorder is what the process saw. The per-connection parts live in each client (its own
// mutex, taken by its reader once per message and by a snapshot); the histogram is
// accumulated per connection for the current second and merged here when the second
// changes or a result is taken, so readers rarely meet on r.mu.
type recorder struct {
	t0s            int64
	firstAttemptNs int64
	clients        []*client

	mu     sync.Mutex // guards hist, other, status, errors
	hist   map[int64][]int64
	other  map[string]int64
	status map[string]int64
	errors map[string]int64

	pingMu   sync.Mutex // guards pingSent, pingRtt
	pingSent []int64
	pingRtt  []int64
}

func newRecorder(t0s int64) *recorder {
	return &recorder{
		t0s:      t0s,
		hist:     map[int64][]int64{},
		other:    map[string]int64{},
		status:   map[string]int64{},
		errors:   map[string]int64{},
		pingSent: []int64{},
		pingRtt:  []int64{},
	}
}

func (r *recorder) countError(name string) {
	r.mu.Lock()
	r.errors[name]++
	r.mu.Unlock()
}

// clientStats is one connection's share of the recorder, guarded by client.mu.
type clientStats struct {
	bookMessages, updates, snapshots, updateBytes, negative int64

	curSec  int64
	cur     *[nBuckets]uint32 // this second's histogram, not yet merged into recorder.hist
	touched []uint16          // buckets of cur that are not zero

	counts, maxAgeMs, resyncNs, behindNs []int64

	closed             bool
	closeCode, closeNs int64
	connectedNs        int64
	connectMs          float64
}

func newClientStats() clientStats {
	return clientStats{
		counts:    []int64{},
		maxAgeMs:  []int64{},
		resyncNs:  []int64{},
		behindNs:  []int64{},
		connectMs: -1.0,
	}
}

// flush merges the current second's histogram into r.hist (the caller holds c.mu).
func (r *recorder) flush(s *clientStats) {
	if len(s.touched) == 0 {
		return
	}
	top := 0
	for _, b := range s.touched {
		if int(b) > top {
			top = int(b)
		}
	}
	r.mu.Lock()
	h := r.hist[s.curSec]
	if len(h) <= top {
		n := max(800, top+1) // as the Python client's lists (trimmed in the output anyway)
		g := make([]int64, n)
		copy(g, h)
		h = g
		r.hist[s.curSec] = h
	}
	for _, b := range s.touched {
		h[b] += int64(s.cur[b])
		s.cur[b] = 0
	}
	r.mu.Unlock()
	s.touched = s.touched[:0]
}

// parsePyInt is Python's int() of bytes for what can reasonably follow "ingest_ts": (ASCII
// whitespace around, an optional sign, decimal digits with single underscores between).
func parsePyInt(b []byte) (int64, bool) {
	b = bytes.TrimSpace(b)
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	prevDigit := false
	for i, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			if v > (math.MaxInt64-9)/10 {
				return 0, false // beyond int64: a nanosecond clock never is
			}
			v = v*10 + uint64(ch-'0')
			prevDigit = true
		case ch == '_' && prevDigit && i+1 < len(b):
			prevDigit = false
		default:
			return 0, false
		}
	}
	if !prevDigit {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// book is Recorder.book: one order book (or bbo) message received at now (the caller holds c.mu).
func (r *recorder) book(s *clientStats, payload []byte, now int64) {
	i := bytes.Index(payload, ingestKey)
	if i < 0 {
		return
	}
	j := i + len(ingestKey)
	end := bytes.IndexByte(payload[j:], ',')
	if end < 0 {
		end = bytes.IndexByte(payload[j:], '}')
	}
	var field []byte
	if end >= 0 {
		field = payload[j : j+end]
	} else if len(payload)-1 > j { // Python's payload[j:-1]
		field = payload[j : len(payload)-1]
	}
	ingest, ok := parsePyInt(field)
	if !ok {
		return
	}
	s.bookMessages++
	// snapshots are larger: the frame size is updates' (every bbo is one)
	if bytes.HasPrefix(payload, updatePrefix) || bytes.HasPrefix(payload, bboPrefix) {
		s.updates++
		s.updateBytes += int64(len(payload))
	} else {
		// A snapshot's ingest_ts is the book's last change: ages are the updates' only.
		s.snapshots++
		return
	}
	if ingest == 0 {
		return
	}
	age := floorDiv(now-ingest, 1000)
	if age < 0 {
		s.negative++
		age = 0
	}
	sec := floorDiv(now, 1_000_000_000) - r.t0s
	if sec != s.curSec {
		r.flush(s)
		s.curSec = sec
	}
	if s.cur == nil {
		s.cur = new([nBuckets]uint32)
		s.touched = make([]uint16, 0, 64)
	}
	b := bucket(age)
	if s.cur[b] == 0 {
		s.touched = append(s.touched, uint16(b))
	}
	s.cur[b]++
	if sec < 0 { // the wall clock went back past the start: no per-client second for it
		return
	}
	if sec >= int64(len(s.counts)) {
		s.counts = grow(s.counts, int(sec)+1)
		s.maxAgeMs = grow(s.maxAgeMs, int(sec)+1)
	}
	s.counts[sec]++
	if ms := age / 1000; ms > s.maxAgeMs[sec] {
		s.maxAgeMs[sec] = ms
	}
}

func grow(xs []int64, n int) []int64 {
	if n <= len(xs) {
		return xs
	}
	if n <= cap(xs) {
		old := len(xs)
		xs = xs[:n]
		clear(xs[old:])
		return xs
	}
	g := make([]int64, n, max(n, 2*cap(xs)))
	copy(g, xs)
	return g
}

// pyStr is Python's str() of a JSON value decoded with UseNumber, for the keys of
// other/status/errors (str(None) is "None").
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return x.String()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// decodeJSON is orjson.loads: one JSON value and nothing after it but whitespace.
func decodeJSON(payload []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	var rest json.RawMessage
	if err := dec.Decode(&rest); err != io.EOF {
		return nil, false
	}
	return v, true
}

// text is Client.on_ws_frame's TEXT branch (the caller holds c.mu).
func (r *recorder) text(s *clientStats, payload []byte, now int64) {
	if hasPrefix(payload, bookPrefix) || hasPrefix(payload, bboPrefix) {
		r.book(s, payload, now)
	} else {
		r.control(s, payload, now)
	}
}

func hasPrefix(b, p []byte) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == string(p)
}

// control is Recorder.control: any other text message (the caller holds c.mu).
func (r *recorder) control(s *clientStats, payload []byte, now int64) {
	v, ok := decodeJSON(payload)
	if !ok {
		r.mu.Lock()
		r.other["bad_json"]++
		r.mu.Unlock()
		return
	}
	msg, isDict := v.(map[string]any)
	kind := "list"
	if isDict {
		kind = pyStr(msg["type"])
	}
	r.mu.Lock()
	r.other[kind]++
	r.mu.Unlock()
	switch kind {
	case "status":
		st := pyStr(msg["status"])
		r.mu.Lock()
		r.status[st]++
		r.mu.Unlock()
		switch st {
		case "resync":
			s.resyncNs = append(s.resyncNs, now)
		case "behind":
			told := s.behindNs
			if len(told) == 0 || now-told[len(told)-1] > 1_000_000 { // one per stream, read together
				s.behindNs = append(s.behindNs, now)
			}
		}
	case "pong":
		num, isNum := msg["id"].(json.Number)
		if !isNum {
			return
		}
		n, err := strconv.ParseInt(num.String(), 10, 64) // an int, not 1.0
		if err != nil {
			return
		}
		r.pingMu.Lock()
		if n >= 0 && n < int64(len(r.pingSent)) {
			r.pingRtt[n] = floorDiv(now-r.pingSent[n], 1000)
		}
		r.pingMu.Unlock()
	case "error":
		code := pyStr(msg["code"])
		r.mu.Lock()
		r.errors["error:"+code]++
		r.mu.Unlock()
	}
}

// ---- the result file ------------------------------------------------------------------

// pyFloat marshals as Python's json does a float: always with a '.' or an exponent, so a
// reader gets a float back (-1.0, not -1).
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(f), 'f', -1, 64)
	if !bytes.ContainsAny(b, ".eE") {
		b = append(b, '.', '0')
	}
	return b, nil
}

// histJSON marshals as an object keyed by second, in numeric order (as the Python client's
// sorted dict).
type histJSON map[int64][]int64

func (h histJSON) MarshalJSON() ([]byte, error) {
	secs := make([]int64, 0, len(h))
	for s := range h {
		secs = append(secs, s)
	}
	sort.Slice(secs, func(a, b int) bool { return secs[a] < secs[b] })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, s := range secs {
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteByte('"')
		buf.WriteString(strconv.FormatInt(s, 10))
		buf.WriteString(`": `)
		b, err := json.Marshal(h[s])
		if err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

type perClientJSON struct {
	Counts      [][]int64   `json:"counts"`
	MaxAgeMs    [][]int64   `json:"max_age_ms"`
	ResyncNs    [][]int64   `json:"resync_ns"`
	BehindNs    [][]int64   `json:"behind_ns"`
	Close       []*[2]int64 `json:"close"`
	ConnectedNs []int64     `json:"connected_ns"`
	ConnectMs   []pyFloat   `json:"connect_ms"`
	Group       []int64     `json:"group"`
}

type pingsJSON struct {
	SentNs []int64 `json:"sent_ns"`
	RttUs  []int64 `json:"rtt_us"`
}

type resultJSON struct {
	Clients        int              `json:"clients"`
	T0S            int64            `json:"t0_s"`
	FirstAttemptNs int64            `json:"first_attempt_ns"`
	Hist           histJSON         `json:"hist"`
	NegativeAges   int64            `json:"negative_ages"`
	BookMessages   int64            `json:"book_messages"`
	Updates        int64            `json:"updates"`
	Snapshots      int64            `json:"snapshots"`
	UpdateBytes    int64            `json:"update_bytes"`
	Other          map[string]int64 `json:"other"`
	Status         map[string]int64 `json:"status"`
	Errors         map[string]int64 `json:"errors"`
	PerClient      perClientJSON    `json:"per_client"`
	Pings          pingsJSON        `json:"pings"`
	Snapshot       int              `json:"snapshot"`
}

func clone(xs []int64) []int64 {
	out := make([]int64, len(xs)) // never nil: [] in JSON, not null
	copy(out, xs)
	return out
}

func cloneMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// trim drops trailing zeros (a copy).
func trim(xs []int64) []int64 {
	n := len(xs)
	for n > 0 && xs[n-1] == 0 {
		n--
	}
	return clone(xs[:n])
}

// result is Recorder.result plus "snapshot": everything so far, the connections' pending
// histograms merged first.
func (r *recorder) result(snapshot int) resultJSON {
	n := len(r.clients)
	pc := perClientJSON{
		Counts:      make([][]int64, n),
		MaxAgeMs:    make([][]int64, n),
		ResyncNs:    make([][]int64, n),
		BehindNs:    make([][]int64, n),
		Close:       make([]*[2]int64, n),
		ConnectedNs: make([]int64, n),
		ConnectMs:   make([]pyFloat, n),
		Group:       make([]int64, n),
	}
	res := resultJSON{Clients: n, T0S: r.t0s, FirstAttemptNs: r.firstAttemptNs, Snapshot: snapshot}
	for k, c := range r.clients {
		c.mu.Lock()
		s := &c.stats
		r.flush(s)
		res.BookMessages += s.bookMessages
		res.Updates += s.updates
		res.Snapshots += s.snapshots
		res.UpdateBytes += s.updateBytes
		res.NegativeAges += s.negative
		pc.Counts[k] = clone(s.counts)
		pc.MaxAgeMs[k] = clone(s.maxAgeMs)
		pc.ResyncNs[k] = clone(s.resyncNs)
		pc.BehindNs[k] = clone(s.behindNs)
		if s.closed {
			pc.Close[k] = &[2]int64{s.closeCode, s.closeNs}
		}
		pc.ConnectedNs[k] = s.connectedNs
		pc.ConnectMs[k] = pyFloat(s.connectMs)
		pc.Group[k] = int64(c.group)
		c.mu.Unlock()
	}
	res.PerClient = pc
	r.mu.Lock()
	res.Hist = make(histJSON, len(r.hist))
	for sec, h := range r.hist {
		res.Hist[sec] = trim(h)
	}
	res.Other = cloneMap(r.other)
	res.Status = cloneMap(r.status)
	res.Errors = cloneMap(r.errors)
	r.mu.Unlock()
	r.pingMu.Lock()
	res.Pings = pingsJSON{SentNs: clone(r.pingSent), RttUs: clone(r.pingRtt)}
	r.pingMu.Unlock()
	return res
}
