package ftp

import (
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/internal/testkit"
)

// A file system that stops answering: a hung NFS or FUSE mount, where open,
// stat, read and close block in the kernel for as long as the server is
// away. No deadline reaches a thread blocked there, so the session must
// give up waiting (FileTimeout), end with 421 and free its slot, while the
// call stays stuck until the kernel lets it go.

// fileTimeout is the FileTimeout of these tests: short, since every case
// waits it out once.
const fileTimeout = 300 * time.Millisecond

// stuckBound is how long after FileTimeout the 421 may come: a loose
// correctness bound for a loaded machine.
const stuckBound = 5 * time.Second

// TestServerFileSystemStuck hangs one kind of call at a time, through the
// server's test hook (the same path a call stuck in the kernel takes; see
// TestServerFileSystemStuckKernel for the kernel itself), and checks that
// the session ends with 421 within FileTimeout, that its only slot is free
// for the next client at once, and that sessions, stuck calls and
// descriptors all return to where they started once the call returns.
func TestServerFileSystemStuck(t *testing.T) {
	for _, tc := range []struct {
		op, name string // the call that hangs
		command  string
		transfer bool // the command opens a data connection first
		upload   bool
	}{
		{"open", "hung", "RETR hung", true, false},
		{"stat", "hung", "SIZE hung", false, false},
		{"stat", "d/hung", "CWD d/hung", false, false},
		{"readdir", "d", "LIST d", true, false},
		{"readdir", "d", "STAT d", false, false},
		{"read", "hung", "RETR hung", true, false},
		{"write", "", "STOR new", true, true},
		{"rename", "", "STOR new", true, true},
		{"mkdir", "m", "MKD m", false, false},
	} {
		t.Run(tc.op+"/"+strings.Fields(tc.command)[0], func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, map[string]string{
				"hung": strings.Repeat("x", 1<<20), "plain": "plain",
				"d/a": "a", "d/hung/": "",
			})
			ts := startTestServer(t, ServerConfig{Root: root, Write: true, MaxSessions: 1, FileTimeout: fileTimeout})
			fds := openFDs(t)
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			defer unblock()
			var calls atomic.Int32
			ts.testHookFS = func(op, name string) {
				if op != tc.op || (tc.name != "" && name != tc.name) {
					return
				}
				// A read hangs mid-file, after the first 64 KiB went out.
				if op == "read" && calls.Add(1) == 1 {
					return
				}
				<-release
			}

			c := dialRaw(t, ts.addr)
			c.login()
			var data *dataSetup
			if tc.transfer {
				data = c.prepareData("EPSV")
			}
			start := time.Now()
			r := c.cmd(tc.command)
			if r.Code == 150 {
				conn := data.open(t)
				if tc.upload {
					conn.Write([]byte(strings.Repeat("u", 100<<10)))
					conn.Close()
				} else {
					// Whatever arrived, the end must not look like the
					// end of a file.
					if _, err := io.ReadAll(conn); err == nil && tc.op == "read" {
						t.Errorf("data connection closed cleanly on a download cut short")
					}
				}
				r = c.read()
			}
			if data != nil && data.conn != nil {
				data.conn.Close()
			}
			if want := "File system not responding; closing the session."; r.Code != 421 || r.Text() != want {
				t.Fatalf("%s: got %v, want 421 %s", tc.command, r, want)
			}
			if d := time.Since(start); d < fileTimeout || d > fileTimeout+stuckBound {
				t.Errorf("421 after %v, want about %v", d, fileTimeout)
			}
			c.wantClosed()
			c.conn.Close()

			// The slot is free while the call is still stuck (and the
			// cleanups that did not wait for it have finished).
			waitFor(t, func() bool { s, _, _ := ts.slotCounts(); return s == 0 && ts.stuck.Load() == 1 })
			next := dialRaw(t, ts.addr)
			next.login()
			if got, _, final := next.retrieve("PASV", "RETR plain"); string(got) != "plain" || final.Code != 226 {
				t.Errorf("the next session: %q, %v", got, final)
			}
			next.want("QUIT", 221)
			next.wantClosed()
			next.conn.Close()

			// The kernel lets go: the call returns, and closes what it
			// opened.
			unblock()
			waitBaseline(t, ts.Server, fds)
			if tc.upload {
				if left := tempFiles(root); len(left) > 0 {
					t.Errorf("temporary files left: %q", left)
				}
			}
		})
	}
}

// TestServerStuckCallsBounded: past maxStuckCalls calls that have not
// returned, file system calls fail at once instead of adding threads
// stuck in the kernel.
func TestServerStuckCallsBounded(t *testing.T) {
	ts := startTestServer(t, ServerConfig{FileTimeout: fileTimeout})
	writeTree(t, ts.root, map[string]string{"f": "f"})
	ts.stuck.Store(maxStuckCalls)
	defer ts.stuck.Store(0)
	c := dialRaw(t, ts.addr)
	c.login()
	start := time.Now()
	c.want("SIZE f", 421)
	if d := time.Since(start); d > refusalBound {
		t.Errorf("refused after %v, want at once", d)
	}
	c.wantClosed()
}

// TestServerFileSystemStuckKernel hangs open(2) and read(2) in the kernel
// itself: a fanotify listener that asks to approve every open of one file
// (FAN_OPEN_PERM) or every read of another (FAN_ACCESS_PERM) and never
// answers holds the caller exactly as a hung network mount does. Closing
// the listener lets the calls go. It needs root (CAP_SYS_ADMIN).
func TestServerFileSystemStuckKernel(t *testing.T) {
	testkit.NeedRoot(t, "a fanotify permission listener needs CAP_SYS_ADMIN")
	root := t.TempDir()
	writeTree(t, root, map[string]string{"hung-open": "x", "hung-read": strings.Repeat("y", 1<<20), "plain": "plain"})
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		t.Skipf("no fanotify permission events here: %v", err)
	}
	var closeOnce sync.Once
	closeFan := func() { closeOnce.Do(func() { unix.Close(fan) }) }
	defer closeFan()
	for name, mask := range map[string]uint64{"hung-open": unix.FAN_OPEN_PERM, "hung-read": unix.FAN_ACCESS_PERM} {
		if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, mask, unix.AT_FDCWD, filepath.Join(root, name)); err != nil {
			t.Skipf("fanotify mark: %v", err)
		}
	}

	ts := startTestServer(t, ServerConfig{Root: root, MaxSessions: 2, MaxPerAddr: 2, FileTimeout: fileTimeout})
	fds := openFDs(t)
	for _, name := range []string{"hung-open", "hung-read"} {
		c := dialRaw(t, ts.addr)
		c.login()
		d := c.prepareData("EPSV")
		start := time.Now()
		r := c.cmd("RETR " + name)
		if r.Code == 150 {
			io.Copy(io.Discard, d.open(t))
			r = c.read()
		}
		d.conn.Close()
		if r.Code != 421 {
			t.Fatalf("RETR %s: got %v, want 421", name, r)
		}
		if el := time.Since(start); el > fileTimeout+stuckBound {
			t.Errorf("RETR %s: 421 after %v", name, el)
		}
		c.wantClosed()
		c.conn.Close()
	}
	// Two calls stuck: the open and the read.
	waitFor(t, func() bool { s, _, _ := ts.slotCounts(); return s == 0 && ts.stuck.Load() == 2 })
	// Both slots are free while the two calls are still in the kernel.
	for range 2 {
		c := dialRaw(t, ts.addr)
		c.login()
		if got, _, final := c.retrieve("EPSV", "RETR plain"); string(got) != "plain" || final.Code != 226 {
			t.Errorf("after the hangs: %q, %v", got, final)
		}
		c.want("QUIT", 221)
		c.wantClosed()
		c.conn.Close()
	}
	// Closing the listener allows every pending event: the open returns
	// and its file is closed, the read returns and its file is closed.
	closeFan()
	waitBaseline(t, ts.Server, fds)
}

// TestServerBoundedHandOver races a call's return against bounded giving
// up on it, many times: whichever wins, the result is used or disposed of
// exactly once and the stuck count ends at zero.
func TestServerBoundedHandOver(t *testing.T) {
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), Anonymous: true, Network: &OSNetwork{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tr := &tree{srv: srv, root: srv.root, ctx: t.Context(), timeout: 50 * time.Microsecond}
	var made, used, released atomic.Int64
	for i := range 500 {
		v, err := bounded(tr, "test", strconv.Itoa(i), func() (int, error) {
			if i%2 == 0 {
				time.Sleep(40 * time.Microsecond)
			} else {
				time.Sleep(60 * time.Microsecond)
			}
			made.Add(1)
			return 1, nil
		}, func(int) { released.Add(1) })
		if err == nil {
			used.Add(int64(v))
		} else if !errors.Is(err, errFileSystemStuck) {
			t.Fatal(err)
		}
		tr.gaveUp.Store(false)
	}
	waitFor(t, func() bool { return made.Load() == 500 && srv.stuck.Load() == 0 })
	if used.Load()+released.Load() != 500 {
		t.Errorf("%d results used and %d released, want 500 in all", used.Load(), released.Load())
	}
}

// TestServerStuckNameRefused: while a call on a name is stuck, the next
// request for that name is refused at once, and costs no second thread.
func TestServerStuckNameRefused(t *testing.T) {
	const timeout = 2 * time.Second
	ts := startTestServer(t, ServerConfig{FileTimeout: timeout})
	writeTree(t, ts.root, map[string]string{"hung": "h", "plain": "p"})
	release := make(chan struct{})
	defer close(release)
	ts.testHookFS = func(op, name string) {
		if name == "hung" {
			<-release
		}
	}
	for i, within := range []time.Duration{timeout + stuckBound, refusalBound} {
		c := dialRaw(t, ts.addr)
		c.login()
		start := time.Now()
		c.want("SIZE hung", 421)
		if d := time.Since(start); d > within {
			t.Errorf("request %d: 421 after %v", i+1, d)
		}
		c.wantClosed()
	}
	if n := ts.stuck.Load(); n != 1 {
		t.Errorf("%d calls stuck, want 1", n)
	}
	c := dialRaw(t, ts.addr)
	c.login()
	c.want("SIZE plain", 213)
}
