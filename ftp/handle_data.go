package ftp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// dataPlan is how the next data connection will be made: a listener set up
// by PASV or EPSV, or an address given by PORT or EPRT. A transfer takes it
// and uses it once; a new PASV or PORT replaces it.
type dataPlan struct {
	mode   string         // "passive" or "active"
	ln     net.Listener   // passive: waiting for the client
	target netip.AddrPort // active: where to connect
}

func (p *dataPlan) close() {
	if p != nil && p.ln != nil {
		p.ln.Close()
	}
}

// setPlan replaces the planned data connection, closing the old listener.
func (s *session) setPlan(p *dataPlan) {
	s.plan.close()
	s.plan = p
}

// takePlan returns the planned data connection, or nil, and forgets it.
func (s *session) takePlan() *dataPlan {
	p := s.plan
	s.plan = nil
	return p
}

// activeAllowed reports whether the server may connect to ap for PORT or
// EPRT. Only the control connection's own peer, on an unprivileged port:
// anything else would let a client aim the server at a third party (the
// "bounce attack" of RFC 2577 section 3).
func (s *session) activeAllowed(ap netip.AddrPort) bool {
	return ap.Port() >= 1024 && sameHost(ap.Addr(), s.remote.Addr())
}

// sameHost compares two addresses as hosts: IPv4 in IPv6 unmapped, zones
// ignored.
func sameHost(a, b netip.Addr) bool {
	return a.Unmap().WithZone("") == b.Unmap().WithZone("")
}

// netProto is the RFC 2428 network protocol number of a: "1" for IPv4, "2"
// for IPv6.
func netProto(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "1"
	}
	return "2"
}

func handlePORT(s *session, arg string) {
	if s.epsvAll {
		s.reply(503, "Only EPSV is allowed after EPSV ALL.")
		return
	}
	ap, err := ParsePORT(arg)
	if err != nil {
		s.reply(501, "Syntax error in PORT parameters.")
		return
	}
	if !s.activeAllowed(ap) {
		s.refusedActive(ap)
		s.reply(500, "Illegal PORT command.")
		return
	}
	s.setPlan(&dataPlan{mode: "active", target: ap})
	s.reply(200, "PORT command successful.")
}

// handleEPRT is PORT for any address family (RFC 2428 section 2).
func handleEPRT(s *session, arg string) {
	if s.epsvAll {
		s.reply(503, "Only EPSV is allowed after EPSV ALL.")
		return
	}
	ap, err := ParseEPRT(arg)
	if err != nil {
		if proto := eprtProto(arg); proto != "" && proto != "1" && proto != "2" {
			s.reply(522, "Network protocol not supported, use ("+netProto(s.remote.Addr())+")")
			return
		}
		s.reply(501, "Syntax error in EPRT parameters.")
		return
	}
	if netProto(ap.Addr()) != netProto(s.remote.Addr()) {
		s.reply(522, "Network protocol not supported, use ("+netProto(s.remote.Addr())+")")
		return
	}
	if !s.activeAllowed(ap) {
		s.refusedActive(ap)
		s.reply(500, "Illegal EPRT command.")
		return
	}
	s.setPlan(&dataPlan{mode: "active", target: ap})
	s.reply(200, "EPRT command successful.")
}

// eprtProto is the network protocol field of an EPRT argument, or "".
func eprtProto(arg string) string {
	if len(arg) < 2 {
		return ""
	}
	proto, _, _ := strings.Cut(arg[1:], arg[:1])
	return proto
}

func (s *session) refusedActive(ap netip.AddrPort) {
	s.srv.emit(s.controlEvent(trace.KindNote, fmt.Sprintf(
		"refused active data connection to %s: only %s, port 1024 and up, is allowed", ap, s.remote.Addr())))
}

// handlePASV listens for a passive data connection on the address the
// client reached the server at. PASV carries only IPv4 (RFC 2428 section 3
// has EPSV for the rest).
func handlePASV(s *session, _ string) {
	if s.epsvAll {
		s.reply(503, "Only EPSV is allowed after EPSV ALL.")
		return
	}
	ip := s.local.Addr()
	if !ip.Is4() {
		s.reply(522, "PASV needs IPv4; use EPSV.")
		return
	}
	ln, port, err := s.listenPassive()
	if err != nil {
		s.reply(425, "Cannot open passive connection.")
		return
	}
	text, err := FormatPASV(netip.AddrPortFrom(ip, port))
	if err != nil {
		ln.Close()
		s.reply(425, "Cannot open passive connection.")
		return
	}
	s.setPlan(&dataPlan{mode: "passive", ln: ln})
	s.reply(227, text)
}

// handleEPSV is PASV for any address family (RFC 2428 section 3). "EPSV
// ALL" tells the server that the client will use nothing else, and any
// other data setup command is refused from then on.
func handleEPSV(s *session, arg string) {
	switch want := strings.ToUpper(strings.TrimSpace(arg)); want {
	case "":
	case "ALL":
		s.epsvAll = true
		s.reply(200, "EPSV ALL ok.")
		return
	case "1", "2":
		if have := netProto(s.local.Addr()); want != have {
			s.reply(522, "Network protocol not supported, use ("+have+")")
			return
		}
	default:
		s.reply(501, "Syntax error in EPSV parameters.")
		return
	}
	ln, port, err := s.listenPassive()
	if err != nil {
		s.reply(425, "Cannot open passive connection.")
		return
	}
	s.setPlan(&dataPlan{mode: "passive", ln: ln})
	s.reply(229, FormatEPSV(port))
}

// listenPassive opens a listener for one data connection, on the control
// connection's local address and a port the network chooses. Any pending
// plan is dropped first, so a client repeating PASV holds one port only.
func (s *session) listenPassive() (net.Listener, uint16, error) {
	s.setPlan(nil)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DataTimeout)
	defer cancel()
	addr := net.JoinHostPort(s.local.Addr().String(), "0")
	ln, err := s.cfg.Network.Listen(dataListenContext(ctx), "tcp", addr)
	if err != nil {
		s.srv.logf("ftp: passive listen on %s: %v", addr, err)
		return nil, 0, fmt.Errorf("ftp: passive listen on %s: %w", addr, err)
	}
	port := addrPortOf(ln.Addr()).Port()
	if port == 0 {
		ln.Close()
		return nil, 0, fmt.Errorf("ftp: passive listener has no port: %s", ln.Addr())
	}
	return ln, port, nil
}

// handleABOR with no transfer running (a running one sees ABOR in
// session.transfer): there is nothing to stop but a planned data
// connection.
func handleABOR(s *session, _ string) {
	s.setPlan(nil)
	s.reply(225, "No transfer to abort.")
}

// connect makes the data connection that p plans, within DataTimeout.
func (s *session) connect(ctx context.Context, p *dataPlan) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DataTimeout)
	defer cancel()
	if p.mode == "active" {
		c, err := s.dialActive(ctx, p.target)
		if err != nil {
			return nil, fmt.Errorf("ftp: active data connection to %s: %w", p.target, err)
		}
		return c, nil
	}
	return s.accept(ctx, p.ln)
}

// dialActive connects to the client's data port from port L-1, the
// control connection's port less one, as RFC 959 section 3.2 has the
// server do: 20 for a server on 21, which is how tshark and firewalls know
// ftp-data. Where the network cannot choose the local port, or refuses it
// (the operating system keeps ports under 1024 for privileged programs),
// the connection comes from an ephemeral port, and a note says so.
func (s *session) dialActive(ctx context.Context, target netip.AddrPort) (net.Conn, error) {
	ctx = trace.WithLabel(ctx, trace.Data)
	ld, ok := s.cfg.Network.(LocalDialer)
	if !ok || s.local.Port() < 2 {
		return s.cfg.Network.DialContext(ctx, "tcp", target.String())
	}
	local := netip.AddrPortFrom(s.local.Addr(), s.local.Port()-1)
	c, err := ld.DialFrom(ctx, "tcp", local.String(), target.String())
	var se *os.SyscallError
	if err == nil || !errors.As(err, &se) || se.Syscall != "bind" {
		return c, err
	}
	e := s.dataEvent(trace.KindNote, "active", "", target.String())
	e.Text = fmt.Sprintf("data connection from an ephemeral port: port %d (RFC 959's L-1) was refused", local.Port())
	e.Err = se.Err.Error()
	s.srv.emit(e)
	return s.cfg.Network.DialContext(ctx, "tcp", target.String())
}

// accept takes the passive data connection from the control connection's
// peer. A connection from any other address is closed and the wait goes
// on: otherwise whoever connects first would get the file (port stealing,
// RFC 2577 section 8). ln is closed on return.
func (s *session) accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	defer ln.Close()
	stop := closeOnDone(ctx, ln) // the only way to interrupt Accept
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, fmt.Errorf("ftp: passive data connection on %s: %w", ln.Addr(), err)
		}
		from := addrPortOf(c.RemoteAddr())
		if sameHost(from.Addr(), s.remote.Addr()) {
			return c, nil
		}
		c.Close()
		e := s.dataEvent(trace.KindNote, "passive", addrText(ln.Addr()), from.String())
		e.Text = fmt.Sprintf("refused data connection from %s: not the control connection's peer %s", from, s.remote.Addr())
		s.srv.emit(e)
	}
}

func (s *session) dataEvent(kind trace.Kind, mode, local, remote string) event {
	return event{Kind: kind, Conn: trace.Data, Mode: mode, Local: local, Remote: remote}
}

// A transfer streams through one buffer. The larger each write into the
// stack, the less TCP's per-call work costs a byte: 1 MiB writes move a
// RETR across the virtual wire half again as fast as 64 KiB ones, for the
// same CPU (BenchmarkRETRWireVsLoopback). So a transfer gets up to
// bigDataBuffer, sized to what it will move, while the buffers fit in
// ServerConfig.BufferMemory; past it a transfer gets what is left, and at
// least minDataBuffer (a flash crowd of 10,000 held 64 KiB each: 640 MB),
// so that memory stays bounded however many sessions transfer at once:
// BufferMemory and minDataBuffer a transfer.
const (
	dataBufferSize = 64 << 10
	bigDataBuffer  = 1 << 20
	minDataBuffer  = 4 << 10
)

// dataBuffer returns a copy buffer for a transfer of about size bytes (-1
// when not known), and the function that gives it back.
func (srv *Server) dataBuffer(size int64) ([]byte, func()) {
	n, done := srv.bufferShare(size)
	return make([]byte, n), done
}

// bufferShare returns the size of the buffer a transfer of about size
// bytes gets now (see dataBuffer), and the function that gives it back.
func (srv *Server) bufferShare(size int64) (int, func()) {
	want := int64(bigDataBuffer)
	if size >= 0 {
		// A read of the file's last bytes and one that sees EOF; a
		// small file still gets a listing's worth.
		want = max(min(want, size+1), dataBufferSize)
	}
	left := int64(srv.cfg.BufferMemory) - srv.buffered.Load()
	n := max(min(want, left), minDataBuffer)
	srv.buffered.Add(n)
	return int(n), func() { srv.buffered.Add(-n) }
}

// dataConn is an open data connection, with its two defences against a
// client that holds a session by moving data slowly:
//
//   - a stall: nothing moves for DataTimeout (a client that opens the
//     connection and never reads, or never sends);
//   - a trickle: less than need bytes move in a window of DataTimeout (a
//     client that reads or sends a byte now and then, which no stall timer
//     catches). A window starts when the last one's need was met.
//
// Both are one deadline: the end of the current window, set before every
// Read and Write. A Write may be far larger than a window's need (large
// writes are what make a transfer fast), so when the deadline cuts one
// short, what it moved decides: if the window saw its need, a new window
// starts and the write goes on; if not, the client is too slow. Over TLS,
// whose connection is unusable after a timed-out write, writes go out in
// pieces no bigger than a window's need instead (see chunk), so that a
// reader who keeps up the rate finishes each one within its window. The
// bytes moved are counted for STAT and the trace.
type dataConn struct {
	conn    net.Conn
	timeout time.Duration
	need    int64 // bytes each window must move: MinDataRate times DataTimeout
	moved   *atomic.Int64
	// resumable says a write cut short by the deadline can go on: true
	// but for TLS.
	resumable bool
	resumed   *atomic.Int64 // counts writes that went on; tests read it

	windowEnd   time.Time // zero until the first call
	windowMoved int64
}

var _ io.ReadWriter = (*dataConn)(nil)

// maxDataWrite bounds one Write on the data connection; see dataConn.
const maxDataWrite = bigDataBuffer

func (s *session) newDataConn(c net.Conn, moved *atomic.Int64) *dataConn {
	cfg := s.cfg
	need := max(1, int64(float64(cfg.MinDataRate)*cfg.DataTimeout.Seconds()))
	_, isTLS := c.(*tls.Conn)
	return &dataConn{conn: c, timeout: cfg.DataTimeout, need: need, moved: moved, resumable: !isTLS, resumed: &s.srv.writesResumed}
}

// deadline is when the current window ends.
func (d *dataConn) deadline() time.Time {
	if d.windowEnd.IsZero() {
		d.windowEnd = time.Now().Add(d.timeout)
	}
	return d.windowEnd
}

// count records n bytes moved, and starts a new window once the current
// one has seen what it needs; it reports whether it did.
func (d *dataConn) count(n int) bool {
	d.moved.Add(int64(n))
	d.windowMoved += int64(n)
	if d.windowMoved >= d.need {
		d.windowMoved = 0
		d.windowEnd = time.Now().Add(d.timeout)
		return true
	}
	return false
}

// Read implements io.Reader.
func (d *dataConn) Read(p []byte) (int, error) {
	d.conn.SetReadDeadline(d.deadline())
	n, err := d.conn.Read(p)
	d.count(n)
	return n, err
}

// Write implements io.Writer.
func (d *dataConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		chunk := p[written:]
		if int64(len(chunk)) > d.chunk() {
			chunk = chunk[:d.chunk()]
		}
		d.conn.SetWriteDeadline(d.deadline())
		n, err := d.conn.Write(chunk)
		renewed := d.count(n)
		written += n
		if err != nil {
			if renewed && d.resumable && isTimeout(err) {
				// The window's end, not the client's fault.
				if d.resumed != nil {
					d.resumed.Add(1)
				}
				continue
			}
			return written, err
		}
	}
	return written, nil
}

// chunk is the most one Write call sends: maxDataWrite, or over TLS what
// a window needs, but no less than 4 KiB (a system call per byte would
// help no one).
func (d *dataConn) chunk() int64 {
	if d.resumable {
		return maxDataWrite
	}
	return min(max(d.need, 4<<10), maxDataWrite)
}

// localError marks a failure of the server's own file system, not of the
// data connection: it is answered 451, not 426.
type localError struct{ err error }

func (e *localError) Error() string   { return "local file: " + e.err.Error() }
func (e *localError) Unwrap() []error { return []error{ErrLocalFile, e.err} }

// copyData copies src to dst through one buffer of the server's (see
// dataBuffer), for a transfer of about size bytes (-1 when not known).
// The struct wrappers hide ReaderFrom and WriterTo, which would go around
// the buffer and the data connection's deadlines.
func (s *session) copyData(dst io.Writer, src io.Reader, size int64) (int64, error) {
	buf, done := s.srv.dataBuffer(size)
	defer done()
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}

// transferResult is how a transfer ended.
type transferResult struct {
	opened  bool  // the data connection was made
	aborted bool  // ABOR arrived while it ran
	err     error // nil if every byte moved and the connection closed cleanly
}

// transfer makes the data connection p plans and runs move over it in a
// goroutine of its own, while this goroutine keeps reading the control
// connection: ABOR stops the transfer and STAT reports progress (RFC 959
// section 4.1.3); other commands wait in s.pending until it ends. The
// caller sends the final reply, with finish.
func (s *session) transfer(p *dataPlan, what string, move func(data io.ReadWriter) error) transferResult {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var moved atomic.Int64
	done := make(chan transferResult, 1)
	s.wg.Go(func() { done <- s.runData(ctx, p, &moved, move) })

	aborted := false
	for {
		cmds := s.cmds
		if len(s.pending) >= maxPending {
			cmds = nil
		}
		select {
		case r := <-done:
			r.aborted = aborted
			return r
		case c := <-cmds:
			switch {
			case c.err != nil:
				s.pending = append(s.pending, c)
				if !lineConsumed(c.err) {
					// The control connection is gone: there is no one
					// left to tell how the transfer went.
					cancel()
				}
			case c.verb == "ABOR":
				s.commandEvent(c)
				aborted = true
				cancel()
			case c.verb == "STAT" && c.arg == "":
				s.commandEvent(c)
				s.reply(213, fmt.Sprintf("Status: %s, %d bytes so far.", what, moved.Load()))
			default:
				s.pending = append(s.pending, c)
			}
		}
	}
}

// runData is the transfer goroutine: connect, move, close, and report the
// data connection's life to the Observer. It closes p's listener, if any.
func (s *session) runData(ctx context.Context, p *dataPlan, moved *atomic.Int64, move func(io.ReadWriter) error) transferResult {
	c, err := s.connect(ctx, p)
	if err != nil {
		e := s.dataEvent(trace.KindNote, p.mode, "", "")
		e.Text, e.Err = "no data connection", err.Error()
		s.srv.emit(e)
		return transferResult{err: err}
	}
	ev := s.dataEvent(trace.KindDataOpen, p.mode, addrText(c.LocalAddr()), addrText(c.RemoteAddr()))
	s.srv.emit(ev)
	tc, err := s.secureData(ctx, c, p.mode)
	if err != nil {
		resetClose(c)
		ev.Kind, ev.Err = trace.KindDataClose, err.Error()
		s.srv.emit(ev)
		return transferResult{opened: true, err: err}
	}
	c = tc

	// ABOR and shutdown cut the transfer short, with a reset: a plain
	// close would still drain the socket buffer to the client.
	stop := afterDone(ctx, func() { resetClose(c) })
	err = move(s.newDataConn(c, moved))
	stop()
	var local *localError
	if errors.As(err, &local) {
		// The server's own failure, mid-file: in stream mode a clean
		// close is how a complete file ends (RFC 959 section 3.4), so
		// the client must see a reset instead.
		resetClose(c)
	} else if cerr := c.Close(); err == nil && ctx.Err() == nil && cerr != nil {
		err = fmt.Errorf("ftp: closing data connection: %w", cerr)
	}

	ev.Kind, ev.Bytes, ev.Err = trace.KindDataClose, moved.Load(), errText(err)
	s.srv.emit(ev)
	return transferResult{opened: true, err: err}
}

// resetClose closes c, discarding unsent data with a TCP reset where the
// connection allows: nsftp's stack has Abort, the operating system's
// sockets SO_LINGER 0.
func resetClose(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		// Reset the TCP connection under TLS: a close_notify would be
		// a clean end, which is exactly what a reset must not look like.
		c = tc.NetConn()
	}
	switch c := c.(type) {
	case interface{ Abort() }:
		c.Abort()
		return
	case interface{ SetLinger(sec int) error }:
		c.SetLinger(0)
	}
	c.Close()
}

// finish sends the final reply of a transfer; ok is the text of a 226 for
// one that completed.
func (s *session) finish(r transferResult, ok string) {
	var local *localError
	switch {
	case errors.Is(r.err, errFileSystemStuck) || s.fs.stuck():
		s.fileSystemStuck()
	case r.aborted && r.err == nil:
		// ABOR came too late to stop anything (RFC 959 section 4.1.3).
		s.reply(226, ok)
		s.reply(226, "ABOR successful.")
	case r.aborted:
		s.reply(426, "Connection closed; transfer aborted.")
		s.reply(226, "ABOR successful.")
	case !r.opened:
		s.reply(425, "Cannot open data connection.")
	case errors.Is(r.err, errNotResumed):
		// vsftpd's words for require_ssl_reuse (RFC 4217 section 10.2):
		// the client must resume the control connection's session.
		s.reply(522, "SSL connection failed: session reuse required")
	case errors.Is(r.err, errDataTLS):
		s.reply(522, "SSL connection failed.")
	case errors.As(r.err, &local):
		s.srv.logf("ftp: transfer for %s: %v", s.remote, r.err)
		s.reply(451, "Local error in processing.")
	case r.err != nil:
		s.reply(426, "Connection closed; transfer aborted.")
	default:
		s.reply(226, ok)
	}
}
