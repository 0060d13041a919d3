package ftp_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// BenchmarkRETRWireVsLoopback downloads the same file with the same FTP
// code across the virtual wire and across the kernel's loopback,
// alternating within each iteration so that both see the same machine
// load, and reports both rates and their ratio, for each offload at each
// MTU:
//
//	go test ./ftp/ -run '^$' -bench RETRWireVsLoopback -benchtime 4x
//
// The rate is the RETR's, from the command to the last byte; the file is
// in the page cache and the client throws the bytes away.
func BenchmarkRETRWireVsLoopback(b *testing.B) {
	const size = 256 << 20
	root := b.TempDir()
	f, err := os.Create(filepath.Join(root, "big.bin"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{9}), size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	kernel := &ftp.OSNetwork{}
	kaddr := serveBench(b, kernel, root, "127.0.0.1:0")
	for _, off := range []stack.Offload{stack.OffloadNone, stack.OffloadGSO, stack.OffloadTSO} {
		for _, mtu := range []int{1500, 9000, 65000} {
			b.Run(fmt.Sprintf("offload=%v/mtu=%d", off, mtu), func(b *testing.B) {
				p, err := stack.NewPair(stack.PairConfig{Wire: stack.WireConfig{MTU: mtu, Offload: off}})
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				waddr := serveBench(b, p.Server, root, "192.0.2.2:21")
				var wire, loop time.Duration
				for b.Loop() {
					wire += retrOnce(b, p.Client, waddr, size)
					loop += retrOnce(b, kernel, kaddr, size)
				}
				w := float64(size) * float64(b.N) / wire.Seconds() / 1e6
				k := float64(size) * float64(b.N) / loop.Seconds() / 1e6
				b.ReportMetric(w, "wire-MB/s")
				b.ReportMetric(k, "loopback-MB/s")
				b.ReportMetric(w/k, "ratio")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// serveBench serves root on network at addr until the benchmark ends.
func serveBench(b *testing.B, network ftp.Network, root, addr string) string {
	b.Helper()
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: network})
	if err != nil {
		b.Fatal(err)
	}
	l, err := network.Listen(trace.WithLabel(context.Background(), trace.Control), "tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).String()
}

// retrOnce logs in, downloads big.bin to nowhere and returns how long the
// RETR took.
func retrOnce(b *testing.B, network ftp.Network, addr string, size int64) time.Duration {
	b.Helper()
	ctx := context.Background()
	c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: network})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "", ""); err != nil {
		b.Fatal(err)
	}
	if err := c.Type(ctx, "I"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n, err := c.Retrieve(ctx, "big.bin", 0, io.Discard)
	took := time.Since(start)
	if err != nil || n != size {
		b.Fatalf("RETR: %d of %d bytes, %v", n, size, err)
	}
	c.Quit(ctx)
	return took
}

// BenchmarkRETRWire is one RETR across the wire alone, for profiling:
//
//	go test ./ftp/ -run '^$' -bench RETRWire$ -cpuprofile cpu.prof
func BenchmarkRETRWire(b *testing.B) {
	const size = 256 << 20
	root := b.TempDir()
	f, err := os.Create(filepath.Join(root, "big.bin"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{9}), size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, off := range []stack.Offload{stack.OffloadGSO, stack.OffloadTSO} {
		b.Run("offload="+off.String(), func(b *testing.B) {
			p, err := stack.NewPair(stack.PairConfig{Wire: stack.WireConfig{Offload: off}})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			addr := serveBench(b, p.Server, root, "192.0.2.2:21")
			b.SetBytes(size)
			for b.Loop() {
				retrOnce(b, p.Client, addr, size)
			}
		})
	}
}
