package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nsftp/nsftp/trace"
)

// The host's edge in the shape of Go's net package: DialContext as
// net.Dialer's, Listen and ListenPacket as net.ListenConfig's, so code
// written for the operating system's sockets takes a Host as it is
// (http.Transport{DialContext: host.DialContext}). What nsftp adds to a
// socket (its label in traces, a listen backlog) rides in the context:
// trace.WithLabel, trace.WithBacklog.

// DialContext connects to address on the named network, as
// net.Dialer.DialContext does: for "tcp", "tcp4" and "tcp6" it creates a
// socket and connects it (the client half of the 2005 article's Figure
// 1: socket, connect), for "udp", "udp4" and "udp6" it creates a UDP
// socket and fixes its peer. The address is "host:port"; a host name is
// looked up with the host's own resolver (Resolver) and its addresses
// tried in turn. Errors are *net.OpError, wrapping the errno where there
// is one: errors.Is(err, syscall.ECONNREFUSED) holds for a refused
// connection, and a ctx that ends first gives its error.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return h.dial(ctx, network, "", address)
}

// DialFrom is DialContext from the local address laddr ("ip:port"), as
// net.Dialer with LocalAddr set: socket, bind, connect, as an active-mode
// FTP server connects from port 20 (RFC 959 section 3.2). SO_REUSEADDR is
// set, so connections to different peers share the port and one in
// TIME-WAIT does not keep the next from it.
func (h *Host) DialFrom(ctx context.Context, network, laddr, address string) (net.Conn, error) {
	return h.dial(ctx, network, laddr, address)
}

func (h *Host) dial(ctx context.Context, network, laddr, address string) (net.Conn, error) {
	proto, fam, err := parseNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var local netip.AddrPort
	if laddr != "" {
		if local, err = parseAddrPort(laddr, true); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}
	host, port, err := splitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	addrs, err := h.lookup(ctx, fam, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, port)
		var c net.Conn
		if proto == "udp" {
			c, err = h.dialUDP(ctx, local, ap)
		} else {
			c, err = h.dialTCP(ctx, local, ap)
		}
		if err == nil {
			return c, nil
		}
		var oe *net.OpError
		if errors.As(err, &oe) {
			oe.Net = network
			if !local.IsValid() {
				// As net.Dialer's: the source only when one was asked for.
				oe.Source = nil
			}
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func (h *Host) dialTCP(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error) {
	s, err := h.Socket(ctx, tcpNetworkOf(remote.Addr()))
	if err != nil {
		return nil, err
	}
	if local.IsValid() {
		s.SetReuseAddress(true)
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

func (h *Host) dialUDP(ctx context.Context, local, remote netip.AddrPort) (net.Conn, error) {
	network := "udp4"
	if !remote.Addr().Is4() {
		network = "udp6"
	}
	s, err := h.UDPSocket(ctx, network)
	if err != nil {
		return nil, err
	}
	if local.IsValid() {
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

// Listen listens for TCP connections on address, as
// net.ListenConfig.Listen does: socket, bind, listen, the server half of
// the article's Figure 1. The network is "tcp", "tcp4" or "tcp6"; the
// address "ip:port", where an empty ip means every IPv4 address of the
// host ("[::]" every IPv6 one) and port 0 one the stack chooses. The
// listen queue holds trace.WithBacklog's number from ctx, or
// HostConfig.ListenBacklog.
func (h *Host) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	ap, err := listenAddr("tcp", network, address)
	if err != nil {
		return nil, err
	}
	backlog, ok := trace.BacklogOf(ctx)
	if !ok {
		backlog = h.backlog
	}
	s, err := h.Socket(ctx, tcpNetworkOf(ap.Addr()))
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

// ListenPacket opens a UDP socket bound to address, as
// net.ListenConfig.ListenPacket does. The network is "udp", "udp4" or
// "udp6"; the address as Listen's.
func (h *Host) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	ap, err := listenAddr("udp", network, address)
	if err != nil {
		return nil, err
	}
	udpNet := "udp4"
	if !ap.Addr().Is4() {
		udpNet = "udp6"
	}
	s, err := h.UDPSocket(ctx, udpNet)
	if err != nil {
		return nil, err
	}
	if err := s.Bind(ctx, ap); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// listenAddr is the address to listen on for network, which must be one
// of proto's ("tcp": tcp, tcp4, tcp6), as an *net.OpError if it is not.
func listenAddr(proto, network, address string) (netip.AddrPort, error) {
	p, fam, err := parseNetwork(network)
	if err == nil && p != proto {
		err = fmt.Errorf("%s is not %s: Listen takes tcp, ListenPacket udp", network, proto)
	}
	var ap netip.AddrPort
	if err == nil {
		ap, err = parseAddrPort(address, true)
	}
	if err == nil && fam == 6 && strings.HasPrefix(address, ":") {
		// No host: every address of the network's family, as Go's.
		ap = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
	}
	if err == nil {
		err = fam.check(ap.Addr())
	}
	if err != nil {
		return netip.AddrPort{}, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return ap, nil
}

// Resolver returns a resolver whose every question goes through the host:
// Go's own resolver, with each DNS query dialled on the host's sockets
// (labelled trace.DNS) to the first of the host's name servers
// (NameServers), UDP first and TCP when an answer is truncated. Go's
// resolver still reads the machine's /etc/hosts and the search list of
// its /etc/resolv.conf; package netconf offers a resolver that tries each
// name server in turn and explains its failures.
func (h *Host) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		servers := h.NameServers()
		if len(servers) == 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errNoNameServer}
		}
		ctx = trace.WithLabel(ctx, trace.DNS)
		return h.DialContext(ctx, network, netip.AddrPortFrom(servers[0], 53).String())
	}}
}

// errNoNameServer is why a host with no name servers cannot look a name up.
var errNoNameServer = errors.New("the host has no name server")

// lookup returns the addresses to try for host: host itself when it is an
// IP address, else what the host's resolver finds, of fam's family.
func (h *Host) lookup(ctx context.Context, fam family, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, fmt.Errorf("zoned address %q is not supported", host)
		}
		a = a.Unmap()
		if err := fam.check(a); err != nil {
			return nil, err
		}
		return []netip.Addr{a}, nil
	}
	if host == "" {
		return nil, errors.New("no host to dial in the address")
	}
	addrs, err := h.Resolver().LookupNetIP(ctx, fam.ipNetwork(), host)
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// family is the IP family a network name asks for: 4, 6, or 0 for either.
type family int

func (f family) check(a netip.Addr) error {
	switch {
	case f == 4 && !a.Is4():
		return &net.AddrError{Err: "not an IPv4 address", Addr: a.String()}
	case f == 6 && a.Is4():
		return &net.AddrError{Err: "not an IPv6 address", Addr: a.String()}
	}
	return nil
}

func (f family) ipNetwork() string {
	switch f {
	case 4:
		return "ip4"
	case 6:
		return "ip6"
	}
	return "ip"
}

// parseNetwork splits a network name as Go's net package spells it into
// its protocol ("tcp", "udp") and IP family.
func parseNetwork(network string) (proto string, fam family, err error) {
	switch network {
	case "tcp", "udp":
		return network, 0, nil
	case "tcp4", "udp4":
		return network[:3], 4, nil
	case "tcp6", "udp6":
		return network[:3], 6, nil
	}
	return "", 0, net.UnknownNetworkError(network)
}

func tcpNetworkOf(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// splitHostPort splits "host:port"; the port must be a number (the host
// has no services database).
func splitHostPort(address string) (string, uint16, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, &net.AddrError{Err: "invalid port", Addr: address}
	}
	return host, uint16(p), nil
}

// parseAddrPort parses "ip:port". An empty host means 0.0.0.0 where allowed.
func parseAddrPort(address string, allowEmptyHost bool) (netip.AddrPort, error) {
	host, port, err := splitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" && allowEmptyHost {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "not an IP address", Addr: host}
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, &net.AddrError{Err: "zoned addresses are not supported", Addr: host}
	}
	return netip.AddrPortFrom(ip.Unmap(), port), nil
}
