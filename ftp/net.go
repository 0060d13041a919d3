package ftp

import (
	"context"
	"net"
	"syscall"

	"github.com/nsftp/nsftp/trace"
)

// Network makes the TCP connections of an FTP session. The client and the
// server use nothing else, so the same code runs on the operating system's
// sockets (OSNetwork) and on nsftp's traced netstack (stack.Host).
//
// The label names the connection in traces: trace.Control or trace.Data.
type Network interface {
	// Dial opens a TCP connection to address ("host:port"), honouring ctx
	// for cancellation and its deadline.
	Dial(ctx context.Context, label trace.Conn, address string) (net.Conn, error)
	// Listen opens a listening TCP socket on address ("ip:port"; port 0
	// lets the stack choose) with the given accept backlog.
	Listen(ctx context.Context, label trace.Conn, address string, backlog int) (net.Listener, error)
}

// LocalDialer is a Network that can choose a connection's local address,
// as an active-mode server's data connection wants (RFC 959 section 3.2:
// from port L-1, 20 for a server on 21). A server on a Network without it
// connects from an ephemeral port.
type LocalDialer interface {
	// DialFrom is Dial from local ("ip:port"). Connections to different
	// peers may share the local port, and one in TIME-WAIT does not keep
	// the next from it (SO_REUSEADDR). A failure to bind is an error
	// wrapping an *os.SyscallError for "bind".
	DialFrom(ctx context.Context, label trace.Conn, local, address string) (net.Conn, error)
}

// OSNetwork is the operating system's sockets. It ignores labels, and the
// backlog, which Go's net package does not expose (the kernel uses
// net.core.somaxconn).
type OSNetwork struct {
	// Dialer is used for Dial; its zero value is the usual default.
	Dialer net.Dialer
}

var (
	_ Network     = (*OSNetwork)(nil)
	_ LocalDialer = (*OSNetwork)(nil)
)

// Dial implements Network.
func (n *OSNetwork) Dial(ctx context.Context, _ trace.Conn, address string) (net.Conn, error) {
	return n.Dialer.DialContext(ctx, "tcp", address)
}

// Listen implements Network.
func (n *OSNetwork) Listen(ctx context.Context, _ trace.Conn, address string, _ int) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", address)
}

// DialFrom implements LocalDialer.
func (n *OSNetwork) DialFrom(ctx context.Context, _ trace.Conn, local, address string) (net.Conn, error) {
	laddr, err := net.ResolveTCPAddr("tcp", local)
	if err != nil {
		return nil, err
	}
	d := n.Dialer
	d.LocalAddr = laddr
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}
	return d.DialContext(ctx, "tcp", address)
}
