package stack

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// deadline is a net.Conn-style deadline: a channel that closes when the
// deadline passes, replaced whenever the deadline moves. The zero value has
// no deadline.
//
// It runs on the host's clock: a deadline set d ahead of the wall time
// (time.Now().Add(d), as net.Conn's users write it) passes once d of the
// network's time has passed, so a held clock (step mode) holds a socket's
// deadlines with its TCP, a slowed one stretches them with its timers,
// and a jumping one jumps to them.
type deadline struct {
	clock *Clock // nil: real time
	mu    sync.Mutex
	timer tcpip.Timer
	ch    chan struct{} // closed when the deadline passes; nil means none set
}

// channel returns a channel that is closed once the current deadline has
// passed; it never closes if no deadline is set.
func (d *deadline) channel() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

// passed reports whether the current deadline has passed: a call must
// then fail at once, with data to move or not, as the kernel's socket
// calls do after SO_SNDTIMEO or a Go deadline in the past.
func (d *deadline) passed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.ch:
		return true
	default:
		return false
	}
}

// set moves the deadline to t; the zero time removes it. Calls already
// waiting see the new deadline, as with net.Conn.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	// A channel that has fired cannot be reused; waiters on an unfired one
	// keep it, so an extended deadline still applies to them.
	select {
	case <-d.ch:
		d.ch = nil
	default:
	}
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	// The timer closes the channel only if it is still the current
	// timer: a set racing with an expiring timer must neither see the
	// channel closed twice nor an extended deadline expire early.
	var tm tcpip.Timer
	fire := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.timer == tm {
			d.timer = nil
			close(d.ch)
		}
	}
	if d.clock != nil {
		tm = d.clock.AfterFunc(dur, fire)
	} else {
		tm = tcpip.NewStdTimer(time.AfterFunc(dur, fire))
	}
	d.timer = tm
}

// stop releases the timer, if any.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
