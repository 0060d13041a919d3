package tap_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/tap"
	"github.com/nsftp/nsftp/trace"
)

var (
	kernelAddr = netip.MustParsePrefix("192.0.2.1/24")
	nsftpAddr  = netip.MustParsePrefix("192.0.2.2/24")
)

// rig is a test namespace with a user-made tap0 carrying the kernel's
// 192.0.2.1/24, and nsftp's host at 192.0.2.2/24 on the other side.
type rig struct {
	ns   *netns
	dev  *tap.Device
	host *stack.Host

	// The device as the user made it, before Open.
	details, offloads string
}

func newRig(t *testing.T, mtu int, offload bool) *rig {
	return newRigConfig(t, mtu, tap.Config{Offload: offload})
}

func newRigConfig(t *testing.T, mtu int, cfg tap.Config) *rig {
	t.Helper()
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), mtu)
	details, offloads := ns.linkDetails("tap0"), ns.offloads("tap0")
	cfg.Name, cfg.NetNS = "tap0", ns.path
	dev, err := tap.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Created() {
		t.Error("Created() = true for a device the user made")
	}
	if got := dev.MTU(); got != mtu {
		t.Errorf("MTU() = %d, want the device's %d", got, mtu)
	}
	host, err := stack.NewHost(stack.HostConfig{Name: "nsftp", Link: dev.Endpoint(), Addrs: []netip.Prefix{nsftpAddr}})
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	return &rig{ns: ns, dev: dev, host: host, details: details, offloads: offloads}
}

// TestTransfer moves data both ways on connections opened from both sides,
// at a 1500-byte and a 65,000-byte MTU, on both paths, and checks every
// byte by SHA-256.
func TestTransfer(t *testing.T) {
	needRoot(t)
	const big, small = 64 << 20, 16 << 20
	for _, tc := range []struct {
		mtu int
		cfg tap.Config
	}{
		{1500, tap.Config{}},
		{1500, tap.Config{DisableGRO: true}},
		{1500, tap.Config{Offload: true}},
		{65000, tap.Config{}},
		{65000, tap.Config{Offload: true}},
	} {
		mtu := tc.mtu
		path := "plain"
		switch {
		case tc.cfg.Offload:
			path = "offload"
		case tc.cfg.DisableGRO:
			path = "plain-nogro"
		}
		t.Run(fmt.Sprintf("mtu=%d/%s", mtu, path), func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			r := newRigConfig(t, mtu, tc.cfg)
			ctx := testContext(t, 2*time.Minute)

			// nsftp dials the kernel: a server in the namespace.
			srv := r.ns.startHelper("serve", "ADDR=192.0.2.1:9000")
			if got := srv.line(t, 10*time.Second); got != "ready" {
				t.Fatalf("server said %q", got)
			}
			c, err := r.host.DialContext(trace.WithLabel(ctx, "data"), "tcp", "192.0.2.1:9000")
			if err != nil {
				t.Fatalf("nsftp dialing the kernel: %v", err)
			}
			sum, _, err := getStream(c, big, true)
			c.Close()
			if err != nil {
				t.Fatalf("download into nsftp: %v", err)
			}
			if want := streamSHA(big); sum != want {
				t.Errorf("download into nsftp: sha256 %s, want %s", sum, want)
			}
			c, err = r.host.DialContext(trace.WithLabel(ctx, "data"), "tcp", "192.0.2.1:9000")
			if err != nil {
				t.Fatalf("nsftp dialing the kernel: %v", err)
			}
			sum, err = putStream(c, big)
			c.Close()
			if err != nil {
				t.Fatalf("upload from nsftp: %v", err)
			}
			if want := streamSHA(big); sum != want {
				t.Errorf("upload from nsftp: kernel got sha256 %s, want %s", sum, want)
			}

			// The kernel dials nsftp.
			l, err := r.host.Listen(trace.WithLabel(ctx, "control"), "tcp", "192.0.2.2:2121")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go serveStream(c)
				}
			}()
			out := r.ns.runHelper(time.Minute, "client", "ADDR=192.0.2.2:2121",
				fmt.Sprintf("OPS=put:%d,get:%d", small, small))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			want := streamSHA(small)
			if len(lines) != 2 || lines[0] != "put "+want || !strings.HasPrefix(lines[1], "get "+want+" ") {
				t.Errorf("kernel client: got\n%s\nwant put and get of %s", out, want)
			}
			l.Close()

			st := r.dev.Stats()
			if st.RxBytes < big+small || st.TxBytes < big+small {
				t.Errorf("stats %+v: too little traffic", st)
			}
			if err := r.host.Close(); err != nil {
				t.Errorf("closing host: %v", err)
			}
			if err := r.dev.Close(); err != nil {
				t.Errorf("closing device again: %v", err)
			}
			if err := r.dev.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}

			// The user's device is as it was.
			if after := r.ns.linkDetails("tap0"); after != r.details {
				t.Errorf("device changed:\nbefore: %s\nafter:  %s", r.details, after)
			}
			if after := r.ns.offloads("tap0"); after != r.offloads {
				t.Errorf("offloads changed:\nbefore: %s\nafter:  %s", r.offloads, after)
			}
			if addrs := r.ns.ip("addr", "show", "dev", "tap0"); !strings.Contains(addrs, kernelAddr.String()) {
				t.Errorf("device lost its address: %s", addrs)
			}
		})
	}
}

// TestCreatedDeviceRemoved opens a device that does not exist; Close must
// remove it again.
func TestCreatedDeviceRemoved(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			ns := newNetNS(t)
			dev, err := tap.Open(tap.Config{Name: "nsftp0", NetNS: ns.path, Offload: offload})
			if err != nil {
				t.Fatal(err)
			}
			if !dev.Created() {
				t.Error("Created() = false for a new device")
			}
			if !ns.exists("nsftp0") {
				t.Fatal("device not in the namespace after Open")
			}
			if details := ns.linkDetails("nsftp0"); !strings.Contains(details, "tun type tap") || !strings.Contains(details, "persist off") {
				t.Errorf("new device: %s", details)
			}
			if err := dev.Close(); err != nil {
				t.Fatal(err)
			}
			if ns.exists("nsftp0") {
				t.Error("device nsftp created still exists after Close")
			}
		})
	}
}

// TestPremadeDeviceKept opens and closes user-made devices of different
// flags, attached to a host or not, and checks that each comes back as it
// was.
func TestPremadeDeviceKept(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name    string
		extra   []string
		offload bool
		host    bool
	}{
		{"plain", nil, false, false},
		{"offload", nil, true, false},
		{"plain/host", nil, false, true},
		{"offload/host", nil, true, true},
		{"vnet_hdr/plain", []string{"vnet_hdr"}, false, true},
		{"vnet_hdr/offload", []string{"vnet_hdr"}, true, true},
		{"multi_queue/offload", []string{"multi_queue"}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			ns := newNetNS(t)
			ns.tap("tap0", kernelAddr.String(), 0, tc.extra...)
			before, beforeOff := ns.linkDetails("tap0"), ns.offloads("tap0")
			dev, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path, Offload: tc.offload})
			if err != nil {
				t.Fatal(err)
			}
			if tc.host {
				h, err := stack.NewHost(stack.HostConfig{Name: "nsftp", Link: dev.Endpoint(), Addrs: []netip.Prefix{nsftpAddr}})
				if err != nil {
					t.Fatal(err)
				}
				// ARP and a handshake, so that both goroutines have run.
				ctx := testContext(t, 10*time.Second)
				if c, err := h.DialContext(trace.WithLabel(ctx, "probe"), "tcp", "192.0.2.1:9"); err == nil {
					c.Close()
				}
				if err := h.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if err := dev.Close(); err != nil {
				t.Fatal(err)
			}
			if after := ns.linkDetails("tap0"); after != before {
				t.Errorf("device changed:\nbefore: %s\nafter:  %s", before, after)
			}
			if after := ns.offloads("tap0"); after != beforeOff {
				t.Errorf("offloads changed:\nbefore: %s\nafter:  %s", beforeOff, after)
			}
		})
	}
}

// TestCloseDeviceFirst closes the device under a running host: the reader
// and writer stop, the host notices nothing worse than a dead link, and
// closing the host afterwards neither hangs nor leaks.
func TestCloseDeviceFirst(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	r := newRig(t, 1500, true)
	ctx := testContext(t, 10*time.Second)
	if c, err := r.host.DialContext(trace.WithLabel(ctx, "probe"), "tcp", "192.0.2.1:9"); err == nil {
		c.Close()
	}
	if err := r.dev.Close(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if c, err := r.host.DialContext(trace.WithLabel(ctx2, "probe"), "tcp", "192.0.2.1:9"); err == nil {
		c.Close()
		t.Error("dial over a closed device succeeded")
	}
	if err := r.host.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceDeleted deletes the device under nsftp: the reader stops and
// says why, and Close still works.
func TestDeviceDeleted(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	r := newRig(t, 1500, false)
	r.ns.ip("link", "del", "tap0")
	deadline := time.Now().Add(5 * time.Second)
	for r.dev.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.dev.Err(); err == nil {
		t.Error("Err() = nil after the device was deleted")
	} else {
		t.Logf("Err() = %v", err)
	}
	if err := r.host.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNeighbours checks ARP both ways and ICMP echo from the kernel, the
// frames a TAP link must get right before any TCP.
func TestNeighbours(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			r := newRig(t, 1500, offload)
			out, err := runCmd("ip", "netns", "exec", r.ns.name, "ping", "-c", "2", "-W", "2", "192.0.2.2")
			if err != nil {
				if strings.Contains(err.Error(), "executable file not found") || strings.Contains(out, "No such file") {
					t.Skip("skipping: no ping command")
				}
				t.Fatalf("kernel pinging nsftp: %v: %s", err, out)
			}
			neigh := r.ns.ip("neigh", "show", "dev", "tap0")
			if !strings.Contains(neigh, "192.0.2.2 lladdr "+r.dev.MAC().String()) {
				t.Errorf("kernel's neighbour table has no entry for nsftp's MAC %v: %s", r.dev.MAC(), neigh)
			}
		})
	}
}

func TestCheckAddress(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), 0)
	if err := tap.CheckAddress("tap0", nsftpAddr, ns.path); err != nil {
		t.Errorf("CheckAddress(%v) = %v, want nil", nsftpAddr, err)
	}
	err := tap.CheckAddress("tap0", kernelAddr, ns.path)
	if !isErr(err, tap.ErrAddressInUse) {
		t.Errorf("CheckAddress(%v) = %v, want ErrAddressInUse", kernelAddr, err)
	} else {
		t.Log(err)
	}
	if err := tap.CheckAddress("tap9", nsftpAddr, ns.path); !isErr(err, tap.ErrNoDevice) {
		t.Errorf("CheckAddress on a missing device = %v, want ErrNoDevice", err)
	}
}
