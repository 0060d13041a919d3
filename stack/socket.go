package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/nsftp/nsftp/trace"
)

// Socket is a TCP socket on a Host's netstack, with the BSD calls the 2005
// article makes inside the kernel: Socket (sock_create), Bind, Listen,
// Accept, Connect, Send (sock_sendmsg), Recv (sock_recvmsg), Shutdown and
// Close (sock_release). On a host with an observer, each call records its
// beginning and its end, and the socket's connection is followed through
// every change of state until it is CLOSED, after Close too.
//
// A connected Socket is a net.Conn, with deadlines, so bufio, crypto/tls and
// io.Copy run on it unchanged. It is safe for one reader and one writer to
// use it concurrently; Close may be called from any goroutine and wakes
// every blocked call.
type Socket struct {
	h      *Host
	id     int
	label  trace.Conn
	family tcpip.NetworkProtocolNumber
	ep     tcpip.Endpoint
	wq     *waiter.Queue
	c      *conn // the timeline's record of the connection; nil when not observed

	rd, wd deadline

	readMu sync.Mutex // serialises Recv: bytes of one Read must be contiguous

	// addrs are the last addresses the endpoint reported, for after it
	// can no longer report them.
	addrs struct {
		sync.Mutex
		local, remote netip.AddrPort
	}
	// fixed is the connection's address pair once the endpoint has
	// reported both: a TCP connection's addresses never change, and
	// asking netstack takes the endpoint's lock, which the connection's
	// segment processing contends for (four times a traced recv()).
	fixed atomic.Pointer[tuple]

	closeOnce sync.Once
	done      chan struct{} // closed by Close; wakes every waiter
}

var (
	_ net.Conn     = (*Socket)(nil)
	_ net.Listener = (*Listener)(nil)
)

// Socket creates a TCP socket for network "tcp4" or "tcp6", like
// socket(PF_INET, SOCK_STREAM, IPPROTO_TCP). Events name it with ctx's
// label (trace.WithLabel), and so do the connections it accepts.
func (h *Host) Socket(ctx context.Context, network string) (*Socket, error) {
	label := trace.LabelOf(ctx)
	var family tcpip.NetworkProtocolNumber
	switch network {
	case "tcp4":
		family = ipv4.ProtocolNumber
	case "tcp6":
		family = ipv6Proto
	default:
		return nil, fmt.Errorf("stack: socket: unsupported network %q (want tcp4 or tcp6)", network)
	}
	s := &Socket{h: h, label: label, family: family, done: make(chan struct{}), rd: deadline{clock: h.clock}, wd: deadline{clock: h.clock}}
	s.id = h.newSocketID()
	c, err := s.begin(ctx, trace.Call{Op: trace.OpSocket})
	if err != nil {
		return nil, err
	}
	s.wq = new(waiter.Queue)
	ep, terr := h.s.NewEndpoint(tcp.ProtocolNumber, family, s.wq)
	if terr != nil {
		err := sysErr("socket", terr)
		s.end(&c, 0, err)
		return nil, err
	}
	s.ep = ep
	if h.giveUp > 0 {
		// Connections accepted on a listening socket inherit it.
		uto := tcpip.TCPUserTimeoutOption(h.giveUp)
		ep.SetSockOpt(&uto)
	}
	if h.tl != nil {
		s.c = h.tl.follow(s.id, label, ep.(*tcp.Endpoint), s.wq)
	}
	s.end(&c, 0, nil)
	return s, nil
}

// ID returns the socket's number on its host, as events show it.
func (s *Socket) ID() int { return s.id }

// Label returns the socket's FTP connection label.
func (s *Socket) Label() trace.Conn { return s.label }

// Bind gives the socket a local address, like bind(2). A zero port lets the
// stack choose one; an unspecified address binds all of the host's.
func (s *Socket) Bind(ctx context.Context, addr netip.AddrPort) error {
	if s.isClosed() {
		return s.opError("bind", tcpAddr(addr), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpBind, Local: unspecifiedIfNone(addr)})
	if err != nil {
		return err
	}
	if terr := s.ep.Bind(toFull(addr)); terr != nil {
		err = s.opError("bind", tcpAddr(addr), sysErr("bind", terr))
	}
	s.end(&c, 0, err)
	return err
}

// Listen marks the socket as accepting connections, with at most backlog
// completed connections waiting for Accept, like listen(2). The returned
// Listener is the same socket seen as a net.Listener.
func (s *Socket) Listen(ctx context.Context, backlog int) (*Listener, error) {
	if s.isClosed() {
		return nil, s.opError("listen", s.localAddr(), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpListen})
	if err != nil {
		return nil, err
	}
	// Linux's listen(fd, n) queues up to n+1 connections, and gVisor's own
	// listen(2) adds the one before calling Endpoint.Listen. Passing n
	// unchanged makes a backlog of 1 (the article's, and every data
	// connection's) count as full at once, so every SYN would be answered
	// with a SYN cookie: no window scaling, no SACK.
	if terr := s.ep.Listen(backlog + 1); terr != nil {
		err = s.opError("listen", s.localAddr(), sysErr("listen", terr))
	}
	s.end(&c, 0, err)
	if err != nil {
		return nil, err
	}
	return &Listener{s: s}, nil
}

// Accept waits for a connection on a listening socket and returns it as a
// new Socket carrying the same label, like accept(2). It returns when a
// connection arrives, ctx is done, the deadline passes or s is closed.
func (s *Socket) Accept(ctx context.Context) (*Socket, error) {
	if s.isClosed() {
		return nil, s.opError("accept", s.localAddr(), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpAccept})
	if err != nil {
		return nil, err
	}
	ns, err := s.accept(ctx)
	if ns != nil {
		c.NewSocket = ns.id
		s.endWith(&c, 0, nil, ns)
		return ns, nil
	}
	s.end(&c, 0, err)
	return nil, err
}

func (s *Socket) accept(ctx context.Context) (*Socket, error) {
	var entry waiter.Entry
	var notify chan struct{}
	for {
		if s.rd.passed() {
			return nil, s.opError("accept", s.localAddr(), errTimeout)
		}
		ep, wq, terr := s.ep.Accept(nil)
		if terr == nil {
			ns := &Socket{h: s.h, label: s.label, family: s.family, ep: ep, wq: wq, done: make(chan struct{}),
				rd: deadline{clock: s.h.clock}, wd: deadline{clock: s.h.clock}}
			if s.h.tl != nil {
				// The connection was followed from its SYN|ACK on: it
				// keeps the number it was given then.
				ns.c = s.h.tl.follow(0, s.label, ep.(*tcp.Endpoint), wq)
				ns.id = ns.c.id
			} else {
				ns.id = s.h.newSocketID()
			}
			ns.localAddrPort() // remember the addresses while they can be read
			ns.remoteAddrPort()
			if s.h.mem != nil {
				s.h.mem.add(ns)
			}
			return ns, nil
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return nil, s.opError("accept", s.localAddr(), sysErr("accept", terr))
		}
		if notify == nil {
			// Register, then try once more before sleeping: a connection
			// that completed in between would otherwise go unnoticed.
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents)
			s.wq.EventRegister(&entry)
			defer s.wq.EventUnregister(&entry)
			continue
		}
		if err := s.wait(ctx, notify, s.rd.channel()); err != nil {
			return nil, s.opError("accept", s.localAddr(), err)
		}
	}
}

// Connect opens a connection to addr, like connect(2): it sends the SYN and
// waits for the handshake to complete, ctx to be done, the write deadline
// to pass, or s to be closed. A refused connection fails with an error for
// which errors.Is(err, syscall.ECONNREFUSED) holds.
func (s *Socket) Connect(ctx context.Context, addr netip.AddrPort) error {
	if s.isClosed() {
		return s.opError("dial", tcpAddr(addr), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpConnect, Remote: addr})
	if err != nil {
		return err
	}
	err = s.connect(ctx, addr)
	if err == nil && s.h.mem != nil {
		s.h.mem.add(s)
	}
	s.end(&c, 0, err)
	return err
}

func (s *Socket) connect(ctx context.Context, addr netip.AddrPort) error {
	// Register before Connect: the handshake may complete (or be refused)
	// before Connect returns, and the notification must not be lost.
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	s.wq.EventRegister(&entry)
	defer s.wq.EventUnregister(&entry)

	terr := s.ep.Connect(toFull(addr))
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		if err := s.wait(ctx, notify, s.wd.channel()); err != nil {
			// An abandoned handshake must not linger: reset it so the
			// peer and the port are freed now, as close(2) would.
			s.ep.Abort()
			return s.opError("dial", tcpAddr(addr), err)
		}
		terr = s.ep.LastError()
	}
	if terr != nil {
		return s.opError("dial", tcpAddr(addr), sysErr("connect", terr))
	}
	s.localAddrPort() // remember the addresses while they can be read
	s.remoteAddrPort()
	return nil
}

// Send queues all of b for sending, waiting for room in the send buffer as
// often as needed, as the article's send_sync_buf loops over sock_sendmsg.
// It returns early only on error, ctx done, the write deadline or Close.
func (s *Socket) Send(ctx context.Context, b []byte) (int, error) {
	if s.isClosed() {
		return 0, s.opError("write", s.remoteAddr(), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpSend, Bytes: len(b)})
	if err != nil {
		return 0, err
	}
	n, err := s.send(ctx, b)
	s.end(&c, n, err)
	return n, err
}

func (s *Socket) send(ctx context.Context, b []byte) (int, error) {
	var (
		r      bytes.Reader
		n      int
		entry  waiter.Entry
		notify chan struct{}
	)
	for n < len(b) {
		select {
		case <-s.done:
			return n, s.opError("write", s.remoteAddr(), ErrClosed)
		default:
		}
		if s.wd.passed() {
			return n, s.opError("write", s.remoteAddr(), errTimeout)
		}
		r.Reset(b[n:])
		m, terr := s.ep.Write(&r, tcpip.WriteOptions{})
		// The endpoint keeps the last reader it was given (in a cached
		// io.LimitedReader) until the next write: emptied, r no longer
		// holds the caller's buffer, which would otherwise stay alive as
		// long as the endpoint does (a whole TIME-WAIT).
		r.Reset(nil)
		n += int(m)
		switch terr.(type) {
		case nil:
			continue
		case *tcpip.ErrWouldBlock:
		default:
			return n, s.opError("write", s.remoteAddr(), sysErr("write", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
			s.wq.EventRegister(&entry)
			defer s.wq.EventUnregister(&entry)
			continue
		}
		if err := s.wait(ctx, notify, s.wd.channel()); err != nil {
			return n, s.opError("write", s.remoteAddr(), err)
		}
	}
	return n, nil
}

// Recv copies received bytes into b, waiting until at least one is
// available, like recv(2). It returns io.EOF once the peer's FIN has been
// read, and returns early on ctx done, the read deadline or Close.
func (s *Socket) Recv(ctx context.Context, b []byte) (int, error) {
	if s.isClosed() {
		// Like recv(2) on a descriptor already closed: the call never
		// reaches the socket, and is not traced.
		return 0, s.opError("read", s.remoteAddr(), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpRecv})
	if err != nil {
		return 0, err
	}
	n, err := s.recv(ctx, b)
	s.end(&c, n, err)
	return n, err
}

func (s *Socket) recv(ctx context.Context, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var (
		entry  waiter.Entry
		notify chan struct{}
	)
	for {
		select {
		case <-s.done:
			return 0, s.opError("read", s.remoteAddr(), ErrClosed)
		default:
		}
		if s.rd.passed() {
			return 0, s.opError("read", s.remoteAddr(), errTimeout)
		}
		w := tcpip.SliceWriter(b)
		res, terr := s.ep.Read(&w, tcpip.ReadOptions{})
		switch terr.(type) {
		case nil:
			return res.Count, nil
		case *tcpip.ErrClosedForReceive:
			return 0, io.EOF
		case *tcpip.ErrWouldBlock:
		default:
			return 0, s.opError("read", s.remoteAddr(), sysErr("read", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
			s.wq.EventRegister(&entry)
			defer s.wq.EventUnregister(&entry)
			continue
		}
		if err := s.wait(ctx, notify, s.rd.channel()); err != nil {
			return 0, s.opError("read", s.remoteAddr(), err)
		}
	}
}

// Shutdown closes one or both directions of the connection, like
// shutdown(2): how is syscall.SHUT_RD, SHUT_WR or SHUT_RDWR. Shutting down
// writes sends a FIN once the queued data has gone.
func (s *Socket) Shutdown(how int) error {
	if s.isClosed() {
		return s.opError("shutdown", s.remoteAddr(), ErrClosed)
	}
	c, err := s.begin(context.Background(), trace.Call{Op: trace.OpShutdown})
	if err != nil {
		return err
	}
	var flags tcpip.ShutdownFlags
	switch how {
	case syscall.SHUT_RD:
		flags = tcpip.ShutdownRead
	case syscall.SHUT_WR:
		flags = tcpip.ShutdownWrite
	case syscall.SHUT_RDWR:
		flags = tcpip.ShutdownRead | tcpip.ShutdownWrite
	default:
		err := s.opError("shutdown", s.remoteAddr(), syscall.EINVAL)
		s.end(&c, 0, err)
		return err
	}
	if terr := s.ep.Shutdown(flags); terr != nil {
		err = s.opError("shutdown", s.remoteAddr(), sysErr("shutdown", terr))
	}
	s.end(&c, 0, err)
	return err
}

// CloseWrite shuts down the sending side (a FIN), as *net.TCPConn's does.
func (s *Socket) CloseWrite() error { return s.Shutdown(syscall.SHUT_WR) }

// CloseRead shuts down the receiving side, as *net.TCPConn's does.
func (s *Socket) CloseRead() error { return s.Shutdown(syscall.SHUT_RD) }

// Close releases the socket, like close(2): unsent data is still sent and
// the connection closes with a FIN. Every call blocked on s returns
// net.ErrClosed. Closing twice returns net.ErrClosed.
func (s *Socket) Close() error {
	if !s.release(false) {
		return ErrClosed
	}
	return nil
}

// Abort resets the connection (RST) and releases the socket.
func (s *Socket) Abort() { s.release(true) }

// release closes the socket once, with a reset when abort is set, and
// reports whether this call did it. It is not gated: step mode's "q" must
// still be able to release every socket.
func (s *Socket) release(abort bool) bool {
	released := false
	s.closeOnce.Do(func() {
		released = true
		c := s.beginUngated(trace.Call{Op: trace.OpClose})
		close(s.done)
		if abort {
			if s.c != nil {
				s.h.tl.aborting(s.c)
			}
			s.ep.Abort()
		}
		s.ep.Close()
		if s.h.mem != nil {
			s.h.mem.closed(s)
		}
		s.rd.stop()
		s.wd.stop()
		s.end(&c, 0, nil)
	})
	return released
}

// SetReuseAddress sets SO_REUSEADDR: binding succeeds even when
// connections on the port linger in TIME-WAIT.
func (s *Socket) SetReuseAddress(on bool) {
	s.ep.SocketOptions().SetReuseAddress(on)
}

// State returns the socket's TCP state by its RFC 793 name.
func (s *Socket) State() trace.TCPState { return callState(s.ep) }

// isClosed reports whether Close has been called.
func (s *Socket) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// wait blocks until notify fires, ctx is done, the deadline channel closes
// or the socket is closed.
func (s *Socket) wait(ctx context.Context, notify <-chan struct{}, deadline <-chan struct{}) error {
	select {
	case <-notify:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	case <-deadline:
		return errTimeout
	case <-s.done:
		return ErrClosed
	}
}

// Read implements net.Conn with Recv.
func (s *Socket) Read(b []byte) (int, error) { return s.Recv(context.Background(), b) }

// Write implements net.Conn with Send.
func (s *Socket) Write(b []byte) (int, error) { return s.Send(context.Background(), b) }

// LocalAddr implements net.Conn: getsockname(2).
func (s *Socket) LocalAddr() net.Addr {
	c := s.beginUngated(trace.Call{Op: trace.OpGetsockname})
	a := s.localAddr()
	s.end(&c, 0, nil)
	return a
}

// RemoteAddr implements net.Conn: getpeername(2).
func (s *Socket) RemoteAddr() net.Addr {
	c := s.beginUngated(trace.Call{Op: trace.OpGetpeername})
	a := s.remoteAddr()
	s.end(&c, 0, nil)
	return a
}

// LocalAddrPort is LocalAddr as a netip.AddrPort, traced the same way.
func (s *Socket) LocalAddrPort() netip.AddrPort {
	c := s.beginUngated(trace.Call{Op: trace.OpGetsockname})
	ap := s.localAddrPort()
	s.end(&c, 0, nil)
	return ap
}

// SetDeadline implements net.Conn.
func (s *Socket) SetDeadline(t time.Time) error {
	s.rd.set(t)
	s.wd.set(t)
	return nil
}

// SetReadDeadline implements net.Conn; it also bounds Accept.
func (s *Socket) SetReadDeadline(t time.Time) error { s.rd.set(t); return nil }

// SetWriteDeadline implements net.Conn; it also bounds Connect.
func (s *Socket) SetWriteDeadline(t time.Time) error { s.wd.set(t); return nil }

// localAddrPort and remoteAddrPort read the addresses without tracing, for
// use inside other calls' events and errors.
//
// Like *net.TCPConn's, they keep answering after the connection is reset
// or closed, with the last addresses the socket had.
func (s *Socket) localAddrPort() netip.AddrPort {
	if f := s.fixed.Load(); f != nil {
		return f.local
	}
	if a, err := s.ep.GetLocalAddress(); err == nil {
		ap := fromFull(a)
		if ap.Port() != 0 {
			s.addrs.Lock()
			s.addrs.local = ap
			s.addrs.Unlock()
		}
		return ap
	}
	s.addrs.Lock()
	defer s.addrs.Unlock()
	return s.addrs.local
}

func (s *Socket) remoteAddrPort() netip.AddrPort {
	if f := s.fixed.Load(); f != nil {
		return f.remote
	}
	if a, err := s.ep.GetRemoteAddress(); err == nil {
		ap := fromFull(a)
		s.addrs.Lock()
		s.addrs.remote = ap
		s.addrs.Unlock()
		// Connected: the local address is settled too.
		if l, err := s.ep.GetLocalAddress(); err == nil {
			if lp := fromFull(l); lp.Port() != 0 && lp.Addr().IsValid() {
				s.fixed.Store(&tuple{local: lp, remote: ap})
			}
		}
		return ap
	}
	s.addrs.Lock()
	defer s.addrs.Unlock()
	return s.addrs.remote
}

// localAddr is the local address as getsockname(2) gives it: a socket
// bound to no address in particular has the wildcard of its family.
func (s *Socket) localAddr() net.Addr {
	ap := s.localAddrPort()
	if !ap.Addr().IsValid() && ap.Port() != 0 {
		wild := netip.IPv4Unspecified()
		if s.family == ipv6Proto {
			wild = netip.IPv6Unspecified()
		}
		ap = netip.AddrPortFrom(wild, ap.Port())
	}
	return tcpAddr(ap)
}

func (s *Socket) remoteAddr() net.Addr { return tcpAddr(s.remoteAddrPort()) }

func (s *Socket) opError(op string, addr net.Addr, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.localAddr(), Addr: addr, Err: err}
}

// pendingCall is a call in flight: its description and start time.
type pendingCall struct {
	trace.Call
	start time.Time
}

// begin describes a call about to run, passes it to the host's gate (step
// mode), and records its beginning. The call's state and addresses are
// read only when someone is watching.
func (s *Socket) begin(ctx context.Context, c trace.Call) (pendingCall, error) {
	tl := s.h.tl
	if tl == nil {
		return pendingCall{Call: c}, nil
	}
	p := s.describe(c)
	if tl.gate != nil {
		ev := trace.Event{Layer: trace.LayerStack, Host: s.h.name, Kind: trace.KindCall, Phase: trace.Begin, Call: &p.Call, TCB: s.tcb()}
		if err := tl.beforeCall(ctx, ev); err != nil {
			return p, err
		}
	}
	p.start = s.h.clock.Now()
	tl.callBegin(s.c, p.Call)
	return p, nil
}

// beginUngated is begin for calls step mode does not stop at: close (q
// must still be able to close every socket) and the address queries.
func (s *Socket) beginUngated(c trace.Call) pendingCall {
	tl := s.h.tl
	if tl == nil {
		return pendingCall{Call: c}
	}
	p := s.describe(c)
	p.start = s.h.clock.Now()
	tl.callBegin(s.c, p.Call)
	return p
}

// describe fills in a call's names, socket and current state.
func (s *Socket) describe(c trace.Call) pendingCall {
	c.Socket, c.Label = s.id, s.label
	c.Article, c.Kernel = trace.Names(c.Op, s.family == ipv6Proto)
	c.Netstack = netstackCalls[c.Op]
	if s.ep != nil {
		c.StateBefore = callState(s.ep)
		if !c.Local.IsValid() {
			c.Local = eventAddr(s.localAddrPort())
		}
		if !c.Remote.IsValid() {
			c.Remote = eventAddr(s.remoteAddrPort())
		}
	}
	return pendingCall{Call: c}
}

// tcb is the socket's TCB for a step-mode prompt: the timeline's, with
// netstack's current congestion figures. Nil for a socket with no
// connection.
func (s *Socket) tcb() *trace.TCB {
	if s.c == nil || s.ep == nil {
		return nil
	}
	state := callState(s.ep)
	switch state {
	case trace.StateInitial, trace.StateBound, trace.StateListen:
		return nil
	}
	b := s.h.tl.tcbOf(s.c)
	b.State = state
	var info tcpip.TCPInfoOption
	if s.ep.GetSockOpt(&info) == nil {
		b.Cwnd, b.Ssthresh = int(info.SndCwnd), int(info.SndSsthresh)
		b.SRTT, b.RTO = info.RTT, info.RTO
		b.Congestion = congestionName(info.CcState)
	}
	return &b
}

func (s *Socket) end(c *pendingCall, n int, err error) { s.endWith(c, n, err, nil) }

// endWith completes c and records its end. For accept, stateOf is the new
// connection, whose state is the interesting "after".
func (s *Socket) endWith(c *pendingCall, n int, err error, stateOf *Socket) {
	tl := s.h.tl
	if tl == nil {
		return
	}
	c.Duration = s.h.clock.Since(c.start)
	c.Bytes = n
	if err != nil {
		c.Err = err.Error()
		c.Closed = errors.Is(err, ErrClosed)
	}
	if stateOf == nil {
		stateOf = s
	}
	if stateOf.ep != nil {
		c.StateAfter = callState(stateOf.ep)
		if l := stateOf.localAddrPort(); l.IsValid() || l.Port() != 0 {
			c.Local = eventAddr(l)
		}
		if r := stateOf.remoteAddrPort(); r.IsValid() {
			c.Remote = r
		}
	}
	var accepted *conn
	if stateOf != s {
		accepted = stateOf.c
	}
	tl.callEnd(s.c, c.Call, accepted)
}
