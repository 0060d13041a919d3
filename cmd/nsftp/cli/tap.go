package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/tap"
	"github.com/nsftp/nsftp/trace"
)

var (
	_ ftp.Network     = (*netconf.Network)(nil)
	_ ftp.LocalDialer = (*netconf.Network)(nil)
)

// openTAP puts a netstack host on the TAP device the flags name: the
// user's kernel on one side, nsftp's own stack on the other. With --addr
// the host has the addresses given; without, it asks the network, as a
// host's own network configuration does: an IPv4 lease by DHCP, IPv6
// addresses and routers by router advertisement.
func openTAP(ctx context.Context, n *netFlags, see *seeing, role trace.Role) (*network, error) {
	prefixes, _ := n.prefixes()
	dns, _ := n.nameServers()
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
	for _, prefix := range prefixes {
		if err := tap.CheckAddress(n.tap, prefix, n.netns); errors.Is(err, tap.ErrAddressInUse) {
			return nil, &setupError{fmt.Errorf("--addr %s: %w", prefix.Addr(), err)}
		} else if err != nil && !errors.Is(err, tap.ErrNoDevice) {
			return nil, &setupError{err}
		}
	}
	// Offload on by default: the kernel checksums and segments for us and
	// 64 KiB segments cross the device in one read or write (3x the
	// throughput at MTU 1500); traces then show those large segments, as
	// tcpdump does on a NIC with TSO and GRO. --no-offload shows every
	// MTU-sized frame.
	//
	// A device the user made is put back as it was when nsftp ends: by
	// Close, and by a guard process if nsftp dies without running it.
	guard := startGuard(see.e)
	closeGuard := func() error {
		if guard == nil {
			return nil
		}
		return guard.Close()
	}
	dev, err := tap.Open(tap.Config{Name: n.tap, MAC: mac, MTU: n.mtu, NetNS: n.netns, Offload: !n.noOffload,
		Guard: guard})
	if err != nil {
		return nil, &setupError{errors.Join(err, closeGuard())}
	}
	if n.peerKernel {
		peerRole := trace.Server
		if role == trace.Server {
			peerRole = trace.Client
		}
		if err := see.startPeer(peerRole); err != nil {
			dev.Close()
			return nil, err
		}
	}
	cfg := see.hostConfig(string(role), role, true)
	if see.step != nil {
		// The kernel's frames can be stopped at only as they arrive.
		see.step.frameIn = true
	}
	cfg.Link = dev.Endpoint()
	cfg.SocketMemory = n.socketMemory
	cfg.FloodGuard = n.floodGuard
	cfg.Addrs = prefixes
	cfg.Autoconf = len(prefixes) == 0
	host, err := stack.NewHost(cfg)
	if err != nil {
		return nil, &setupError{errors.Join(err, dev.Close(), closeGuard())}
	}
	see.hostStarted(host)
	nw := &network{stop: func() error {
		// Closing the host closes its link; Close on the device then only
		// reports how it ended (and puts a user's device back as it was).
		return errors.Join(host.Close(), dev.Close(), closeGuard())
	}}
	fail := func(err error) (*network, error) {
		nw.Close()
		return nil, err
	}
	// What the user said goes first: it takes precedence over what the
	// network says.
	if n.gateway != "" {
		gw, _ := netip.ParseAddr(n.gateway)
		if err := host.Configure(stack.Change{Source: trace.FromCommandLine, Router: gw.Unmap()}); err != nil {
			return fail(&setupError{err})
		}
	}
	if len(dns) > 0 {
		if err := host.Configure(stack.Change{Source: trace.FromCommandLine, DNS: dns}); err != nil {
			return fail(&setupError{err})
		}
	}
	dhcpWait, serverWait := n.dhcpWait, time.Duration(0)
	if see.step != nil {
		// The person at the prompt takes as long as they need.
		dhcpWait, serverWait = stepTimeout, stepTimeout
	}
	if cfg.Autoconf {
		up := time.Now()
		lease, err := netconf.Acquire(ctx, host, netconf.DHCPConfig{Device: n.tap, Wait: dhcpWait, Hostname: "nsftp"})
		switch {
		case err == nil:
			nw.leave = lease.Release
		case errors.Is(err, netconf.ErrNoLease) && awaitGlobal6(ctx, host, up.Add(autoconfWait(true))):
			// An IPv6-only network: router advertisements gave an
			// address, DHCP nothing.
		default:
			return fail(err)
		}
	}
	r := netconf.NewResolver(host, n.tap)
	r.ServerWait = serverWait
	nw.Network = &netconf.Network{Host: host, Resolver: r, Device: n.tap, AutoconfWait: autoconfWait(cfg.Autoconf)}
	return nw, nil
}

// autoconfWait is how long a dial waits for IPv6 autoconfiguration to
// give the host an address of the family it needs: the router
// solicitations (3, a second apart) and an answer.
func autoconfWait(on bool) time.Duration {
	if !on {
		return 0
	}
	return 4 * time.Second
}

// awaitGlobal6 waits, until deadline, for the host to have an IPv6
// address beyond its link-local one, and reports whether it has.
func awaitGlobal6(ctx context.Context, h *stack.Host, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !hasGlobal6(h) {
		select {
		case <-h.Changed():
		case <-t.C:
			return hasGlobal6(h)
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// hasGlobal6 reports whether the host has an IPv6 address beyond its
// link-local one.
func hasGlobal6(h *stack.Host) bool {
	for _, p := range h.Addresses() {
		if p.Addr().Is6() && !p.Addr().IsLinkLocalUnicast() {
			return true
		}
	}
	return false
}
