package cli

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// netFlags choose the network a command runs on.
type netFlags struct {
	net       string
	tap       string
	addr      string
	gateway   string
	dns       string
	dhcpWait  time.Duration
	mtu       int
	mac       string
	noOffload bool
	netns     string
	// peerKernel traces the kernel at the far end of a TAP run's
	// connections.
	peerKernel bool
	// socketMemory bounds the TCP buffers of nsftp's own stack
	// (stack.HostConfig.SocketMemory); serve sets it from --buffer-memory.
	socketMemory int
	// floodGuard drops SYNs from addresses that do not answer ARP or NDP
	// (stack.HostConfig.FloodGuard): serve sets it.
	floodGuard bool
}

func (n *netFlags) register(fs *flagSet) {
	fs.group("Network (choose one)")
	fs.stringVar(&n.net, "net", "", "use the operating system's sockets (the only value is `os`)")
	fs.stringVar(&n.tap, "tap", "", "run nsftp's own stack on the TAP device `NAME`")
	fs.stringVar(&n.addr, "addr", "", "nsftp's address on the TAP device, as `CIDR` (192.0.2.2/24, 2001:db8::2/64, or both with a comma); default: from DHCP and router advertisements")
	fs.stringVar(&n.gateway, "gateway", "", "default gateway `IP` on the TAP network (instead of DHCP's router)")
	fs.stringVar(&n.dns, "dns", "", "name server `IP` to look host names up with (instead of DHCP's; a comma between several)")
	fs.durationVar(&n.dhcpWait, "dhcp-timeout", netconf.DefaultDHCPWait, "longest wait for a DHCP lease, without --addr")
	fs.intVar(&n.mtu, "mtu", 0, "largest IP packet `N` nsftp sends on the TAP device (default: the device's MTU)")
	fs.stringVar(&n.mac, "mac", "", "nsftp's Ethernet address `MAC` on the TAP device (default: random, locally administered)")
	fs.boolVar(&n.noOffload, "no-offload", false, "open the TAP device without checksum and segmentation offload: every frame at most MTU bytes")
	fs.stringVar(&n.netns, "tap-netns", "", "find (or create) the TAP device in the network namespace at `PATH`, e.g. /var/run/netns/lab")
	fs.boolVar(&n.peerKernel, "peer-kernel", false, "with --tap, when the peer is this machine's kernel (a server or client across the TAP device): trace its sockets of the run's connections too, states with the kernel's stacks, cwnd, retransmissions, as host \"peer (Linux)\" (root)")
}

// validate checks the combination of network flags.
func (n *netFlags) validate() error {
	switch {
	case n.net != "" && n.net != "os":
		return usagef("--net takes only \"os\" (for nsftp's own stack use --tap NAME)")
	case n.net == "os" && n.tap != "":
		return usagef("--net os and --tap are mutually exclusive")
	case n.net == "" && n.tap == "":
		return usagef("choose a network: --net os (the operating system's sockets) or --tap NAME (nsftp's own stack on a TAP device); 'nsftp demo' needs neither")
	case n.tap == "" && (n.addr != "" || n.gateway != "" || n.dns != "" || n.mtu != 0 || n.mac != "" || n.noOffload || n.netns != "" || n.peerKernel):
		return usagef("--addr, --gateway, --dns, --mtu, --mac, --no-offload, --tap-netns and --peer-kernel apply only with --tap")
	}
	if n.tap != "" {
		if _, err := n.prefixes(); err != nil {
			return err
		}
		if n.gateway != "" {
			if _, err := netip.ParseAddr(n.gateway); err != nil {
				return usagef("--gateway %q is not an IP address", n.gateway)
			}
		}
		if _, err := n.nameServers(); err != nil {
			return err
		}
		if n.mtu < 0 || n.mtu > stack.MaxMTU {
			return usagef("--mtu %d out of range 576-%d", n.mtu, stack.MaxMTU)
		}
		if n.dhcpWait <= 0 {
			return usagef("--dhcp-timeout must be positive")
		}
	}
	return nil
}

// kind is the kind of network the flags choose.
func (n *netFlags) kind() runNet {
	if n.tap != "" {
		return netTAP
	}
	return netOS
}

// prefixes are the --addr addresses: none asks DHCP and router
// advertisements for them.
func (n *netFlags) prefixes() ([]netip.Prefix, error) {
	if n.addr == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(n.addr, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--addr %q is not an address with a prefix length, like 192.0.2.2/24 or 2001:db8::2/64", f)
		}
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	return out, nil
}

// nameServers are the --dns addresses.
func (n *netFlags) nameServers() ([]netip.Addr, error) {
	if n.dns == "" {
		return nil, nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(n.dns, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--dns %q is not an IP address", f)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// network is a network opened for one run: the operating system's, or a
// netstack host on a TAP device.
type network struct {
	ftp.Network
	// leave gives back what the run took from the network (a DHCP
	// lease), while the run is still traced; nil when there is nothing.
	leave func(context.Context) error
	stop  func() error
}

// Leave gives back what the run took from the network: a DHCP lease. It
// is part of the run (the trace shows the release); errors are not the
// run's failure (the server takes the lease back when it expires), so it
// returns none. It is safe to call more than once.
func (n *network) Leave(ctx context.Context) {
	if n.leave != nil {
		n.leave(ctx)
		n.leave = nil
	}
}

// Close leaves the network if that was not done, and closes it.
func (n *network) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n.Leave(ctx)
	if n.stop == nil {
		return nil
	}
	return n.stop()
}

// open builds the network the flags ask for, watched as see says. The
// role ("client" or "server") names the host in traces, as the FTP layer
// names its side.
func (n *netFlags) open(ctx context.Context, see *seeing, role trace.Role) (*network, error) {
	if n.net == "os" {
		return openOS(see, role)
	}
	return openTAP(ctx, n, see, role)
}
