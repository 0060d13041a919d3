package cli

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what is written to the second
// file shows up on the first.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("opening the terminal: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestProgressOnTerminal: a transfer that runs longer than a second gets a
// bar with bytes, percentage, rate and ETA on a terminal, removed at the
// end; none on a non-terminal or with -q.
func TestProgressOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	e := &env{stderr: slave}
	p := startProgress(e, false, "big.iso", 10<<20)
	if p == nil {
		t.Fatal("no progress bar on a terminal")
	}
	w := p.writer(io.Discard)
	for i := 0; i < 14; i++ {
		w.Write(make([]byte, 256<<10))
		time.Sleep(100 * time.Millisecond)
	}
	p.finish()
	slave.Close()
	var out bytes.Buffer
	master.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(&out, master)
	s := out.String()
	for _, want := range []string{"big.iso", "%", "MiB /", "/s", "ETA", "\r\033[K"} {
		if !strings.Contains(s, want) {
			t.Errorf("bar lacks %q: %q", want, s)
		}
	}

	if startProgress(&env{stderr: &bytes.Buffer{}}, false, "x", 1) != nil {
		t.Error("a progress bar on a non-terminal")
	}
	if startProgress(&env{stderr: slave}, true, "x", 1) != nil {
		t.Error("a progress bar with -q")
	}
}
