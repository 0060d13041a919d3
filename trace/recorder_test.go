package trace_test

import (
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// TestRecorderSources: events a source delivers late, stamped with when
// they happened, reach the sinks in the order of their times among the
// events recorded live, numbered in that order; nothing is handed on
// before every source has caught up with it.
func TestRecorderSources(t *testing.T) {
	keep := &trace.Keep{}
	r := trace.NewRecorder(keep)
	src := r.NewSource(nil)

	r.Record(note("call begins"))
	mid := r.Now()
	time.Sleep(time.Millisecond)
	r.Record(note("call ends"))
	r.Flush() // the sinks have what was handed on
	if len(keep.Events) != 0 {
		t.Fatalf("%d events handed on before the source caught up", len(keep.Events))
	}
	// The kernel's change of state happened between the two.
	late := note("state changes")
	late.Time = mid
	src.Record(late)
	src.Advance(mid)
	r.Flush() // the sinks have what was handed on
	if got := texts(keep.Events); len(got) != 2 || got[0] != "call begins" || got[1] != "state changes" {
		t.Fatalf("after the source caught up with the state change, handed on %q", got)
	}
	src.Close()
	want := []string{"call begins", "state changes", "call ends"}
	r.Flush() // the sinks have what was handed on
	if got := texts(keep.Events); !equal(got, want) {
		t.Fatalf("handed on %q, want %q", got, want)
	}
	for i, e := range keep.Events {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i+1, e.Seq)
		}
		if i > 0 && e.Time.Before(keep.Events[i-1].Time) {
			t.Errorf("event %d goes back in time", i+1)
		}
	}
	// With no source open, events go straight through again.
	r.Record(note("after"))
	r.Flush() // the sinks have what was handed on
	if len(keep.Events) != 4 {
		t.Errorf("an event recorded with no source open was held")
	}
}

// TestRecorderSourceLate: an event a source delivers after it said it had
// caught up past its time still comes in order: its time is that of the
// last event handed on, never earlier.
func TestRecorderSourceLate(t *testing.T) {
	keep := &trace.Keep{}
	r := trace.NewRecorder(keep)
	src := r.NewSource(nil)
	early := r.Now()
	r.Record(note("live"))
	src.Advance(r.Now())
	e := note("late")
	e.Time = early
	src.Record(e)
	src.Close()
	r.Flush() // the sinks have what was handed on
	if got := texts(keep.Events); !equal(got, []string{"live", "late"}) {
		t.Fatalf("handed on %q", got)
	}
	if keep.Events[1].Time.Before(keep.Events[0].Time) {
		t.Errorf("the late event goes back in time")
	}
}

// TestRecorderFlushCatchesUp: Flush asks the sources to catch up to now,
// so that a step-mode prompt shows everything that happened before it;
// Stop hands on whatever is still held.
func TestRecorderFlushCatchesUp(t *testing.T) {
	keep := &trace.Keep{}
	r := trace.NewRecorder(keep)
	var src *trace.Source
	src = r.NewSource(func(upTo time.Time) {
		e := note("from the kernel")
		e.Time = upTo // after "live", or at the same time: after it either way
		src.Record(e)
		src.Advance(upTo)
	})
	r.Record(note("live"))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := texts(keep.Events); !equal(got, []string{"live", "from the kernel"}) {
		t.Fatalf("after Flush, handed on %q", got)
	}
	r.Record(note("held"))
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := texts(keep.Events); len(got) != 3 || got[2] != "held" {
		t.Fatalf("after Stop, handed on %q", got)
	}
	src.Record(note("after stop"))
	if len(keep.Events) != 3 {
		t.Errorf("a source recorded after Stop")
	}
}

func note(text string) trace.Event {
	return trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Message: &trace.Message{Text: text}}
}

func texts(evs []trace.Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Text)
	}
	return s
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
