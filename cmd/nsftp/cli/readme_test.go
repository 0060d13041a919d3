package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/stack/stacktest"
)

// readmeExcerpts returns the README's quoted traces: its fenced blocks.
func readmeExcerpts(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, cur)
			}
			in, cur = !in, nil
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return blocks
}

// excerpt finds the README's block that holds marker.
func excerpt(t *testing.T, marker string) []string {
	t.Helper()
	for _, b := range readmeExcerpts(t) {
		if slices.ContainsFunc(b, func(l string) bool { return strings.Contains(l, marker) }) {
			return b
		}
	}
	t.Fatalf("the README quotes no trace with %q", marker)
	return nil
}

var (
	leadTime   = regexp.MustCompile(`^ *[0-9.]+m?s `)
	callTime   = regexp.MustCompile(`  [0-9.]+(µs|ms|s)$`)
	callNames  = regexp.MustCompile(`  (sock_|sock->)\S.* \| \S+$`)
	clientPort = regexp.MustCompile(`(192\.0\.2\.1):\d+`)
)

// sameShape reduces a trace line to what does not change from run to
// run: no time, no call's duration, no kernel and netstack names after a
// call, the client's ephemeral port left out, and a call that returned at
// once written as one that waited.
func sameShape(line string) string {
	line = leadTime.ReplaceAllString(line, "")
	line = callTime.ReplaceAllString(line, "")
	line = callNames.ReplaceAllString(line, "")
	line = clientPort.ReplaceAllString(line, "$1:PORT")
	line = strings.Replace(line, "└ ", "", 1)
	return strings.Join(strings.Fields(line), " ")
}

// TestREADMEExcerptsAreTrue: the traces the README quotes are what nsftp
// shows now. The demo's, line by line, in a fresh run of the demo (times,
// durations and the client's port aside); the kernel's and the TAP
// network's, exactly, in the recordings they were taken from
// (trace/testdata), rendered as `nsftp show` renders them.
func TestREADMEExcerptsAreTrue(t *testing.T) {
	stacktest.CheckGoroutines(t)
	live, errOut, err := runIn(t, "", "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	var shapes []string
	for _, l := range strings.Split(live, "\n") {
		shapes = append(shapes, sameShape(l))
	}
	for _, l := range excerpt(t, "INITIAL -> SYN-SENT  connect()") {
		if strings.TrimSpace(l) == "..." {
			continue
		}
		if !slices.Contains(shapes, sameShape(l)) {
			t.Errorf("the README quotes a demo line no run shows now:\n  %s\n  (as %q)", l, sameShape(l))
		}
	}

	for _, rec := range []struct{ marker, file string }{
		{"connect(127.0.0.2:21)", "demo-os-active.jsonl"},
		{"dns     socket() = fd4", "tap-dhcp.jsonl"},
	} {
		out, errOut, err := runIn(t, "", "show", filepath.Join("..", "..", "..", "trace", "testdata", rec.file), "--explain", "--width", "0")
		if err != nil {
			t.Fatalf("show %s: %v\n%s", rec.file, err, errOut)
		}
		lines := strings.Split(out, "\n")
		at := 0
		for _, l := range excerpt(t, rec.marker) {
			if strings.TrimSpace(l) == "..." {
				continue
			}
			i := slices.Index(lines[at:], l)
			if i < 0 {
				t.Errorf("the README quotes a line that %s does not show, in that order:\n  %s", rec.file, l)
				continue
			}
			at += i + 1
		}
	}
}
