package stack

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/packet"
)

// floodGuard sits between a host's link and its stack (HostConfig.
// FloodGuard) and keeps a SYN flood from spoofed addresses of the link's
// own subnets out of the stack.
//
// netstack answers a SYN with a half-open connection, or a SYN cookie once
// the listener's queue of them is full, and either answer needs the
// source's Ethernet address. For a spoofed address it can only hold the
// SYN|ACK for an address resolution that fails: at most 64 at once, each
// failure an ICMP error that kills the half-open connections it held
// (freeing the queue for more), while the SYNs wait in the listening
// socket's queue, which takes segments without payload however long it
// grows. A flood of 75,000 SYNs a second from the 252 spare addresses of a
// /24 grew nsftp serve past 600 MB, and a real client's SYN waited behind
// it in the device's full queue for seconds.
//
// A real host on the link asks for our Ethernet address (ARP, NDP) before
// it sends us anything, and the stack keeps its own in its neighbour table;
// a spoofed one never does. So once the stack shows a flood (half-open
// connections failing, cookies going out, SYNs dropped: more than
// floodRate a second), the guard drops every SYN from an address of the
// link's subnets that has no usable entry in the neighbour table, for a
// map lookup each. The flood is over when fewer than floodRate SYNs a
// second have been dropped or failed for floodOver. SYNs from addresses
// whose resolution failed in the last minute are dropped at any time.
//
// The rest is netstack's: SYN cookies once a listener's queue of half-open
// connections is full, as Linux. (Cookies for every SYN during a flood
// would also spare the half-open connections, but a cookie connection
// whose last ACK is lost is lost with it, with no SYN|ACK to resend: a
// flash crowd's data connections were reset.)
type floodGuard struct {
	nested.Endpoint
	h *Host

	// guarded holds what the flood mode drops by; nil when no flood is
	// on, so that the common case costs an atomic load.
	guarded atomic.Pointer[guardSets]
	// unreachable holds the addresses last seen unreachable; nil when
	// there are none.
	unreachable atomic.Pointer[map[netip.Addr]time.Time]
	dropped     atomic.Uint64
	// over is floodOver, but for tests.
	over time.Duration

	stop chan struct{}
	done sync.WaitGroup
}

// guardSets is what a flood mode drops by.
type guardSets struct {
	onLink []netip.Prefix      // the host's subnets
	known  map[netip.Addr]bool // addresses with a usable neighbour entry
}

var (
	_ gstack.LinkEndpoint      = (*floodGuard)(nil)
	_ gstack.NetworkDispatcher = (*floodGuard)(nil)
)

// The guard looks at the stack every guardRefresh. Unreachable addresses
// are forgotten guardMemory after they were last seen unreachable
// (netstack forgets them sooner and would try them again, holding
// SYN|ACKs for three seconds more each time). A flood is more than
// floodRate SYNs a second dropped, failed or answered with cookies, and
// is over after floodOver without one.
const (
	guardRefresh = 100 * time.Millisecond
	guardMemory  = time.Minute
	floodRate    = 1000
	floodOver    = 10 * time.Second
)

func newFloodGuard(lower gstack.LinkEndpoint, h *Host) *floodGuard {
	g := &floodGuard{h: h, over: floodOver, stop: make(chan struct{})}
	g.Endpoint.Init(lower, g)
	return g
}

// start begins watching the stack, once the NIC exists.
func (g *floodGuard) start() {
	g.done.Add(1)
	go g.watch()
}

// close stops the watching.
func (g *floodGuard) close() {
	close(g.stop)
	g.done.Wait()
}

// watch follows the stack's counters and neighbour tables, and turns the
// flood mode on and off.
func (g *floodGuard) watch() {
	defer g.done.Done()
	t := time.NewTicker(guardRefresh)
	defer t.Stop()
	st := g.h.s.Stats().TCP
	signs := func() uint64 {
		return st.FailedConnectionAttempts.Value() + st.ListenOverflowSynCookieSent.Value() +
			st.ListenOverflowSynDrop.Value() + g.dropped.Load()
	}
	last := signs()
	unreachable := map[netip.Addr]time.Time{}
	var flood bool
	var quietSince time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		s := signs()
		busy := s-last > floodRate*uint64(guardRefresh)/uint64(time.Second)
		last = s
		switch {
		case busy:
			flood, quietSince = true, time.Time{}
		case flood && quietSince.IsZero():
			quietSince = now
		case flood && now.Sub(quietSince) >= g.over:
			flood = false
		}

		known := map[netip.Addr]bool{}
		changed := false
		for _, proto := range []tcpip.NetworkProtocolNumber{ipv4.ProtocolNumber, ipv6.ProtocolNumber} {
			entries, err := g.h.s.Neighbors(g.h.nic, proto)
			if err != nil {
				continue
			}
			for _, e := range entries {
				a := fromTCPIP(e.Addr)
				switch e.State {
				case gstack.Unreachable:
					if _, ok := unreachable[a]; !ok {
						changed = true
					}
					unreachable[a] = now
				case gstack.Reachable, gstack.Stale, gstack.Delay, gstack.Probe, gstack.Static:
					known[a] = true
					if _, ok := unreachable[a]; ok {
						delete(unreachable, a)
						changed = true
					}
				}
			}
		}
		for a, at := range unreachable {
			if now.Sub(at) > guardMemory {
				delete(unreachable, a)
				changed = true
			}
		}
		if changed {
			if len(unreachable) == 0 {
				g.unreachable.Store(nil)
			} else {
				m := make(map[netip.Addr]time.Time, len(unreachable))
				for a, at := range unreachable {
					m[a] = at
				}
				g.unreachable.Store(&m)
			}
		}
		if flood {
			var onLink []netip.Prefix
			for _, p := range g.h.Addresses() {
				onLink = append(onLink, p.Masked())
			}
			g.guarded.Store(&guardSets{onLink: onLink, known: known})
		} else {
			g.guarded.Store(nil)
		}
	}
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (g *floodGuard) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	guarded, unreachable := g.guarded.Load(), g.unreachable.Load()
	if guarded == nil && unreachable == nil {
		g.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	src, ok := synSource(proto, pkt)
	if !ok {
		g.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	why := ""
	if unreachable != nil {
		if _, bad := (*unreachable)[src]; bad {
			why = "SYN from an address that does not answer ARP or NDP"
		}
	}
	if why == "" && guarded != nil && !guarded.known[src] {
		for _, p := range guarded.onLink {
			if p.Contains(src) {
				why = "SYN flood: SYN from an address on the link that never asked for ours"
				break
			}
		}
	}
	if why == "" {
		g.Endpoint.DeliverNetworkPacket(proto, pkt)
		return
	}
	g.dropped.Add(1)
	if tl := g.h.tl; tl != nil {
		link := packet.LinkRaw
		if g.h.link.ARPHardwareType() == header.ARPHardwareEther {
			link = packet.LinkEthernet
		}
		buf := headPool.Get().(*[packet.DatagramBytes]byte)
		n := copyHead(pkt, buf[:packet.HeaderBytes])
		tl.dropped(buf[:n], pkt.Size(), link, why)
		headPool.Put(buf)
	}
}

// synSource returns the source address of a TCP SYN (without ACK) the
// packet holds, if it holds one. The link header has been consumed; the
// network header has not, unless GRO parsed it, so the packet is read from
// its start, link header and all.
func synSource(proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) (netip.Addr, bool) {
	var buf [header.EthernetMinimumSize + header.IPv6MinimumSize + header.TCPMinimumSize]byte
	b := buf[:copyHead(pkt, buf[:])]
	if hl := len(pkt.LinkHeader().Slice()); hl <= len(b) {
		b = b[hl:]
	} else {
		return netip.Addr{}, false
	}
	var src tcpip.Address
	switch proto {
	case header.IPv4ProtocolNumber:
		if len(b) < header.IPv4MinimumSize {
			return netip.Addr{}, false
		}
		ip := header.IPv4(b)
		hl := int(ip.HeaderLength())
		if ip.TransportProtocol() != header.TCPProtocolNumber || ip.FragmentOffset() != 0 || len(b) < hl+header.TCPMinimumSize {
			return netip.Addr{}, false
		}
		src, b = ip.SourceAddress(), b[hl:]
	case header.IPv6ProtocolNumber:
		if len(b) < header.IPv6MinimumSize+header.TCPMinimumSize {
			return netip.Addr{}, false
		}
		ip := header.IPv6(b)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return netip.Addr{}, false
		}
		src, b = ip.SourceAddress(), b[header.IPv6MinimumSize:]
	default:
		return netip.Addr{}, false
	}
	if header.TCP(b).Flags()&(header.TCPFlagSyn|header.TCPFlagAck) != header.TCPFlagSyn {
		return netip.Addr{}, false
	}
	return fromTCPIP(src), true
}

// FloodGuardState is what a host's flood guard (HostConfig.FloodGuard) is
// doing.
type FloodGuardState struct {
	Flood       bool   // a flood is on: the SYNs of unknown addresses on the link are dropped
	Unreachable int    // addresses whose SYNs are dropped as unreachable
	Dropped     uint64 // SYNs dropped so far
}

// FloodGuard returns what the host's flood guard is doing, and false if it
// has none.
func (h *Host) FloodGuard() (FloodGuardState, bool) {
	g := h.guard
	if g == nil {
		return FloodGuardState{}, false
	}
	st := FloodGuardState{Dropped: g.dropped.Load(), Flood: g.guarded.Load() != nil}
	if m := g.unreachable.Load(); m != nil {
		st.Unreachable = len(*m)
	}
	return st, true
}
