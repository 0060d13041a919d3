package stack

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestClock(t *testing.T, cfg ClockConfig) *Clock {
	t.Helper()
	c, err := NewClock(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// fired returns a callback for AfterFunc and a channel that receives the
// clock's time when it runs.
func fired(c *Clock) (func(), chan time.Duration) {
	ch := make(chan time.Duration, 1)
	start := c.Now()
	return func() { ch <- c.Since(start) }, ch
}

func TestClockConfigRefused(t *testing.T) {
	for _, cfg := range []ClockConfig{{Slow: 0.5}, {Slow: -1}, {Slow: 10, Jump: true}} {
		if _, err := NewClock(cfg); err == nil {
			t.Errorf("NewClock(%+v) accepted", cfg)
		}
	}
}

func TestClockRealSpeed(t *testing.T) {
	c := newTestClock(t, ClockConfig{})
	if d := time.Since(c.Now()); d < -time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("a real-speed clock reads %v from the wall time", d)
	}
	f, ch := fired(c)
	start := time.Now()
	c.AfterFunc(20*time.Millisecond, f)
	at := <-ch
	if real := time.Since(start); real < 20*time.Millisecond || at < 20*time.Millisecond {
		t.Errorf("a 20ms timer fired after %v real, %v on the clock", real, at)
	}
}

// TestClockHold: a held clock reads the same however long it is held, and
// its timers wait: a timer with 30ms left when the clock was held fires
// 30ms after the release, not at once.
func TestClockHold(t *testing.T) {
	c := newTestClock(t, ClockConfig{})
	f, ch := fired(c)
	c.AfterFunc(50*time.Millisecond, f)
	time.Sleep(20 * time.Millisecond)
	release := c.Hold()
	inner := c.Hold() // holds count
	held := c.Now()
	time.Sleep(150 * time.Millisecond)
	if got := c.Now(); !got.Equal(held) {
		t.Fatalf("a held clock moved by %v", got.Sub(held))
	}
	release()
	release() // a second call does nothing
	if !c.Held() {
		t.Fatal("released with a hold left")
	}
	select {
	case at := <-ch:
		t.Fatalf("a timer fired at %v while the clock was held", at)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	inner()
	at := <-ch
	if at < 50*time.Millisecond || at > 150*time.Millisecond {
		t.Errorf("a 50ms timer fired at %v of the clock's time", at)
	}
	if real := time.Since(start); real < 20*time.Millisecond {
		t.Errorf("the timer fired %v after the release; it had about 30ms left", real)
	}
}

func TestClockSlow(t *testing.T) {
	c := newTestClock(t, ClockConfig{Slow: 10})
	f, ch := fired(c)
	start := time.Now()
	c.AfterFunc(10*time.Millisecond, f)
	at := <-ch
	real := time.Since(start)
	if real < 100*time.Millisecond {
		t.Errorf("a 10ms timer at a tenth of real speed fired after %v real", real)
	}
	if at < 10*time.Millisecond || at > real/5 {
		t.Errorf("a 10ms timer fired at %v of the clock's time, after %v real", at, real)
	}
}

func TestClockElapse(t *testing.T) {
	c := newTestClock(t, ClockConfig{})
	f, ch := fired(c)
	c.AfterFunc(time.Hour, f)
	release := c.Hold()
	c.Elapse(2 * time.Hour)
	select {
	case at := <-ch:
		t.Fatalf("Elapse on a held clock fired a timer (at %v)", at)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	c.Elapse(time.Hour)
	select {
	case at := <-ch:
		if at < time.Hour || at > time.Hour+time.Second {
			t.Errorf("the timer fired at %v", at)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Elapse(1h) did not fire a 1h timer")
	}
}

// TestClockMonotonic: readers racing with holds, releases and Elapse
// never see the clock go back.
func TestClockMonotonic(t *testing.T) {
	for _, cfg := range []ClockConfig{{}, {Slow: 3}} {
		c := newTestClock(t, cfg)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var back atomic.Int64
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := c.NowMonotonic()
				for {
					select {
					case <-stop:
						return
					default:
					}
					now := c.NowMonotonic()
					if now.Before(last) {
						back.Add(1)
					}
					last = now
				}
			}()
		}
		for i := range 2000 {
			release := c.Hold()
			if i%3 == 0 {
				c.Elapse(time.Microsecond)
			}
			release()
			if i%5 == 0 {
				c.Elapse(time.Microsecond)
			}
		}
		close(stop)
		wg.Wait()
		if n := back.Load(); n > 0 {
			t.Errorf("slow %v: time went back %d times", cfg.Slow, n)
		}
	}
}

// TestClockJump: a jumping clock stands still while nothing waits for it
// and jumps from timer to timer: three timers an hour apart fire at their
// times exactly, in order, at once in real time. The test sets them as
// part of the network (Clock.Run), as a test's own goroutines must be:
// set from outside it, the clock may jump between two of them if the
// test's goroutine waits to be scheduled (on a loaded CI machine the 1h
// timer fired, the clock jumped, and the "2h" one was set at 1h for 3h).
func TestClockJump(t *testing.T) {
	c := newTestClock(t, ClockConfig{Jump: true})
	var start time.Time
	got := make(chan time.Duration, 3)
	c.Run(func() {
		start = c.Now()
		for _, d := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
			c.AfterFunc(d, func() { got <- c.Since(start) })
		}
	})
	realStart := time.Now()
	for _, want := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		select {
		case at := <-got:
			if at != want {
				t.Errorf("timer fired at %v, want %v", at, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a jumping clock did not jump")
		}
	}
	if real := time.Since(realStart); real > 2*time.Second {
		t.Errorf("three hours took %v of real time", real)
	}
	if c.j.jumps.Load() != 3 {
		t.Errorf("%d jumps, want 3", c.j.jumps.Load())
	}
}

// TestClockJumpWaitsForWork: a jumping clock does not jump while a
// goroutine of the network runs (Clock.Run's, and those it starts), nor
// while the clock is held.
func TestClockJumpWaitsForWork(t *testing.T) {
	c := newTestClock(t, ClockConfig{Jump: true})
	var busy atomic.Bool
	busy.Store(true)
	done := make(chan struct{})
	c.Run(func() {
		go func() {
			defer close(done)
			end := time.Now().Add(100 * time.Millisecond)
			for time.Now().Before(end) {
				// work that never touches the clock
			}
			busy.Store(false)
		}()
	})
	fired := make(chan bool, 1)
	c.AfterFunc(time.Second, func() { fired <- busy.Load() })
	if stillBusy := <-fired; stillBusy {
		t.Error("the clock jumped while a goroutine of the network was running")
	}
	<-done

	release := c.Hold()
	c.AfterFunc(time.Second, func() { fired <- true })
	select {
	case <-fired:
		t.Fatal("a held jumping clock jumped")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("a released jumping clock did not jump")
	}
}

func TestTracebackIdle(t *testing.T) {
	tag := []byte(`"nsftp-clock": "0x1"`)
	tb := func(status string) []byte {
		return []byte("goroutine 7 [running]:\nmain.main()\n\n" +
			"goroutine 9 [running]:\nother()\n\n" +
			"goroutine 12 [select labels:{\"nsftp-clock\": \"0x2\"}]:\nelse()\n\n" +
			"goroutine 18 [" + status + " labels:{\"nsftp-clock\": \"0x1\"}]:\nmine()\n")
	}
	for status, want := range map[string]bool{
		"select": true, "chan receive": true, "chan send, 3 minutes": true, "sleep": true,
		"sync.Cond.Wait": true, "IO wait": true, "select (no cases)": true,
		"running": false, "runnable": false, "syscall": false, "sync.Mutex.Lock": false,
		"sync.RWMutex.RLock": false, "preempted": false,
	} {
		if got := tracebackIdle(tb(status), tag); got != want {
			t.Errorf("a goroutine of the network in %q: idle %v, want %v", status, got, want)
		}
	}
}
