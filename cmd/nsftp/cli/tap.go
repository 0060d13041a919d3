package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"nsftp/stack"
	"nsftp/tap"
)

// openTAP puts a netstack host on the TAP device the flags name: the
// user's kernel on one side, nsftp's own stack on the other.
func openTAP(ctx context.Context, n *netFlags, see *seeing) (*network, error) {
	prefix, _ := netip.ParsePrefix(n.addr)
	var mac net.HardwareAddr
	if n.mac != "" {
		m, err := net.ParseMAC(n.mac)
		if err != nil || len(m) != 6 {
			return nil, usagef("--mac %q is not an Ethernet address like 02:00:00:00:00:01", n.mac)
		}
		mac = m
	}
	if err := tap.CheckAddress(n.tap, prefix, ""); err != nil && !errors.Is(err, tap.ErrNoDevice) {
		return nil, &setupError{fmt.Errorf("--addr %s: %w", prefix.Addr(), err)}
	}
	dev, err := tap.Open(tap.Config{Name: n.tap, MAC: mac, MTU: n.mtu, Offload: !n.noOffload})
	if err != nil {
		return nil, &setupError{err}
	}
	cfg := see.hostConfig("nsftp", true)
	cfg.Link = dev.Endpoint()
	cfg.Addrs = []netip.Prefix{prefix}
	if n.gateway != "" {
		cfg.Gateway, _ = netip.ParseAddr(n.gateway)
	}
	host, err := stack.NewHost(cfg)
	if err != nil {
		dev.Close()
		return nil, &setupError{err}
	}
	see.hostStarted(host)
	return &network{Network: host, host: host, stop: func() error {
		// Closing the host closes its link; Close on the device then only
		// reports how it ended (and puts a user's device back as it was).
		return errors.Join(host.Close(), dev.Close())
	}}, nil
}
