package netconf_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/tap"
	"github.com/nsftp/nsftp/trace"
)

// Example puts nsftp's own stack on a TAP device bridged to a network
// with DHCP and a name server, lets the network configure it, and
// connects to an FTP server by name, every packet of it on the stack:
//
//	ip tuntap add dev tap0 mode tap user $USER
//	ip link set tap0 master virbr0 up
func Example() {
	ctx := context.Background()
	dev, err := tap.Open(tap.Config{Name: "tap0", Offload: true})
	if err != nil {
		log.Fatal(err)
	}
	// No address: DHCP gives IPv4's, router advertisements IPv6's.
	host, err := stack.NewHost(stack.HostConfig{Name: "nsftp", Link: dev.Endpoint(), Autoconf: true})
	if err != nil {
		log.Fatal(err) // NewHost has closed the device
	}
	defer host.Close() // closes the device too

	lease, err := netconf.Acquire(ctx, host, netconf.DHCPConfig{Device: "tap0", Hostname: "nsftp"})
	if err != nil {
		log.Fatal(err) // one sentence: how long it waited, and what to do
	}
	defer lease.Release(ctx)
	fmt.Println("leased", lease.Addr, "from", lease.Server, "for", lease.Duration)

	n := &netconf.Network{Host: host, Resolver: netconf.NewResolver(host, "tap0"), Device: "tap0"}
	c, err := n.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", "ftp.example.org:21")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("connected to", c.RemoteAddr())
}
