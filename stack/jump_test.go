package stack_test

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestSynctestCannotHoldNetstack is the evidence for jump.go's choice of
// its own idle detection over testing/synctest: in a bubble, a Pair's
// wire goroutines block durably (select on the bubble's channels and
// timers), but netstack's TCP processors park in gVisor's sleep package,
// whose gopark gives the wait reason "select", which synctest never counts
// as durable. The bubble's clock then cannot move while a host lives: a
// time.Sleep in it would never return. If this test fails, synctest has
// learned to hold netstack, and jump mode could use it instead.
func TestSynctestCannotHoldNetstack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := stack.NewPair(stack.PairConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close() // only from inside: a Pair made here is the bubble's
		var sleepers, durableSleepers, ports, durablePorts int
		for range 50 { // time for every goroutine to park
			runtime.Gosched()
		}
		buf := make([]byte, 1<<20)
		tb := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(tb, "\n\n") {
			head, _, _ := strings.Cut(g, "\n")
			if !strings.Contains(head, "synctest bubble") {
				continue
			}
			durable := strings.Contains(head, "(durable)")
			switch {
			case strings.Contains(g, "gvisor.dev/gvisor/pkg/sleep."):
				sleepers++
				if durable {
					durableSleepers++
				}
			case strings.Contains(g, "stack.(*Port).run"):
				ports++
				if durable {
					durablePorts++
				}
			}
		}
		t.Logf("in a bubble: %d of %d netstack processors durably blocked, %d of %d wire goroutines", durableSleepers, sleepers, durablePorts, ports)
		if sleepers == 0 || ports != 2 {
			t.Fatalf("found %d netstack sleepers and %d wire goroutines in the bubble: the test no longer finds them", sleepers, ports)
		}
		if durableSleepers > 0 {
			t.Errorf("synctest counts %d of netstack's %d parked processors as durably blocked: a bubble could now hold a Pair", durableSleepers, sleepers)
		}
		if durablePorts != ports {
			t.Errorf("%d of %d wire goroutines durably blocked when idle", durablePorts, ports)
		}
	})
}

// jumpPair is a Pair on a jumping clock whose events (both hosts and the
// wire) are recorded on that clock.
func jumpPair(t *testing.T, cfg stack.PairConfig) (*stack.Pair, *trace.Recorder, *trace.Keep) {
	t.Helper()
	clock := stacktest.JumpClock(t)
	keep := &trace.Keep{}
	rec := trace.NewRecorderOn(clock, keep)
	cfg.Clock = clock
	cfg.Client.Observer, cfg.Server.Observer, cfg.Wire.Observer = rec.Record, rec.Record, rec.Record
	return stacktest.Pair(t, cfg), rec, keep
}

// TestJumpOutage: a 30 s outage in the middle of a transfer passes in a
// moment of real time on a jumping clock, and the trace is what real time
// would show: the sender's retransmission timeouts double, 10 ms, 20 ms,
// 40 ms and on (netstack's own backoff, from the wire's 10 ms minimum RTO,
// uncapped here), until one falls after the outage and the transfer
// completes.
func TestJumpOutage(t *testing.T) {
	stacktest.CheckGoroutines(t)
	const at, length = 10 * time.Millisecond, 30 * time.Second
	realStart := time.Now()
	_, evs, p := pathRunConfig(t, stack.PairConfig{
		Wire:   stack.WireConfig{Path: stack.Path{Delay: time.Millisecond, Down: []stack.Outage{{At: at, For: length}}}},
		Server: stack.HostConfig{MaxRTO: 120 * time.Second},
	}, 1<<20)
	took := time.Since(realStart)
	if p.Wire.Stats().Down == 0 {
		t.Fatal("no frame met the outage")
	}
	span := evs[len(evs)-1].Time.Sub(evs[0].Time)
	t.Logf("%v of the network's time in %v of real time, %d jumps", span.Round(time.Millisecond), took.Round(time.Millisecond), stack.JumpsOf(p.Clock))
	if span < length {
		t.Errorf("the run took %v on its clock, less than the outage", span)
	}
	// Under the race detector everything runs several times slower, the
	// look at the goroutines (runtime.Stack) too: the bound is for the
	// plain build CI runs.
	if took > 2*time.Second && !raceEnabled {
		t.Errorf("a %v outage took %v of real time on a jumping clock", length, took)
	}
	gaps := timeoutGaps(arpTimed(evs), at, at+length+time.Minute)
	t.Logf("retransmission timeouts %v apart", gaps)
	// 10ms doubled until the sum passes the outage: 10ms ... 20.48s.
	if len(gaps) < 11 {
		t.Fatalf("%d timeouts in a %v outage, want 11 or more", len(gaps), length)
	}
	for i := 1; i < len(gaps); i++ {
		// Doubled to within microseconds: netstack arms its timer at a
		// NowMonotonic reading, which stays distinct from the one before
		// while the clock stands still (a nanosecond each), so a timeout
		// falls a few nanoseconds after the clock's own time.
		if d := gaps[i] - 2*gaps[i-1]; d < -10*time.Microsecond || d > 10*time.Microsecond {
			t.Errorf("timeout %d came %v after the one before, which came %v after its own: not doubled", i+1, gaps[i], gaps[i-1])
		}
	}
}

// arpTimed returns the events with each of the server's TCP segments
// that had to wait for ARP moved back to when it was sent: the ARP
// request it waited for. When the neighbour entry goes stale during a
// long outage (netstack's reachable time is 30s, drawn at random between
// 15s and 45s, as RFC 4861 asks) the retransmission that a timeout sends
// waits a round trip for ARP first, as on a real host: the timeout fired
// at the request.
func arpTimed(evs []trace.Event) []trace.Event {
	out := append([]trace.Event(nil), evs...)
	var request time.Time // the server's last ARP request
	for i, e := range out {
		s := e.Segment
		if s == nil || e.Host != "server" || s.Dir != trace.Out {
			continue
		}
		switch {
		case s.Proto == "arp" && strings.HasPrefix(s.Info, "who-has"):
			request = e.Time
		case s.Proto == "tcp" && !request.IsZero() && e.Time.Sub(request) < 10*time.Millisecond:
			out[i].Time = request // answered within a round trip or two
			request = time.Time{}
		}
	}
	return out
}

// TestJumpTimeWait: a connection closed first stays in TIME-WAIT for
// netstack's 60 s (2 MSL), and on a jumping clock the trace shows the
// whole minute pass, with nothing else in it, in a moment of real time.
func TestJumpTimeWait(t *testing.T) {
	stacktest.CheckGoroutines(t)
	p, rec, keep := jumpPair(t, stack.PairConfig{})
	realStart := time.Now()
	p.Clock.Run(func() {
		l := listen(t, p.Server, serverAddr)
		c := dial(t, p.Client, serverAddr)
		s := accept(t, l)
		c.Close() // the client closes first: its side waits in TIME-WAIT
		s.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadAll(s); err != nil {
			t.Errorf("reading the peer's FIN: %v", err)
		}
		s.Close()
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Client.Settle(ctx); err != nil {
			t.Errorf("waiting for TIME-WAIT to end: %v", err)
		}
	})
	took := time.Since(realStart)
	rec.Stop()
	var entered, ended time.Time
	for _, e := range keep.Events {
		if e.State == nil || e.Host != "client" {
			continue
		}
		switch {
		case e.State.To == trace.StateTimeWait:
			entered = e.Time
		case e.State.From == trace.StateTimeWait && e.State.To == trace.StateClosed:
			ended = e.Time
		}
	}
	if entered.IsZero() || ended.IsZero() {
		t.Fatalf("TIME-WAIT entered at %v, ended at %v", entered, ended)
	}
	t.Logf("TIME-WAIT lasted %v of the network's time, %v of real time", ended.Sub(entered), took.Round(time.Millisecond))
	if d := ended.Sub(entered); d != 60*time.Second {
		t.Errorf("TIME-WAIT lasted %v, want netstack's 60s", d)
	}
	if took > 2*time.Second && !raceEnabled {
		t.Errorf("a 60s TIME-WAIT took %v of real time on a jumping clock", took)
	}
}
