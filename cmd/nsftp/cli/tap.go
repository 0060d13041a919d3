package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"

	"nsftp/stack"
	"nsftp/tap"
	"nsftp/trace"
)

// openTAP puts a netstack host on the TAP device the flags name: the
// user's kernel on one side, nsftp's own stack on the other.
func openTAP(ctx context.Context, n *netFlags, see *seeing, role trace.Role) (*network, error) {
	prefix, _ := netip.ParsePrefix(n.addr)
	var mac net.HardwareAddr
	if n.mac != "" {
		m, err := net.ParseMAC(n.mac)
		if err != nil || len(m) != 6 {
			return nil, usagef("--mac %q is not an Ethernet address like 02:00:00:00:00:01", n.mac)
		}
		mac = m
	}
	if n.netns != "" {
		// Say which flag is wrong: tap would report the missing namespace
		// from inside its address check.
		if _, err := os.Stat(n.netns); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, &setupError{fmt.Errorf("--tap-netns %s: %w", n.netns, err)}
		}
	}
	if err := tap.CheckAddress(n.tap, prefix, n.netns); errors.Is(err, tap.ErrAddressInUse) {
		return nil, &setupError{fmt.Errorf("--addr %s: %w", prefix.Addr(), err)}
	} else if err != nil && !errors.Is(err, tap.ErrNoDevice) {
		return nil, &setupError{err}
	}
	// Offload on by default: the kernel checksums and segments for us and
	// 64 KiB segments cross the device in one read or write (3x the
	// throughput at MTU 1500); traces then show those large segments, as
	// tcpdump does on a NIC with TSO and GRO. --no-offload shows every
	// MTU-sized frame.
	dev, err := tap.Open(tap.Config{Name: n.tap, MAC: mac, MTU: n.mtu, NetNS: n.netns, Offload: !n.noOffload})
	if err != nil {
		return nil, &setupError{err}
	}
	cfg := see.hostConfig(string(role), role, true)
	if see.step != nil {
		// The kernel's frames can be stopped at only as they arrive.
		see.step.frameIn = true
	}
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
	return &network{Network: host, stop: func() error {
		// Closing the host closes its link; Close on the device then only
		// reports how it ended (and puts a user's device back as it was).
		return errors.Join(host.Close(), dev.Close())
	}}, nil
}
