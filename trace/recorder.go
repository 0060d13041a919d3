package trace

import (
	"errors"
	"sync"
	"time"
)

// Sink receives a run's events one at a time, in the order they happened.
// Event is called with the Recorder's lock held: it must not block on
// anything but its own output, and must not keep e past the call unless it
// copies it.
type Sink interface {
	Event(e *Event)
	// Flush writes out anything held back (a text view holds a call's
	// beginning until it knows whether the call ends at once).
	Flush() error
}

// Recorder is a run's timeline. Every layer records into it; it stamps
// each event with one clock and a sequence number under one lock, so the
// order of events is the order they were recorded in and times never go
// backwards, and hands them to its sinks in that order.
//
// A layer records an event at the moment it knows the fact (a call's
// beginning before the call runs, a segment as it crosses the link), so
// the timeline's order is causal: what caused an event was recorded
// before it.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time // with its monotonic reading
	seq     uint64
	sinks   []Sink
	stopped bool
}

// NewRecorder returns a recorder that hands events to sinks.
func NewRecorder(sinks ...Sink) *Recorder {
	return &Recorder{start: time.Now(), sinks: sinks}
}

// Record stamps e with the time and its place in the timeline and hands
// it to the sinks. It is an Observer. Events recorded after Stop are
// dropped: what follows is teardown, not the run.
func (r *Recorder) Record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.seq++
	e.Seq = r.seq
	// The wall time of the start plus monotonic time since: a clock
	// step (NTP) cannot make the recorded times go backwards.
	e.Time = r.start.Add(time.Since(r.start)).Round(0)
	for _, s := range r.sinks {
		s.Event(&e)
	}
}

// Flush has the sinks write out what they hold back, so that what the
// run has done so far is on screen (before a step-mode prompt).
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flush()
}

func (r *Recorder) flush() error {
	var errs []error
	for _, s := range r.sinks {
		errs = append(errs, s.Flush())
	}
	return errors.Join(errs...)
}

// Stop ends the timeline: later events are dropped, the sinks are flushed,
// and the first error any of them met is returned. It is safe to call more
// than once.
func (r *Recorder) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return r.flush()
}

// Keep is a Sink that keeps every event, for views drawn at the end of a
// run (the ladder diagram).
type Keep struct {
	Events []Event
}

// Event implements Sink.
func (k *Keep) Event(e *Event) { k.Events = append(k.Events, *e) }

// Flush implements Sink.
func (k *Keep) Flush() error { return nil }
