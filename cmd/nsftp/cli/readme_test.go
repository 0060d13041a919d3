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
	clientPort = regexp.MustCompile(`(192\.0\.2\.1|127\.0\.0\.1):\d+`)
	// A --net os run's namespace gives its server an address of its own.
	runServer = regexp.MustCompile(`127\.\d+\.\d+\.2\b`)
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
	line = runServer.ReplaceAllString(line, "127.N.N.2")
	line = strings.Replace(line, "└ ", "", 1)
	return strings.Join(strings.Fields(line), " ")
}

// TestREADMEExcerptsAreTrue: the traces the README quotes are what nsftp
// shows now. The demo's and the kernel's, line by line, in fresh runs
// (times, durations, ports and the run's own addresses aside; the
// kernel's as root, whose run it is); the TAP network's exactly, in the
// recording it was taken from (trace/testdata), rendered as `nsftp show`
// renders it.
func TestREADMEExcerptsAreTrue(t *testing.T) {
	stacktest.CheckGoroutines(t)
	live := func(t *testing.T, marker string, args ...string) {
		out, errOut, err := runIn(t, "", args...)
		if err != nil {
			t.Fatalf("nsftp %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		var shapes []string
		for _, l := range strings.Split(out, "\n") {
			shapes = append(shapes, sameShape(l))
		}
		missing := false
		for _, l := range excerpt(t, marker) {
			if strings.TrimSpace(l) == "..." {
				continue
			}
			if !slices.Contains(shapes, sameShape(l)) {
				t.Errorf("the README quotes a line no run of nsftp %s shows now:\n  %s\n  (as %q)", strings.Join(args, " "), l, sameShape(l))
				missing = true
			}
		}
		if missing {
			// What the run showed instead: this failed once under load,
			// and the run's output is the way to its cause.
			t.Logf("the run's output:\n%s\n%s", out, errOut)
		}
	}
	t.Run("demo", func(t *testing.T) {
		live(t, "INITIAL -> SYN-SENT  connect()", "demo")
	})
	t.Run("kernel", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the README quotes the kernel's own account of a --net os run, which only root can read (tracefs)")
		}
		live(t, "tcp_v4_connect | connect(2)", "demo", "--net", "os", "--trace", "--explain")
	})
	t.Run("tap", func(t *testing.T) {
		const file = "tap-dhcp.jsonl"
		out, errOut, err := runIn(t, "", "show", filepath.Join("..", "..", "..", "trace", "testdata", file), "--width", "0")
		if err != nil {
			t.Fatalf("show %s: %v\n%s", file, err, errOut)
		}
		lines := strings.Split(out, "\n")
		at := 0
		for _, l := range excerpt(t, "dns     socket() = fd4") {
			if strings.TrimSpace(l) == "..." {
				continue
			}
			i := slices.Index(lines[at:], l)
			if i < 0 {
				t.Errorf("the README quotes a line that %s does not show, in that order:\n  %s", file, l)
				continue
			}
			at += i + 1
		}
	})
}
