package stack_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// BenchmarkWireVsLoopback moves the same bytes across the virtual wire and
// across the kernel's loopback, alternating within each iteration so both
// see the same machine load, and reports both rates and their ratio, for
// each offload at each MTU:
//
//	go test ./stack/ -run '^$' -bench WireVsLoopback -benchtime 5x
func BenchmarkWireVsLoopback(b *testing.B) {
	const size = 64 << 20
	for _, off := range []stack.Offload{stack.OffloadNone, stack.OffloadGSO, stack.OffloadTSO} {
		for _, mtu := range []int{1500, 9000, 65000} {
			b.Run(fmt.Sprintf("offload=%v/mtu=%d", off, mtu), func(b *testing.B) {
				benchWireVsLoopback(b, stack.WireConfig{MTU: mtu, Offload: off}, size)
			})
		}
	}
}

func benchWireVsLoopback(b *testing.B, wire stack.WireConfig, size int64) {
	w, k := wireEnds(b, wire), loopbackEnds(b)
	var wireTime, kernelTime time.Duration
	b.SetBytes(2 * size)
	for b.Loop() {
		wireTime += transferOnce(b, w.l, w.dial, size)
		kernelTime += transferOnce(b, k.l, k.dial, size)
	}
	rate := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(rate(wireTime), "wire-MB/s")
	b.ReportMetric(rate(kernelTime), "loopback-MB/s")
	b.ReportMetric(rate(wireTime)/rate(kernelTime), "ratio")
}

// ends is where a benchmark's transfers go: a listener and how to
// connect to it.
type ends struct {
	l    net.Listener
	dial func() (net.Conn, error)
}

// wireEnds is a Pair on a wire, the server listening on port 20; closed
// when the benchmark ends.
func wireEnds(b *testing.B, wire stack.WireConfig) ends {
	return pairEnds(b, stack.PairConfig{Wire: wire})
}

// pairEnds is a pair of hosts built as cfg says: the client dials, the
// server listens.
func pairEnds(b *testing.B, cfg stack.PairConfig) ends {
	p, err := stack.NewPair(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	l, err := p.Server.Listen(trace.WithBacklog(trace.WithLabel(b.Context(), "data"), 1), "tcp", "192.0.2.2:20")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return ends{l, func() (net.Conn, error) {
		return p.Client.DialContext(trace.WithLabel(b.Context(), "data"), "tcp", "192.0.2.2:20")
	}}
}

// loopbackEnds is the kernel's loopback.
func loopbackEnds(b *testing.B) ends {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return ends{l, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }}
}

// BenchmarkWireVsPipe is the baseline for the wire without offload: the
// same bytes across the wire, across a pair of bare gVisor stacks joined
// by gVisor's own pipe link (no Ethernet, no ARP, no capture, no nsftp
// code between TCP and TCP), and across the kernel's loopback, the three
// alternating within each iteration:
//
//	go test ./stack/ -run '^$' -bench WireVsPipe -benchtime 5x
//
// The bare stacks get nsftp's SACK and buffer sizes, so that both move
// the same window; they keep gVisor's RACK loss detection, which the
// wire's hosts drop on a clean wire (HostConfig.NoRACK: netstack's RACK
// walks the whole flight on every ACK), the setting that puts the wire
// ahead of the bare pair at MTU 1500.
func BenchmarkWireVsPipe(b *testing.B) {
	const size = 64 << 20
	for _, mtu := range []int{1500, 9000, 65000} {
		b.Run(fmt.Sprintf("mtu=%d", mtu), func(b *testing.B) {
			w, k := wireEnds(b, stack.WireConfig{MTU: mtu}), loopbackEnds(b)
			bare := newPipePair(b, uint32(mtu))
			pl, err := bare.Listen()
			if err != nil {
				b.Fatal(err)
			}
			defer pl.Close()

			var wireTime, pipeTime, kernelTime time.Duration
			b.SetBytes(3 * size)
			for b.Loop() {
				wireTime += transferOnce(b, w.l, w.dial, size)
				pipeTime += transferOnce(b, pl, bare.Dial, size)
				kernelTime += transferOnce(b, k.l, k.dial, size)
			}
			rate := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
			b.ReportMetric(rate(wireTime), "wire-MB/s")
			b.ReportMetric(rate(pipeTime), "pipe-MB/s")
			b.ReportMetric(rate(kernelTime), "loopback-MB/s")
			b.ReportMetric(rate(wireTime)/rate(pipeTime), "wire/pipe")
			b.ReportMetric(rate(pipeTime)/rate(kernelTime), "pipe/loopback")
		})
	}
}

// readAll reads c to its EOF with buf, as a program reads a download:
// io.Copy to io.Discard would read 8 KiB at a time (io.Discard's own
// buffer), and a net.TCPConn's WriteTo 32 KiB.
func readAll(c net.Conn, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := c.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// transferOnce connects, sends size bytes one way and returns the time
// from connect to the receiver's EOF.
func transferOnce(b *testing.B, l net.Listener, dial func() (net.Conn, error), size int64) time.Duration {
	b.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		n, err := readAll(c, make([]byte, 256<<10))
		if err == nil && n != size {
			err = fmt.Errorf("received %d bytes, want %d", n, size)
		}
		done <- err
	}()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkWire moves bytes across the virtual wire alone, for profiling:
//
//	go test ./stack/ -run '^$' -bench '^BenchmarkWire$' -cpuprofile cpu.prof
func BenchmarkWire(b *testing.B) {
	const size = 64 << 20
	for _, wc := range []stack.WireConfig{{MTU: 1500}, {MTU: 65000}, {MTU: 1500, Offload: stack.OffloadGSO}, {MTU: 1500, Offload: stack.OffloadTSO}} {
		b.Run(fmt.Sprintf("offload=%v/mtu=%d", wc.Offload, wc.MTU), func(b *testing.B) {
			p, err := stack.NewPair(stack.PairConfig{Wire: wc})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			l, err := p.Server.Listen(trace.WithBacklog(trace.WithLabel(b.Context(), "data"), 1), "tcp", "192.0.2.2:20")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				transferOnce(b, l, func() (net.Conn, error) {
					return p.Client.DialContext(trace.WithLabel(b.Context(), "data"), "tcp", "192.0.2.2:20")
				}, size)
			}
		})
	}
}
