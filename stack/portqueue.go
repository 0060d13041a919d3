package stack

import (
	"container/heap"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// queueLimit bounds the bytes waiting at one receiver; beyond it frames
// are dropped, as a NIC's ring overflows.
const queueLimit = 64 << 20

// reorderHold is how long a held-back frame waits for a successor before
// it is delivered anyway.
const reorderHold = time.Millisecond

type queuedFrame struct {
	frame buffer.Buffer
	due   time.Time // zero: now
	seq   uint64
}

// frameQueue holds frames waiting for delivery: those due now in arrival
// order, and delayed ones in a heap by due time.
type frameQueue struct {
	now     []queuedFrame
	later   frameHeap
	bytes   int
	nextSeq uint64
}

type frameHeap []queuedFrame

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(queuedFrame)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = queuedFrame{}
	*h = old[:len(old)-1]
	return x
}

// enqueue queues a frame for delivery by p's goroutine. A reordered frame
// is held until the next frame for p has been queued ahead of it.
func (p *Port) enqueue(frame buffer.Buffer, due time.Time, reorder bool) {
	size := int(frame.Size())
	p.mu.Lock()
	if p.closed || p.queue.bytes+size > queueLimit {
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			p.w.stats.queueDrops.Add(1)
		}
		frame.Release()
		return
	}
	p.queue.bytes += size
	f := queuedFrame{frame: frame, due: due, seq: p.queue.nextSeq}
	p.queue.nextSeq++
	switch {
	case p.held != nil:
		// f overtakes the held frame.
		held := *p.held
		p.held = nil
		p.queue.push(f, p.w.clock.Now)
		held.due = due
		held.seq = p.queue.nextSeq
		p.queue.nextSeq++
		p.queue.push(held, p.w.clock.Now)
	case reorder:
		held := f
		held.due = p.w.clock.Now().Add(reorderHold)
		p.held = &held
	default:
		p.queue.push(f, p.w.clock.Now)
	}
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (q *frameQueue) push(f queuedFrame, now func() time.Time) {
	if f.due.IsZero() && q.later.Len() == 0 {
		q.now = append(q.now, f)
		return
	}
	if f.due.IsZero() {
		f.due = now()
	}
	heap.Push(&q.later, f)
}

// take moves the frames due by now into batch and returns when the next
// delayed frame falls due (zero if none).
func (p *Port) take(batch []queuedFrame, now time.Time) ([]queuedFrame, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	batch = append(batch, p.queue.now...)
	clear(p.queue.now)
	p.queue.now = p.queue.now[:0]
	for p.queue.later.Len() > 0 && !p.queue.later[0].due.After(now) {
		batch = append(batch, heap.Pop(&p.queue.later).(queuedFrame))
	}
	if p.held != nil && !p.held.due.After(now) {
		batch = append(batch, *p.held)
		p.held = nil
	}
	for _, f := range batch {
		p.queue.bytes -= int(f.frame.Size())
	}
	var next time.Time
	if p.queue.later.Len() > 0 {
		next = p.queue.later[0].due
	}
	if p.held != nil && (next.IsZero() || p.held.due.Before(next)) {
		next = p.held.due
	}
	return batch, next
}

// run delivers queued frames until the port is closed. Delayed frames
// fall due on the wire's clock: a timer of its own wakes the goroutine.
func (p *Port) run() {
	clock := p.w.clock
	var (
		timer tcpip.Timer // set for armed; nil until a frame is delayed
		armed time.Time
	)
	wake := func() {
		select {
		case p.signal <- struct{}{}:
		default:
		}
	}
	var batch []queuedFrame
	for {
		var next time.Time
		batch, next = p.take(batch[:0], clock.Now())
		for i := range batch {
			p.deliver(batch[i].frame, p.w.cfg.Offload == OffloadTSO)
			batch[i] = queuedFrame{}
		}
		if len(batch) > 0 && p.w.cfg.Offload == OffloadTSO {
			p.gro.Flush()
		}
		if len(batch) > 0 {
			continue
		}
		// The timer is set again only for a new time: once it has
		// fired for armed, the frames due then have been taken, and next
		// is later.
		if !next.IsZero() && !next.Equal(armed) {
			d := next.Sub(clock.Now())
			if timer == nil {
				timer = clock.AfterFunc(d, wake)
			} else {
				timer.Stop()
				timer.Reset(d)
			}
			armed = next
		}
		select {
		case <-p.signal: // a frame queued, or the timer fired
		case <-p.done:
			if timer != nil {
				timer.Stop()
			}
			p.drop()
			return
		}
	}
}

// drop releases every frame still queued after Close.
func (p *Port) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.queue.now {
		f.frame.Release()
	}
	for _, f := range p.queue.later {
		f.frame.Release()
	}
	if p.held != nil {
		p.held.frame.Release()
		p.held = nil
	}
	p.queue = frameQueue{}
}
