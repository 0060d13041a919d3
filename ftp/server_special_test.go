package ftp

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Files that are not regular files, in the served tree: a FIFO, a device, a
// socket. Opening a FIFO for reading waits for a writer, so a server that
// opens what it is asked for can be held for good by one RETR; vsftpd
// answers 550 at once, and so must nsftp. The hung-file-system cases,
// where not even a regular file answers, are in server_stuck_test.go.

// refusalBound is how long a refusal that involves no waiting may take: a
// correctness bound (the old server never answered), kept loose for a
// loaded machine.
const refusalBound = time.Second

// specialTree builds a served root holding a regular file, a FIFO, a
// socket, a link to a device outside the root and, as root, a device node
// inside it with a link to that. It returns the root and the names of the
// special files, each with the kind the refusal must name.
func specialTree(t *testing.T) (root string, special map[string]string) {
	t.Helper()
	root = t.TempDir()
	writeTree(t, root, map[string]string{"plain.txt": "plain", "dir/": ""})
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A socket file is what a listening Unix socket leaves in the tree.
	// Its path must fit sun_path (108 bytes), which t.TempDir may not.
	sockDir, err := os.MkdirTemp("", "nsftp-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ul, err := net.Listen("unix", filepath.Join(sockDir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	if err := os.Symlink(filepath.Join(sockDir, "s"), filepath.Join(root, "socket-out")); err != nil {
		t.Fatal(err)
	}
	// The socket itself inside the root: a hard link to it is the same
	// socket file, at a name inside.
	if err := os.Link(filepath.Join(sockDir, "s"), filepath.Join(root, "socket")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(root, "zero-out")); err != nil {
		t.Fatal(err)
	}
	special = map[string]string{"fifo": "named pipe", "socket": "socket"}
	if os.Geteuid() == 0 {
		// /dev/zero's numbers: reading it never ends, which is what a
		// download of a device amounts to.
		err := unix.Mknod(filepath.Join(root, "dir", "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
		if err != nil {
			t.Fatalf("mknod: %v", err)
		}
		if err := os.Symlink("dir/zero", filepath.Join(root, "zero-link")); err != nil {
			t.Fatal(err)
		}
		special["dir/zero"] = "character device"
		special["zero-link"] = "character device"
	} else {
		t.Log("not root: no device node inside the root (mknod needs CAP_MKNOD); the link to /dev/zero outside it is still tried")
	}
	return root, special
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(des) - 1 // the directory being read
}

// waitBaseline waits until the server runs no session and no file system
// call is stuck, and the process has no more descriptors open than fds,
// and fails the test if that does not happen within a few seconds.
// Sessions end and sockets close a moment after the client sees the end.
func waitBaseline(t *testing.T, srv *Server, fds int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sessions, unauth, addrs := srv.slotCounts()
		stuck := srv.stuck.Load()
		n := openFDs(t)
		if sessions == 0 && unauth == 0 && addrs == 0 && stuck == 0 && n <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to the start: %d sessions (%d not logged in, from %d addresses), %d stuck calls, %d descriptors (started with %d)",
				sessions, unauth, addrs, stuck, n, fds)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerSpecialFiles: RETR of a FIFO, a socket and a device (through a
// link inside the root) is refused with 550 at once, naming what the file
// is, and the session goes on; so are STOR, APPE and SIZE of them.
func TestServerSpecialFiles(t *testing.T) {
	root, special := specialTree(t)
	ts := startTestServer(t, ServerConfig{Root: root, Write: true})
	fds := openFDs(t)

	c := dialRaw(t, ts.addr)
	c.login()
	for name, kind := range special {
		for _, line := range []string{"RETR " + name, "STOR " + name, "APPE " + name} {
			d := c.prepareData("EPSV")
			start := time.Now()
			r := c.cmd(line)
			d.conn.Close()
			if d := time.Since(start); d > refusalBound {
				t.Errorf("%s: answered after %v", line, d)
			}
			if want := "Not a regular file: it is a " + kind + "."; r.Code != 550 || r.Text() != want {
				t.Errorf("%s: got %v, want 550 %s", line, r, want)
			}
		}
		if r := c.cmd("SIZE " + name); r.Code != 550 || !strings.Contains(r.Text(), kind) {
			t.Errorf("SIZE %s: got %v", name, r)
		}
		// REST then STOR writes in place: the same check.
		d := c.prepareData("EPSV")
		c.want("REST 1", 350)
		c.want("STOR "+name, 550)
		d.conn.Close()
	}
	// Out of the root, the link is refused before anyone looks at what it
	// leads to.
	for _, name := range []string{"zero-out", "socket-out"} {
		d := c.prepareData("EPSV")
		c.want("RETR "+name, 550)
		d.conn.Close()
	}
	d := c.prepareData("EPSV")
	if r := c.cmd("RETR dir"); r.Code != 550 || r.Text() != "Is a directory." {
		t.Errorf("RETR dir: got %v", r)
	}
	d.conn.Close()
	// The session is still usable, and the files were listed, not opened.
	if data, _, final := c.retrieve("EPSV", "RETR plain.txt"); string(data) != "plain" || final.Code != 226 {
		t.Errorf("RETR plain.txt after the refusals: %q, %v", data, final)
	}
	listing, _, final := c.retrieve("EPSV", "LIST")
	if final.Code != 226 || !strings.Contains(string(listing), "prw-r--r--") || !strings.Contains(string(listing), " fifo\r\n") {
		t.Errorf("LIST: %v\n%s", final, listing)
	}
	mlsd, _, final := c.retrieve("EPSV", "MLSD")
	if final.Code != 226 || !strings.Contains(string(mlsd), "type=OS.unix=p;") {
		t.Errorf("MLSD: %v\n%s", final, mlsd)
	}
	c.want("QUIT", 221)
	c.wantClosed()
	c.conn.Close()
	for name := range special {
		if fi, err := os.Lstat(filepath.Join(root, name)); err != nil || fi.Mode().IsRegular() {
			t.Errorf("%s was replaced or removed: %v", name, err)
		}
	}
	waitBaseline(t, ts.Server, fds)
}

// TestServerFIFONoLockout is the case: with three sessions at most,
// three clients that each ask for a FIFO and leave must not lock out the
// fourth, and neither may a FIFO that has a writer.
func TestServerFIFONoLockout(t *testing.T) {
	root, _ := specialTree(t)
	ts := startTestServer(t, ServerConfig{Root: root, MaxSessions: 3, MaxPerAddr: 3, IdleTimeout: 3 * time.Second})
	fds := openFDs(t)
	// A writer on the FIFO: opening it would now succeed, and reading it
	// would never end.
	w, err := os.OpenFile(filepath.Join(root, "fifo"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 3 {
		c := dialRaw(t, ts.addr)
		c.login()
		d := c.prepareData("PASV")
		start := time.Now()
		c.want("RETR fifo", 550)
		if d := time.Since(start); d > refusalBound {
			t.Errorf("RETR fifo answered after %v", d)
		}
		d.conn.Close()
		c.conn.Close()
	}
	// The slots are free once those sessions have ended: at once, not
	// after an idle or login timeout.
	waitFor(t, func() bool { s, _, _ := ts.slotCounts(); return s == 0 })
	c := dialRaw(t, ts.addr)
	c.login()
	c.want("QUIT", 221)
	c.wantClosed()
	c.conn.Close()
	w.Close()
	waitBaseline(t, ts.Server, fds)
}

// TestServerSwappedForFIFO: a regular file replaced by a FIFO between the
// stat and the open (by a local user, or anyone with write access beside
// FTP) is refused all the same, because the descriptor opened is what is
// checked, and the open does not block.
func TestServerSwappedForFIFO(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"swap": "was a file", "up": "was a file"})
	ts := startTestServer(t, ServerConfig{Root: root, Write: true})
	ts.testHookFS = func(op, name string) {
		if op != "open" || (name != "swap" && name != "up") {
			return
		}
		p := filepath.Join(root, name)
		if err := os.Remove(p); err != nil {
			t.Errorf("swap: %v", err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Errorf("swap: %v", err)
		}
	}
	c := dialRaw(t, ts.addr)
	c.login()
	for _, line := range []string{"RETR swap", "APPE up"} {
		c.prepareData("EPSV")
		start := time.Now()
		r := c.cmd(line)
		if r.Code != 550 || !strings.Contains(r.Text(), "named pipe") {
			t.Errorf("%s: got %v, want 550 for a named pipe", line, r)
		}
		if d := time.Since(start); d > refusalBound {
			t.Errorf("%s: answered after %v", line, d)
		}
	}
	c.want("NOOP", 200)
}

// TestServerOpenRegularDirect checks openRegular on its own, with no
// server between: each kind of file, opened for reading and for writing.
func TestServerOpenRegularDirect(t *testing.T) {
	root, special := specialTree(t)
	srv, err := NewServer(ServerConfig{Root: root, Anonymous: true, Network: &OSNetwork{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fds := openFDs(t)
	tr := &tree{srv: srv, root: srv.root, ctx: context.Background(), timeout: 5 * time.Second}
	for name := range special {
		for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_WRONLY | os.O_APPEND | os.O_CREATE} {
			f, _, err := tr.openRegular(name, flag, 0o644)
			var nr *notRegularError
			if err == nil {
				f.Close()
			}
			if !errors.As(err, &nr) {
				t.Errorf("openRegular(%s, %#o): %v, want a notRegularError", name, flag, err)
			}
		}
	}
	f, fi, err := tr.openRegular("plain.txt", os.O_RDONLY, 0)
	if err != nil || fi.Size() != 5 {
		t.Fatalf("openRegular(plain.txt): %v, %v", fi, err)
	}
	var flags int
	rc, err := f.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if flags&unix.O_NONBLOCK != 0 {
		t.Errorf("the regular file is left non-blocking")
	}
	f.Close()
	if n := openFDs(t); n != fds {
		t.Errorf("%d descriptors open, %d before", n, fds)
	}
}
