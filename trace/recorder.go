package trace

import (
	"errors"
	"sync"
	"time"
)

// Sink receives a run's events one at a time, in the order they happened.
// Event is called on a goroutine of the Recorder's, a moment after the
// event was recorded, never by two goroutines at once: it must not call
// the Recorder, must not block on anything but its own output, and must
// not keep e past the call unless it copies it.
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
// The sinks get the events on a goroutine of their own, started when
// events wait and gone when none do: a layer that records (netstack's
// segment processing among them) spends a moment stamping the event and
// never waits while a view renders one. Flush and Stop wait until the
// sinks have everything recorded before them.
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
	clock   Clock     // nil: the recorder's own, real time
	start   time.Time // with its monotonic reading
	seq     uint64
	sinks   []Sink
	stopped bool

	sources []*Source
	open    int       // sources not closed
	held    []Event   // events waiting for the sources, in time order
	last    time.Time // the time of the last event handed to the sinks

	// queue holds the events handed on, numbered, for the sinks; spare
	// is the slice the sinks had last, for the next queue. busy is set
	// while a goroutine hands the queue to the sinks; idle is
	// broadcast when it ends.
	queue, spare []Event
	busy         bool
	timer        *time.Timer // starts the goroutine for a short queue
	idle         sync.Cond
	// sinkMu is held while a sink is called: the deliverer's Event, a
	// Flush's Flush.
	sinkMu sync.Mutex
}

// Clock is a source of time for a Recorder: the clock a run's network
// runs on (nsftp's stack.Clock), which may run slow, jump, or stand still
// while the run waits for the person watching it. Now must never go
// backwards.
type Clock interface {
	Now() time.Time
}

// NewRecorder returns a recorder that hands events to sinks, stamped
// with real time.
func NewRecorder(sinks ...Sink) *Recorder {
	return NewRecorderOn(nil, sinks...)
}

// NewRecorderOn returns a recorder that stamps events with clock's time,
// the time of the network the run is on, so that every view's times are
// the network's: a run paused at step mode's prompts reads as if nobody
// had paused it. A nil clock is real time.
func NewRecorderOn(clock Clock, sinks ...Sink) *Recorder {
	r := &Recorder{clock: clock, start: time.Now(), sinks: sinks}
	r.idle.L = &r.mu
	return r
}

// Now is the recorder's time: its clock's, or the wall time of its start
// plus the monotonic time since, so that a clock step (NTP) cannot make
// recorded times go backwards.
func (r *Recorder) Now() time.Time {
	if r.clock != nil {
		return r.clock.Now().Round(0)
	}
	return r.start.Add(time.Since(r.start)).Round(0)
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
	e.Time = r.Now()
	if r.open == 0 {
		r.deliver(&e)
		return
	}
	r.hold(e)
	r.release()
}

// deliver numbers e as the timeline's next event and queues it for the
// sinks. Called with mu held.
func (r *Recorder) deliver(e *Event) {
	r.seq++
	e.Seq = r.seq
	if e.Time.Before(r.last) {
		// A source later than it promised: keep time from going back.
		e.Time = r.last
	}
	r.last = e.Time
	if len(r.sinks) == 0 {
		return
	}
	r.queue = append(r.queue, *e)
	switch {
	case r.busy:
	case len(r.queue) >= deliverBatch:
		if r.timer != nil {
			r.timer.Stop()
		}
		r.busy = true
		go r.run()
	case len(r.queue) == 1:
		if r.timer == nil {
			r.timer = time.AfterFunc(deliverDelay, r.kick)
		} else {
			r.timer.Reset(deliverDelay)
		}
	}
}

// Events are handed to the sinks in batches, by a goroutine started when
// deliverBatch of them wait or when the first has waited deliverDelay:
// a bulk transfer's tens of thousands of events a second then cost a
// goroutine's start per batch, not one each, and a quiet run's lines
// still show within a millisecond.
const (
	deliverBatch = 256
	deliverDelay = time.Millisecond
)

// kick starts the sinks' goroutine for events that waited deliverDelay.
func (r *Recorder) kick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.busy && len(r.queue) > 0 {
		r.busy = true
		go r.run()
	}
}

// run hands the queue to the sinks until it is empty.
func (r *Recorder) run() {
	r.mu.Lock()
	for len(r.queue) > 0 {
		batch := r.queue
		r.queue, r.spare = r.spare[:0], nil
		r.mu.Unlock()
		r.sinkMu.Lock()
		for i := range batch {
			for _, s := range r.sinks {
				s.Event(&batch[i])
			}
		}
		for _, s := range r.sinks {
			if ls, ok := s.(LineSink); ok {
				// An error is kept by the sink, for Flush and Stop.
				ls.EndBatch()
			}
		}
		r.sinkMu.Unlock()
		clear(batch) // the events' parts are the sinks' to keep, or garbage
		r.mu.Lock()
		r.spare = batch[:0]
	}
	r.busy = false
	r.idle.Broadcast()
	r.mu.Unlock()
}

// waitIdle waits until the sinks have every event queued. Called with mu
// held.
func (r *Recorder) waitIdle() {
	if !r.busy && len(r.queue) > 0 {
		r.busy = true
		go r.run()
	}
	for r.busy {
		r.idle.Wait()
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
	r.release()
	return r.flush()
}

// flush waits for the sinks to have every event queued and has them
// write out what they hold. Called with mu held; returns with it
// released.
func (r *Recorder) flush() error {
	r.waitIdle()
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	r.mu.Unlock()
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
