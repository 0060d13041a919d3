package tap_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/tap"
	"github.com/nsftp/nsftp/trace"
)

// Example attaches nsftp's own TCP/IP stack to a TAP device the user made
// with
//
//	ip tuntap add dev tap0 mode tap user $USER
//	ip addr add 192.0.2.1/24 dev tap0
//	ip link set tap0 up
//
// and connects to the kernel across it.
func Example() {
	addr := netip.MustParsePrefix("192.0.2.2/24")
	// The kernel has 192.0.2.1; nsftp needs an address of its own.
	if err := tap.CheckAddress("tap0", addr, ""); err != nil {
		log.Fatal(err)
	}
	dev, err := tap.Open(tap.Config{Name: "tap0", Offload: true})
	switch {
	case errors.Is(err, tap.ErrPermission):
		log.Fatalf("%v", err) // the message says how to run without root
	case err != nil:
		log.Fatal(err)
	}
	host, err := stack.NewHost(stack.HostConfig{Name: "nsftp", Link: dev.Endpoint(), Addrs: []netip.Prefix{addr}})
	if err != nil {
		log.Fatal(err) // NewHost has closed the device
	}
	defer host.Close() // closes the device too

	c, err := host.DialContext(trace.WithLabel(context.Background(), "control"), "tcp", "192.0.2.1:21")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("connected from", c.LocalAddr())
}
