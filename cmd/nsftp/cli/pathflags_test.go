package cli

import (
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
)

// TestPathFlags reads the path flags as tc writes them: one value for
// both directions, or UP/DOWN, where 0 leaves a direction without bursts,
// and a burst's state moving by time with @STEP.
func TestPathFlags(t *testing.T) {
	pf := pathFlags{burst: "0/1,25", rate: "20mbit", loss: "0/2"}
	up, down, err := pf.paths()
	if err != nil {
		t.Fatal(err)
	}
	if up.Burst != nil || down.Burst == nil || *down.Burst != (stack.GilbertElliott{P: 1, R: 25, LossBad: 100}) {
		t.Errorf("--burst 0/1,25: up %+v, down %+v", up.Burst, down.Burst)
	}
	if up.Rate != 20e6 || down.Rate != 20e6 || up.Loss != 0 || down.Loss != 2 {
		t.Errorf("--rate 20mbit --loss 0/2: up %+v, down %+v", up, down)
	}
	pf = pathFlags{burst: "2,20@1ms/2,20"}
	if up, down, err = pf.paths(); err != nil {
		t.Fatal(err)
	}
	if *up.Burst != (stack.GilbertElliott{P: 2, R: 20, LossBad: 100, Step: time.Millisecond}) || down.Burst.Step != 0 {
		t.Errorf("--burst 2,20@1ms/2,20: up %+v, down %+v", up.Burst, down.Burst)
	}
	for _, bad := range []pathFlags{{burst: "1"}, {burst: "0/1"}, {burst: "1,25@"}, {burst: "1,25@0s"}, {burst: "1,25@-1ms"}, {burst: "1,25@x"},
		{rate: "fast"}, {loss: "60"}, {down: "2s"}} {
		if _, _, err := bad.paths(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
