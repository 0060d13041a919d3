package cli

import (
	"context"
	"net/netip"

	"nsftp/ftp"
	"nsftp/stack"
	"nsftp/trace"
)

// netFlags choose the network a command runs on.
type netFlags struct {
	net       string
	tap       string
	addr      string
	gateway   string
	mtu       int
	mac       string
	noOffload bool
	netns     string
}

func (n *netFlags) register(fs *flagSet) {
	fs.group("Network (choose one)")
	fs.stringVar(&n.net, "net", "", "use the operating system's sockets (the only value is `os`)")
	fs.stringVar(&n.tap, "tap", "", "run nsftp's own stack on the TAP device `NAME`")
	fs.stringVar(&n.addr, "addr", "", "nsftp's address on the TAP device, as `CIDR` (e.g. 192.0.2.2/24)")
	fs.stringVar(&n.gateway, "gateway", "", "default gateway `IP` on the TAP network")
	fs.intVar(&n.mtu, "mtu", 0, "largest IP packet `N` nsftp sends on the TAP device (default: the device's MTU)")
	fs.stringVar(&n.mac, "mac", "", "nsftp's Ethernet address `MAC` on the TAP device (default: random, locally administered)")
	fs.boolVar(&n.noOffload, "no-offload", false, "open the TAP device without checksum and segmentation offload: every frame at most MTU bytes")
	fs.stringVar(&n.netns, "tap-netns", "", "find (or create) the TAP device in the network namespace at `PATH`, e.g. /var/run/netns/lab")
}

// validate checks the combination of network flags.
func (n *netFlags) validate() error {
	switch {
	case n.net != "" && n.net != "os":
		return usagef("--net takes only \"os\" (for nsftp's own stack use --tap NAME --addr CIDR)")
	case n.net == "os" && n.tap != "":
		return usagef("--net os and --tap are mutually exclusive")
	case n.net == "" && n.tap == "":
		return usagef("choose a network: --net os (the operating system's sockets) or --tap NAME --addr CIDR (nsftp's own stack on a TAP device); 'nsftp demo' needs neither")
	case n.tap != "" && n.addr == "":
		return usagef("--tap needs --addr CIDR: nsftp's own address on the TAP network")
	case n.tap == "" && (n.addr != "" || n.gateway != "" || n.mtu != 0 || n.mac != "" || n.noOffload || n.netns != ""):
		return usagef("--addr, --gateway, --mtu, --mac, --no-offload and --tap-netns apply only with --tap")
	}
	if n.tap != "" {
		if _, err := netip.ParsePrefix(n.addr); err != nil {
			return usagef("--addr %q is not an address with a prefix length, like 192.0.2.2/24", n.addr)
		}
		if n.gateway != "" {
			if _, err := netip.ParseAddr(n.gateway); err != nil {
				return usagef("--gateway %q is not an IP address", n.gateway)
			}
		}
		if n.mtu < 0 || n.mtu > stack.MaxMTU {
			return usagef("--mtu %d out of range 576-%d", n.mtu, stack.MaxMTU)
		}
	}
	return nil
}

// network is a network opened for one run: the operating system's, or a
// netstack host on a TAP device.
type network struct {
	ftp.Network
	stop func() error
}

func (n *network) Close() error {
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
