package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/trace"
)

// Gate pauses before each socket call: step mode.
type Gate interface {
	// BeforeCall is called with the call's beginning and, for a socket
	// with a connection, the kernel's TCP_INFO for it as a TCB. It may
	// block; if it returns an error the call does not run and fails with
	// that error.
	BeforeCall(ctx context.Context, e trace.Event) error
}

// Config configures a Network.
type Config struct {
	// Host names the network's side in events: "client" or "server".
	Host string
	Role trace.Role
	// Addrs are the host's addresses, for the views to tell hosts apart
	// (the host event); none when not known beforehand.
	Addrs []netip.Prefix
	// Observer receives the calls' events; nil records nothing and costs
	// nothing.
	Observer trace.Observer
	// Samples, with Observer, records the kernel's TCP_INFO for a
	// connection as a TCB sample after each call on it (and before its
	// close): cwnd, ssthresh, RTT, RTO and the rest, with no privilege.
	// With a Watch that reads tracefs, the kernel's per-ACK samples
	// (tcp:tcp_probe) and changes of congestion state are recorded too.
	Samples bool
	// Gate, if set, is asked before every call but close.
	Gate Gate
	// NetNS is where sockets are made; nil is the process's namespace.
	NetNS *NetNS
	// Watch is told of every socket, so the kernel's own events about it
	// find it; nil when nothing watches the kernel.
	Watch *Watch
	// Resolver looks up host names for Dial; nil is net.DefaultResolver.
	Resolver *net.Resolver
	// NoDelay turns Nagle's algorithm off on every connection
	// (TCP_NODELAY), as Go's net package does; the kernel's default, and
	// the 2005 article's, is on.
	NoDelay bool
}

// Network is the operating system's TCP as an ftp.Network, with every
// socket call nsftp's own: socket, bind, listen, accept, connect, send,
// recv, shutdown and close are each the system call they name (on
// non-blocking sockets, waiting in Go's poller), so that each is a call
// of the trace, as on nsftp's stack. Go's net package would do socket,
// bind, listen (or connect) in one call and show none of them.
type Network struct {
	cfg     Config
	nextID  atomic.Int64
	release string // the kernel's release, for the host event
}

var (
	_ ftp.Network     = (*Network)(nil)
	_ ftp.LocalDialer = (*Network)(nil)
)

// NewNetwork returns the kernel's TCP as a traced network, and records
// its host event.
func NewNetwork(cfg Config) *Network {
	n := &Network{cfg: cfg, release: Release()}
	if cfg.Observer != nil {
		cfg.Observer(trace.Event{Layer: trace.LayerKernel, Host: cfg.Host, Kind: trace.KindHost, HostInfo: &trace.HostInfo{
			Role: cfg.Role, Addrs: cfg.Addrs, TimeWait: TimeWait, Kernel: n.release, Unseen: cfg.Watch.unseen(),
		}})
	}
	return n
}

// TimeWait is how long Linux keeps a connection in TIME-WAIT:
// TCP_TIMEWAIT_LEN, fixed at 60 seconds (include/net/tcp.h).
const TimeWait = 60 * time.Second

// Release is the running kernel's release, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "Linux"
	}
	return "Linux " + unix.ByteSliceToString(u.Release[:])
}

// newID numbers a socket, as netstack's hosts do: the kernel's own
// descriptor numbers come back for new sockets while a closed one's
// connection is still finishing, so events carry both.
func (n *Network) newID() int { return int(n.nextID.Add(1)) + 2 }

// DialContext implements ftp.Network: socket, connect, on the network
// "tcp", "tcp4" or "tcp6". Events label the socket with ctx's label
// (trace.WithLabel).
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.dial(ctx, network, "", address)
}

// DialFrom implements ftp.LocalDialer: socket, bind (with SO_REUSEADDR),
// connect, as an active-mode server connects from port 20.
func (n *Network) DialFrom(ctx context.Context, network, local, address string) (net.Conn, error) {
	return n.dial(ctx, network, local, address)
}

func (n *Network) dial(ctx context.Context, network, local, address string) (net.Conn, error) {
	if err := checkTCP(network); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	label := trace.LabelOf(ctx)
	addrs, err := n.resolve(ctx, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	var lap netip.AddrPort
	if local != "" {
		if lap, err = netip.ParseAddrPort(local); err != nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
	}
	var errs []error
	for _, ap := range addrs {
		if lap.IsValid() && lap.Addr().Unmap().Is4() != ap.Addr().Is4() {
			continue
		}
		c, err := n.dialOne(ctx, label, lap, ap)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("no address of %s to connect to from %s", address, local)}
	}
	return nil, errs[0]
}

func (n *Network) dialOne(ctx context.Context, label trace.Conn, local, remote netip.AddrPort) (*Socket, error) {
	s, err := n.socket(ctx, !remote.Addr().Is4(), label)
	if err != nil {
		return nil, err
	}
	if local.IsValid() {
		s.setReuseAddr()
		if err := s.Bind(ctx, local); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.Connect(ctx, remote); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// resolve turns "host:port" into addresses to try, IPv4 first.
func (n *Network) resolve(ctx context.Context, address string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(p))}, nil
	}
	r := n.cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var v4, v6 []netip.AddrPort
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(p))
		if ap.Addr().Is4() {
			v4 = append(v4, ap)
		} else {
			v6 = append(v6, ap)
		}
	}
	return append(v4, v6...), nil
}

// Listen implements ftp.Network: socket, bind (with SO_REUSEADDR, as Go's
// net.Listen sets it), listen, with ctx's backlog (trace.WithBacklog) or
// the kernel's net.core.somaxconn, as Go's net.Listen asks for.
func (n *Network) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := checkTCP(network); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	label := trace.LabelOf(ctx)
	backlog, ok := trace.BacklogOf(ctx)
	if !ok {
		backlog = unix.SOMAXCONN
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("invalid port %q", port)}
	}
	ip := netip.IPv4Unspecified()
	if host != "" {
		if ip, err = netip.ParseAddr(host); err != nil {
			return nil, &net.OpError{Op: "listen", Net: "tcp", Err: fmt.Errorf("%q is not an IP address", host)}
		}
	}
	ap := netip.AddrPortFrom(ip.Unmap(), uint16(p))
	s, err := n.socket(ctx, !ap.Addr().Is4(), label)
	if err != nil {
		return nil, err
	}
	s.setReuseAddr()
	if err := s.Bind(ctx, ap); err != nil {
		s.Close()
		return nil, err
	}
	l, err := s.Listen(ctx, backlog)
	if err != nil {
		s.Close()
		return nil, err
	}
	return l, nil
}

// checkTCP refuses the networks the kernel twin does not trace: it makes
// TCP sockets only.
func checkTCP(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nil
	}
	return net.UnknownNetworkError(network)
}

// emit records a call event of this host.
func (n *Network) emit(e trace.Event) {
	e.Layer = trace.LayerKernel
	e.Host = n.cfg.Host
	n.cfg.Observer(e)
}

// sysErr is err as Go's net package shapes a failed system call.
func sysErr(call string, err error) error {
	var se *os.SyscallError
	if err == nil || errors.As(err, &se) {
		return err
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return os.NewSyscallError(call, errno)
	}
	return err
}
