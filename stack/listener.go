package stack

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Listener is a listening Socket seen as a net.Listener.
type Listener struct {
	s *Socket
}

// Accept implements net.Listener: it waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	return l.s.Accept(context.Background())
}

// AcceptSocket waits for the next connection until ctx is done.
func (l *Listener) AcceptSocket(ctx context.Context) (*Socket, error) {
	return l.s.Accept(ctx)
}

// Close implements net.Listener; pending connections are reset.
func (l *Listener) Close() error { return l.s.Close() }

// Addr implements net.Listener. It is not traced: net.Listener users call
// it for bookkeeping, not as a getsockname(2) the program asked for.
func (l *Listener) Addr() net.Addr { return l.s.localAddr() }

// AddrPort returns the listening address.
func (l *Listener) AddrPort() netip.AddrPort { return l.s.localAddrPort() }

// SetDeadline bounds Accept calls, as *net.TCPListener's does.
func (l *Listener) SetDeadline(t time.Time) error { return l.s.SetReadDeadline(t) }

// Socket returns the listening socket.
func (l *Listener) Socket() *Socket { return l.s }
