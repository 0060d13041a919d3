package stack

import (
	"errors"
	"net/netip"
	"time"
)

// Addresses of the two hosts of a Pair, from the documentation ranges
// (RFC 5737, RFC 3849) so they can never collide with a real network.
var (
	ClientAddr4 = netip.MustParsePrefix("192.0.2.1/24")
	ServerAddr4 = netip.MustParsePrefix("192.0.2.2/24")
	ClientAddr6 = netip.MustParsePrefix("2001:db8::1/64")
	ServerAddr6 = netip.MustParsePrefix("2001:db8::2/64")
)

// PairConfig describes two hosts joined by one virtual wire. Link and
// Addrs of each HostConfig are filled in when empty; the names default to
// "client" and "server". On a wire with an impairment (a Path in either
// direction, even a delay alone) MinRTO defaults to WireMinRTO, and the
// hosts keep the RACK that Linux uses. On a wire with none, nothing can
// be lost: the hosts run without RACK (see HostConfig.NoRACK), which would
// cost a third of the wire's speed at MTU 1500 finding nothing, and keep
// netstack's 200ms minimum RTO, as a timeout there can only be spurious
// (a busy machine not running a host for 10ms would otherwise have a
// sender resend its whole window).
type PairConfig struct {
	Wire           WireConfig
	Client, Server HostConfig
}

// WireMinRTO is the minimum retransmission timeout of a Pair's hosts on
// an impaired wire.
// The wire's round trip is microseconds, so netstack's (and Linux's)
// 200ms floor is orders of magnitude too long for it - Linux lets such
// links lower it per route (rto_min). The same timer paces zero-window
// probes.
const WireMinRTO = 10 * time.Millisecond

// Pair is two hosts on one virtual wire: the hermetic network nsftp's
// tests and demo run on.
type Pair struct {
	Wire           *Wire
	Client, Server *Host
}

// NewPair builds the wire and both hosts.
func NewPair(cfg PairConfig) (*Pair, error) {
	w, err := NewWire(cfg.Wire)
	if err != nil {
		return nil, err
	}
	p := &Pair{Wire: w}
	p.Client, err = p.newHost(cfg.Client, "client", ClientAddr4, ClientAddr6)
	if err != nil {
		w.Close()
		return nil, err
	}
	p.Server, err = p.newHost(cfg.Server, "server", ServerAddr4, ServerAddr6)
	if err != nil {
		p.Client.Close()
		w.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pair) newHost(cfg HostConfig, name string, addrs ...netip.Prefix) (*Host, error) {
	if cfg.Name == "" {
		cfg.Name = name
	}
	if !p.Wire.cfg.impaired() {
		cfg.NoRACK = true
	} else if cfg.MinRTO == 0 {
		cfg.MinRTO = WireMinRTO
	}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = addrs
	}
	if cfg.Link == nil {
		port, err := p.Wire.NewPort()
		if err != nil {
			return nil, err
		}
		cfg.Link = port
	}
	return NewHost(cfg)
}

// Close closes both hosts, then the wire, and returns the first error.
func (p *Pair) Close() error {
	return errors.Join(p.Client.Close(), p.Server.Close(), p.Wire.Close())
}
