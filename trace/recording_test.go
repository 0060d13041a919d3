package trace_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
)

// TestReadJSONGzip reads a recording compressed with gzip (RUN.jsonl.gz)
// as the recording itself: known by its first bytes, whatever its name.
func TestReadJSONGzip(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "demo-active.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	plain, err := trace.ReadJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := trace.ReadJSON(&z)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) < 100 || !reflect.DeepEqual(plain, unzipped) {
		t.Fatalf("the gzip recording read %d events, the plain one %d, or they differ", len(unzipped), len(plain))
	}
	// A gzip stream cut short is an error, not a shorter run.
	var z2 bytes.Buffer
	zw2 := gzip.NewWriter(&z2)
	zw2.Write(raw)
	zw2.Close()
	if _, err := trace.ReadJSON(bytes.NewReader(z2.Bytes()[:z2.Len()/2])); err == nil {
		t.Error("a gzip recording cut in half read without an error")
	}
	if _, err := trace.ReadJSON(strings.NewReader("\x1f\x8bnot gzip at all")); err == nil {
		t.Error("bytes that start like gzip and are not read without an error")
	}
}

// TestReadJSONLong reads a recording of several thousand events (ReadJSON
// gathers them in chunks of a few thousand): every event, in order, and,
// cut short in the middle of a line past the first chunks, every event
// before the cut.
func TestReadJSONLong(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "demo-active.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	one, err := trace.ReadJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat(raw, 20000/len(one)+1)
	evs, err := trace.ReadJSON(bytes.NewReader(long))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 20000 || len(evs)%len(one) != 0 {
		t.Fatalf("read %d events of %d copies of %d", len(evs), len(long)/len(raw), len(one))
	}
	for i := range evs {
		if !reflect.DeepEqual(evs[i], one[i%len(one)]) {
			t.Fatalf("event %d is %+v, want %+v", i, evs[i], one[i%len(one)])
		}
	}
	cutAt := len(long) * 2 / 3
	for long[cutAt-1] == '\n' || long[cutAt-1] == '}' {
		cutAt-- // in the middle of a line, not at its end
	}
	whole := bytes.Count(long[:cutAt], []byte("\n"))
	part, err := trace.ReadJSON(bytes.NewReader(long[:cutAt]))
	var cut *trace.CutError
	if !errors.As(err, &cut) || !cut.MidLine || cut.Events != whole || len(part) != whole || cut.Line != whole+1 {
		t.Fatalf("cut at byte %d: %d events, %v (%+v); want the %d lines before it", cutAt, len(part), err, cut, whole)
	}
	if !reflect.DeepEqual(part, evs[:whole]) {
		t.Error("the events before the cut differ from the same events read whole")
	}
}

// TestGraphLayout: where GraphLayout says a connection's time axis is,
// WriteGraph labels it: the label at X0 is 0, the one at X1 the span
// T1-T0 (a round value past the last segment).
func TestGraphLayout(t *testing.T) {
	evs := testkit.ReadRecording(t, filepath.Join("..", "lesson", "testdata", "bulk.jsonl.gz"))
	panels := trace.GraphLayout(evs)
	if len(panels) != 1 {
		t.Fatalf("%d panels for one data connection", len(panels))
	}
	var svg bytes.Buffer
	if err := trace.WriteGraph(&svg, evs, trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	p := panels[0]
	label := func(x float64) string {
		m := regexp.MustCompile(`<text x="` + regexp.QuoteMeta(strconv.FormatFloat(x, 'f', -1, 64)) + `" y="[0-9.]+" class="axis time"[^>]*>([^<]*)</text>`).FindStringSubmatch(svg.String())
		if m == nil {
			return ""
		}
		return m[1]
	}
	if p.X0 >= p.X1 || !p.T1.After(p.T0) {
		t.Fatalf("panel %+v", p)
	}
	first, last := label(p.X0), label(p.X1)
	if first == "" || last == "" || strings.Trim(first, "0.smµ ") != "" {
		t.Errorf("the time axis at X0 reads %q, at X1 %q; want 0 and the span %v", first, last, p.T1.Sub(p.T0))
	}
	t.Logf("axis from %q to %q, span %v", first, last, p.T1.Sub(p.T0))
	if span := p.T1.Sub(p.T0); !strings.Contains(last, strconv.FormatFloat(span.Seconds()*1000, 'f', -1, 64)) &&
		!strings.Contains(last, strconv.FormatFloat(span.Seconds(), 'f', -1, 64)) {
		t.Errorf("the time axis ends at %q; GraphLayout says its span is %v", last, span)
	}
}
