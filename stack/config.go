package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/trace"
)

// netState is a host's configuration as it changes while it runs: its
// addresses, the on-link prefixes and default routers it knows of, and
// its name servers, each with where it came from. The route table is
// computed from it (applyRoutes).
//
// Lock order: mu is taken on its own; nothing in netstack is called with
// it held, since NDP's callbacks take it with netstack's locks held.
type netState struct {
	mu      sync.Mutex
	addrs   []netip.Prefix
	onLink  []netip.Prefix                      // prefixes routers advertise as on-link
	routers map[trace.ConfigSource][]netip.Addr // default routers by where they came from
	dns     map[trace.ConfigSource][]netip.Addr // name servers by where they came from
	closed  bool                                // the host is closing: no more route updates
	changed chan struct{}                       // closed, and replaced, at every change

	applyMu sync.Mutex // serialises route table updates; taken before mu
}

func (n *netState) init() {
	n.routers = map[trace.ConfigSource][]netip.Addr{}
	n.dns = map[trace.ConfigSource][]netip.Addr{}
}

func (n *netState) setRouter(a netip.Addr, src trace.ConfigSource) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routers[src] = append(slices.DeleteFunc(n.routers[src], func(b netip.Addr) bool { return b.Is4() == a.Is4() }), a)
}

// defaultRouters are the routers the host's default routes go through:
// per family, the user's if they gave one, else what DHCP or router
// advertisements said.
func (n *netState) defaultRoutersLocked() []netip.Addr {
	var out []netip.Addr
	for _, v4 := range []bool{true, false} {
		for _, src := range []trace.ConfigSource{trace.FromCommandLine, trace.FromDHCP, trace.FromRA} {
			var got []netip.Addr
			for _, a := range n.routers[src] {
				if a.Is4() == v4 {
					got = append(got, a)
				}
			}
			if len(got) > 0 {
				out = append(out, got...)
				break
			}
		}
	}
	return out
}

// Change is one change to a host's configuration, from one source: what a
// DHCP lease grants or gives back, or what the user set.
type Change struct {
	// Source is where the change comes from. A router or name servers
	// the user gave (trace.FromCommandLine) take precedence over those
	// DHCP or router advertisements give, for their family.
	Source trace.ConfigSource
	// Removed gives up what the change names instead of adding it: a
	// lease released, an address whose lifetime ended.
	Removed bool
	// Addr is an address with its on-link prefix.
	Addr netip.Prefix
	// Router is a default router (gateway).
	Router netip.Addr
	// DNS are name servers, in the order to ask them.
	DNS []netip.Addr
	// Server is the DHCP server that granted a lease, and Lease how long
	// it lasts: they are recorded, not applied.
	Server netip.Addr
	Lease  time.Duration
}

// Configure applies a change to the host's configuration and records it
// as a config event before anything can use it: an address added (with
// its on-link route) or removed, a default router, name servers.
func (h *Host) Configure(c Change) error {
	if c.Addr.IsValid() {
		p := netip.PrefixFrom(c.Addr.Addr().Unmap(), c.Addr.Bits())
		if c.Removed {
			if terr := h.s.RemoveAddress(h.nic, toTCPIP(p.Addr())); terr != nil {
				return fmt.Errorf("stack: removing address %v: %s", p, terr)
			}
			h.conf.mu.Lock()
			h.conf.addrs = slices.DeleteFunc(h.conf.addrs, func(q netip.Prefix) bool { return q.Addr() == p.Addr() })
			h.conf.mu.Unlock()
		} else if !h.hasAddress(p) {
			// (A lease renewed keeps the address it had.)
			if err := h.addAddress(p); err != nil {
				return err
			}
		}
	}
	h.conf.mu.Lock()
	if r := c.Router.Unmap(); r.IsValid() {
		h.conf.routers[c.Source] = slices.DeleteFunc(h.conf.routers[c.Source], func(b netip.Addr) bool {
			// The user and DHCP name one router a family; router
			// advertisements may name several.
			return b == r || c.Source != trace.FromRA && b.Is4() == r.Is4()
		})
		if !c.Removed {
			h.conf.routers[c.Source] = append(h.conf.routers[c.Source], r)
		}
	}
	switch {
	case len(c.DNS) > 0 && c.Removed:
		delete(h.conf.dns, c.Source)
	case len(c.DNS) > 0:
		h.conf.dns[c.Source] = slices.Clone(c.DNS)
	}
	h.conf.mu.Unlock()
	h.record(trace.Config{Source: c.Source, Removed: c.Removed, Addr: c.Addr, Router: c.Router,
		DNS: slices.Clone(c.DNS), Server: c.Server, Lease: c.Lease})
	h.applyRoutes()
	return nil
}

// record notes a change of configuration in the host's timeline, and
// wakes whoever waits for one (Changed).
func (h *Host) record(c trace.Config) {
	if h.tl != nil {
		h.tl.emit(trace.Event{Kind: trace.KindConfig, Config: &c})
	}
	h.conf.mu.Lock()
	if h.conf.changed != nil {
		close(h.conf.changed)
		h.conf.changed = nil
	}
	h.conf.mu.Unlock()
}

// Changed returns a channel that is closed at the host's next change of
// configuration: an address, a router or name servers gained or lost.
func (h *Host) Changed() <-chan struct{} {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	if h.conf.changed == nil {
		h.conf.changed = make(chan struct{})
	}
	return h.conf.changed
}

// HasAddress reports whether the interface has p now.
func (h *Host) HasAddress(p netip.Prefix) bool { return h.hasAddress(p) }

func (h *Host) hasAddress(p netip.Prefix) bool {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	return slices.Contains(h.conf.addrs, p)
}

// addAddress assigns p to the interface and remembers it for the route
// table.
func (h *Host) addAddress(p netip.Prefix) error {
	a := p.Addr().Unmap()
	pa := tcpip.ProtocolAddress{
		Protocol:          protoOf(a),
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: toTCPIP(a), PrefixLen: p.Bits()},
	}
	if terr := h.s.AddProtocolAddress(h.nic, pa, gstack.AddressProperties{}); terr != nil {
		return fmt.Errorf("stack: adding address %v: %s", p, terr)
	}
	h.conf.mu.Lock()
	h.conf.addrs = append(h.conf.addrs, netip.PrefixFrom(a, p.Bits()))
	h.conf.mu.Unlock()
	return nil
}

// applyRoutes sets the route table from the host's configuration: an
// on-link route for each address's prefix and each advertised on-link
// prefix, and a default route through each family's router.
func (h *Host) applyRoutes() {
	h.conf.applyMu.Lock()
	defer h.conf.applyMu.Unlock()
	h.conf.mu.Lock()
	var routes []tcpip.Route
	seen := map[netip.Prefix]bool{}
	for _, p := range slices.Concat(h.conf.addrs, h.conf.onLink) {
		m := p.Masked()
		if seen[m] || m.Addr().IsLinkLocalUnicast() {
			continue
		}
		seen[m] = true
		routes = append(routes, tcpip.Route{Destination: subnetOf(m), NIC: h.nic})
	}
	for _, gw := range h.conf.defaultRoutersLocked() {
		dest := header4Any
		if !gw.Is4() {
			dest = header6Any
		}
		routes = append(routes, tcpip.Route{Destination: dest, Gateway: toTCPIP(gw), NIC: h.nic})
	}
	h.conf.mu.Unlock()
	h.s.SetRouteTable(routes)
}

// applyRoutesLater applies the route table from a goroutine of its own:
// NDP's callbacks may not call into the stack.
func (h *Host) applyRoutesLater() {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	if h.conf.closed {
		return
	}
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		h.applyRoutes()
	}()
}

func subnetOf(p netip.Prefix) tcpip.Subnet {
	a := p.Addr()
	n := 4
	if a.Is6() {
		n = 16
	}
	s, err := tcpip.NewSubnet(toTCPIP(a), tcpip.MaskFromBytes(net.CIDRMask(p.Bits(), n*8)))
	if err != nil {
		panic(err) // p is masked
	}
	return s
}

// Addresses returns the interface's addresses now, IPv4 first.
func (h *Host) Addresses() []netip.Prefix {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	out := slices.Clone(h.conf.addrs)
	slices.SortStableFunc(out, func(a, b netip.Prefix) int {
		switch {
		case a.Addr().Is4() && !b.Addr().Is4():
			return -1
		case !a.Addr().Is4() && b.Addr().Is4():
			return 1
		}
		return 0
	})
	return out
}

// Routers returns the routers the default routes go through now.
func (h *Host) Routers() []netip.Addr {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	return h.conf.defaultRoutersLocked()
}

// NameServers returns the name servers the host was given: the user's if
// any, else DHCP's and those router advertisements named, else those
// taken from /etc/resolv.conf.
func (h *Host) NameServers() []netip.Addr {
	h.conf.mu.Lock()
	defer h.conf.mu.Unlock()
	if d := h.conf.dns[trace.FromCommandLine]; len(d) > 0 {
		return slices.Clone(d)
	}
	if d := slices.Concat(h.conf.dns[trace.FromDHCP], h.conf.dns[trace.FromRA]); len(d) > 0 {
		return d
	}
	return slices.Clone(h.conf.dns[trace.FromResolvConf])
}

// DefaultProbeWait is how long ProbeAddress listens for an answer.
// RFC 5227 section 2.1.1 spreads three probes over 1 to 2 seconds each and
// then waits 2 more, so that two hosts probing at once notice each other;
// a host that holds the address answers a probe at once, and a command a
// person waits for probes for a little under a second instead.
const DefaultProbeWait = 900 * time.Millisecond

// probeNum is how many ARP probes ProbeAddress sends (RFC 5227's
// PROBE_NUM).
const probeNum = 3

func probeConfig(wait time.Duration) gstack.DADConfigurations {
	return gstack.DADConfigurations{DupAddrDetectTransmits: probeNum, RetransmitTimer: wait / probeNum}
}

// DuplicateAddressError says that another host on the link answered an
// ARP probe for an address: it holds it already.
type DuplicateAddressError struct {
	Addr   netip.Addr
	Holder net.HardwareAddr // the Ethernet address that answered
}

func (e *DuplicateAddressError) Error() string {
	return fmt.Sprintf("%v is already in use on the link: %v answered our ARP probe (RFC 5227)", e.Addr, e.Holder)
}

// ProbeAddress asks the link whether an IPv4 address is free before the
// host takes it, as RFC 5227 says a host should: it sends ARP probes
// (who-has addr, from 0.0.0.0) and listens for ProbeWait. It returns nil
// when nobody answered, or a *DuplicateAddressError naming who did.
func (h *Host) ProbeAddress(ctx context.Context, addr netip.Addr) error {
	addr = addr.Unmap()
	if !addr.Is4() {
		return fmt.Errorf("stack: ARP probes are for IPv4 addresses, not %v", addr)
	}
	done := make(chan gstack.DADResult, 1)
	disp, terr := h.s.CheckDuplicateAddress(h.nic, header.IPv4ProtocolNumber, toTCPIP(addr), func(r gstack.DADResult) {
		done <- r
	})
	if terr != nil {
		return fmt.Errorf("stack: probing %v: %s", addr, terr)
	}
	if disp == gstack.DADDisabled {
		return nil
	}
	select {
	case r := <-done:
		switch r := r.(type) {
		case *gstack.DADSucceeded:
			return nil
		case *gstack.DADDupAddrDetected:
			return &DuplicateAddressError{Addr: addr, Holder: net.HardwareAddr(r.HolderLinkAddress)}
		case *gstack.DADError:
			return fmt.Errorf("stack: probing %v: %s", addr, r.Err)
		default:
			return fmt.Errorf("stack: probing %v: aborted", addr)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unconfigured runs fn with the interface able to send from 0.0.0.0
// before it has an IPv4 address, as a DHCP client must (RFC 2131 section
// 4.1). netstack picks a datagram's source only among the interface's own
// addresses, so while fn runs 0.0.0.0 is one, the first; it is removed
// when fn returns. (Broadcasts to 255.255.255.255 are received anyway:
// netstack's IPv4 always accepts them.)
func (h *Host) Unconfigured(fn func() error) error {
	any4 := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.IPv4Any, PrefixLen: 32},
	}
	if terr := h.s.AddProtocolAddress(h.nic, any4, gstack.AddressProperties{PEB: gstack.FirstPrimaryEndpoint}); terr != nil {
		return fmt.Errorf("stack: adding 0.0.0.0 for DHCP: %s", terr)
	}
	defer h.s.RemoveAddress(h.nic, header.IPv4Any)
	return fn()
}

// ndpEvents hears what NDP learns from router advertisements and turns it
// into the host's configuration. Its methods run with netstack's locks
// held and may not call into the stack: they note the change, record it,
// and leave the route table to applyRoutesLater.
type ndpEvents struct{ h *Host }

var _ ipv6.NDPDispatcher = (*ndpEvents)(nil)

// OnDuplicateAddressDetectionResult implements ipv6.NDPDispatcher. DAD is
// off for IPv6 (see NewHost).
func (*ndpEvents) OnDuplicateAddressDetectionResult(tcpip.NICID, tcpip.Address, gstack.DADResult) {}

// OnOffLinkRouteUpdated implements ipv6.NDPDispatcher: a router
// advertised itself as a default router (::/0), or refreshed that.
func (d *ndpEvents) OnOffLinkRouteUpdated(_ tcpip.NICID, dest tcpip.Subnet, router tcpip.Address, _ header.NDPRoutePreference) {
	if dest.Prefix() != 0 {
		return // a more specific route (RFC 4191): not asked for
	}
	r := fromTCPIP(router)
	n := &d.h.conf
	n.mu.Lock()
	known := slices.Contains(n.routers[trace.FromRA], r)
	if !known {
		n.routers[trace.FromRA] = append(n.routers[trace.FromRA], r)
	}
	n.mu.Unlock()
	if !known {
		d.h.record(trace.Config{Source: trace.FromRA, Router: r})
		d.h.applyRoutesLater()
	}
}

// OnOffLinkRouteInvalidated implements ipv6.NDPDispatcher: a router's
// lifetime ran out.
func (d *ndpEvents) OnOffLinkRouteInvalidated(_ tcpip.NICID, dest tcpip.Subnet, router tcpip.Address) {
	if dest.Prefix() != 0 {
		return
	}
	r := fromTCPIP(router)
	n := &d.h.conf
	n.mu.Lock()
	n.routers[trace.FromRA] = slices.DeleteFunc(n.routers[trace.FromRA], func(a netip.Addr) bool { return a == r })
	n.mu.Unlock()
	d.h.record(trace.Config{Source: trace.FromRA, Router: r, Removed: true})
	d.h.applyRoutesLater()
}

// OnOnLinkPrefixDiscovered implements ipv6.NDPDispatcher.
func (d *ndpEvents) OnOnLinkPrefixDiscovered(_ tcpip.NICID, prefix tcpip.Subnet) {
	p := netip.PrefixFrom(fromTCPIP(prefix.ID()), prefix.Prefix())
	n := &d.h.conf
	n.mu.Lock()
	if !slices.Contains(n.onLink, p) {
		n.onLink = append(n.onLink, p)
	}
	n.mu.Unlock()
	d.h.applyRoutesLater()
}

// OnOnLinkPrefixInvalidated implements ipv6.NDPDispatcher.
func (d *ndpEvents) OnOnLinkPrefixInvalidated(_ tcpip.NICID, prefix tcpip.Subnet) {
	p := netip.PrefixFrom(fromTCPIP(prefix.ID()), prefix.Prefix())
	n := &d.h.conf
	n.mu.Lock()
	n.onLink = slices.DeleteFunc(n.onLink, func(q netip.Prefix) bool { return q == p })
	n.mu.Unlock()
	d.h.applyRoutesLater()
}

// OnAutoGenAddress implements ipv6.NDPDispatcher: the interface's
// link-local address as it comes up, or an address SLAAC formed from an
// advertised prefix.
func (d *ndpEvents) OnAutoGenAddress(_ tcpip.NICID, a tcpip.AddressWithPrefix) gstack.AddressDispatcher {
	p := netip.PrefixFrom(fromTCPIP(a.Address), a.PrefixLen)
	n := &d.h.conf
	n.mu.Lock()
	n.addrs = append(n.addrs, p)
	n.mu.Unlock()
	src := trace.FromSLAAC
	if p.Addr().IsLinkLocalUnicast() {
		src = trace.FromLinkLocal
	}
	d.h.record(trace.Config{Source: src, Addr: p})
	d.h.applyRoutesLater()
	return nil
}

// OnAutoGenAddressDeprecated implements ipv6.NDPDispatcher. A deprecated
// address still works; netstack prefers others for new connections.
func (*ndpEvents) OnAutoGenAddressDeprecated(tcpip.NICID, tcpip.AddressWithPrefix) {}

// OnAutoGenAddressInvalidated implements ipv6.NDPDispatcher.
func (d *ndpEvents) OnAutoGenAddressInvalidated(_ tcpip.NICID, a tcpip.AddressWithPrefix) {
	p := netip.PrefixFrom(fromTCPIP(a.Address), a.PrefixLen)
	n := &d.h.conf
	n.mu.Lock()
	n.addrs = slices.DeleteFunc(n.addrs, func(q netip.Prefix) bool { return q == p })
	closed := n.closed
	n.mu.Unlock()
	src := trace.FromSLAAC
	if p.Addr().IsLinkLocalUnicast() {
		src = trace.FromLinkLocal
	}
	if !closed {
		d.h.record(trace.Config{Source: src, Addr: p, Removed: true})
	}
	d.h.applyRoutesLater()
}

// OnRecursiveDNSServerOption implements ipv6.NDPDispatcher: a router
// named name servers (RFC 8106). Routers repeat themselves; only a
// change is recorded.
func (d *ndpEvents) OnRecursiveDNSServerOption(_ tcpip.NICID, addrs []tcpip.Address, lifetime time.Duration) {
	var got []netip.Addr
	if lifetime > 0 {
		for _, a := range addrs {
			got = append(got, fromTCPIP(a))
		}
	}
	n := &d.h.conf
	n.mu.Lock()
	old := n.dns[trace.FromRA]
	changed := !slices.Equal(old, got)
	n.dns[trace.FromRA] = got
	n.mu.Unlock()
	switch {
	case changed && len(got) > 0:
		d.h.record(trace.Config{Source: trace.FromRA, DNS: got})
	case changed:
		d.h.record(trace.Config{Source: trace.FromRA, DNS: old, Removed: true})
	}
}

// OnDNSSearchListOption implements ipv6.NDPDispatcher; search lists are
// not used.
func (*ndpEvents) OnDNSSearchListOption(tcpip.NICID, []string, time.Duration) {}

// OnDHCPv6Configuration implements ipv6.NDPDispatcher; there is no
// DHCPv6 client.
func (*ndpEvents) OnDHCPv6Configuration(tcpip.NICID, ipv6.DHCPv6ConfigurationFromNDPRA) {}

// LinkAddress finds a neighbour's link-layer address as a packet to it
// would (ARP, or NDP for IPv6), waiting for the answer until ctx is done.
// A datagram sent once it is known leaves at once, rather than waiting in
// netstack for the resolution (and being lost if the host closes first).
func (h *Host) LinkAddress(ctx context.Context, addr netip.Addr) (net.HardwareAddr, error) {
	addr = addr.Unmap()
	done := make(chan gstack.LinkResolutionResult, 1)
	terr := h.s.GetLinkAddress(h.nic, toTCPIP(addr), tcpip.Address{}, protoOf(addr), func(r gstack.LinkResolutionResult) {
		done <- r
	})
	if terr != nil {
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return nil, fmt.Errorf("stack: resolving %v: %w", addr, sysErr("neighbour", terr))
		}
	}
	select {
	case r := <-done:
		if r.Err != nil {
			return nil, fmt.Errorf("stack: resolving %v: %w", addr, sysErr("neighbour", r.Err))
		}
		return net.HardwareAddr(r.LinkAddress), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MAC returns the host's link-layer address: the chaddr of its DHCP
// messages, the holder of its addresses in ARP.
func (h *Host) MAC() net.HardwareAddr {
	return net.HardwareAddr(h.link.LinkAddress())
}
