package main

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	readBufferSize = 64 << 10
	readLimit      = 1 << 30 // generous: a deep book snapshot is never refused
	closeWait      = time.Second
)

// stopping is set once the run ends: a connect finishing after that is dropped.
var stopping atomic.Bool

// client is one connection. Its reader records into stats under mu; wmu serialises its
// writers (the subscription, pings, pong and close replies) and, in the event-loop
// reader, the closing of its socket.
type client struct {
	k     int
	group int
	sub   []byte

	mu    sync.Mutex
	stats clientStats
	ws    atomic.Pointer[websocket.Conn] // the goroutine reader's connection, once connected
	raw   atomic.Pointer[rawConn]        // the event-loop reader's, once connected
	shard *shard                         // the event-loop reader's, nil for a goroutine reader

	wmu sync.Mutex
}

// send writes one text message (a subscription, a ping).
func (c *client) send(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if rc := c.raw.Load(); rc != nil {
		return rc.writeFrame(opText, msg)
	}
	if ws := c.ws.Load(); ws != nil {
		return ws.WriteMessage(websocket.TextMessage, msg)
	}
	return net.ErrClosed
}

// errorName is a short name for a failed connect, the key counted in "errors".
func errorName(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, websocket.ErrBadHandshake):
		return "handshake"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op // "dial", "read", "write"
	}
	return "other"
}

// connect runs client c: the handshake (holding a gate slot, released here), the
// subscription, then its reader (this goroutine, or its shard's event loop).
func (r *recorder) connect(ctx context.Context, c *client, dialer *websocket.Dialer, url string, gate <-chan struct{}) {
	t0 := time.Now()
	ws, _, err := dialer.DialContext(ctx, url, nil)
	elapsed := time.Since(t0)
	var fd int
	if err == nil && c.shard != nil {
		if fd, err = takeOver(ws.NetConn().(*peekConn).TCPConn); err != nil {
			ws.Close()
		}
	}
	<-gate
	if err != nil {
		if ctx.Err() == nil { // a connect cut short by the stop is not counted (as a cancelled task)
			r.countError(errorName(err))
		}
		return
	}
	connectMs := math.Round(float64(elapsed.Nanoseconds())/1e4) / 100
	if c.shard != nil {
		r.connectRaw(c, fd, connectMs)
		return
	}
	ws.SetReadLimit(readLimit)
	ws.SetCloseHandler(func(code int, _ string) error {
		now := time.Now().UnixNano()
		c.mu.Lock()
		c.stats.closed, c.stats.closeCode, c.stats.closeNs = true, int64(code), now
		c.mu.Unlock()
		c.wmu.Lock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(closeWait))
		c.wmu.Unlock()
		return nil
	})
	c.mu.Lock()
	if stopping.Load() { // too late: the run is over (as a cancelled connect task)
		c.mu.Unlock()
		ws.Close()
		return
	}
	c.ws.Store(ws)
	c.mu.Unlock()
	c.subscribe(connectMs)
	r.read(c, ws)
}

// subscribe sends the subscription on a new connection and records when it connected.
func (c *client) subscribe(connectMs float64) {
	_ = c.send(c.sub)
	c.mu.Lock()
	c.stats.connectMs = connectMs
	c.stats.connectedNs = time.Now().UnixNano()
	c.mu.Unlock()
}

// connectRaw hands a connected socket to c's shard, after the subscription.
func (r *recorder) connectRaw(c *client, fd int, connectMs float64) {
	rc := &rawConn{fd: fd, buf: make([]byte, readBufferSize)}
	c.mu.Lock()
	if stopping.Load() {
		c.mu.Unlock()
		syscall.Close(fd)
		return
	}
	c.raw.Store(rc)
	c.mu.Unlock()
	c.subscribe(connectMs)
	if err := c.shard.add(c, fd); err != nil { // cannot happen with a valid fd
		r.lost(c)
		c.wmu.Lock()
		syscall.Close(fd)
		rc.fd = -1
		c.wmu.Unlock()
	}
}

// read is the goroutine reader: it classifies every frame until the connection ends (one
// reused buffer, no copy of a message, the connection's own stats under its mutex).
func (r *recorder) read(c *client, ws *websocket.Conn) {
	defer ws.Close()
	buf := make([]byte, readBufferSize)
	for {
		mt, rd, err := ws.NextReader()
		if err != nil {
			r.lost(c)
			return
		}
		n := 0
		for {
			if n == len(buf) {
				g := make([]byte, 2*len(buf))
				copy(g, buf)
				buf = g
			}
			m, err := rd.Read(buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				r.lost(c)
				return
			}
		}
		now := time.Now().UnixNano()
		if mt != websocket.TextMessage {
			continue
		}
		c.mu.Lock()
		r.text(&c.stats, buf[:n], now)
		c.mu.Unlock()
	}
}

// lost records a connection that ended without a close frame: 1006, now (unless a close
// was recorded already: the server's, or our own disconnect at the end, see disconnect).
func (r *recorder) lost(c *client) {
	now := time.Now().UnixNano()
	c.mu.Lock()
	if !c.stats.closed {
		c.stats.closed, c.stats.closeCode, c.stats.closeNs = true, websocket.CloseAbnormalClosure, now
	}
	c.mu.Unlock()
}

// disconnect drops c's connection at the end of the run, without a close frame (picows'
// disconnect). Its close is recorded as [1006, now] first, as the Python client's final
// result shows it: its disconnected callbacks run before the file is written.
func (r *recorder) disconnect(c *client) {
	c.mu.Lock()
	ws, rc := c.ws.Load(), c.raw.Load()
	if (ws != nil || rc != nil) && !c.stats.closed {
		c.stats.closed, c.stats.closeCode, c.stats.closeNs = true, websocket.CloseAbnormalClosure, time.Now().UnixNano()
	}
	c.mu.Unlock()
	if ws != nil {
		_ = ws.NetConn().Close()
	}
	if rc != nil {
		c.wmu.Lock()
		if rc.fd >= 0 { // the shard's goroutine closes it
			_ = syscall.Shutdown(rc.fd, syscall.SHUT_RDWR)
		}
		c.wmu.Unlock()
	}
}

// pinger sends {"op":"ping","id":n} on c every period while it is connected and open;
// n counts the pings of the whole process.
func (r *recorder) pinger(c *client, period time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(period)
	defer t.Stop()
	msg := make([]byte, 0, 48)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		t.Reset(period)
		c.mu.Lock()
		open := (c.ws.Load() != nil || c.raw.Load() != nil) && !c.stats.closed
		c.mu.Unlock()
		if !open {
			continue
		}
		r.pingMu.Lock()
		n := len(r.pingSent)
		r.pingSent = append(r.pingSent, time.Now().UnixNano())
		r.pingRtt = append(r.pingRtt, -1)
		r.pingMu.Unlock()
		msg = append(msg[:0], `{"op":"ping","id":`...)
		msg = strconv.AppendInt(msg, int64(n), 10)
		msg = append(msg, '}')
		_ = c.send(msg)
	}
}
