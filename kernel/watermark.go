package kernel

import (
	"sync"
	"time"
)

// watermark is how far a reader of the kernel (trace_pipe, the packet
// socket) has read: everything that happened before it was recorded. The
// timeline waits on it when flushed (a step-mode prompt).
type watermark struct {
	mu   sync.Mutex
	cond *sync.Cond
	upTo time.Time
}

func newWatermark(at time.Time) *watermark {
	w := &watermark{upTo: at}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// set moves the watermark on; it never goes back.
func (w *watermark) set(t time.Time) {
	w.mu.Lock()
	if t.After(w.upTo) {
		w.upTo = t
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

// wait waits until the watermark has reached t, or for at most d: the
// reader reads every 10ms, and a prompt must not hang on a stalled one.
func (w *watermark) wait(t time.Time, d time.Duration) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.upTo.Before(t) && time.Now().Before(deadline) {
		w.cond.Wait()
	}
}
