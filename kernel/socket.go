package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/trace"
)

// Socket is one of the kernel's TCP sockets, made and used with the BSD
// calls themselves, each recorded where it begins and where it returns
// with the kernel's TCP state (TCP_INFO) then. The descriptor is
// non-blocking; where a call would block (EAGAIN, EINPROGRESS) it waits
// in Go's poller (epoll), which is what gives it deadlines.
//
// A connected Socket is a net.Conn, so bufio, crypto/tls and io.Copy run
// on it unchanged; a listening one is seen as a net.Listener through
// Listener. It is safe for one reader and one writer to use it at once;
// Close may be called from any goroutine and wakes every blocked call.
type Socket struct {
	n     *Network
	id    int
	label trace.Conn
	v6    bool
	fd    int      // the kernel's descriptor, for events; the file owns it
	f     *os.File // owns fd: Go's poller waits on it, Close closes it
	rc    syscall.RawConn
	ref   *sockRef // the Watch's record of it; nil when nothing watches

	mu            sync.Mutex
	local, remote netip.AddrPort
	closed        bool
}

var (
	_ net.Conn     = (*Socket)(nil)
	_ net.Listener = (*Listener)(nil)
)

// socket makes a TCP socket, like socket(PF_INET, SOCK_STREAM,
// IPPROTO_TCP), in the network's namespace.
func (n *Network) socket(ctx context.Context, v6 bool, label trace.Conn) (*Socket, error) {
	s := &Socket{n: n, id: n.newID(), label: label, v6: v6}
	c, err := s.begin(ctx, trace.Call{Op: trace.OpSocket}, true)
	if err != nil {
		return nil, err
	}
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	var fd int
	err = n.cfg.NetNS.Do(func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		return err
	})
	if err != nil {
		err = sysErr("socket", err)
		s.end(&c, 0, err, "")
		return nil, err
	}
	s.adopt(fd)
	how := ""
	if n.cfg.NoDelay {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		how = "socket(2), non-blocking; setsockopt(TCP_NODELAY), as Go's net package does"
	}
	if w := n.cfg.Watch; w != nil {
		s.ref = w.add(s)
	}
	s.end(&c, 0, nil, how)
	return s, nil
}

// adopt makes s the owner of descriptor fd.
func (s *Socket) adopt(fd int) {
	s.fd = fd
	// A non-blocking descriptor makes a pollable File: its deadlines work,
	// and its Close wakes calls waiting on it.
	s.f = os.NewFile(uintptr(fd), "tcp socket")
	s.rc, _ = s.f.SyscallConn()
}

// ID returns the socket's number in events.
func (s *Socket) ID() int { return s.id }

// FD returns the kernel's descriptor for the socket.
func (s *Socket) FD() int { return s.fd }

func (s *Socket) setReuseAddr() {
	s.rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
}

// Bind gives the socket a local address, like bind(2).
func (s *Socket) Bind(ctx context.Context, addr netip.AddrPort) error {
	c, err := s.begin(ctx, trace.Call{Op: trace.OpBind, Local: addr}, true)
	if err != nil {
		return err
	}
	err = s.control("bind", func(fd int) error { return unix.Bind(fd, sockaddr(addr, s.v6)) })
	if err != nil {
		err = s.opError("bind", addr, err)
	}
	s.learnAddrs()
	s.end(&c, 0, err, "")
	return err
}

// Listen marks the socket as accepting connections, like listen(2), and
// returns it as a net.Listener.
func (s *Socket) Listen(ctx context.Context, backlog int) (*Listener, error) {
	c, err := s.begin(ctx, trace.Call{Op: trace.OpListen}, true)
	if err != nil {
		return nil, err
	}
	if s.ref != nil {
		s.n.cfg.Watch.listening(s.ref)
	}
	err = s.control("listen", func(fd int) error { return unix.Listen(fd, backlog) })
	if err != nil {
		err = s.opError("listen", s.localAddrPort(), err)
	}
	s.end(&c, 0, err, "")
	if err != nil {
		return nil, err
	}
	return &Listener{s: s}, nil
}

// Accept waits for a connection, like accept(2), and returns it as a new
// Socket with the same label.
func (s *Socket) Accept(ctx context.Context) (*Socket, error) {
	c, err := s.begin(ctx, trace.Call{Op: trace.OpAccept}, true)
	if err != nil {
		return nil, err
	}
	var (
		nfd   int
		calls int
		aerr  error
	)
	err = s.rc.Read(func(fd uintptr) bool {
		calls++
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return aerr != unix.EAGAIN && aerr != unix.EINTR
	})
	if err == nil {
		err = sysErr("accept", aerr)
	}
	how := waited("accept4(2)", calls)
	if err != nil {
		err = s.opError("accept", s.localAddrPort(), s.pollErr(err))
		s.end(&c, 0, err, how)
		return nil, err
	}
	ns := &Socket{n: s.n, label: s.label, v6: s.v6}
	ns.adopt(nfd)
	if s.n.cfg.NoDelay {
		unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	ns.learnAddrs()
	if w := s.n.cfg.Watch; w != nil {
		// The kernel may have shown the connection already (its SYN|ACK,
		// its states): it keeps the number it was given then.
		ns.ref = w.accepted(s.ref, ns, ns.localAddrPort(), ns.remoteAddrPort())
		ns.id = ns.ref.id
	} else {
		ns.id = s.n.newID()
	}
	c.NewSocket = ns.id
	s.endWith(&c, 0, nil, how, ns)
	return ns, nil
}

// Connect connects the socket to addr, like connect(2): on a non-blocking
// socket the kernel sends the SYN and answers EINPROGRESS, and the call
// waits in the poller until the socket is writable, then reads the
// outcome with getsockopt(SO_ERROR), as Go's net package does. It
// returns when connected, refused, or when ctx is done.
func (s *Socket) Connect(ctx context.Context, addr netip.AddrPort) error {
	c, err := s.begin(ctx, trace.Call{Op: trace.OpConnect, Remote: addr}, true)
	if err != nil {
		return err
	}
	if s.ref != nil {
		s.n.cfg.Watch.connecting(s.ref, addr)
	}
	how := "connect(2)"
	err = s.control("connect", func(fd int) error { return unix.Connect(fd, sockaddr(addr, s.v6)) })
	if errors.Is(err, unix.EINPROGRESS) {
		how = "connect(2) = EINPROGRESS (non-blocking), a wait in epoll, getsockopt(SO_ERROR)"
		err = s.waitConnected(ctx)
	}
	if err != nil {
		err = s.opError("dial", addr, err)
	}
	s.learnAddrs()
	s.end(&c, 0, err, how)
	return err
}

func (s *Socket) waitConnected(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		s.f.SetWriteDeadline(dl)
		defer s.f.SetWriteDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { s.f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	var cerr error
	err := s.rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			cerr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := unix.Errno(v); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0:
			// The poller can wake spuriously: connected only if the
			// kernel names a peer.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		default:
			cerr = os.NewSyscallError("connect", e)
			return true
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return s.pollErr(err)
	}
	return cerr
}

// Read implements net.Conn: recv, as read(2), waiting in the poller while
// the kernel has nothing for it.
func (s *Socket) Read(p []byte) (int, error) {
	c, err := s.begin(context.Background(), trace.Call{Op: trace.OpRecv}, true)
	if err != nil {
		return 0, err
	}
	var (
		n, calls int
		rerr     error
	)
	err = s.rc.Read(func(fd uintptr) bool {
		calls++
		n, rerr = unix.Read(int(fd), p)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err == nil {
		err = sysErr("read", rerr)
	}
	n = max(n, 0)
	if err == nil && n == 0 && len(p) > 0 {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		err = s.opError("read", s.remoteAddrPort(), s.pollErr(err))
	}
	s.end(&c, n, err, waited("read(2)", calls))
	return n, err
}

// Write implements net.Conn: send, as write(2), waiting in the poller
// while the send buffer is full, until all of p is written.
func (s *Socket) Write(p []byte) (int, error) {
	c, err := s.begin(context.Background(), trace.Call{Op: trace.OpSend, Bytes: len(p)}, true)
	if err != nil {
		return 0, err
	}
	var (
		n, calls int
		werr     error
	)
	for n < len(p) && err == nil && werr == nil {
		err = s.rc.Write(func(fd uintptr) bool {
			calls++
			m, e := unix.Write(int(fd), p[n:])
			if e == unix.EAGAIN || e == unix.EINTR {
				return false
			}
			n += max(m, 0)
			werr = e
			return true
		})
	}
	if err == nil {
		err = sysErr("write", werr)
	}
	if err != nil {
		err = s.opError("write", s.remoteAddrPort(), s.pollErr(err))
	}
	s.end(&c, n, err, waited("write(2)", calls))
	return n, err
}

// waited says how a call that may wait went: one system call, or several
// with waits in epoll between them (EAGAIN).
func waited(call string, calls int) string {
	if calls <= 1 {
		return call
	}
	return fmt.Sprintf("%s ×%d, waiting in epoll after EAGAIN", call, calls)
}

// CloseWrite sends the peer a FIN and keeps receiving, like
// shutdown(SHUT_WR): an upload's end of file.
func (s *Socket) CloseWrite() error {
	c, err := s.begin(context.Background(), trace.Call{Op: trace.OpShutdown}, true)
	if err != nil {
		return err
	}
	err = s.control("shutdown", func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
	if err != nil {
		err = s.opError("shutdown", s.remoteAddrPort(), err)
	}
	s.end(&c, 0, err, "shutdown(2), SHUT_WR")
	return err
}

// Close closes the socket, like close(2): the kernel goes on with the
// connection (FIN-WAIT, TIME-WAIT, LAST-ACK) without it. Calls waiting on
// the socket return net.ErrClosed. It is not stopped at in step mode, so
// that q can always close every socket.
func (s *Socket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.opError("close", s.remoteAddrPort(), net.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	c, _ := s.begin(context.Background(), trace.Call{Op: trace.OpClose}, false)
	if s.ref != nil {
		s.n.cfg.Watch.closed(s.ref)
	}
	err := s.f.Close()
	if err != nil {
		err = s.opError("close", s.remoteAddrPort(), err)
	}
	s.end(&c, 0, err, "close(2)")
	return err
}

func (s *Socket) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// control runs a system call on the descriptor.
func (s *Socket) control(call string, fn func(fd int) error) error {
	var serr error
	if err := s.rc.Control(func(fd uintptr) { serr = fn(int(fd)) }); err != nil {
		return s.pollErr(err)
	}
	return sysErr(call, serr)
}

// LocalAddr implements net.Conn.
func (s *Socket) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(s.localAddrPort()) }

// RemoteAddr implements net.Conn.
func (s *Socket) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(s.remoteAddrPort()) }

// SetDeadline implements net.Conn.
func (s *Socket) SetDeadline(t time.Time) error { return s.f.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (s *Socket) SetReadDeadline(t time.Time) error { return s.f.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (s *Socket) SetWriteDeadline(t time.Time) error { return s.f.SetWriteDeadline(t) }

func (s *Socket) localAddrPort() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

func (s *Socket) remoteAddrPort() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote
}

// learnAddrs reads the socket's addresses from the kernel
// (getsockname, getpeername) and keeps them for after it is closed.
func (s *Socket) learnAddrs() {
	var local, remote netip.AddrPort
	s.rc.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			local = addrPort(sa)
		}
		if sa, err := unix.Getpeername(int(fd)); err == nil {
			remote = addrPort(sa)
		}
	})
	s.mu.Lock()
	if local.IsValid() {
		s.local = local
	}
	if remote.IsValid() {
		s.remote = remote
	}
	s.mu.Unlock()
	if s.ref != nil {
		s.n.cfg.Watch.addrs(s.ref, local, remote)
	}
}

// opError wraps err as Go's net package would.
func (s *Socket) opError(op string, addr netip.AddrPort, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) || err == nil {
		return err
	}
	var a net.Addr
	if addr.IsValid() {
		a = net.TCPAddrFromAddrPort(addr)
	}
	var src net.Addr
	if l := s.localAddrPort(); l.IsValid() && l != addr {
		src = net.TCPAddrFromAddrPort(l)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: src, Addr: a, Err: err}
}

// pollErr names a socket closed under a waiting call the way Go's net
// package does, so callers test for it alike on either stack (the
// poller's own error, "use of closed file", is not os.ErrClosed).
func (s *Socket) pollErr(err error) error {
	if err != nil && (errors.Is(err, os.ErrClosed) || s.isClosed()) {
		return net.ErrClosed
	}
	return err
}

// Listener is a listening Socket as a net.Listener.
type Listener struct{ s *Socket }

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.s.Accept(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Close implements net.Listener.
func (l *Listener) Close() error { return l.s.Close() }

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.s.LocalAddr() }

// SetDeadline sets the deadline for Accept.
func (l *Listener) SetDeadline(t time.Time) error { return l.s.f.SetReadDeadline(t) }

// Socket returns the listening socket.
func (l *Listener) Socket() *Socket { return l.s }

func sockaddr(ap netip.AddrPort, v6 bool) unix.Sockaddr {
	if !v6 {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}
