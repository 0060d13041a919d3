package stack

import (
	"errors"
	"fmt"
	"net/netip"
)

// NetworkConfig describes any number of hosts on one virtual wire, each
// filled in as a Pair's are (PairConfig): host N (from 1) is named
// "hostN" and has 192.0.2.N/24 and 2001:db8::N/64 unless its config says
// otherwise, so hosts 1 and 2 have a Pair's client and server addresses.
//
// The wire and every host run on one clock: Clock, or one at real speed
// that the Network makes (see PairConfig).
type NetworkConfig struct {
	Wire  WireConfig
	Hosts []HostConfig
	Clock *Clock
}

// Network is hosts on one virtual wire: a Pair with as many hosts as a
// test needs (a client, a server and a resolver; a crowd).
type Network struct {
	Wire  *Wire
	Hosts []*Host
	// Clock is the time of the wire and every host.
	Clock    *Clock
	ownClock bool
}

// maxNetworkHosts is how many hosts a Network's default addresses number:
// 192.0.2.1 to 192.0.2.254.
const maxNetworkHosts = 254

// NewNetwork builds the wire and its hosts.
func NewNetwork(cfg NetworkConfig) (*Network, error) {
	if len(cfg.Hosts) > maxNetworkHosts {
		return nil, fmt.Errorf("stack: a network of %d hosts: at most %d fit on one wire", len(cfg.Hosts), maxNetworkHosts)
	}
	hosts := make([]*HostConfig, len(cfg.Hosts))
	for i := range cfg.Hosts {
		hosts[i] = &cfg.Hosts[i]
	}
	clock, made, err := oneClock(cfg.Clock, &cfg.Wire, hosts...)
	if err != nil {
		return nil, err
	}
	w, err := NewWire(cfg.Wire)
	if err != nil {
		if made {
			clock.Close()
		}
		return nil, err
	}
	n := &Network{Wire: w, Clock: clock, ownClock: made}
	for i, hc := range cfg.Hosts {
		v4 := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		v6 := netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))
		h, err := newWireHost(w, hc, fmt.Sprintf("host%d", i+1), []netip.Prefix{netip.PrefixFrom(v4, 24), netip.PrefixFrom(v6, 64)})
		if err != nil {
			n.Close()
			return nil, err
		}
		n.Hosts = append(n.Hosts, h)
	}
	return n, nil
}

// Close closes every host, then the wire, and returns the errors. A
// clock the Network made is closed too; one given to it is not.
func (n *Network) Close() error {
	var errs []error
	for _, h := range n.Hosts {
		errs = append(errs, h.Close())
	}
	err := errors.Join(append(errs, n.Wire.Close())...)
	if n.ownClock {
		n.Clock.Close()
	}
	return err
}
