package tap_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/tap"
	"github.com/nsftp/nsftp/trace"
)

// BenchmarkDownload compares a download into nsftp's netstack over a TAP
// device with the same download by the kernel over a veth pair, in one run
// and interleaved, so that both see the same machine load. A Go server in
// one namespace sends 256 MiB; nsftp receives it on tap0 in that
// namespace, and a client process in a second namespace receives it over
// veth. Both discard the bytes. It reports both rates and their ratio:
//
//	go test ./tap/ -run '^$' -bench Download -benchtime 3x
//
// Each iteration is one download each way; use -benchtime Nx.
func BenchmarkDownload(b *testing.B) { benchTransfers(b, false) }

// BenchmarkUpload is BenchmarkDownload the other way: nsftp's netstack,
// and the kernel in the second namespace, send 256 MiB to the server.
func BenchmarkUpload(b *testing.B) { benchTransfers(b, true) }

func benchTransfers(b *testing.B, upload bool) {
	needRoot(b)
	const size = 256 << 20
	for _, mtu := range []int{1500, 65000} {
		for _, offload := range []bool{false, true} {
			path := "plain"
			if offload {
				path = "offload"
			}
			b.Run(fmt.Sprintf("mtu=%d/%s", mtu, path), func(b *testing.B) {
				benchTransfer(b, mtu, offload, upload, size)
			})
		}
	}
}

func benchTransfer(b *testing.B, mtu int, offload, upload bool, size int64) {
	srv, cli := newNetNS(b), newNetNS(b)
	srv.tap("tap0", kernelAddr.String(), mtu)
	srv.ip("link", "add", "veth0", "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", "veth1", "mtu", fmt.Sprint(mtu), "netns", cli.name)
	srv.ip("addr", "add", "198.51.100.1/24", "dev", "veth0")
	srv.ip("link", "set", "veth0", "up")
	cli.ip("addr", "add", "198.51.100.2/24", "dev", "veth1")
	cli.ip("link", "set", "veth1", "up")

	server := srv.startHelper("serve", "ADDR=0.0.0.0:9000")
	if got := server.line(b, 10*time.Second); got != "ready" {
		b.Fatalf("server said %q", got)
	}
	dev, err := tap.Open(tap.Config{Name: "tap0", NetNS: srv.path, Offload: offload})
	if err != nil {
		b.Fatal(err)
	}
	host, err := stack.NewHost(stack.HostConfig{Name: "nsftp", Link: dev.Endpoint(), Addrs: []netip.Prefix{nsftpAddr}})
	if err != nil {
		dev.Close()
		b.Fatal(err)
	}
	defer host.Close()
	ctx := testContext(b, time.Hour)

	viaTAP := func(n int64) time.Duration {
		start := time.Now()
		c, err := host.DialContext(trace.WithLabel(ctx, "data"), "tcp", "192.0.2.1:9000")
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if upload {
			err = putDiscard(c, n)
		} else {
			_, _, err = getStream(c, n, false)
		}
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	op := "getx"
	if upload {
		op = "putx"
	}
	viaVeth := func(n int64) time.Duration {
		out := cli.runHelper(time.Minute, "client", "ADDR=198.51.100.1:9000", fmt.Sprintf("OPS=%s:%d", op, n))
		f := strings.Fields(out)
		if len(f) != 3 || f[0] != op {
			b.Fatalf("veth client said %q", out)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(ns)
	}
	// Warm up: ARP, slow start of the first connection, page faults.
	viaTAP(size / 8)
	viaVeth(size / 8)

	var tapTime, vethTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			tapTime += viaTAP(size)
			vethTime += viaVeth(size)
		} else {
			vethTime += viaVeth(size)
			tapTime += viaTAP(size)
		}
	}
	b.StopTimer()
	tapRate := float64(size) * float64(b.N) / tapTime.Seconds() / 1e6
	vethRate := float64(size) * float64(b.N) / vethTime.Seconds() / 1e6
	b.ReportMetric(tapRate, "tap-MB/s")
	b.ReportMetric(vethRate, "kernel-MB/s")
	b.ReportMetric(tapRate/vethRate, "ratio")
	b.ReportMetric(0, "ns/op")
}
