package stack_test

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// pathRun sends n bytes from the server to the client over a wire with
// the given config, every event kept, and returns what the client
// received and the events. The network runs on a jumping clock: its time
// stands still while the hosts work and jumps when they wait, so what the
// tests measure (rates, backoffs, orders) is the wire's and TCP's doing,
// whatever else the machine is busy with.
func pathRun(t *testing.T, wire stack.WireConfig, n int) ([]byte, []trace.Event, *stack.Pair) {
	t.Helper()
	return pathRunConfig(t, stack.PairConfig{Wire: wire}, n)
}

// pathRunConfig is pathRun on a Pair made from cfg, its hosts' and wire's
// events recorded (with TCB samples).
func pathRunConfig(t *testing.T, cfg stack.PairConfig, n int) ([]byte, []trace.Event, *stack.Pair) {
	t.Helper()
	clock := stacktest.JumpClock(t)
	keep := &trace.Keep{}
	rec := trace.NewRecorderOn(clock, keep)
	cfg.Clock = clock
	cfg.Client.Observer, cfg.Server.Observer, cfg.Wire.Observer = rec.Record, rec.Record, rec.Record
	cfg.Client.Samples, cfg.Server.Samples = true, true
	p := stacktest.Pair(t, cfg)
	want := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(want)
	var got []byte
	var recvErr, sendErr error
	clock.Run(func() {
		l := listen(t, p.Server, serverAddr)
		c := dial(t, p.Client, serverAddr)
		s := accept(t, l)
		sent := make(chan error, 1)
		go func() {
			_, err := s.Send(context.Background(), want)
			s.Close()
			sent <- err
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Minute)) // of the network's time
		got, recvErr = io.ReadAll(c)
		sendErr = <-sent
		c.Close()
	})
	if recvErr != nil {
		t.Fatalf("receiving: %v (%d of %d bytes)", recvErr, len(got), n)
	}
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	rec.Stop()
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), n)
	}
	return got, keep.Events, p
}

// goodput is the rate at which new data reached the client, by the
// events' own clock: first data segment in to last.
func goodput(evs []trace.Event) (bps float64, took time.Duration) {
	var first, last time.Time
	var n int64
	top := map[uint32]bool{}
	for _, e := range evs {
		s := e.Segment
		if s == nil || e.Host != "client" || s.Dir != trace.In || s.Proto != "tcp" || s.Len == 0 || top[s.Seq] {
			continue
		}
		top[s.Seq] = true
		if first.IsZero() {
			first = e.Time
		}
		last = e.Time
		n += int64(s.Len)
	}
	took = last.Sub(first)
	return float64(n) * 8 / took.Seconds(), took
}

// TestRateLimit: through a 40 Mbit/s bottleneck with no loss, a 16 MiB
// transfer moves at 40 Mbit/s, within 10%: the Ethernet, IP and TCP
// headers on every 1448 bytes take 4.5% of the rate. The queue holds more
// than the receiver's 4 MiB window, so nothing can be dropped and the
// bottleneck never idles. (With netem's 1000 frames, slow start overshoots
// the queue and loses hundreds of frames at once: see TestQueueOverflow.)
// Under the race detector the stacks cannot keep 40 Mbit/s flowing, so
// the same check runs at 10 Mbit/s with 4 MiB.
func TestRateLimit(t *testing.T) {
	stacktest.CheckGoroutines(t)
	rate, size := 40e6, 16<<20
	if raceEnabled {
		rate, size = 10e6, 4<<20
	}
	_, evs, p := pathRun(t, stack.WireConfig{Path: stack.Path{Rate: int64(rate), Queue: 3000}}, size)
	bps, took := goodput(evs)
	t.Logf("goodput %.1f Mbit/s over %v; wire %+v", bps/1e6, took, p.Wire.Stats())
	if bps < rate*0.9 || bps > rate*1.1 {
		t.Errorf("goodput %.1f Mbit/s through a %.0f Mbit/s bottleneck, want within 10%%", bps/1e6, rate/1e6)
	}
	if st := p.Wire.Stats(); st.Bottleneck != 0 || st.Lost != 0 {
		t.Errorf("frames lost on a lossless path: %+v", st)
	}
}

// TestQueueOverflow: a bottleneck with a short queue drops frames when
// TCP's window outgrows it, and the sender's congestion window falls
// after the first drop, as its TCB samples show.
func TestQueueOverflow(t *testing.T) {
	stacktest.CheckGoroutines(t)
	_, evs, p := pathRun(t, stack.WireConfig{Path: stack.Path{Rate: 20e6, Delay: 10 * time.Millisecond, Queue: 16}}, 4<<20)
	st := p.Wire.Stats()
	if st.Bottleneck == 0 || st.Lost != 0 {
		t.Fatalf("wire %+v: want drops at the queue only", st)
	}
	var peak, after int
	recovered := false
	for _, e := range evs {
		if e.TCB == nil || e.Host != "server" {
			continue
		}
		b := e.TCB
		if b.Congestion != "open" {
			recovered = true
		}
		if b.Cwnd > peak && !recovered {
			peak = b.Cwnd
		}
		if recovered {
			after = b.Cwnd
			break
		}
	}
	t.Logf("%d drops at the queue; cwnd peaked at %d segments, then %d in recovery", st.Bottleneck, peak, after)
	if !recovered || after >= peak {
		t.Errorf("the sender's cwnd did not fall after the drops: peak %d, then %d (recovery seen: %v)", peak, after, recovered)
	}
}

// TestJitterKeepsOrder: jitter varies the delay but no frame overtakes
// another, so data arrives in order: no segment leaves a hole that a later
// one fills. (A segment the sender sent again arrives behind the data
// already in, a duplicate: the jitter delays ACKs too, and a tail-loss
// probe resends the last segment when its ACK is slow; that resend is
// TCP's doing, not the wire's.)
func TestJitterKeepsOrder(t *testing.T) {
	stacktest.CheckGoroutines(t)
	_, evs, p := pathRun(t, stack.WireConfig{Path: stack.Path{Delay: 5 * time.Millisecond, Jitter: 4 * time.Millisecond}}, 1<<20)
	var next uint32
	started := false
	for _, e := range evs {
		s := e.Segment
		if s == nil || e.Host != "client" || s.Dir != trace.In || s.Proto != "tcp" || s.Len == 0 {
			continue
		}
		end := s.Seq + uint32(s.Len)
		if started && int32(s.Seq-next) > 0 {
			t.Fatalf("data arrived out of order: seq %d before %d", s.Seq, next)
		}
		if !started || int32(end-next) > 0 {
			next, started = end, true
		}
	}
	if st := p.Wire.Stats(); st.Reordered != 0 || st.Lost != 0 {
		t.Errorf("wire %+v", st)
	}
}

// TestPartition: the link goes down for 2s in the middle of a transfer.
// The transfer stalls, the sender's retransmission timeouts back off
// (each wait longer than the one before), and when the link comes back
// the transfer completes, byte for byte.
func TestPartition(t *testing.T) {
	stacktest.CheckGoroutines(t)
	const at, length = 300 * time.Millisecond, 2 * time.Second
	path := stack.Path{Rate: 8e6, Down: []stack.Outage{{At: at, For: length}}}
	_, evs, p := pathRun(t, stack.WireConfig{Path: path}, 1<<20)
	if took := evs[len(evs)-1].Time.Sub(evs[0].Time); took < length {
		t.Errorf("the transfer took %v of the network's time, less than the outage", took)
	}
	if p.Wire.Stats().Down == 0 {
		t.Fatal("no frame met the outage")
	}
	gaps := timeoutGaps(evs, at, at+length+500*time.Millisecond)
	t.Logf("retransmission timeouts %v apart", gaps)
	if len(gaps) < 3 {
		t.Fatalf("only %d timeouts during a %v outage", len(gaps), length)
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]*3/2 {
			t.Errorf("timeouts did not back off: %v after %v", gaps[i], gaps[i-1])
		}
	}
	h := p.Server.Stats()
	if h["TCP.Timeouts"] == 0 {
		t.Errorf("netstack counted no timeout: %v", h["TCP.Timeouts"])
	}
}

// TestPartitionRTOCapped: the link goes down for 4s, longer than the
// sender's timeouts take to back off past the wire's cap (WireMaxRTO: the
// path's round trip is 40ms). The timeouts double up to the cap and no
// further, so the sender keeps trying once a second; without the cap they
// would be 1.6s and then 3.2s apart by the end of the outage.
func TestPartitionRTOCapped(t *testing.T) {
	stacktest.CheckGoroutines(t)
	const at, length = 100 * time.Millisecond, 4 * time.Second
	path := stack.Path{Delay: 20 * time.Millisecond, Down: []stack.Outage{{At: at, For: length}}}
	_, evs, p := pathRun(t, stack.WireConfig{Path: path}, 1<<20)
	if p.Wire.Stats().Down == 0 {
		t.Fatal("no frame met the outage")
	}
	gaps := timeoutGaps(evs, at, at+length)
	t.Logf("retransmission timeouts %v apart", gaps)
	capped := 0
	for _, g := range gaps {
		// A timer can fire late on a busy machine, never early.
		if g > stack.WireMaxRTO*3/2 {
			t.Errorf("timeouts %v apart, over the cap of %v", g, stack.WireMaxRTO)
		}
		if g >= stack.WireMaxRTO*9/10 {
			capped++
		}
	}
	if capped < 2 {
		t.Errorf("%d timeouts at the cap (%v), want at least 2 in a 4s outage", capped, stack.WireMaxRTO)
	}
}

// TestOutageOutlastsRetryCount: the link goes down for 16 s, longer than
// netstack's 15 resends take at the wire's 1 s cap on the RTO (about 10 s
// from the first). A host whose RTO is capped gives up after
// stack.RetryBudget, as Linux does (tcp_retries2 counted as time), so the
// transfer survives the outage and completes, byte for byte (without
// the budget the sender gave up: ETIMEDOUT).
func TestOutageOutlastsRetryCount(t *testing.T) {
	stacktest.CheckGoroutines(t)
	// 1 MiB at 1 MB/s, behind a queue short enough to leave the cap
	// at 1 s.
	const at, length = 300 * time.Millisecond, 16 * time.Second
	path := stack.Path{Rate: 8e6, Queue: 16, Delay: time.Millisecond, Down: []stack.Outage{{At: at, For: length}}}
	_, evs, p := pathRun(t, stack.WireConfig{Path: path}, 1<<20)
	if took := evs[len(evs)-1].Time.Sub(evs[0].Time); took < length {
		t.Errorf("the transfer took %v of the network's time, less than the outage", took)
	}
	gaps := timeoutGaps(evs, at, at+length)
	t.Logf("%d retransmission timeouts during the outage", len(gaps)+1)
	if len(gaps) < 15 {
		t.Errorf("%d resends during a %v outage at a 1 s cap; want more than netstack's 15", len(gaps)+1, length)
	}
	if n := p.Server.Stats()["TCP.EstablishedTimedout"]; n != 0 {
		t.Errorf("netstack timed %d connections out", n)
	}
}

// timeoutGaps returns the times between the server's retransmission
// timeouts from from to to after the first event: the gaps between its
// resends of data already sent, a burst of resends counting as one.
func timeoutGaps(evs []trace.Event, from, to time.Duration) []time.Duration {
	var t0 time.Time
	top := uint32(0)
	var rtx []time.Time
	for _, e := range evs {
		if t0.IsZero() {
			t0 = e.Time
		}
		s := e.Segment
		if s == nil || e.Host != "server" || s.Dir != trace.Out || s.Proto != "tcp" || s.Len == 0 {
			continue
		}
		end := s.Seq + uint32(s.Len)
		if int32(end-top) > 0 {
			top = end
			continue
		}
		if d := e.Time.Sub(t0); d > from && d < to {
			rtx = append(rtx, e.Time)
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(rtx); i++ {
		if g := rtx[i].Sub(rtx[i-1]); g > 5*time.Millisecond {
			gaps = append(gaps, g)
		}
	}
	return gaps
}

// TestBurstLoss: Gilbert-Elliott loss comes in bursts: at about the same
// loss rate as independent loss, its runs of lost frames are several
// frames long, independent loss's barely more than one; the wire's own
// counters say so.
//
// The loss is on the data's direction only. Like netem's gemodel, the
// model's Bad state moves on only as frames pass, so on the ACKs' path,
// where a stalled sender's peer sends one frame per retransmission, it
// can stay Bad through several timeouts in a row while TCP's backoff
// doubles each wait: a transfer then stalled for minutes (seen in about
// one run in five with loss both ways, before the wire capped the
// timeout: see WireMaxRTO). That is the model's nature, as it is
// netem's, and not what this test is about; it still moves data for at
// most 10 s and counts.
func TestBurstLoss(t *testing.T) {
	stacktest.CheckGoroutines(t)
	// p 1%, r 25%: Bad a twenty-sixth of the time, bursts of 4 on average.
	burst := stack.Path{Burst: &stack.GilbertElliott{P: 1, R: 25}}
	indep := stack.Path{Loss: 100.0 / 26}
	runs := map[string]float64{}
	for name, path := range map[string]stack.Path{"burst": burst, "independent": indep} {
		st := lossyRun(t, stack.WireConfig{Out: map[int]stack.Path{stack.ServerPort: path}, Seed: 5}, 6<<20, 10*time.Second)
		if st.Frames < 2000 || st.LossRuns == 0 {
			t.Fatalf("%s: too few frames or no loss to count: %+v", name, st)
		}
		rate := float64(st.Lost) / float64(st.Frames)
		runs[name] = float64(st.Lost) / float64(st.LossRuns)
		t.Logf("%s: %d of %d frames lost (%.1f%%), in %d runs: %.2f frames a run", name, st.Lost, st.Frames, rate*100, st.LossRuns, runs[name])
		if rate < 0.02 || rate > 0.06 {
			t.Errorf("%s: loss rate %.1f%%, want about 3.8%%", name, rate*100)
		}
	}
	if runs["burst"] < 2.5 || runs["independent"] > 1.3 {
		t.Errorf("runs of %.2f frames with Gilbert-Elliott, %.2f independent: want bursts", runs["burst"], runs["independent"])
	}
}

// lossyRun sends up to n bytes from the server to the client across a
// wire with the given config, for at most d, and returns the wire's
// counters: what a lossy path did, whether or not TCP got through.
func lossyRun(t *testing.T, wire stack.WireConfig, n int, d time.Duration) stack.WireStats {
	t.Helper()
	p := stacktest.Pair(t, stack.PairConfig{Wire: wire})
	l := listen(t, p.Server, serverAddr)
	c := dial(t, p.Client, serverAddr)
	s := accept(t, l)
	data := make([]byte, n)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		s.SetWriteDeadline(time.Now().Add(d))
		s.Send(context.Background(), data)
	}()
	c.SetReadDeadline(time.Now().Add(d))
	got, _ := io.Copy(io.Discard, io.LimitReader(c, int64(n)))
	<-sent
	st := p.Wire.Stats()
	t.Logf("%d of %d bytes in at most %v", got, n, d)
	s.Abort()
	c.Abort()
	return st
}

// TestPerDirection: a path for one direction only leaves the other clean.
func TestPerDirection(t *testing.T) {
	stacktest.CheckGoroutines(t)
	wire := stack.WireConfig{Out: map[int]stack.Path{stack.ServerPort: {Rate: 20e6}}}
	_, evs, p := pathRun(t, wire, 2<<20)
	bps, _ := goodput(evs)
	if bps > 22e6 {
		t.Errorf("server to client at %.1f Mbit/s through a 20 Mbit/s path", bps/1e6)
	}
	if p.Wire.Stats().Bottleneck != 0 {
		t.Errorf("%+v", p.Wire.Stats())
	}
}

// TestPathChecks: impossible settings are refused.
func TestPathChecks(t *testing.T) {
	for _, p := range []stack.Path{
		{Loss: 101}, {Rate: -1}, {Jitter: -time.Millisecond}, {Queue: -1},
		{Burst: &stack.GilbertElliott{P: 200}}, {Down: []stack.Outage{{At: time.Second}}},
	} {
		if _, err := stack.NewWire(stack.WireConfig{Path: p}); err == nil {
			t.Errorf("NewWire accepted %+v", p)
		}
		if _, err := stack.NewWire(stack.WireConfig{Out: map[int]stack.Path{1: p}}); err == nil {
			t.Errorf("NewWire accepted port 1's path %+v", p)
		}
	}
}
