package trace_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// FuzzReadJSON: `nsftp show` reads recordings anyone may hand it. ReadJSON
// must not panic whatever the bytes; what it accepts must come back the
// same when written and read again; and every view must render it
// without panicking (views are pure functions of events, so a recording
// is all they are given). The seeds are lines of the committed
// recordings and their edges (testdata/fuzz/FuzzReadJSON).
func FuzzReadJSON(f *testing.F) {
	for _, name := range recordings {
		b, err := os.ReadFile("testdata/" + name + ".jsonl")
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for i := 0; sc.Scan(); i++ {
			if i%16 == 0 {
				f.Add(append([]byte(nil), sc.Bytes()...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := trace.ReadJSON(bytes.NewReader(b))
		if err != nil {
			return
		}
		var once bytes.Buffer
		w := trace.NewJSONWriter(&once)
		for i := range evs {
			w.Event(&evs[i])
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("writing what ReadJSON read: %v", err)
		}
		again, err := trace.ReadJSON(bytes.NewReader(once.Bytes()))
		if err != nil {
			t.Fatalf("reading back what was written: %v\n%s", err, once.Bytes())
		}
		var twice bytes.Buffer
		w = trace.NewJSONWriter(&twice)
		for i := range again {
			w.Event(&again[i])
		}
		w.Flush()
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("written, read and written again, the events change:\n%s\n%s", once.Bytes(), twice.Bytes())
		}
		if len(again) != len(evs) {
			t.Fatalf("%d events read back, %d written", len(again), len(evs))
		}
		for _, opt := range []trace.TextOptions{{}, {Every: true, Width: 60}} {
			tv := trace.NewText(io.Discard, opt)
			for i := range evs {
				tv.Event(&evs[i])
			}
			tv.Flush()
		}
		trace.WriteLadder(io.Discard, evs, trace.LadderOptions{})
		trace.WriteGraph(io.Discard, evs, trace.GraphOptions{})
		trace.WriteCompare(io.Discard, evs, evs, trace.CompareOptions{})
		if _, err := json.Marshal(evs); err != nil {
			t.Fatal(err)
		}
	})
}
