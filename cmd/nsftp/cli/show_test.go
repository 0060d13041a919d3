package cli

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShowCutShort: a recording cut short as it was written (a killed
// run) is shown up to where it stops, and then show says where that is,
// and that it is cut, with the local-file exit code. Cut in the middle
// of a line, at a line's end (whole lines, but no end of the run), and
// inside a gzip stream; a whole recording shows with no complaint.
func TestShowCutShort(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.jsonl")
	if _, stderr, code := run(t, "demo", "-q", "--record", full); code != 0 {
		t.Fatalf("demo --record: exit %d: %s", code, stderr)
	}
	rec, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	wholeOut, stderr, code := run(t, "show", full)
	if code != 0 || stderr != "" {
		t.Fatalf("show of a whole recording: exit %d: %s", code, stderr)
	}
	// Cut a little past the middle: inside a line, and at that line's end.
	mid := len(rec) / 2
	lineEnd := mid + bytes.IndexByte(rec[mid:], '\n') + 1
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(rec)
	zw.Close()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"mid-line.jsonl", rec[:mid], "ends in the middle of line"},
		{"line-end.jsonl", rec[:lineEnd], "without the run's end: the run was cut short"},
		{"cut.jsonl.gz", gz.Bytes()[:gz.Len()/2], "ends in the middle of line"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := run(t, "show", path)
		if code != ExitLocal || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "shown up to") {
			t.Errorf("show %s: exit %d, %q; want exit %d saying %q and where it stops", tc.name, code, stderr, ExitLocal, tc.want)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) < 20 || !strings.HasPrefix(wholeOut, strings.Join(lines[:len(lines)-1], "\n")) {
			t.Errorf("show %s: %d lines, not the beginning of the whole recording's", tc.name, len(lines))
		}
	}
}

// TestShowGraph: show --graph draws a recorded run's time-sequence graph,
// as the live run's --graph does.
func TestShowGraph(t *testing.T) {
	dir := t.TempDir()
	rec, svg := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "g.svg")
	if _, stderr, code := run(t, "demo", "-q", "--size", "1MiB", "--loss", "1", "--record", rec); code != 0 {
		t.Fatalf("demo --record: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "show", rec, "--graph", svg); code != 0 {
		t.Fatalf("show --graph: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "time-sequence graph", "192.0.2.2:20", "retransmitted"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the graph does not say %q", want)
		}
	}
}
