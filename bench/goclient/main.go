// Command latency-client is the compiled twin of bench/latency_client.py: many JSON
// WebSocket clients in one process, the same flags, signals and result file, at less CPU
// per message (it stands for clients on other machines).
//
// Each client connects to --url with ?format=json, subscribes to --per-client of the
// streams (client g of the whole run, g = --offset + k, follows group g % groups and its
// streams group, group+groups, ... of --streams) at --depth, speed raw (--channel bbo:
// their best bid/offer), and records for every book message its age, receive time minus
// ingest_ts (both Unix ns on this machine), into a log-linear histogram per wall-clock
// second (bench.latency_stats.bucket). Per client it keeps messages and the largest age
// per second, status resync and behind times and its close code. --pingers N: the first N
// clients also send {"op":"ping","id":n} every --ping-ms and time the pong.
//
// It stops by itself after --duration s (or at SIGUSR1/SIGTERM) and writes one JSON
// object to --out ("snapshot": -1); SIGUSR2 writes the results so far there without
// stopping ("snapshot": n, the n-th). OUT.ready appears once the signals are handled.
//
// How it reads (environment, not flags: the Python client has no such flag): by default
// one event loop (epoll.go) reads every socket, after gorilla/websocket's handshake;
// LATENCY_CLIENT_SHARDS=n spreads the sockets over n loops. LATENCY_CLIENT_READER=goroutine
// reads each connection on its own goroutine with gorilla's NextReader instead (the same
// results, more CPU per message: a goroutine to wake and a second read per burst).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type errParse struct{ error }

type options struct {
	url              string
	clients          int
	offset           int
	streams          []string
	perClient        int
	channel          string
	depth            int
	duration         float64
	concurrency      int
	handshakeTimeout float64
	pingers          int
	pingMs           float64
	out              string
}

func parseArgs(args []string) (options, error) {
	var o options
	var streams string
	fs := flag.NewFlagSet("latency-client", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "ws://127.0.0.1:PORT/ws (required)")
	fs.IntVar(&o.clients, "clients", 500, "connections in this process")
	fs.IntVar(&o.offset, "offset", 0, "index of this process's first client")
	fs.StringVar(&streams, "streams", "", "comma-separated EXCHANGE:SYMBOL (required)")
	fs.IntVar(&o.perClient, "per-client", 3, "streams per client")
	fs.StringVar(&o.channel, "channel", "book", "book or bbo")
	fs.IntVar(&o.depth, "depth", 20, "book channel's depth")
	fs.Float64Var(&o.duration, "duration", 60.0, "seconds, then stop")
	fs.IntVar(&o.concurrency, "concurrency", 200, "handshakes in flight")
	fs.Float64Var(&o.handshakeTimeout, "handshake-timeout", 60.0, "seconds")
	fs.IntVar(&o.pingers, "pingers", 0, "clients that also ping")
	fs.Float64Var(&o.pingMs, "ping-ms", 100.0, "ms between a pinger's pings")
	fs.StringVar(&o.out, "out", "", "JSON result file (required)")
	if err := fs.Parse(args); err != nil {
		return o, errParse{err} // fs printed it, and the usage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, name := range []string{"url", "streams", "out"} {
		if !set[name] {
			missing = append(missing, "--"+name)
		}
	}
	switch {
	case len(missing) > 0:
		return o, fmt.Errorf("the following arguments are required: %s", strings.Join(missing, ", "))
	case fs.NArg() > 0:
		return o, fmt.Errorf("unrecognized arguments: %s", strings.Join(fs.Args(), " "))
	case o.channel != "book" && o.channel != "bbo":
		return o, fmt.Errorf("argument --channel: invalid choice: %q (choose from 'book', 'bbo')", o.channel)
	case o.perClient < 1:
		return o, fmt.Errorf("argument --per-client: must be at least 1")
	case o.clients < 0 || o.concurrency < 0 || o.pingers < 0:
		return o, fmt.Errorf("--clients, --concurrency and --pingers must not be negative")
	}
	o.streams = strings.Split(streams, ",")
	return o, nil
}

type subscribeReq struct {
	Op      string   `json:"op"`
	ID      int      `json:"id"`
	Channel string   `json:"channel"`
	Symbols []string `json:"symbols"`
	Depth   *int     `json:"depth,omitempty"`
	Speed   string   `json:"speed,omitempty"`
}

// subscription is client g's group and its subscribe request (as orjson.dumps writes it).
func subscription(o *options, g int) (int, []byte) {
	groups := len(o.streams) / o.perClient
	if groups == 0 {
		groups = 1
	}
	group := (g%groups + groups) % groups // Python's %, for a negative --offset
	chosen := make([]string, o.perClient)
	for j := range chosen {
		chosen[j] = o.streams[(group+groups*j)%len(o.streams)]
	}
	req := subscribeReq{Op: "subscribe", ID: 1, Channel: o.channel, Symbols: chosen}
	if o.channel == "book" {
		req.Depth, req.Speed = &o.depth, "raw"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		panic(err) // strings and ints only
	}
	return group, bytes.TrimRight(buf.Bytes(), "\n")
}

// write replaces path with result atomically (path.tmp, then a rename).
func write(path string, result resultJSON) error {
	data, err := json.Marshal(result)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// ioOptions is how connections are read (the package comment): from the environment.
type ioOptions struct {
	shards int // 0: a goroutine per connection
}

func ioFromEnv() (ioOptions, error) {
	switch v := os.Getenv("LATENCY_CLIENT_READER"); v {
	case "goroutine":
		return ioOptions{}, nil
	case "", "epoll":
	default:
		return ioOptions{}, fmt.Errorf("LATENCY_CLIENT_READER=%q: epoll or goroutine", v)
	}
	n := 1
	if v := os.Getenv("LATENCY_CLIENT_SHARDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return ioOptions{}, fmt.Errorf("LATENCY_CLIENT_SHARDS=%q: a positive number", v)
		}
	}
	return ioOptions{shards: n}, nil
}

func run(o options, reader ioOptions) error {
	rec := newRecorder(time.Now().Unix())
	rec.clients = make([]*client, o.clients)
	for k := range rec.clients {
		c := &client{k: k, stats: newClientStats()}
		c.group, c.sub = subscription(&o, o.offset+k)
		rec.clients[k] = c
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGUSR2)
	// signals are handled from here on: the caller waits for this before sending any
	if err := os.WriteFile(o.out+".ready", nil, 0o644); err != nil {
		return err
	}
	deadline := time.Now().Add(seconds(o.duration))
	sep := "?"
	if strings.Contains(o.url, "?") {
		sep = "&"
	}
	url := o.url + sep + "format=json"
	dialer := &websocket.Dialer{
		HandshakeTimeout:  seconds(o.handshakeTimeout),
		ReadBufferSize:    readBufferSize,
		WriteBufferSize:   4096,
		EnableCompression: false,
	}
	if reader.shards == 0 {
		dialer.NetDialContext = dialRawRead
	} else { // the event-loop reader (the default)
		dialer.NetDialContext = dialPeek
		dialer.ReadBufferSize = 4096 // the handshake's only
		shards := make([]*shard, reader.shards)
		for i := range shards {
			s, err := newShard(rec)
			if err != nil {
				return err
			}
			shards[i] = s
			go s.run()
		}
		for _, c := range rec.clients {
			c.shard = shards[c.k%len(shards)]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	gate := make(chan struct{}, o.concurrency)
	rec.firstAttemptNs = time.Now().UnixNano()
	go func() { // connects in client order, at most --concurrency handshakes at a time
		for _, c := range rec.clients {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go rec.connect(ctx, c, dialer, url, gate)
		}
	}()
	for _, c := range rec.clients[:min(o.pingers, o.clients)] {
		go rec.pinger(c, seconds(o.pingMs/1000), stop)
	}
	timer := time.NewTimer(max(100*time.Millisecond, time.Until(deadline)))
	snaps := 0
wait:
	for {
		select {
		case <-timer.C:
			break wait
		case s := <-sigs:
			if s != syscall.SIGUSR2 {
				break wait
			}
			// SIGUSR2: the results so far, for a caller deciding its next step
			snaps++
			if err := write(o.out, rec.result(snaps)); err != nil {
				fmt.Fprintln(os.Stderr, "latency-client: snapshot:", err)
			}
		}
	}
	stopping.Store(true)
	cancel()
	close(stop)
	for _, c := range rec.clients {
		rec.disconnect(c)
	}
	return write(o.out, rec.result(-1))
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if pe, ok := err.(errParse); ok {
		if pe.error == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency-client: error:", err)
		os.Exit(2)
	}
	reader, err := ioFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency-client: error:", err)
		os.Exit(2)
	}
	if err := run(o, reader); err != nil {
		fmt.Fprintln(os.Stderr, "latency-client:", err)
		os.Exit(1)
	}
}
