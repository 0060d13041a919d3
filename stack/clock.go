package stack

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ClockConfig describes a network's clock.
type ClockConfig struct {
	// Slow, above 1, runs the clock that many times slower than real
	// time: at 10 a 1 ms delay on the wire takes 10 ms, and so does
	// every timer of every host on it (--slow 10, for watching). 0 and 1
	// are real speed.
	Slow float64
	// Jump makes the clock virtual, for tests: it stands still while
	// anything on the network runs, and whenever every goroutine of the
	// network is idle it jumps to the next timer, as testing/synctest's
	// bubbles do (which cannot hold netstack: see jump.go). A 30 s outage
	// or a 60 s TIME-WAIT then passes in a moment of real time, with the
	// same trace. The network's goroutines are those of its hosts and
	// wire, the timers' callbacks, and those started through Clock.Run.
	Jump bool
}

// Clock is a network's time: what its netstack hosts (gVisor's
// tcpip.Clock), its virtual wire's delays, rates and outages, its sockets'
// deadlines, its captures and its recorded events all read, so that they
// agree. It runs at real speed, or slowed (ClockConfig.Slow), or jumps
// from timer to timer (ClockConfig.Jump), and it stands still while
// anything holds it (Hold): a host holds it while its Gate (step mode)
// waits for the person at the prompt, so a pause is no time at all to
// TCP, and a trace of a paused run reads as if nobody had paused.
//
// Its times are the wall time at which it was made plus the clock's time
// since; they never go backwards.
type Clock struct {
	slow  float64   // 1 at real speed
	jump  bool      // virtual time, moved only by jumps (jump.go)
	epoch time.Time // the wall time at NewClock, without a monotonic reading
	real  time.Time // the same instant with its monotonic reading: real time counts from it

	// rate is how the clock's time follows real time now, replaced (under
	// mu) whenever that changes: read without a lock by every Now. gen is
	// odd while it is being replaced (a sequence lock): a reader that saw
	// it change reads again, so that no reader can see time go back.
	rate atomic.Pointer[rate]
	gen  atomic.Uint64
	// lastMono is the last NowMonotonic reading handed out.
	lastMono atomic.Int64

	mu      sync.Mutex
	holds   int
	timers  timerHeap
	seq     uint64
	wake    *time.Timer // real-time timer for the earliest clock timer; nil until needed
	wakeAt  int64       // the clock time wake is set for; -1 when not set
	closed  bool
	running int // callbacks started and not yet returned (jump mode waits for them)

	j *jumper // nil unless jumping
}

// rate maps real time to the clock's: at real time r0 (since Clock.real)
// the clock read v0, and it moves 1/slow as fast as real time, or not at
// all while still.
type rate struct {
	v0, r0 int64
	still  bool
}

var _ tcpip.Clock = (*Clock)(nil)

// NewClock returns a clock that reads the current wall time. A jumping
// clock must be closed; any clock may be.
func NewClock(cfg ClockConfig) (*Clock, error) {
	slow := cfg.Slow
	switch {
	case math.IsNaN(slow) || math.IsInf(slow, 0) || slow < 0:
		return nil, fmt.Errorf("stack: clock slowed by %v: want a factor of 1 or more", slow)
	case slow != 0 && slow < 1:
		return nil, fmt.Errorf("stack: clock slowed by %v: a factor below 1 would speed it up", slow)
	case slow > 1 && cfg.Jump:
		return nil, errors.New("stack: a jumping clock cannot also be slowed")
	}
	if slow == 0 {
		slow = 1
	}
	now := time.Now()
	c := &Clock{slow: slow, jump: cfg.Jump, epoch: now.Round(0), real: now, wakeAt: -1}
	c.rate.Store(&rate{still: cfg.Jump})
	if cfg.Jump {
		j, err := newJumper(c)
		if err != nil {
			return nil, err
		}
		c.j = j
	}
	return c, nil
}

// newWallClock is the clock of a host or wire not given one: real time.
func newWallClock() *Clock {
	c, _ := NewClock(ClockConfig{})
	return c
}

// Slow returns how many times slower than real time the clock runs.
func (c *Clock) Slow() float64 { return c.slow }

// Jumping reports whether the clock is virtual (ClockConfig.Jump).
func (c *Clock) Jumping() bool { return c.jump }

// realNow is real time since c.real.
func (c *Clock) realNow() int64 { return int64(time.Since(c.real)) }

// at is the clock's time at real time r under rate s.
func (c *Clock) at(s *rate, r int64) int64 {
	if s.still {
		return s.v0
	}
	d := r - s.r0
	if c.slow != 1 {
		d = int64(float64(d) / c.slow)
	}
	return s.v0 + d
}

// since is the clock's time: how long it has run since NewClock. A rate
// is replaced only after the real time it starts at has been read, with
// gen odd; a reader whose real time could be later than that sees gen
// change and reads again, so the new rate's start is never behind a time
// already handed out.
func (c *Clock) since() int64 {
	for {
		g := c.gen.Load()
		if g&1 == 0 {
			v := c.at(c.rate.Load(), c.realNow())
			if c.gen.Load() == g {
				return v
			}
		}
		runtime.Gosched()
	}
}

// Now implements tcpip.Clock: the wall time at NewClock plus the clock's
// time since.
func (c *Clock) Now() time.Time {
	if c.j != nil {
		c.j.touch()
	}
	return c.epoch.Add(time.Duration(c.since()))
}

// NowMonotonic implements tcpip.Clock. Its readings are distinct, each at
// least a nanosecond after the one before, even while the clock stands
// still: netstack times what it sends with them, and TCP orders its
// segments by when they were sent. With every segment sent at one instant
// RACK (RFC 8985) cannot tell which was sent after the one just
// delivered: on a jumping clock with a wire that corrupted a frame, a
// sender took its whole flight for lost again and again, and resent 1.6
// million segments at one instant without end. Now, which events, timers
// and deadlines read, stays exact.
func (c *Clock) NowMonotonic() tcpip.MonotonicTime {
	if c.j != nil {
		c.j.touch()
	}
	v := c.since()
	for {
		last := c.lastMono.Load()
		if v <= last {
			v = last + 1
		}
		if c.lastMono.CompareAndSwap(last, v) {
			break
		}
	}
	var t tcpip.MonotonicTime
	return t.Add(time.Duration(v))
}

// Since is how much of the clock's time has passed since t, one of its
// Now times.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// setRateLocked moves the clock to a new rate (still, or running), its
// time where it is now plus add. Called with mu held.
func (c *Clock) setRateLocked(still bool, add int64) {
	c.gen.Add(1)
	old := c.rate.Load()
	r := c.realNow()
	c.rate.Store(&rate{v0: c.at(old, r) + add, r0: r, still: still || c.jump})
	c.gen.Add(1)
}

// Hold stops the clock until release is called (once; later calls do
// nothing). Holds count: the clock runs again when every hold is
// released. While held, no timer fires and no time passes for the
// network's hosts, wire, deadlines and events, however long the hold.
func (c *Clock) Hold() (release func()) {
	c.mu.Lock()
	c.holds++
	if c.holds == 1 && !c.jump {
		c.setRateLocked(true, 0)
		c.disarmLocked()
	}
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(c.release) }
}

func (c *Clock) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds--
	if c.holds > 0 {
		return
	}
	if !c.jump {
		c.setRateLocked(false, 0)
		c.armLocked()
	}
	if c.j != nil {
		c.j.poke()
	}
}

// Held reports whether anything holds the clock.
func (c *Clock) Held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holds > 0
}

// Elapse has d of real time pass at once, as if the program had been
// stopped for d: a running clock moves on by d (d/Slow when slowed) and
// the timers that fall due fire; a held clock does not move, as held time
// does not; a jumping clock moves on by d. Tests use it to stand for a
// pause they need not wait out.
func (c *Clock) Elapse(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds > 0 {
		return
	}
	add := int64(d)
	if !c.jump && c.slow != 1 {
		add = int64(float64(d) / c.slow)
	}
	c.setRateLocked(c.jump, add)
	c.fireDueLocked()
	if !c.jump {
		c.armLocked()
	} else {
		c.j.poke()
	}
}

// Run runs f on the calling goroutine as part of the network, and every
// goroutine f starts: a jumping clock jumps only while they too are idle,
// as a synctest bubble waits for its goroutines. On other clocks it just
// calls f.
func (c *Clock) Run(f func()) {
	if c.j == nil {
		f()
		return
	}
	pprof.Do(context.Background(), c.j.labels, func(context.Context) { f() })
}

// Close stops the clock's timers: none fires after it. Hosts and wires
// using the clock should be closed first.
func (c *Clock) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.disarmLocked()
	c.timers = nil
	c.mu.Unlock()
	if c.j != nil {
		c.j.stop()
	}
}

// AfterFunc implements tcpip.Clock: f runs in its own goroutine once d of
// the clock's time has passed.
func (c *Clock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	t := &clockTimer{c: c, f: f, index: -1}
	t.Reset(d)
	return t
}

// clockTimer is a timer on a Clock, in its heap while it is set.
type clockTimer struct {
	c     *Clock
	f     func()
	when  int64 // clock time it fires at
	seq   uint64
	index int // in c.timers; -1 when not set
}

var _ tcpip.Timer = (*clockTimer)(nil)

// Stop implements tcpip.Timer.
func (t *clockTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j != nil {
		c.j.touch()
	}
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	return true
}

// Reset implements tcpip.Timer: the timer fires d from now, whether it
// was set or not.
func (t *clockTimer) Reset(d time.Duration) {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.j != nil {
		c.j.touch()
	}
	if c.closed {
		return
	}
	t.when = c.since() + max(int64(d), 0)
	c.seq++
	t.seq = c.seq
	if t.index >= 0 {
		heap.Fix(&c.timers, t.index)
	} else {
		heap.Push(&c.timers, t)
	}
	if c.jump {
		if t.index == 0 {
			c.j.poke()
		}
		return
	}
	if c.holds == 0 && (c.wakeAt < 0 || t.when < c.wakeAt) {
		c.armLocked()
	}
}

// armLocked sets the real-time timer for the earliest clock timer. Called
// with mu held, on a clock that runs.
func (c *Clock) armLocked() {
	if c.holds > 0 || c.closed || c.jump || len(c.timers) == 0 {
		return
	}
	when := c.timers[0].when
	if c.wakeAt == when {
		return
	}
	d := when - c.since()
	if c.slow != 1 {
		d = int64(math.Ceil(float64(d) * c.slow))
	}
	d = max(d, 0)
	c.wakeAt = when
	if c.wake == nil {
		c.wake = time.AfterFunc(time.Duration(d), c.tick)
	} else {
		c.wake.Reset(time.Duration(d))
	}
}

// disarmLocked stops the real-time timer. Called with mu held.
func (c *Clock) disarmLocked() {
	if c.wake != nil {
		c.wake.Stop()
	}
	c.wakeAt = -1
}

// tick fires the timers due and sets the real-time timer for the next.
func (c *Clock) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeAt = -1
	if c.holds > 0 || c.closed {
		return
	}
	c.fireDueLocked()
	c.armLocked()
}

// fireDueLocked starts the callbacks of every timer due by the clock's
// time, each in its own goroutine as tcpip.Clock asks. Called with mu
// held.
func (c *Clock) fireDueLocked() {
	now := c.since()
	for len(c.timers) > 0 && c.timers[0].when <= now {
		t := heap.Pop(&c.timers).(*clockTimer)
		c.start(t.f)
	}
}

// start runs a timer's callback. A jumping clock counts it until it
// returns, and runs it as part of the network.
func (c *Clock) start(f func()) {
	if c.j == nil {
		go f()
		return
	}
	c.running++
	go func() {
		pprof.SetGoroutineLabels(c.j.ctx)
		defer c.j.done()
		f()
	}()
}

// timerHeap orders set timers by when they fire, then by when they were
// set.
type timerHeap []*clockTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when != h[j].when {
		return h[i].when < h[j].when
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*clockTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
