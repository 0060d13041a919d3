package ftp

import (
	"context"
	"net"

	"nsftp/trace"
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

// OSNetwork is the operating system's sockets. It ignores labels, and the
// backlog, which Go's net package does not expose (the kernel uses
// net.core.somaxconn).
type OSNetwork struct {
	// Dialer is used for Dial; its zero value is the usual default.
	Dialer net.Dialer
}

var _ Network = (*OSNetwork)(nil)

// Dial implements Network.
func (n *OSNetwork) Dial(ctx context.Context, _ trace.Conn, address string) (net.Conn, error) {
	return n.Dialer.DialContext(ctx, "tcp", address)
}

// Listen implements Network.
func (n *OSNetwork) Listen(ctx context.Context, _ trace.Conn, address string, _ int) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", address)
}
