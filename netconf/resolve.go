package netconf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// DefaultServerWait is how long a Resolver gives each name server before
// it asks the next: resolv.conf's default timeout.
const DefaultServerWait = 5 * time.Second

// Resolver looks host names up over a host's own sockets. It is Go's
// resolver (with /etc/hosts, and the search list and options of
// /etc/resolv.conf, as any program on the machine) with every DNS query
// dialled through the host: UDP first, TCP when an answer is truncated.
// The name servers are the host's (stack.Host.NameServers), asked in
// turn; a host that was given none takes those of /etc/resolv.conf that
// its link can reach.
type Resolver struct {
	h *stack.Host
	// Device names the link in messages: "tap0".
	Device string
	// ServerWait is how long each name server is given; 0 means
	// DefaultServerWait.
	ServerWait time.Duration
	// ResolvConf is the file read for name servers when the host has
	// none; "" means /etc/resolv.conf.
	ResolvConf string
}

// NewResolver returns a resolver that asks its questions through h.
func NewResolver(h *stack.Host, device string) *Resolver {
	return &Resolver{h: h, Device: device}
}

// LookupNetIP returns the addresses of host, AAAA and A records both
// asked for, as Go's resolver orders them. A name server that says the
// name does not exist ends the lookup (ErrNoSuchHost); one that does not
// answer in time, or refuses, passes the question to the next
// (ErrNoNameServer when none is left).
func (r *Resolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	servers, err := r.servers()
	if err != nil {
		return nil, err
	}
	wait := r.ServerWait
	if wait <= 0 {
		wait = DefaultServerWait
	}
	var tried []string
	for _, server := range servers {
		var heard heard
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return r.dial(ctx, network, server, &heard)
		}}
		sctx, cancel := context.WithTimeout(ctx, wait)
		addrs, err := res.LookupNetIP(sctx, "ip", host)
		cancel()
		if err == nil {
			for i, a := range addrs {
				addrs[i] = a.Unmap()
			}
			return addrs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			why := "it has no A or AAAA record for it"
			if heard.nxdomain.Load() {
				why = "NXDOMAIN: no such name"
			}
			return nil, &Error{Err: ErrNoSuchHost, msg: fmt.Sprintf("%s: no such host (the name server %v says %s)", host, server, why)}
		case heard.refused.Load():
			tried = append(tried, fmt.Sprintf("%v refused the query (port 53 unreachable)", server))
		case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
			tried = append(tried, fmt.Sprintf("%v did not answer in %v", server, wait))
		default:
			tried = append(tried, fmt.Sprintf("%v: %v", server, err))
		}
	}
	return nil, &Error{Err: ErrNoNameServer, msg: fmt.Sprintf("cannot look up %s: no name server answered over %s: %s; --dns IP names another",
		host, r.Device, strings.Join(tried, "; "))}
}

// dial opens a connection to a name server through the host, as Go's
// resolver asks: a connected UDP socket, or a TCP connection.
func (r *Resolver) dial(ctx context.Context, network string, server netip.Addr, heard *heard) (net.Conn, error) {
	// Go's resolver goes on with a lookup its caller gave up on (it may
	// share the answer), and it bounds a query by the connection's
	// deadline, its own timeout (5s), not by ctx. A connection closed when
	// ctx is done ends an abandoned lookup at once, and one never opened
	// for a done ctx ends its further attempts.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := r.dialServer(ctx, network, server, heard)
	if err == nil {
		context.AfterFunc(ctx, func() { c.Close() })
	}
	return c, err
}

func (r *Resolver) dialServer(ctx context.Context, network string, server netip.Addr, heard *heard) (net.Conn, error) {
	ap := netip.AddrPortFrom(server, 53)
	switch network {
	case "udp", "udp4", "udp6":
		fam := "udp4"
		if !server.Is4() {
			fam = "udp6"
		}
		s, err := r.h.UDPSocket(trace.WithLabel(ctx, trace.DNS), fam)
		if err != nil {
			return nil, err
		}
		if err := s.Connect(ctx, ap); err != nil {
			s.Close()
			return nil, err
		}
		return &dnsConn{UDPSocket: s, heard: heard}, nil
	case "tcp", "tcp4", "tcp6":
		return r.h.DialContext(trace.WithLabel(ctx, trace.DNS), "tcp", ap.String())
	}
	return nil, fmt.Errorf("netconf: cannot dial %s to a name server", network)
}

// heard is what a name server's answers said that Go's resolver does not
// report: an NXDOMAIN (reported as any name without an address is), an
// ICMP port unreachable (reported in a message only).
type heard struct {
	nxdomain, refused atomic.Bool
}

// dnsConn is a name server's UDP socket that notes what it heard.
type dnsConn struct {
	*stack.UDPSocket
	heard *heard
}

func (c *dnsConn) Read(b []byte) (int, error) {
	n, err := c.UDPSocket.Read(b)
	if errors.Is(err, syscall.ECONNREFUSED) {
		c.heard.refused.Store(true)
	}
	if err == nil {
		var p dnsmessage.Parser
		if h, perr := p.Start(b[:n]); perr == nil && h.Response && h.RCode == dnsmessage.RCodeNameError {
			c.heard.nxdomain.Store(true)
		}
	}
	return n, err
}

// servers returns the name servers to ask: the host's, or failing those
// the ones in resolv.conf that the link can reach, which the host then
// records as its own.
func (r *Resolver) servers() ([]netip.Addr, error) {
	if s := r.h.NameServers(); len(s) > 0 {
		return s, nil
	}
	path := r.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	usable, unusable, err := readResolvConf(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Err: ErrNoNameServer, msg: fmt.Sprintf("no name server to ask: none came with the network, and %v; --dns IP names one", err)}
	}
	if len(usable) == 0 {
		why := path + " names none"
		if len(unusable) > 0 {
			why = fmt.Sprintf("%s names only %s, which nsftp's stack on %s cannot reach (a resolver on this machine's loopback)",
				path, strings.Join(unusable, " "), r.Device)
		}
		return nil, &Error{Err: ErrNoNameServer, msg: fmt.Sprintf("no name server to ask: none came with the network (DHCP, router advertisements), and %s; --dns IP names one", why)}
	}
	if err := r.h.Configure(stack.Change{Source: trace.FromResolvConf, DNS: usable}); err != nil {
		return nil, err
	}
	return usable, nil
}

// readResolvConf reads the nameserver lines of a resolv.conf (resolv.conf(5)),
// split into those a host on another link can reach and those it cannot:
// loopback addresses (systemd-resolved's 127.0.0.53) and zoned link-local
// ones.
func readResolvConf(path string) (usable []netip.Addr, unusable []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsUnspecified() || a.Zone() != "" {
			unusable = append(unusable, fields[1])
			continue
		}
		usable = append(usable, a)
	}
	return usable, unusable, sc.Err()
}
