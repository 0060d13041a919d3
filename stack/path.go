package stack

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Path is what frames go through from one port of a wire to another, as
// Linux's tc-netem and a bottleneck link model it: a rate limit with a
// finite tail-drop queue, delay with jitter, loss (independent or bursty),
// duplication, reordering, corruption, and times the link is down. The
// zero Path is a clean wire.
type Path struct {
	// Rate is the bottleneck's rate in bits per second; 0 is unlimited.
	// A frame takes its size in bits over Rate to leave, and waits in the
	// bottleneck's queue behind the frames before it.
	Rate int64
	// Queue is how many frames the bottleneck's queue holds, the one
	// being sent included; a frame that finds it full is dropped (tail
	// drop). 0 means 1000, netem's default limit. QueueBytes, if set,
	// bounds the queue in bytes instead.
	Queue      int
	QueueBytes int
	// Delay holds every frame this long after it leaves the bottleneck;
	// Jitter varies it by up to that much either way (uniformly). Frames
	// keep their order unless Reorder asks otherwise: one that would
	// overtake another waits for it.
	Delay, Jitter time.Duration
	// Loss, Duplicate, Reorder and Corrupt are percentages (0-100) of
	// frames dropped (independently of each other), delivered twice, held
	// back until the next frame has passed them, and delivered with one
	// bit flipped.
	Loss, Duplicate, Reorder, Corrupt float64
	// Burst, if set, drops frames in bursts instead of independently.
	Burst *GilbertElliott
	// Down lists times the link is down: every frame offered meanwhile is
	// lost, as on a cable pulled out and plugged back in.
	Down []Outage
}

// GilbertElliott is bursty loss as netem's "loss gemodel p r 1-h 1-k": a
// two-state chain, Good and Bad, moved every frame, or with Step every
// Step of time. All but Step are percentages.
type GilbertElliott struct {
	P        float64 // chance of going from Good to Bad
	R        float64 // chance of going from Bad to Good
	LossBad  float64 // chance of losing a frame in Bad (netem's 1-h; 100 if 0)
	LossGood float64 // chance of losing a frame in Good (netem's 1-k)
	// Step, if set, moves the chain once every Step of time instead of
	// once per frame, as a noisy channel's bursts last a time: frames
	// close together share a state, and a lone frame a second after the
	// last (a retransmission after a timeout) meets the chain moved on
	// by a second's worth of steps. Per frame, as netem does it, a Bad
	// state lasts as many frames as it takes, however long that is.
	Step time.Duration
}

// move moves the chain to now: once (per frame), or once per Step since
// the last move. After n steps from state x (1 Bad, 0 Good) the chain is
// Bad with probability pi + (x - pi)(1-p-r)^n, pi = p/(p+r) its share of
// Bad in the long run: one draw stands for all n steps.
func (b *GilbertElliott) move(bad bool, at *time.Time, now time.Time, rnd func() float64) bool {
	if b.Step <= 0 {
		if bad {
			return rnd()*100 >= b.R
		}
		return rnd()*100 < b.P
	}
	if at.IsZero() {
		*at = now
		return bad
	}
	n := int64(now.Sub(*at) / b.Step)
	if n <= 0 {
		return bad
	}
	*at = at.Add(time.Duration(n) * b.Step)
	p, r := b.P/100, b.R/100
	if p+r == 0 {
		return bad
	}
	pi, x := p/(p+r), 0.0
	if bad {
		x = 1
	}
	return rnd() < pi+(x-pi)*math.Pow(1-p-r, float64(n))
}

// Outage is a time the link is down, from At after the wire was made,
// for For.
type Outage struct {
	At, For time.Duration
}

// defaultQueue is the queue's length when Path.Queue is 0.
const defaultQueue = 1000

// longestDelay is the longest a frame of the given size can take along
// the path: its delay and jitter, and a full queue ahead of it drained at
// the path's rate.
func (p Path) longestDelay(frame int) time.Duration {
	d := p.Delay + p.Jitter
	if p.Rate > 0 {
		queued := p.QueueBytes
		if queued == 0 {
			n := p.Queue
			if n == 0 {
				n = defaultQueue
			}
			queued = n * frame
		}
		d += p.sendTime(queued + frame)
	}
	return d
}

// sendTime is how long n bytes take to leave at the path's rate (not 0).
func (p Path) sendTime(n int) time.Duration {
	return time.Duration(float64(n*8) / float64(p.Rate) * float64(time.Second))
}

// impaired reports whether the path does anything to frames.
func (p *Path) impaired() bool {
	return p.Rate > 0 || p.Delay > 0 || p.Jitter > 0 || p.Loss > 0 || p.Duplicate > 0 ||
		p.Reorder > 0 || p.Corrupt > 0 || p.Burst != nil || len(p.Down) > 0
}

// check says what is wrong with the path's settings, if anything.
func (p *Path) check() error {
	for _, v := range []struct {
		name string
		v    float64
	}{{"loss", p.Loss}, {"duplicate", p.Duplicate}, {"reorder", p.Reorder}, {"corrupt", p.Corrupt}} {
		if v.v < 0 || v.v > 100 || math.IsNaN(v.v) {
			return fmt.Errorf("%s %v%% out of range 0-100", v.name, v.v)
		}
	}
	if b := p.Burst; b != nil {
		for _, v := range []float64{b.P, b.R, b.LossBad, b.LossGood} {
			if v < 0 || v > 100 || math.IsNaN(v) {
				return fmt.Errorf("burst loss model %+v: each figure is a percentage, 0-100", *b)
			}
		}
		if b.Step < 0 {
			return fmt.Errorf("burst loss model's step %v is negative", b.Step)
		}
	}
	switch {
	case p.Rate < 0:
		return fmt.Errorf("rate %d bit/s is negative", p.Rate)
	case p.Queue < 0 || p.QueueBytes < 0:
		return fmt.Errorf("queue limit is negative")
	case p.Delay < 0 || p.Jitter < 0:
		return fmt.Errorf("delay %v or jitter %v is negative", p.Delay, p.Jitter)
	}
	for _, o := range p.Down {
		if o.At < 0 || o.For <= 0 {
			return fmt.Errorf("outage at %v for %v: the time must not be negative and the length must be positive", o.At, o.For)
		}
	}
	return nil
}

// pathState is a path in use: the bottleneck's queue, the last frame's
// delivery time, the burst model's state.
type pathState struct {
	cfg   Path
	start time.Time // the wire's; outages count from it

	mu      sync.Mutex
	queue   []queued  // frames at the bottleneck, by the time they leave it
	qBytes  int       // their bytes
	free    time.Time // when the bottleneck has sent everything queued
	lastDue time.Time // when the last frame is delivered, to keep order
	bad     bool      // Gilbert-Elliott: in the Bad state
	movedAt time.Time // Gilbert-Elliott by time: when the chain last moved
	lost    bool      // the last frame offered was lost: a burst goes on
}

type queued struct {
	leaves time.Time
	size   int
}

// fate is what the path does with one frame.
type fate int

const (
	passes fate = iota
	lostRandom
	lostQueue
	lostDown
)

// send decides a frame's fate on the path and, if it passes, when it
// arrives. rnd returns a uniform number in [0, 1) from the wire's seeded
// source. newRun reports a loss that begins a run of losses.
func (ps *pathState) send(now time.Time, size int, rnd func() float64) (f fate, due time.Time, newRun bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	c := &ps.cfg
	since := now.Sub(ps.start)
	for _, o := range c.Down {
		if since >= o.At && since < o.At+o.For {
			return ps.lose(lostDown)
		}
	}
	if b := c.Burst; b != nil {
		// Move the chain, then lose by the state it is in.
		ps.bad = b.move(ps.bad, &ps.movedAt, now, rnd)
		pl := b.LossGood
		if ps.bad {
			pl = b.LossBad
			if pl == 0 {
				pl = 100
			}
		}
		if rnd()*100 < pl {
			return ps.lose(lostRandom)
		}
	}
	if c.Loss > 0 && rnd()*100 < c.Loss {
		return ps.lose(lostRandom)
	}
	leaves := now
	if c.Rate > 0 {
		// The frames that have left by now leave the queue.
		i := 0
		for i < len(ps.queue) && !ps.queue[i].leaves.After(now) {
			ps.qBytes -= ps.queue[i].size
			i++
		}
		ps.queue = ps.queue[i:]
		limit := c.Queue
		if limit == 0 {
			limit = defaultQueue
		}
		if c.QueueBytes > 0 && ps.qBytes+size > c.QueueBytes || c.QueueBytes == 0 && len(ps.queue) >= limit {
			return ps.lose(lostQueue)
		}
		start := now
		if ps.free.After(start) {
			start = ps.free
		}
		leaves = start.Add(c.sendTime(size))
		ps.free = leaves
		ps.queue = append(ps.queue, queued{leaves: leaves, size: size})
		ps.qBytes += size
	}
	due = leaves.Add(c.Delay)
	if c.Jitter > 0 {
		due = due.Add(time.Duration((rnd()*2 - 1) * float64(c.Jitter)))
	}
	if c.Reorder == 0 && due.Before(ps.lastDue) {
		due = ps.lastDue // no overtaking
	}
	if due.After(ps.lastDue) {
		ps.lastDue = due
	}
	ps.lost = false
	if !due.After(now) {
		due = time.Time{}
	}
	return passes, due, false
}

// lose ends a frame; a random loss after a frame that was not lost
// begins a run of them.
func (ps *pathState) lose(why fate) (fate, time.Time, bool) {
	newRun := why == lostRandom && !ps.lost
	ps.lost = why == lostRandom
	return why, time.Time{}, newRun
}
