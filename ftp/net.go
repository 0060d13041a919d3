package ftp

import (
	"context"
	"net"
	"syscall"

	"github.com/nsftp/nsftp/trace"
)

// Network makes the TCP connections of an FTP session, with the signatures
// of Go's net.Dialer and net.ListenConfig. The client and the server use
// nothing else, so the same code runs on the operating system's sockets
// (OSNetwork), on nsftp's traced netstack (stack.Host) and on the
// kernel's traced sockets (kernel.Network).
//
// What the session adds to a socket rides in the context: its label in
// traces (trace.WithLabel: trace.Control or trace.Data) and, for the
// active-mode data connection the 2005 article listens for, a backlog of
// 1 (trace.WithBacklog). A network that does not trace ignores them.
type Network interface {
	// DialContext opens a TCP connection to address ("host:port") on the
	// network "tcp", honouring ctx for cancellation and its deadline.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// Listen opens a listening TCP socket on address ("ip:port"; port 0
	// lets the stack choose).
	Listen(ctx context.Context, network, address string) (net.Listener, error)
}

// LocalDialer is a Network that can choose a connection's local address,
// as an active-mode server's data connection wants (RFC 959 section 3.2:
// from port L-1, 20 for a server on 21). A server on a Network without it
// connects from an ephemeral port.
type LocalDialer interface {
	// DialFrom is DialContext from laddr ("ip:port"). Connections to
	// different peers may share the local port, and one in TIME-WAIT does
	// not keep the next from it (SO_REUSEADDR). A failure to bind is an
	// error wrapping an *os.SyscallError for "bind".
	DialFrom(ctx context.Context, network, laddr, address string) (net.Conn, error)
}

// dataListenContext is ctx for a data connection's listener: labelled, and
// with a backlog of one, as the 2005 article listens: one connection is
// all a transfer takes.
func dataListenContext(ctx context.Context) context.Context {
	return trace.WithBacklog(trace.WithLabel(ctx, trace.Data), 1)
}

// OSNetwork is the operating system's sockets, through Go's net package.
// It ignores the context's label and backlog: Go's net package takes
// the kernel's net.core.somaxconn.
type OSNetwork struct {
	// Dialer is used for DialContext; its zero value is the usual default.
	Dialer net.Dialer
	// ListenConfig is used for Listen.
	ListenConfig net.ListenConfig
}

var (
	_ Network     = (*OSNetwork)(nil)
	_ LocalDialer = (*OSNetwork)(nil)
)

// DialContext implements Network.
func (n *OSNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.Dialer.DialContext(ctx, network, address)
}

// Listen implements Network.
func (n *OSNetwork) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	return n.ListenConfig.Listen(ctx, network, address)
}

// DialFrom implements LocalDialer.
func (n *OSNetwork) DialFrom(ctx context.Context, network, laddr, address string) (net.Conn, error) {
	local, err := net.ResolveTCPAddr(network, laddr)
	if err != nil {
		return nil, err
	}
	d := n.Dialer
	d.LocalAddr = local
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}
	return d.DialContext(ctx, network, address)
}
