package stack

import (
	"errors"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// The addresses a Pair gives its hosts when their configs name none, from
// the documentation ranges (RFC 5737, RFC 3849) so they can never collide
// with a real network: on 192.0.2.0/24 and 2001:db8::/64.
const (
	ClientIPv4 = "192.0.2.1"
	ServerIPv4 = "192.0.2.2"
	ClientIPv6 = "2001:db8::1"
	ServerIPv6 = "2001:db8::2"
)

// pairPrefixes are a Pair host's default addresses with their prefixes.
func pairPrefixes(v4, v6 string) []netip.Prefix {
	return []netip.Prefix{
		netip.PrefixFrom(netip.MustParseAddr(v4), 24),
		netip.PrefixFrom(netip.MustParseAddr(v6), 64),
	}
}

// PairConfig describes two hosts joined by one virtual wire. Link and
// Addrs of each HostConfig are filled in when empty; the names default to
// "client" and "server". On a wire with an impairment (a Path in either
// direction, even a delay alone) MinRTO defaults to WireMinRTO, MaxRTO to
// at least WireMaxRTO, and the hosts keep the RACK that Linux uses. On a
// wire with none, nothing can be lost: the hosts run without RACK (see
// HostConfig.NoRACK), which would cost a third of the wire's speed at MTU
// 1500 finding nothing, and keep netstack's 200ms minimum RTO, as a
// timeout there can only be spurious (a busy machine not running a host
// for 10ms would otherwise have a sender resend its whole window).
//
// The wire and both hosts run on one clock: Clock, or one at real speed
// that the Pair makes. A jumping clock (ClockConfig.Jump) makes a test's
// timeouts, outages and TIME-WAIT pass in a moment of real time.
type PairConfig struct {
	Wire           WireConfig
	Client, Server HostConfig
	// Clock is the network's time. Wire.Clock and the hosts' Clock, if
	// set, must be the same clock.
	Clock *Clock
}

// WireMinRTO is the minimum retransmission timeout of a Pair's hosts on
// an impaired wire.
// The wire's round trip is microseconds, so netstack's (and Linux's)
// 200ms floor is orders of magnitude too long for it - Linux lets such
// links lower it per route (rto_min). The same timer paces zero-window
// probes.
const WireMinRTO = 10 * time.Millisecond

// WireMaxRTO is the least cap on the retransmission timeout of a Pair's
// hosts on an impaired wire; a path slow enough to need more gets twice
// its longest round trip (its delays and jitter, and its full queues
// drained at its rate, both ways), up to netstack's 120 s.
//
// Without a cap the timeout doubles at every expiry up to 120 s, and on a
// very lossy wire it gets there: when the ACK of a resent segment is
// lost, the receiver's ACK of the duplicate echoes the timestamp of an
// older segment (RFC 7323 4.3), the sender takes the whole timeout as a
// round trip (4.1), and each timeout is longer than the last until the
// application gives up. Linux offers the same cap per socket and
// system-wide (TCP_RTO_MAX_MS, net.ipv4.tcp_rto_max_ms). docs/notes.md
// has what was measured, and a netstack bug a capped host still meets.
const WireMaxRTO = time.Second

// maxRTO is the cap on the hosts' retransmission timeout (WireMaxRTO).
func (c WireConfig) maxRTO() time.Duration {
	frame := c.MTU
	if c.Offload == OffloadGSO {
		frame = gsoMaxSize
	}
	frame += header.EthernetMinimumSize
	rtt := c.pathOf(ClientPort).longestDelay(frame) + c.pathOf(ServerPort).longestDelay(frame)
	return min(max(WireMaxRTO, 2*rtt), tcp.MaxRTO)
}

// Pair is two hosts on one virtual wire: the hermetic network nsftp's
// tests and demo run on.
type Pair struct {
	Wire           *Wire
	Client, Server *Host
	// Clock is the time of the wire and both hosts: hold it, and the
	// whole network stands still.
	Clock    *Clock
	ownClock bool
}

// NewPair builds the wire and both hosts.
func NewPair(cfg PairConfig) (*Pair, error) {
	p := &Pair{}
	var err error
	p.Clock, p.ownClock, err = oneClock(cfg.Clock, &cfg.Wire, &cfg.Client, &cfg.Server)
	if err != nil {
		return nil, err
	}
	w, err := NewWire(cfg.Wire)
	if err != nil {
		p.closeClock()
		return nil, err
	}
	p.Wire = w
	p.Client, err = newWireHost(w, cfg.Client, "client", pairPrefixes(ClientIPv4, ClientIPv6))
	if err != nil {
		w.Close()
		p.closeClock()
		return nil, err
	}
	p.Server, err = newWireHost(w, cfg.Server, "server", pairPrefixes(ServerIPv4, ServerIPv6))
	if err != nil {
		p.Client.Close()
		w.Close()
		p.closeClock()
		return nil, err
	}
	return p, nil
}

func (p *Pair) closeClock() {
	if p.ownClock {
		p.Clock.Close()
	}
}

// oneClock gives a wire and its hosts one clock: the one given, or the
// one the wire's or a host's config names (all that name one must name
// the same), or a new one at real speed, which the caller owns (made).
func oneClock(given *Clock, wire *WireConfig, hosts ...*HostConfig) (c *Clock, made bool, err error) {
	c = given
	names := []*Clock{wire.Clock}
	for _, h := range hosts {
		names = append(names, h.Clock)
	}
	for _, n := range names {
		switch {
		case n == nil:
		case c == nil:
			c = n
		case n != c:
			return nil, false, errors.New("stack: a wire and its hosts run on one clock")
		}
	}
	if c == nil {
		c, made = newWallClock(), true
	}
	wire.Clock = c
	for _, h := range hosts {
		h.Clock = c
	}
	return c, made, nil
}

// newWireHost builds a host on a new port of w, with the name and
// addresses given unless cfg has its own, and the RTO bounds and loss
// recovery the wire calls for (PairConfig).
func newWireHost(w *Wire, cfg HostConfig, name string, addrs []netip.Prefix) (*Host, error) {
	if cfg.Name == "" {
		cfg.Name = name
	}
	if !w.cfg.impaired() {
		cfg.NoRACK = true
	} else {
		if cfg.MinRTO == 0 {
			cfg.MinRTO = WireMinRTO
		}
		if cfg.MaxRTO == 0 {
			cfg.MaxRTO = w.cfg.maxRTO()
		}
	}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = addrs
	}
	if cfg.Link == nil {
		port, err := w.NewPort()
		if err != nil {
			return nil, err
		}
		cfg.Link = port
	}
	return NewHost(cfg)
}

// Close closes both hosts, then the wire, and returns the first error.
// A clock the Pair made is closed too; one given to it is not.
func (p *Pair) Close() error {
	err := errors.Join(p.Client.Close(), p.Server.Close(), p.Wire.Close())
	p.closeClock()
	return err
}
