package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/nsftp/nsftp/trace"
)

// UDPSocket is a UDP socket on a Host's netstack, with the BSD calls a
// datagram program makes: socket, bind, connect, sendto (sock_sendmsg),
// recvfrom (sock_recvmsg) and close. On a host with an observer each call
// records its beginning and its end, as a TCP Socket's do, and every
// datagram to or from its port is recorded with its number.
//
// It is both a net.PacketConn and, once connected, a net.Conn whose every
// Write is one datagram and every Read one datagram: what Go's DNS
// resolver expects of the connections it dials. It is safe for concurrent
// use; Close wakes every blocked call.
type UDPSocket struct {
	h      *Host
	id     int
	label  trace.Conn
	family tcpip.NetworkProtocolNumber
	ep     tcpip.Endpoint
	wq     *waiter.Queue

	rd, wd deadline

	mu     sync.Mutex // guards local, remote and bound
	local  netip.AddrPort
	remote netip.AddrPort // the connected peer, if any
	bound  bool           // the endpoint has a port

	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

var (
	_ net.PacketConn = (*UDPSocket)(nil)
	_ net.Conn       = (*UDPSocket)(nil)
)

// udpNetstack are the netstack calls that do a UDP socket call's work;
// trace.UDPNames has the article's and the kernel's names.
var udpNetstack = map[trace.Op]string{
	trace.OpSocket:   "stack.Stack.NewEndpoint",
	trace.OpBind:     "udp.endpoint.Bind",
	trace.OpConnect:  "udp.endpoint.Connect",
	trace.OpSendto:   "udp.endpoint.Write",
	trace.OpRecvfrom: "udp.endpoint.Read",
	trace.OpClose:    "udp.endpoint.Close",
}

// UDPSocket creates a UDP socket for network "udp4" or "udp6", like
// socket(PF_INET, SOCK_DGRAM, IPPROTO_UDP). Events name it with ctx's
// label (trace.WithLabel): what it is for (trace.DHCP, trace.DNS).
func (h *Host) UDPSocket(ctx context.Context, network string) (*UDPSocket, error) {
	label := trace.LabelOf(ctx)
	var family tcpip.NetworkProtocolNumber
	switch network {
	case "udp4":
		family = ipv4.ProtocolNumber
	case "udp6":
		family = ipv6Proto
	default:
		return nil, fmt.Errorf("stack: socket: unsupported network %q (want udp4 or udp6)", network)
	}
	s := &UDPSocket{h: h, label: label, family: family, done: make(chan struct{}), rd: deadline{clock: h.clock}, wd: deadline{clock: h.clock}}
	s.id = h.newSocketID()
	c, err := s.begin(ctx, trace.Call{Op: trace.OpSocket}, true)
	if err != nil {
		return nil, err
	}
	s.wq = new(waiter.Queue)
	ep, terr := h.s.NewEndpoint(udp.ProtocolNumber, family, s.wq)
	if terr != nil {
		err := sysErr("socket", terr)
		s.end(&c, 0, err)
		return nil, err
	}
	if family == ipv6Proto {
		ep.SocketOptions().SetV6Only(true)
	}
	s.ep = ep
	s.end(&c, 0, nil)
	return s, nil
}

// ID returns the socket's number on its host, as events show it.
func (s *UDPSocket) ID() int { return s.id }

// SetBroadcast sets SO_BROADCAST: sendto may then name a broadcast
// address, as a DHCP client's first messages do.
func (s *UDPSocket) SetBroadcast(on bool) { s.ep.SocketOptions().SetBroadcast(on) }

// Bind gives the socket a local address, like bind(2). A zero port lets
// the stack choose one; an unspecified address receives on all of the
// host's addresses and, for IPv4, the broadcast address. A socket bound to
// 0.0.0.0 on a host with no IPv4 address yet sends from 0.0.0.0 (see
// Host.Unconfigured).
func (s *UDPSocket) Bind(ctx context.Context, addr netip.AddrPort) error {
	if s.isClosed() {
		return s.opError("bind", udpAddr(addr), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpBind, Local: unspecifiedIfNone(addr)}, true)
	if err != nil {
		return err
	}
	fa := toFull(addr)
	fa.NIC = s.h.nic // one interface: bound to it, as SO_BINDTODEVICE would
	if terr := s.ep.Bind(fa); terr != nil {
		err = s.opError("bind", udpAddr(addr), sysErr("bind", terr))
	} else {
		s.noteBound()
	}
	s.end(&c, 0, err)
	return err
}

// Connect fixes the socket's peer, like connect(2) on a datagram socket:
// no packet is sent, the stack picks a route and a local address, and the
// socket then takes datagrams from that peer only.
func (s *UDPSocket) Connect(ctx context.Context, addr netip.AddrPort) error {
	if s.isClosed() {
		return s.opError("dial", udpAddr(addr), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpConnect, Remote: addr}, true)
	if err != nil {
		return err
	}
	if terr := s.ep.Connect(s.peer(addr)); terr != nil {
		err = s.opError("dial", udpAddr(addr), sysErr("connect", terr))
	} else {
		s.mu.Lock()
		s.remote = addr
		s.mu.Unlock()
		s.noteBound()
	}
	s.end(&c, 0, err)
	return err
}

// SendTo sends b as one datagram to addr, like sendto(2); a zero addr
// sends to the connected peer. A socket with no port yet gets one first,
// as Linux's udp_sendmsg binds one (inet_autobind). It waits for room in
// the send buffer until ctx is done, the write deadline passes or s is
// closed.
func (s *UDPSocket) SendTo(ctx context.Context, b []byte, addr netip.AddrPort) (int, error) {
	if s.isClosed() {
		return 0, s.opError("write", udpAddr(addr), ErrClosed)
	}
	to := addr
	if !to.IsValid() {
		s.mu.Lock()
		to = s.remote
		s.mu.Unlock()
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpSendto, Remote: to, Bytes: len(b)}, true)
	if err != nil {
		return 0, err
	}
	n, err := s.sendTo(ctx, b, addr)
	s.end(&c, n, err)
	return n, err
}

func (s *UDPSocket) sendTo(ctx context.Context, b []byte, addr netip.AddrPort) (int, error) {
	if !s.isBound() {
		// Bind the port before the datagram leaves, so that the frame
		// is known to be this socket's when the link sees it.
		fa := tcpip.FullAddress{NIC: s.h.nic}
		if terr := s.ep.Bind(fa); terr != nil {
			return 0, s.opError("write", udpAddr(addr), sysErr("sendto", terr))
		}
		s.noteBound()
	}
	var opts tcpip.WriteOptions
	if addr.IsValid() {
		fa := s.peer(addr)
		opts.To = &fa
	}
	var entry waiter.Entry
	var notify chan struct{}
	for {
		if s.wd.passed() {
			return 0, s.opError("write", udpAddr(addr), errTimeout)
		}
		var r bytes.Reader
		r.Reset(b)
		n, terr := s.ep.Write(&r, opts)
		switch terr.(type) {
		case nil:
			return int(n), nil
		case *tcpip.ErrWouldBlock:
		default:
			return 0, s.opError("write", udpAddr(addr), sysErr("sendto", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventErr)
			s.wq.EventRegister(&entry)
			defer s.wq.EventUnregister(&entry)
			continue
		}
		if err := s.wait(ctx, notify, s.wd.channel()); err != nil {
			return 0, s.opError("write", udpAddr(addr), err)
		}
	}
}

// RecvFrom waits for a datagram and copies it into b, like recvfrom(2),
// returning its length (cut to len(b), as recvfrom truncates) and its
// sender. It returns early when ctx is done, the read deadline passes or
// s is closed. On a connected socket, an ICMP port unreachable from the
// peer makes it fail with ECONNREFUSED, as on Linux.
func (s *UDPSocket) RecvFrom(ctx context.Context, b []byte) (int, netip.AddrPort, error) {
	if s.isClosed() {
		return 0, netip.AddrPort{}, s.opError("read", s.remoteAddr(), ErrClosed)
	}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpRecvfrom}, true)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	n, from, err := s.recvFrom(ctx, b)
	if err == nil {
		c.Remote = from
	}
	s.end(&c, n, err)
	return n, from, err
}

func (s *UDPSocket) recvFrom(ctx context.Context, b []byte) (int, netip.AddrPort, error) {
	var entry waiter.Entry
	var notify chan struct{}
	for {
		if s.rd.passed() {
			return 0, netip.AddrPort{}, s.opError("read", s.remoteAddr(), errTimeout)
		}
		w := tcpip.SliceWriter(b)
		res, terr := s.ep.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
		switch terr.(type) {
		case nil:
			return res.Count, fromFull(res.RemoteAddr), nil
		case *tcpip.ErrWouldBlock:
		default:
			return 0, netip.AddrPort{}, s.opError("read", s.remoteAddr(), sysErr("recvfrom", terr))
		}
		if notify == nil {
			entry, notify = waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventErr)
			s.wq.EventRegister(&entry)
			defer s.wq.EventUnregister(&entry)
			continue
		}
		if err := s.wait(ctx, notify, s.rd.channel()); err != nil {
			return 0, netip.AddrPort{}, s.opError("read", s.remoteAddr(), err)
		}
	}
}

// Close releases the socket, like close(2). Every call blocked on s
// returns net.ErrClosed; closing twice returns net.ErrClosed.
func (s *UDPSocket) Close() error {
	released := false
	s.closeOnce.Do(func() {
		released = true
		c, _ := s.begin(context.Background(), trace.Call{Op: trace.OpClose}, false)
		close(s.done)
		s.ep.Close()
		s.rd.stop()
		s.wd.stop()
		if tl := s.h.tl; tl != nil {
			tl.udpUnbound(s.id)
		}
		s.end(&c, 0, nil)
	})
	if !released {
		return ErrClosed
	}
	return nil
}

// Read implements net.Conn: one datagram from the connected peer.
func (s *UDPSocket) Read(b []byte) (int, error) {
	n, _, err := s.RecvFrom(context.Background(), b)
	return n, err
}

// Write implements net.Conn: b as one datagram to the connected peer.
func (s *UDPSocket) Write(b []byte) (int, error) {
	return s.SendTo(context.Background(), b, netip.AddrPort{})
}

// ReadFrom implements net.PacketConn.
func (s *UDPSocket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.RecvFrom(context.Background(), b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteTo implements net.PacketConn.
func (s *UDPSocket) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return 0, s.opError("write", addr, fmt.Errorf("not a UDP address: %v", addr))
	}
	return s.SendTo(context.Background(), b, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// LocalAddr implements net.Conn and net.PacketConn.
func (s *UDPSocket) LocalAddr() net.Addr { return udpAddr(s.localAddrPort()) }

// LocalAddrPort is LocalAddr as a netip.AddrPort.
func (s *UDPSocket) LocalAddrPort() netip.AddrPort { return s.localAddrPort() }

// RemoteAddr implements net.Conn: the connected peer, or nil.
func (s *UDPSocket) RemoteAddr() net.Addr { return s.remoteAddr() }

// SetDeadline implements net.Conn.
func (s *UDPSocket) SetDeadline(t time.Time) error {
	s.rd.set(t)
	s.wd.set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (s *UDPSocket) SetReadDeadline(t time.Time) error { s.rd.set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (s *UDPSocket) SetWriteDeadline(t time.Time) error { s.wd.set(t); return nil }

// peer is a destination as netstack takes it: a link-local one (a
// router's name server, fe80::...) names the interface, as a zone would.
func (s *UDPSocket) peer(addr netip.AddrPort) tcpip.FullAddress {
	fa := toFull(addr)
	if a := addr.Addr(); a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		fa.NIC = s.h.nic
	}
	return fa
}

func (s *UDPSocket) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *UDPSocket) isBound() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// noteBound remembers the port the endpoint has now and tells the
// timeline, which gives the socket the datagrams to and from that port.
func (s *UDPSocket) noteBound() {
	local := s.readLocal()
	s.mu.Lock()
	s.bound = true
	s.local = local
	s.mu.Unlock()
	if tl := s.h.tl; tl != nil {
		tl.udpBound(s.id, s.label, local)
	}
}

// readLocal asks the endpoint for its address: before the socket is
// connected its bound address (possibly none: all of them), after, the
// address the route chose.
func (s *UDPSocket) readLocal() netip.AddrPort {
	a, err := s.ep.GetLocalAddress()
	if err != nil {
		return netip.AddrPort{}
	}
	ap := fromFull(a)
	if !ap.Addr().IsValid() {
		// Bound to no address in particular: the wildcard, as
		// getsockname(2) says.
		wild := netip.IPv4Unspecified()
		if s.family == ipv6Proto {
			wild = netip.IPv6Unspecified()
		}
		ap = netip.AddrPortFrom(wild, ap.Port())
	}
	return ap
}

func (s *UDPSocket) localAddrPort() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

func (s *UDPSocket) remoteAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return udpAddr(s.remote)
}

func (s *UDPSocket) wait(ctx context.Context, notify <-chan struct{}, deadline <-chan struct{}) error {
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

func (s *UDPSocket) opError(op string, addr net.Addr, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: op, Net: "udp", Source: udpAddr(s.localAddrPort()), Addr: addr, Err: err}
}

// udpAddr converts to the net.Addr a UDP socket's users expect, or nil.
func udpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// begin describes a call about to run, passes it to the host's gate when
// gated (step mode; close is not, so q can close every socket), and
// records its beginning.
func (s *UDPSocket) begin(ctx context.Context, c trace.Call, gated bool) (pendingCall, error) {
	tl := s.h.tl
	if tl == nil {
		return pendingCall{Call: c}, nil
	}
	c.Socket, c.Label, c.Proto = s.id, s.label, "udp"
	c.Article, c.Kernel = trace.UDPNames(c.Op, s.family == ipv6Proto)
	c.Netstack = udpNetstack[c.Op]
	if s.ep != nil && !c.Local.IsValid() {
		c.Local = eventAddr(s.localAddrPort())
	}
	if gated && tl.gate != nil {
		ev := trace.Event{Layer: trace.LayerStack, Host: s.h.name, Kind: trace.KindCall, Phase: trace.Begin, Call: &c}
		if err := tl.beforeCall(ctx, ev); err != nil {
			return pendingCall{Call: c}, err
		}
	}
	p := pendingCall{Call: c, start: s.h.clock.Now()}
	tl.callBegin(nil, p.Call)
	return p, nil
}

// end completes c with what the call moved and its error, and records it.
func (s *UDPSocket) end(c *pendingCall, n int, err error) {
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
	if s.ep != nil {
		if l := s.localAddrPort(); l.IsValid() || l.Port() != 0 {
			c.Local = eventAddr(l)
		}
	}
	tl.callEnd(nil, c.Call, nil)
}
