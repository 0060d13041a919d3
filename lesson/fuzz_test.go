package lesson

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// FuzzPage: a recording is anyone's file, and nsftp show --html may be
// handed one: whatever events ReadJSON accepts, the model is built, its
// deltas and its page are written, and nothing panics. The seeds are
// pieces of a real run.
func FuzzPage(f *testing.F) {
	raw, err := os.ReadFile(demoActive)
	if err != nil {
		f.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for _, n := range []int{3, 20, 60, len(lines)} {
		f.Add(strings.Join(lines[:min(n, len(lines))], "\n"))
	}
	f.Add(lines[0] + "\n" + lines[0]) // two runs
	f.Fuzz(func(t *testing.T, rec string) {
		evs, err := trace.ReadJSON(strings.NewReader(rec))
		if err != nil {
			return
		}
		for _, keep := range []Keep{KeepEvery, KeepBands} {
			if err := Write(io.Discard, Runs(evs), PageOptions{Keep: keep}); err != nil {
				t.Fatal(err)
			}
		}
		b := NewBuilder(Options{})
		var m Mark
		for i := range evs {
			b.Event(&evs[i])
			_, m = b.Delta(m)
		}
		b.Finish()
		var page bytes.Buffer
		Moments(evs, KeepAuto)
		WriteLive(&page, "t")
	})
}
