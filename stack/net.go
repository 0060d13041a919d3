package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/nsftp/nsftp/trace"
)

// Dial creates a socket and connects it to address ("ip:port"), the client
// half of the article's Figure 1: socket, connect. The host part must be
// an IP address; netconf.Network looks names up first.
func (h *Host) Dial(ctx context.Context, label trace.Conn, address string) (net.Conn, error) {
	ap, err := parseAddrPort(address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	s, err := h.Socket(ctx, networkOf(ap.Addr()), label)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetWriteDeadline(dl)
	}
	if err := s.Connect(ctx, ap); err != nil {
		s.Close()
		return nil, err
	}
	s.SetWriteDeadline(noDeadline)
	return s, nil
}

// DialFrom is Dial from a chosen local address ("ip:port"): socket,
// bind, connect, as an active-mode FTP server connects from port 20.
// SO_REUSEADDR is set, so connections to different peers share the port
// and one in TIME-WAIT does not keep the next from it. It implements
// ftp.LocalDialer.
func (h *Host) DialFrom(ctx context.Context, label trace.Conn, local, address string) (net.Conn, error) {
	lap, err := parseAddrPort(local, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	ap, err := parseAddrPort(address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	s, err := h.Socket(ctx, networkOf(ap.Addr()), label)
	if err != nil {
		return nil, err
	}
	s.SetReuseAddress(true)
	if err := s.Bind(ctx, lap); err != nil {
		s.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetWriteDeadline(dl)
	}
	if err := s.Connect(ctx, ap); err != nil {
		s.Close()
		return nil, err
	}
	s.SetWriteDeadline(noDeadline)
	return s, nil
}

// Listen creates a socket, binds it to address ("ip:port", port 0 for one
// the stack chooses) and listens with the given backlog: the server half of
// Figure 1, and the article's data connection.
func (h *Host) Listen(ctx context.Context, label trace.Conn, address string, backlog int) (net.Listener, error) {
	ap, err := parseAddrPort(address, true)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: err}
	}
	s, err := h.Socket(ctx, networkOf(ap.Addr()), label)
	if err != nil {
		return nil, err
	}
	// SO_REUSEADDR, as Go's net.Listen sets it: a server restarted on its
	// port must not be refused because of connections in TIME-WAIT.
	s.SetReuseAddress(true)
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

func networkOf(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// parseAddrPort parses "ip:port". An empty host means 0.0.0.0 where allowed.
func parseAddrPort(address string, allowEmptyHost bool) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid port %q", port)
	}
	if host == "" && allowEmptyHost {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address", host)
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("zoned address %q is not supported", host)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}
