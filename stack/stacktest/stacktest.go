// Package stacktest is nsftp's in-process virtual network for Go tests:
// hosts with real TCP/IP stacks on a virtual wire that can lose, delay,
// reorder, corrupt and throttle frames, no root needed. Pair and Network
// build one that is closed when the test ends and recorded while it runs:
// when the test fails, its every frame (pcap) and event (JSON lines, for
// `nsftp show`) are kept and their paths logged, so a failure explains
// itself. CheckGoroutines fails a test that leaves goroutines running.
package stacktest

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// Pair returns two hosts on one virtual wire (stack.NewPair), closed when
// the test ends. The run is recorded; if the test fails, its frames and
// events are written to $NSFTP_ARTIFACTS/<test name>/ (a new temporary
// directory when that is unset) as run.pcap and run.jsonl, and the test's
// log names them with the command that renders the events. A passing
// test leaves nothing behind; a benchmark is not recorded.
func Pair(tb testing.TB, cfg stack.PairConfig) *stack.Pair {
	tb.Helper()
	cfg.Clock = networkClock(tb, cfg.Clock, cfg.Wire, cfg.Client, cfg.Server)
	r, err := newRecording(tb, cfg.Clock)
	if err != nil {
		tb.Fatalf("recording the virtual network: %v", err)
	}
	cfg.Wire = r.wire(cfg.Wire)
	cfg.Client, cfg.Server = r.host(cfg.Client), r.host(cfg.Server)
	p, err := stack.NewPair(cfg)
	if err != nil {
		r.finish(tb)
		tb.Fatalf("building virtual network: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("closing virtual network: %v", err)
		}
		r.finish(tb)
	})
	return p
}

// Network returns hosts on one virtual wire (stack.NewNetwork), closed
// and recorded as Pair's are.
func Network(tb testing.TB, cfg stack.NetworkConfig) *stack.Network {
	tb.Helper()
	cfg.Clock = networkClock(tb, cfg.Clock, cfg.Wire, cfg.Hosts...)
	r, err := newRecording(tb, cfg.Clock)
	if err != nil {
		tb.Fatalf("recording the virtual network: %v", err)
	}
	cfg.Wire = r.wire(cfg.Wire)
	hosts := make([]stack.HostConfig, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		hosts[i] = r.host(h)
	}
	cfg.Hosts = hosts
	n, err := stack.NewNetwork(cfg)
	if err != nil {
		r.finish(tb)
		tb.Fatalf("building virtual network: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("closing virtual network: %v", err)
		}
		r.finish(tb)
	})
	return n
}

// CheckGoroutines fails the test if, when it ends, goroutines are running
// that were not running when CheckGoroutines was called. Call it first in
// a test, so its cleanup runs last. Goroutines get a few seconds to finish.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) still running after the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// goroutines returns the stacks of all goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 12 [running]:" -> "12"
		head, _, _ := strings.Cut(g, "\n")
		fields := strings.Fields(head)
		if len(fields) < 2 {
			continue
		}
		out[fields[1]] = g
	}
	return out
}

func leakedSince(before map[string]string) []string {
	var leaked []string
	for id, g := range goroutines() {
		if _, ok := before[id]; ok {
			continue
		}
		if ignorable(g) {
			continue
		}
		leaked = append(leaked, g)
	}
	return leaked
}

// ignorable reports goroutines that belong to the test framework or the
// runtime, not to the code under test.
func ignorable(g string) bool {
	for _, s := range []string{
		"testing.(*T).Run",
		"testing.tRunner",
		"testing.(*M).",
		"os/signal.signal_recv",
		"runtime/trace.Start",
		"leakedSince",
	} {
		if strings.Contains(g, s) && !strings.Contains(g, "github.com/nsftp/nsftp/") {
			return true
		}
	}
	return false
}

// JumpClock returns a clock that jumps from timer to timer whenever the
// network on it is idle (stack.ClockConfig.Jump), closed when the test
// ends: give it to a Pair (stack.PairConfig.Clock), and to a recorder
// (trace.NewRecorderOn), and a test's outages, backoffs and TIME-WAITs
// pass in a moment of real time, with the trace they have in real time.
// Run the test's own goroutines through its Run so that the clock waits
// for them too.
func JumpClock(t testing.TB) *stack.Clock {
	t.Helper()
	c, err := stack.NewClock(stack.ClockConfig{Jump: true})
	if err != nil {
		t.Fatalf("building a jumping clock: %v", err)
	}
	t.Cleanup(c.Close) // after the cleanups of the Pairs made on it
	return c
}
