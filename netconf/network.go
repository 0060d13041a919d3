package netconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// Network is a stack host that dials host names as well as addresses: it
// looks a name up with its Resolver and tries the addresses in turn,
// those of a family the host has an address in first. It has the host's
// Listen and DialFrom, so it is an ftp.Network and an ftp.LocalDialer.
type Network struct {
	*stack.Host
	Resolver *Resolver
	// Device names the link in messages: "tap0".
	Device string
	// AutoconfWait is how long a dial waits for the host to get an address
	// of the family it needs, when it has none yet: IPv6 autoconfiguration
	// takes a router advertisement, which may come after DHCP is done.
	AutoconfWait time.Duration
}

// DialContext implements ftp.Network: it opens a connection to address
// ("host:port", the host a name or an IP address) on network ("tcp",
// "udp", with or without a family), as the host's DialContext does, but
// looking names up with n.Resolver and explaining a host it cannot reach.
func (n *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		if n.Resolver == nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%q is not an IP address and there is no resolver", host)}
		}
		if addrs, err = n.Resolver.LookupNetIP(ctx, host); err != nil {
			return nil, err
		}
	}
	// Try first the addresses the host can reach now: those of a family
	// it has an address in, keeping the resolver's order otherwise.
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
		ha, hb := n.hasFamily(a), n.hasFamily(b)
		switch {
		case ha && !hb:
			return -1
		case hb && !ha:
			return 1
		}
		return 0
	})
	var first error
	for i, a := range addrs {
		if !n.hasFamily(a) {
			n.awaitFamily(ctx, a)
		}
		actx, cancel := partial(ctx, len(addrs)-i)
		c, err := n.Host.DialContext(actx, network, net.JoinHostPort(a.String(), port))
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if first == nil {
			first = n.explain(a, err)
		}
	}
	return nil, first
}

// partial gives one of the n addresses left to try its share of ctx's
// time, as Go's net.Dialer does.
func partial(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	share := time.Until(dl) / time.Duration(left)
	return context.WithTimeout(ctx, max(share, 2*time.Second))
}

// hasFamily reports whether the host has a global address of a's family.
func (n *Network) hasFamily(a netip.Addr) bool {
	for _, p := range n.Host.Addresses() {
		if p.Addr().Is4() == a.Is4() && !p.Addr().IsLinkLocalUnicast() {
			return true
		}
	}
	return false
}

// awaitFamily waits, for at most AutoconfWait since the call, until the
// host has an address of a's family.
func (n *Network) awaitFamily(ctx context.Context, a netip.Addr) {
	if n.AutoconfWait <= 0 {
		return
	}
	t := time.NewTimer(n.AutoconfWait)
	defer t.Stop()
	for !n.hasFamily(a) {
		select {
		case <-n.Host.Changed():
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// explain turns a failure to reach a into a sentence that says why, when
// the host's configuration explains it.
func (n *Network) explain(a netip.Addr, err error) error {
	if !errors.Is(err, syscall.ENETUNREACH) {
		return err
	}
	var have []string
	for _, p := range n.Host.Addresses() {
		if p.Addr().Is4() == a.Is4() && !p.Addr().IsLinkLocalUnicast() {
			have = append(have, p.String())
		}
	}
	fam := "IPv4"
	if !a.Is4() {
		fam = "IPv6"
	}
	var why string
	switch {
	case len(have) == 0:
		why = fmt.Sprintf("nsftp has no %s address on %s", fam, n.Device)
		if !a.Is4() {
			why += " (no router advertised a prefix)"
		}
	default:
		why = fmt.Sprintf("%s is not on %s's network (%s) and there is no %s default router", a, n.Device, strings.Join(have, " "), fam)
		if a.Is4() {
			why += " (DHCP named none; --gateway IP sets one)"
		} else {
			why += " (no router advertised itself)"
		}
	}
	return &Error{Err: errors.Join(ErrNoRoute, err), msg: fmt.Sprintf("no route to %v: %s", a, why)}
}
