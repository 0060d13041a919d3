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

// BenchmarkImpairedWire moves bytes over TCP across a virtual wire that
// loses, duplicates, reorders and corrupts frames, one setting per
// sub-benchmark, and reports the goodput and how hard TCP had to work for
// it. Both hosts use a 10ms minimum RTO, as the impaired-wire tests do: on
// a wire whose round trip is microseconds, netstack's 200ms (Linux's too)
// measures the timer, not the recovery. Run it with a fixed count, since a
// lossy transfer takes seconds:
//
//	go test ./stack/ -run '^$' -bench ImpairedWire -benchtime 3x
func BenchmarkImpairedWire(b *testing.B) {
	const size = 4 << 20
	for _, wc := range []stack.Path{
		{},
		{Loss: 1},
		{Loss: 5},
		{Loss: 10},
		{Reorder: 2},
		{Reorder: 10},
		{Duplicate: 2},
		{Duplicate: 10},
		{Corrupt: 1},
		{Corrupt: 5},
		{Loss: 1, Duplicate: 1, Reorder: 1, Corrupt: 1},
		{Loss: 5, Duplicate: 2, Reorder: 2, Corrupt: 1},
		{Loss: 10, Duplicate: 2, Reorder: 2, Corrupt: 1},
	} {
		name := fmt.Sprintf("loss=%v/dup=%v/reorder=%v/corrupt=%v", wc.Loss, wc.Duplicate, wc.Reorder, wc.Corrupt)
		wc := stack.WireConfig{Path: wc}
		b.Run(name, func(b *testing.B) {
			fast := stack.HostConfig{MinRTO: 10 * time.Millisecond}
			p, err := stack.NewPair(stack.PairConfig{Wire: wc, Client: fast, Server: fast})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			// A backlog of 8, as a server's control port has: the
			// handshake under loss may bring a SYN twice.
			l, err := p.Server.Listen(trace.WithLabel(b.Context(), "data"), "tcp", "192.0.2.2:20")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			dial := func() (net.Conn, error) {
				return p.Client.DialContext(trace.WithLabel(b.Context(), "data"), "tcp", "192.0.2.2:20")
			}
			before := p.Client.Stats()
			var elapsed time.Duration
			var moved int64
			stalled := 0
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, n, err := lossyTransfer(b, l, dial, size)
				elapsed += d
				moved += n
				if err != nil {
					b.Logf("transfer %d: %v", i, err)
					stalled++
				}
			}
			b.StopTimer()
			st := p.Wire.Stats()
			sent := p.Client.Stats().Sub(before)
			mb := float64(moved) / 1e6
			b.ReportMetric(mb/elapsed.Seconds(), "MB/s")
			b.ReportMetric(float64(sent["TCP.Retransmits"])/mb, "retransmits/MB")
			b.ReportMetric(float64(sent["TCP.Timeouts"])/mb, "RTOs/MB")
			b.ReportMetric(float64(st.Lost+st.Corrupted)/float64(max(st.Frames, 1))*100, "%damaged")
			b.ReportMetric(float64(stalled), "stalled")
		})
	}
}

// stallLimit is how long a transfer may go without progress before it is
// counted as stalled and abandoned: with losses, TCP's retransmission
// timer backs off exponentially, to the wire's cap (WireMaxRTO) at most.
const stallLimit = 30 * time.Second

// lossyTransfer is transferOnce that survives a stall: it returns the
// time taken, the bytes that arrived, and an error if the transfer made no
// progress for stallLimit.
func lossyTransfer(b *testing.B, l net.Listener, dial func() (net.Conn, error), size int64) (time.Duration, int64, error) {
	b.Helper()
	start := time.Now()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{0, err}
			return
		}
		defer c.Close()
		var n int64
		buf := make([]byte, 256<<10)
		for {
			c.SetReadDeadline(time.Now().Add(stallLimit))
			m, err := c.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				done <- result{n, fmt.Errorf("receiving, after %d bytes: %w", n, err)}
				return
			}
		}
		if n != size {
			err = fmt.Errorf("received %d bytes, want %d", n, size)
		}
		done <- result{n, err}
	}()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	var werr error
	buf := make([]byte, 256<<10)
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		c.SetWriteDeadline(time.Now().Add(stallLimit))
		if _, werr = c.Write(buf); werr != nil {
			break
		}
	}
	if werr != nil {
		// Abandon the connection: the receiver sees a reset.
		c.(interface{ Abort() }).Abort()
	} else {
		c.Close()
	}
	r := <-done
	if werr != nil && r.err == nil {
		r.err = fmt.Errorf("sending: %w", werr)
	}
	return time.Since(start), r.n, r.err
}
