package stack

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestGilbertElliottByTime: with a Step, the burst model's chain moves
// once per Step of time, not once per frame: frames within a step share
// its state; after n steps the chain is Bad with probability pi + (x -
// pi)(1-p-r)^n (x the state it left, pi = p/(p+r)); a frame a second after
// the last, with a 1 ms step, meets the chain at its long-run share of
// Bad whatever state it left. Per frame, it moves once a frame.
func TestGilbertElliottByTime(t *testing.T) {
	ge := GilbertElliott{P: 2, R: 20, Step: time.Millisecond}
	pi := 2.0 / 22
	t0 := time.Unix(1000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		from  bool
		after time.Duration
		want  float64 // the chance of Bad after
	}{
		{true, 0, 1}, // within a step: no move
		{true, 999 * time.Microsecond, 1},
		{false, 999 * time.Microsecond, 0},
		{true, time.Millisecond, 0.8}, // one step: R = 20% out of Bad
		{false, time.Millisecond, 0.02},
		{true, 3 * time.Millisecond, pi + (1-pi)*math.Pow(0.78, 3)},
		{true, time.Second, pi},
		{false, time.Second, pi},
	} {
		const n = 40000
		bad := 0
		for range n {
			at := t0
			if ge.move(tc.from, &at, t0.Add(tc.after), rng.Float64) {
				bad++
			}
			if want := t0.Add(tc.after / ge.Step * ge.Step); !at.Equal(want) {
				t.Fatalf("from %v after %v: the chain moved to %v, want %v", tc.from, tc.after, at.Sub(t0), want.Sub(t0))
			}
		}
		got := float64(bad) / n
		// Four standard deviations of a binomial count.
		if tol := 4*math.Sqrt(tc.want*(1-tc.want)/n) + 1e-9; math.Abs(got-tc.want) > tol {
			t.Errorf("from Bad=%v after %v: Bad %.4f of the time, want %.4f (±%.4f)", tc.from, tc.after, got, tc.want, tol)
		}
	}

	// The first frame starts the clock.
	var at time.Time
	if ge.move(true, &at, t0, rng.Float64) != true || !at.Equal(t0) {
		t.Errorf("the first frame moved the chain")
	}

	// Per frame: one move each, however far apart.
	perFrame := GilbertElliott{P: 2, R: 20}
	const n = 40000
	bad := 0
	for range n {
		var at time.Time
		if perFrame.move(true, &at, t0.Add(time.Hour), rng.Float64) {
			bad++
		}
	}
	if got := float64(bad) / n; math.Abs(got-0.8) > 0.01 {
		t.Errorf("per frame, an hour later: Bad %.4f of the time, want 0.8", got)
	}
}
