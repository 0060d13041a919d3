package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"
)

// A jumping clock (ClockConfig.Jump) is virtual time for tests: it stands
// still while anything on the network runs, and when every goroutine of
// the network is idle it jumps to the next timer, as a testing/synctest
// bubble's clock does.
//
// synctest itself cannot hold a netstack host. Its clock moves only when
// every goroutine of the bubble is durably blocked, and netstack's TCP
// processors park in gVisor's sleep package, through its own gopark with
// the wait reason "select", which the runtime never counts as durable:
// with a Pair in a bubble, time.Sleep never returns
// (TestSynctestCannotHoldNetstack shows it; a sync.Mutex wait is not
// durable either, by synctest's design). And a Pair made in a bubble can
// only be closed from inside it: closing its channels from outside is a
// fatal error.
//
// So the clock finds idleness itself. The network's goroutines carry a
// pprof label naming the clock: a host's and a wire's goroutines are
// started with it, timer callbacks run with it, and Clock.Run gives it to
// a test's own; goroutines inherit labels from the goroutine that starts
// them, as they inherit a bubble. The jumper waits until nothing on the
// clock has been touched (a time read, a timer set, a frame sent) for
// jumpQuiet, then reads every goroutine's state from a traceback of all
// of them (runtime.Stack, with GODEBUG=tracebacklabels=1, which Go 1.26
// has and NewClock sets), and jumps only if none of the network's is
// running, runnable, in a system call or waiting for a mutex, and nothing
// touched the clock meanwhile. Goroutines outside the network (the test
// binary's other tests, the runtime's own) do not count, as they do not
// in a bubble.
type jumper struct {
	c      *Clock
	labels pprof.LabelSet
	ctx    context.Context // with labels, for timer callbacks
	tag    []byte          // the label as a traceback prints it

	activity atomic.Uint64 // bumped whenever anything touches the clock
	pokeCh   chan struct{}
	quit     chan struct{}
	exited   chan struct{}
	buf      []byte
	jumps    atomic.Uint64
}

// jumpQuiet is how long nothing must touch a jumping clock before the
// jumper looks at the network's goroutines (runtime.Stack, about 40µs
// for a Pair): a goroutine of the network that has work reads the time
// or sets a timer within microseconds, so the look is mostly spared
// while it works. jumpSpin is how long the jumper yields instead of
// sleeping, waiting for that quiet.
const (
	jumpQuiet = 50 * time.Microsecond
	jumpSpin  = 5 * time.Millisecond
)

// labelKey is the pprof label that marks a jumping clock's goroutines.
const labelKey = "nsftp-clock"

func newJumper(c *Clock) (*jumper, error) {
	id := fmt.Sprintf("%p", c)
	j := &jumper{
		c:      c,
		labels: pprof.Labels(labelKey, id),
		tag:    []byte(fmt.Sprintf("%q: %q", labelKey, id)),
		pokeCh: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
		buf:    make([]byte, 64<<10),
	}
	j.ctx = pprof.WithLabels(context.Background(), j.labels)
	if err := tracebackLabels(); err != nil {
		return nil, err
	}
	go j.run()
	return j, nil
}

// tracebackLabels makes the runtime print goroutine labels in tracebacks
// (GODEBUG=tracebacklabels=1, new in Go 1.26) and checks that it does.
// The setting is the process's: it adds the labels to crash dumps too,
// which changes nothing else.
func tracebackLabels() error {
	if printsLabels() {
		return nil
	}
	godebug := os.Getenv("GODEBUG")
	if godebug != "" {
		godebug += ","
	}
	// The runtime reads GODEBUG again when os.Setenv changes it.
	os.Setenv("GODEBUG", godebug+"tracebacklabels=1")
	if !printsLabels() {
		return errors.New("stack: a jumping clock needs goroutine labels in tracebacks (GODEBUG=tracebacklabels=1, Go 1.26 or later)")
	}
	return nil
}

func printsLabels() bool {
	var ok bool
	pprof.Do(context.Background(), pprof.Labels(labelKey+"-check", "1"), func(context.Context) {
		buf := make([]byte, 1024)
		n := runtime.Stack(buf, false)
		ok = bytes.Contains(buf[:n], []byte(labelKey+"-check"))
	})
	return ok
}

// touch notes that something used the clock: the network is not idle.
func (j *jumper) touch() { j.activity.Add(1) }

// poke tells the jumper that what it waits for may have changed: a timer
// set on an empty clock, a hold released, a callback returned.
func (j *jumper) poke() {
	j.touch()
	select {
	case j.pokeCh <- struct{}{}:
	default:
	}
}

// done notes that a timer's callback returned.
func (j *jumper) done() {
	c := j.c
	c.mu.Lock()
	c.running--
	c.mu.Unlock()
	j.poke()
}

func (j *jumper) stop() {
	close(j.quit)
	<-j.exited
}

// run is the jumper's goroutine.
func (j *jumper) run() {
	defer close(j.exited)
	// Not one of the network's goroutines, whatever started it: it is
	// the one that looks at them.
	pprof.SetGoroutineLabels(context.Background())
	tick := time.NewTimer(time.Hour)
	defer tick.Stop()
	for {
		if !j.pending() {
			select {
			case <-j.pokeCh:
			case <-j.quit:
				return
			}
			continue
		}
		act, ok := j.quiet(tick)
		if !ok {
			return
		}
		if j.idle() {
			j.jump(act)
		}
	}
}

// quiet waits until nothing has touched the clock for jumpQuiet, and
// returns the activity count then; false when the clock is closing. It
// yields rather than sleeps for the first jumpSpin, as the runtime's
// timers may take a millisecond to wake a sleeper (a jump costs two
// waits), and sleeps a tick at a time after, for a network that works
// long without a pause.
func (j *jumper) quiet(tick *time.Timer) (uint64, bool) {
	last, since := j.activity.Load(), time.Now()
	start := since
	for {
		if time.Since(start) < jumpSpin {
			runtime.Gosched()
		} else {
			tick.Reset(jumpQuiet)
			select {
			case <-tick.C:
			case <-j.pokeCh:
			case <-j.quit:
				return 0, false
			}
		}
		select {
		case <-j.quit:
			return 0, false
		default:
		}
		if act := j.activity.Load(); act != last {
			last, since = act, time.Now()
			continue
		}
		if time.Since(since) >= jumpQuiet {
			return last, true
		}
	}
}

// pending reports whether there is a timer to jump to and nothing that
// forbids a jump.
func (j *jumper) pending() bool {
	c := j.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.holds == 0 && c.running == 0 && len(c.timers) > 0
}

// jump moves the clock to its next timer and fires every timer due then,
// unless anything touched the clock since act was read.
func (j *jumper) jump(act uint64) {
	c := j.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.holds > 0 || c.running > 0 || len(c.timers) == 0 || j.activity.Load() != act {
		return
	}
	if d := c.timers[0].when - c.since(); d > 0 {
		c.setRateLocked(true, d)
	}
	j.jumps.Add(1)
	c.fireDueLocked()
}

// idle reports whether every goroutine labelled as the network's is
// blocked waiting for something: a channel, a select, a condition, a
// sleep, I/O. One running, runnable, in a system call, or waiting for a
// mutex (which someone running holds) is at work.
func (j *jumper) idle() bool {
	for {
		n := runtime.Stack(j.buf, true)
		if n < len(j.buf) {
			j.buf = j.buf[:cap(j.buf)]
			return tracebackIdle(j.buf[:n], j.tag)
		}
		j.buf = make([]byte, 2*len(j.buf))
	}
}

// tracebackIdle reads a traceback of every goroutine (runtime.Stack's),
// the caller's first, and reports whether each goroutine whose labels
// carry tag, the caller apart, is idle.
func tracebackIdle(tb, tag []byte) bool {
	first := true
	for len(tb) > 0 {
		line := tb
		if i := bytes.IndexByte(tb, '\n'); i >= 0 {
			line, tb = tb[:i], tb[i+1:]
		} else {
			tb = nil
		}
		if !bytes.HasPrefix(line, []byte("goroutine ")) {
			continue
		}
		if first {
			first = false
			continue
		}
		open := bytes.IndexByte(line, '[')
		end := bytes.LastIndex(line, []byte("]:"))
		if open < 0 || end < open {
			continue
		}
		status := line[open+1 : end]
		if !bytes.Contains(status, tag) {
			continue
		}
		if !idleStatus(string(status)) {
			return false
		}
	}
	return true
}

// idleStatus reports whether a goroutine's status in a traceback ("select",
// "chan receive, 2 minutes", "running labels:{...}") is a wait that only
// another goroutine, a timer or I/O ends.
func idleStatus(status string) bool {
	if i := strings.Index(status, " labels:{"); i >= 0 {
		status = status[:i]
	}
	if i := strings.IndexByte(status, ','); i >= 0 {
		status = status[:i]
	}
	switch {
	case strings.HasPrefix(status, "select"), strings.HasPrefix(status, "chan "),
		status == "sleep", status == "IO wait", status == "sync.Cond.Wait",
		status == "sync.WaitGroup.Wait", status == "semacquire":
		return true
	}
	return false
}
