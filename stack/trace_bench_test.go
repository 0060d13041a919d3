package stack_test

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// BenchmarkTracedWire measures what the timeline costs a bulk transfer
// without a TAP device or root: the same bytes across two pairs of hosts,
// one whose receiving host records its timeline into the text view (to
// nowhere, as to a file) and one that records nothing, alternating within
// each iteration. It reports the traced transfer's time as a multiple of
// the untraced one's: the cost nsftp get --trace adds per segment, with
// large segments on the wire (as a TAP with offload passes them) and with
// MTU-sized ones.
//
//	go test ./stack/ -run '^$' -bench TracedWire -benchtime 8x
func BenchmarkTracedWire(b *testing.B) {
	const size = 256 << 20
	for _, off := range []stack.Offload{stack.OffloadGSO, stack.OffloadNone} {
		b.Run(fmt.Sprintf("offload=%v", off), func(b *testing.B) {
			wire := stack.WireConfig{MTU: 1500, Offload: off}
			rec := trace.NewRecorder(trace.NewText(io.Discard, trace.TextOptions{}))
			b.Cleanup(func() { rec.Stop() })
			// Each pair's goroutines and transfers are labelled, so that
			// a CPU profile (-cpuprofile) can be split: pprof -tagfocus
			// traced=true.
			var plain, traced ends
			labelled(false, func() { plain = pairEnds(b, stack.PairConfig{Wire: wire}) })
			labelled(true, func() {
				traced = pairEnds(b, stack.PairConfig{Wire: wire, Server: stack.HostConfig{Observer: rec.Record}})
			})
			var plainTime, tracedTime time.Duration
			once := func(isTraced bool) {
				labelled(isTraced, func() {
					if isTraced {
						tracedTime += transferOnce(b, traced.l, traced.dial, size)
					} else {
						plainTime += transferOnce(b, plain.l, plain.dial, size)
					}
				})
			}
			rounds := 0
			for b.Loop() {
				once(rounds%2 != 0)
				once(rounds%2 == 0)
				rounds++
			}
			rate := func(d time.Duration) float64 { return float64(size) * float64(rounds) / d.Seconds() / 1e6 }
			b.ReportMetric(rate(plainTime), "untraced-MB/s")
			b.ReportMetric(rate(tracedTime), "traced-MB/s")
			b.ReportMetric(tracedTime.Seconds()/plainTime.Seconds(), "traced/untraced")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// labelled runs f with the pprof label traced=true or false; goroutines
// it starts inherit it.
func labelled(traced bool, f func()) {
	pprof.Do(context.Background(), pprof.Labels("traced", strconv.FormatBool(traced)), func(context.Context) { f() })
}
