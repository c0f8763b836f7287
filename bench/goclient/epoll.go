package main

// The event-loop reader (the default): gorilla/websocket does the handshake, then the
// socket leaves Go's poller for one of a few shards, each a goroutine on its own
// (level-triggered) epoll set, itself parked in Go's poller. A shard reads each ready
// socket once into the connection's buffer and parses the frames there (a server's are
// not masked), so a wakeup costs one epoll_wait for all its ready sockets and one read
// each: no goroutine per connection to wake, no second read to learn the socket is
// empty. Writes (the subscription, pings, pong and close replies) are masked frames
// written directly, under the connection's write mutex.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

var errProtocol = errors.New("websocket protocol error")

// rawConn is one connection's socket once the handshake is done. fd is closed only by
// its shard's goroutine, under the client's wmu (so no write meets a reused number).
type rawConn struct {
	fd     int // -1 once closed
	buf    []byte
	r, w   int    // unparsed bytes are buf[r:w]
	frag   []byte // a fragmented message so far
	fragOp byte
	inFrag bool
	wbuf   []byte // a frame being written (under wmu)
}

// peekConn is the TCP connection gorilla does the handshake on: it never reads past the
// end of the response headers (it peeks first), so nothing of the stream is left in
// gorilla's buffer when the socket is handed to a shard.
type peekConn struct {
	*net.TCPConn
	state int // bytes of "\r\n\r\n" matched
	done  bool
}

func (p *peekConn) Read(b []byte) (int, error) {
	if p.done || len(b) == 0 {
		return 0, io.EOF
	}
	sc, err := p.TCPConn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = sc.Read(func(fd uintptr) bool {
		m, _, e := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK)
		switch {
		case e == syscall.EAGAIN:
			return false
		case e == syscall.EINTR:
			return false
		case e != nil:
			rerr = e
			return true
		case m == 0:
			rerr = io.EOF
			return true
		}
		take := m
		for i := 0; i < m; i++ {
			switch {
			case b[i] == "\r\n\r\n"[p.state]:
				p.state++
			case b[i] == '\r':
				p.state = 1
			default:
				p.state = 0
			}
			if p.state == 4 {
				take, p.done = i+1, true
				break
			}
		}
		for {
			n, e = syscall.Read(int(fd), b[:take]) // peeked: there
			if e != syscall.EINTR {
				break
			}
		}
		if e != nil {
			n, rerr = 0, e
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// rawReadConn is the goroutine reader's TCP connection: reads as the standard library's
// (the socket first, Go's poller if it is empty) but without entersyscall (rawRead).
type rawReadConn struct {
	*net.TCPConn
	sc syscall.RawConn
}

func (c *rawReadConn) Read(b []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.sc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(int(fd), b)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// dialTCP dials addr and returns the TCP connection.
func dialTCP(ctx context.Context, network, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, errors.New("not a TCP connection")
	}
	return tc, nil
}

func dialRawRead(ctx context.Context, network, addr string) (net.Conn, error) {
	tc, err := dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	sc, err := tc.SyscallConn()
	if err != nil {
		tc.Close()
		return nil, err
	}
	return &rawReadConn{TCPConn: tc, sc: sc}, nil
}

func dialPeek(ctx context.Context, network, addr string) (net.Conn, error) {
	tc, err := dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &peekConn{TCPConn: tc}, nil
}

// takeOver returns the socket of a finished handshake as a plain non-blocking fd, out of
// Go's poller (a duplicate, the original closed).
func takeOver(tc *net.TCPConn) (int, error) {
	sc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := sc.Control(func(f uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	tc.Close() // the duplicate keeps the socket open (and non-blocking)
	return fd, nil
}

// writeFrame writes one masked frame (the caller holds the client's wmu). A full socket
// buffer is waited out for up to a second.
func (rc *rawConn) writeFrame(op byte, payload []byte) error {
	if rc.fd < 0 {
		return net.ErrClosed
	}
	f := append(rc.wbuf[:0], 0x80|op)
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	f = append(f, key[:]...)
	start := len(f)
	f = append(f, payload...)
	for i := range f[start:] {
		f[start+i] ^= key[i&3]
	}
	rc.wbuf = f
	deadline := time.Now().Add(time.Second)
	for len(f) > 0 {
		n, errno := rawWrite(rc.fd, f)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			if time.Now().After(deadline) {
				return errno
			}
			time.Sleep(time.Millisecond)
			continue
		case errno != 0:
			return errno
		}
		f = f[n:]
	}
	return nil
}

// The hot path's system calls (a read of a non-blocking socket, a non-blocking
// epoll_wait, a write of a few bytes) never block, so they go without the scheduler's
// entersyscall: a syscall.Read wakes the runtime's monitor thread each time the process
// comes back from idle, i.e. on nearly every burst of messages.

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), e
}

// rawEpollPoll is epoll_pwait(epfd, events, timeout 0, no mask).
func rawEpollPoll(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	return int(n), e
}

// shard is one epoll set and the goroutine that reads its sockets.
type shard struct {
	r      *recorder
	epfd   int
	file   *os.File // epfd in Go's poller (kept: its finalizer would close epfd)
	rc     syscall.RawConn
	events []syscall.EpollEvent
}

func newShard(r *recorder) (*shard, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil { // so os.NewFile polls it
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &shard{r: r, epfd: epfd, file: f, rc: rc, events: make([]syscall.EpollEvent, 256)}, nil
}

func (s *shard) add(c *client, fd int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd), Pad: int32(c.k)}
	return syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// run serves the shard's sockets until the process ends. The epoll set is checked before
// the goroutine parks (Go's poller resets its readiness first), so no event is lost.
func (s *shard) run() {
	for {
		n := 0
		err := s.rc.Read(func(uintptr) bool {
			for {
				m, e := rawEpollPoll(s.epfd, s.events)
				if e == syscall.EINTR {
					continue
				}
				n = max(m, 0)
				return n > 0 || e != 0
			}
		})
		if err != nil {
			return
		}
		for i := range s.events[:n] {
			c := s.r.clients[s.events[i].Pad]
			if rc := c.raw.Load(); rc != nil && rc.fd == int(s.events[i].Fd) {
				s.readable(c, rc)
			}
		}
	}
}

// readable reads what the socket has (once: the set is level-triggered) and handles every
// complete frame.
func (s *shard) readable(c *client, rc *rawConn) {
	if rc.w == len(rc.buf) { // no room: drop what was parsed, or grow for a large frame
		if rc.r > 0 {
			rc.w = copy(rc.buf, rc.buf[rc.r:rc.w])
			rc.r = 0
		} else {
			g := make([]byte, 2*len(rc.buf))
			copy(g, rc.buf[:rc.w])
			rc.buf = g
		}
	}
	n, errno := rawRead(rc.fd, rc.buf[rc.w:])
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return
	}
	if errno != 0 || n <= 0 { // lost without a close frame
		s.r.lost(c)
		s.drop(c, rc)
		return
	}
	rc.w += n
	c.mu.Lock()
	closed, err := s.frames(c, rc)
	c.mu.Unlock()
	switch {
	case err != nil:
		s.r.lost(c)
		s.drop(c, rc)
	case closed:
		s.drop(c, rc)
	case rc.r == rc.w:
		rc.r, rc.w = 0, 0
	}
}

// frames handles the complete frames in rc.buf[rc.r:rc.w] (the caller holds c.mu); closed:
// the server's close frame came (recorded and answered).
func (s *shard) frames(c *client, rc *rawConn) (closed bool, err error) {
	for {
		b := rc.buf[rc.r:rc.w]
		if len(b) < 2 {
			return false, nil
		}
		b0, b1 := b[0], b[1]
		if b0&0x70 != 0 { // RSV bits: no extension was negotiated
			return false, errProtocol
		}
		fin, op := b0&0x80 != 0, b0&0x0f
		hdr, size := 2, uint64(b1&0x7f)
		switch size {
		case 126:
			if len(b) < 4 {
				return false, nil
			}
			hdr, size = 4, uint64(binary.BigEndian.Uint16(b[2:4]))
		case 127:
			if len(b) < 10 {
				return false, nil
			}
			hdr, size = 10, binary.BigEndian.Uint64(b[2:10])
		}
		masked := b1&0x80 != 0
		if masked {
			hdr += 4
		}
		if size > readLimit {
			return false, errProtocol
		}
		need := hdr + int(size)
		if len(b) < need {
			if need > len(rc.buf)-rc.r { // make room for the whole frame
				g := make([]byte, max(2*len(rc.buf), need))
				rc.w = copy(g, b)
				rc.r, rc.buf = 0, g
			}
			return false, nil
		}
		payload := b[hdr:need]
		if masked {
			key := b[hdr-4 : hdr]
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		rc.r += need
		now := time.Now().UnixNano()
		if op >= opClose && (!fin || size > 125) {
			return false, errProtocol
		}
		switch op {
		case opText, opBinary:
			if rc.inFrag {
				return false, errProtocol
			}
			if !fin {
				rc.frag, rc.fragOp, rc.inFrag = append(rc.frag[:0], payload...), op, true
			} else if op == opText {
				s.r.text(&c.stats, payload, now)
			}
		case opContinuation:
			if !rc.inFrag {
				return false, errProtocol
			}
			rc.frag = append(rc.frag, payload...)
			if fin {
				rc.inFrag = false
				if rc.fragOp == opText {
					s.r.text(&c.stats, rc.frag, now)
				}
			}
		case opClose:
			code := int64(websocket1005)
			if len(payload) >= 2 {
				code = int64(binary.BigEndian.Uint16(payload))
			}
			c.stats.closed, c.stats.closeCode, c.stats.closeNs = true, code, now
			var reply []byte
			if code != websocket1005 {
				reply = payload[:2]
			}
			c.wmu.Lock()
			_ = rc.writeFrame(opClose, reply)
			c.wmu.Unlock()
			return true, nil
		case opPing:
			c.wmu.Lock()
			_ = rc.writeFrame(opPong, payload)
			c.wmu.Unlock()
		case opPong:
		default:
			return false, errProtocol
		}
	}
}

// websocket1005 is "no status received": a close frame without a code.
const websocket1005 = 1005

// drop closes the socket (the shard's goroutine only).
func (s *shard) drop(c *client, rc *rawConn) {
	c.wmu.Lock()
	if rc.fd >= 0 {
		_ = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_DEL, rc.fd, nil)
		_ = syscall.Close(rc.fd)
		rc.fd = -1
	}
	c.wmu.Unlock()
}
