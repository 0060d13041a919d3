package cli

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeVerboseLive runs the built `nsftp serve -v` with its output
// going to a file, as a server's log does, and checks that a session's
// commands and replies are in the file within a second of happening,
// while the server runs: they must not wait in a buffer for the server
// to stop. Then the same with --trace=json.
func TestServeVerboseLive(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short: builds the command")
	}
	bin := buildNsftp(t)
	for _, tc := range []struct {
		flag string
		want []string // in the log once the client has its 331
	}{
		{"-v", []string{"USER anonymous", "331 "}},
		{"--trace=json", []string{`"kind":"command","side":"server","conn":"control","text":"USER anonymous"`, `"code":331`}},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "serve.log")
			log, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			cmd := exec.Command(bin, "serve", t.TempDir(), "--net", "os", "--listen", "127.0.0.1:0", tc.flag)
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(os.Interrupt)
				cmd.Wait()
			}()
			addr := waitLog(t, logPath, regexp.MustCompile(`serving .* on (127\.0\.0\.1:[0-9]+)`), 10*time.Second)
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220") {
				t.Fatalf("greeting %q, %v", l, err)
			}
			c.Write([]byte("USER anonymous\r\n"))
			if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "331") {
				t.Fatalf("USER: %q, %v", l, err)
			}
			for _, w := range tc.want {
				waitLog(t, logPath, regexp.MustCompile(regexp.QuoteMeta(w)), time.Second)
			}
		})
	}
}

// waitLog waits up to d for the file at path to match re, and returns the
// first submatch (or the match).
func waitLog(t *testing.T, path string, re *regexp.Regexp, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if m := re.FindSubmatch(b); m != nil {
			return string(m[len(m)-1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the log has nothing matching %s:\n%s", d, re, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
