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
//
// Some layers learn of what happened only later: the kernel's trace
// buffer and a packet socket are read a few milliseconds behind, each
// event stamped with the time it happened. They record through a Source.
// While a recorder has open sources it holds every event back until each
// source has delivered everything up to the event's time, and hands
// events to its sinks in the order of their times: the timeline stays
// causal across layers, a few milliseconds late.
type Recorder struct {
	mu      sync.Mutex
	start   time.Time // with its monotonic reading
	seq     uint64
	sinks   []Sink
	stopped bool

	sources []*Source
	open    int       // sources not closed
	held    []Event   // events waiting for the sources, in time order
	last    time.Time // the time of the last event handed to the sinks
}

// NewRecorder returns a recorder that hands events to sinks.
func NewRecorder(sinks ...Sink) *Recorder {
	return &Recorder{start: time.Now(), sinks: sinks}
}

// Now is the recorder's clock: the wall time of its start plus the
// monotonic time since, so that a clock step (NTP) cannot make recorded
// times go backwards.
func (r *Recorder) Now() time.Time { return r.start.Add(time.Since(r.start)).Round(0) }

// Record stamps e with the time and its place in the timeline and hands
// it to the sinks. It is an Observer. Events recorded after Stop are
// dropped: what follows is teardown, not the run.
func (r *Recorder) Record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	e.Time = r.Now()
	if r.open == 0 {
		r.deliver(&e)
		return
	}
	r.hold(e)
	r.release()
}

// deliver hands e to the sinks as the timeline's next event. Called with
// mu held.
func (r *Recorder) deliver(e *Event) {
	r.seq++
	e.Seq = r.seq
	if e.Time.Before(r.last) {
		// A source later than it promised: keep time from going back.
		e.Time = r.last
	}
	r.last = e.Time
	for _, s := range r.sinks {
		s.Event(e)
	}
}

// hold keeps e until the sources have caught up with its time, after the
// events held with an earlier or the same time. Events arrive nearly in
// order, so the search from the end is short.
func (r *Recorder) hold(e Event) {
	i := len(r.held)
	for i > 0 && e.Time.Before(r.held[i-1].Time) {
		i--
	}
	r.held = append(r.held, Event{})
	copy(r.held[i+1:], r.held[i:])
	r.held[i] = e
}

// release hands the sinks every held event that no open source can still
// precede. Called with mu held.
func (r *Recorder) release() {
	var upTo time.Time
	if r.open > 0 {
		first := true
		for _, s := range r.sources {
			if !s.closed && (first || s.upTo.Before(upTo)) {
				upTo, first = s.upTo, false
			}
		}
	}
	n := 0
	for n < len(r.held) && (r.open == 0 || !r.held[n].Time.After(upTo)) {
		r.deliver(&r.held[n])
		n++
	}
	if n > 0 {
		r.held = append(r.held[:0], r.held[n:]...)
	}
}

// Flush has the sinks write out what they hold back, so that what the
// run has done so far is on screen (before a step-mode prompt). Sources
// with a catch-up function are asked to deliver everything up to now
// first.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	sources := append([]*Source(nil), r.sources...)
	r.mu.Unlock()
	now := r.Now()
	for _, s := range sources {
		if s.catchUp != nil && !s.isClosed() {
			s.catchUp(now)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.release()
	return r.flush()
}

func (r *Recorder) flush() error {
	var errs []error
	for _, s := range r.sinks {
		errs = append(errs, s.Flush())
	}
	return errors.Join(errs...)
}

// Stop ends the timeline: the events held for sources are handed on,
// later events are dropped, the sinks are flushed, and the first error any
// of them met is returned. It is safe to call more than once.
func (r *Recorder) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopped {
		r.open = 0
		for _, s := range r.sources {
			s.closed = true
		}
		r.release()
	}
	r.stopped = true
	return r.flush()
}

// Source is a layer that records events late, each stamped with the time
// it happened, and says how far it has caught up.
type Source struct {
	r       *Recorder
	upTo    time.Time // everything that happened up to it was delivered
	closed  bool
	catchUp func(time.Time)
}

// NewSource opens a source. Until it is closed, or says it has caught
// up, the recorder holds back every event from the moment of this call
// on. catchUp, if not nil, is called (without the recorder's lock) when
// the recorder is flushed, to have the source deliver everything up to
// the given time before it returns; it should not wait long.
func (r *Recorder) NewSource(catchUp func(upTo time.Time)) *Source {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Source{r: r, upTo: r.Now(), catchUp: catchUp, closed: r.stopped}
	if !r.stopped {
		r.sources = append(r.sources, s)
		r.open++
	}
	return s
}

// Record records e, which happened at e.Time on the recorder's clock.
func (s *Source) Record(e Event) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || s.closed {
		return
	}
	r.hold(e)
}

// Advance says the source has delivered everything that happened up to
// upTo; held events up to there go to the sinks once every source has
// said as much.
func (s *Source) Advance(upTo time.Time) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.closed || !upTo.After(s.upTo) {
		return
	}
	s.upTo = upTo
	r.release()
}

// Close says the source has delivered everything it will: the recorder
// no longer waits for it.
func (s *Source) Close() {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	r.open--
	r.release()
}

func (s *Source) isClosed() bool {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	return s.closed
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
