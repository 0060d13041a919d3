package ftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

var soakFor = flag.Duration("soak", 0, "how long TestServerSoak runs (0 means 45s, or 8s with -short)")

// TestServerSoak runs hostile clients of every kind the siege of issue 15
// tried (escapes through "..", links and encodings; PORT/EPRT bounces and
// data-port theft; 1 MiB lines, 10,000 pipelined commands, a reader that
// never reads its replies, slowloris, idle floods, glob bombs, protocol
// abuse; FIFOs, sockets, devices and a hung file; data connections that
// never read or trickle) side by side with ordinary clients, against one
// server, for a bounded time. It checks that every ordinary session was
// served in full, that sessions, goroutines, descriptors and heap return
// to where they started, and that nothing outside the served root changed.
//
// Each hostile kind comes from an address of its own, as the per-address
// limit assumes: more hostile addresses than MaxSessions/MaxPerAddr would
// be a distributed attack, which no per-address limit can stop.
//
// Run with -v to see the figures; -soak=60s for a longer run.
func TestServerSoak(t *testing.T) {
	duration := *soakFor
	if duration == 0 {
		duration = 45 * time.Second
		if testing.Short() {
			duration = 8 * time.Second
		}
	}
	stacktest.CheckGoroutines(t)

	parent := t.TempDir()
	root, outside := filepath.Join(parent, "root"), filepath.Join(parent, "outside")
	files := soakTree(t, root, outside)
	outsideBefore := snapshotTree(t, outside)

	base := takeSoakSample()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	cfg := ServerConfig{
		Root: root, Anonymous: true, Write: true, Network: &OSNetwork{},
		MaxSessions: 64, MaxPerAddr: 8, MaxUnauthenticated: 32,
		LoginTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second,
		DataTimeout: 2 * time.Second, FileTimeout: time.Second, FailDelay: 10 * time.Millisecond,
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// pub/hung stands for a file on a hung mount: every call on it waits
	// until the soak is over.
	hung := make(chan struct{})
	srv.testHookFS = func(op, name string) {
		if name == "pub/hung" {
			<-hung
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	peak := &soakPeak{}
	stopSampling := peak.run(srv)

	s := &soak{t: t, ctx: ctx, addr: addr, files: files, root: root, stats: map[string]*atomic.Int64{}}
	var wg sync.WaitGroup
	for i := range 4 {
		from := fmt.Sprintf("127.0.0.%d", 100+i)
		wg.Go(func() { s.ordinaryLoop(from) })
	}
	for i, kind := range soakHostiles {
		from := fmt.Sprintf("127.0.0.%d", 2+2*i) // and the next one, for a thief
		wg.Go(func() { s.hostileLoop(kind.name, from, kind.run) })
	}
	wg.Wait()
	stopSampling()

	close(hung)
	srv.Close()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	after := waitSoakBaseline(t, base)

	t.Logf("soak: %v, %d ordinary sessions served in full (%d failed), %d hostile sessions and %d refusals",
		duration, s.served.Load(), s.failed.Load(), s.hostile.Load(), s.refused.Load())
	var kinds []string
	for k, n := range s.stats {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n.Load()))
	}
	slices.Sort(kinds)
	t.Logf("soak: hostile runs by kind: %s", strings.Join(kinds, ", "))
	t.Logf("soak: descriptors %d at the start, peak %d, %d after", base.fds, peak.fds.Load(), after.fds)
	t.Logf("soak: heap in use %s at the start, peak %s, %s after; RSS %s, peak %s, %s after",
		mib(base.heap), mib(uint64(peak.heap.Load())), mib(after.heap), mib(base.rss), mib(uint64(peak.rss.Load())), mib(after.rss))
	t.Logf("soak: goroutines %d at the start, peak %d, %d after; sessions at once, peak %d",
		base.goroutines, peak.goroutines.Load(), after.goroutines, peak.sessions.Load())

	if s.served.Load() == 0 {
		t.Errorf("no ordinary session was served")
	}
	if snap := snapshotTree(t, outside); !maps2Equal(snap, outsideBefore) {
		t.Errorf("the tree outside the served root changed:\nbefore %v\nafter  %v", outsideBefore, snap)
	}
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(root, name)); err != nil || sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("served file %s changed (%v)", name, err)
		}
	}
	if left := tempFiles(root); len(left) > 0 {
		t.Errorf("temporary upload files left: %q", left)
	}
}

// soakTree builds the served root and the tree beside it that no client
// may reach, and returns the files ordinary clients fetch.
func soakTree(t *testing.T, root, outside string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{
		"pub/small":  []byte("a small file\n"),
		"pub/medium": randomBytes(t, 100<<10),
		"pub/big":    randomBytes(t, 1<<20),
	}
	for _, d := range []string{root, outside, filepath.Join(root, "pub"), filepath.Join(root, "upload"), filepath.Join(outside, "d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(outside, "canary.txt"), []byte("canary: must never change\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "pub", "hung"), []byte("never read"), 0o644))
	// Sparse: 256 MiB to send to a client that never reads, no disk used.
	huge, err := os.Create(filepath.Join(root, "pub", "huge"))
	must(err)
	must(huge.Truncate(256 << 20))
	must(huge.Close())
	must(syscall.Mkfifo(filepath.Join(root, "pub", "fifo"), 0o644))
	must(os.Symlink("../../outside", filepath.Join(root, "pub", "escape")))
	must(os.Symlink(filepath.Join(outside, "canary.txt"), filepath.Join(root, "pub", "abs-escape")))
	must(os.Symlink("/dev/zero", filepath.Join(root, "pub", "zero-out")))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "pub", "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
		must(os.Symlink("zero", filepath.Join(root, "pub", "zero-link")))
	}
	sockDir, err := os.MkdirTemp("", "nsftp-soak")
	must(err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ul, err := net.Listen("unix", filepath.Join(sockDir, "s"))
	must(err)
	t.Cleanup(func() { ul.Close() })
	must(os.Link(filepath.Join(sockDir, "s"), filepath.Join(root, "pub", "socket")))
	return files
}

// snapshotTree describes every entry under dir: type, mode, size, modification
// time and, for files, a digest.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		snap[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// soakSample is the process's use of resources at one moment.
type soakSample struct {
	fds, goroutines int
	heap, rss       uint64
}

func takeSoakSample() soakSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return soakSample{fds: countFDs(), goroutines: runtime.NumGoroutine(), heap: ms.HeapInuse, rss: readRSS()}
}

func countFDs() int {
	des, _ := os.ReadDir("/proc/self/fd")
	return len(des) - 1
}

// readRSS returns VmRSS from /proc/self/status, in bytes.
func readRSS() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// soakPeak tracks the highest use seen while the soak runs.
type soakPeak struct {
	fds, goroutines, sessions, heap, rss atomic.Int64
}

// run samples every 100 ms until stop is called.
func (p *soakPeak) run(srv *Server) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	up := func(v *atomic.Int64, n int64) {
		if n > v.Load() {
			v.Store(n)
		}
	}
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			sessions, _, _ := srv.slotCounts()
			up(&p.fds, int64(countFDs()))
			up(&p.goroutines, int64(runtime.NumGoroutine()))
			up(&p.sessions, int64(sessions))
			up(&p.heap, int64(ms.HeapInuse))
			up(&p.rss, int64(readRSS()))
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// heapSlack is how far above its start the heap may stay once everything
// has ended and been collected: the runtime keeps spans for its own
// caches (timers, sync.Pools, the netpoller's descriptors) and the test
// keeps its counters. A leak of a session's buffers (64 KiB each) over
// thousands of sessions would be far above it.
const heapSlack = 8 << 20

// rssSlack is the same for the resident set, looser: the runtime hands
// freed memory back to the kernel lazily (FreeOSMemory forces most of it),
// and keeps the stacks' and its own metadata. Under the race detector the
// resident set is not checked: its shadow memory is never given back.
const rssSlack = 32 << 20

// raceDetector reports whether the test binary was built with -race.
func raceDetector() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// waitSoakBaseline waits for descriptors and goroutines to come back to
// where they started (exactly: every connection of both sides has been
// closed), then checks the heap and the resident set, and returns the
// final sample.
func waitSoakBaseline(t *testing.T, base soakSample) soakSample {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := takeSoakSample()
		if now.fds <= base.fds && now.goroutines <= base.goroutines {
			if now.heap > base.heap+heapSlack {
				t.Errorf("heap in use %s after the soak, %s before (slack %s)", mib(now.heap), mib(base.heap), mib(heapSlack))
			}
			if now.rss > base.rss+rssSlack && !raceDetector() {
				t.Errorf("resident set %s after the soak, %s before (slack %s)", mib(now.rss), mib(base.rss), mib(rssSlack))
			}
			return now
		}
		if time.Now().After(deadline) {
			t.Errorf("not back to the start: %d descriptors (%d before), %d goroutines (%d before)",
				now.fds, base.fds, now.goroutines, base.goroutines)
			return now
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// soak is the state the clients of one soak share.
type soak struct {
	t     *testing.T
	ctx   context.Context // done when the soak is over
	addr  string
	root  string
	files map[string][]byte

	served, failed, hostile, refused atomic.Int64
	statsMu                          sync.Mutex
	stats                            map[string]*atomic.Int64
}

func (s *soak) count(kind string) {
	s.statsMu.Lock()
	n := s.stats[kind]
	if n == nil {
		n = &atomic.Int64{}
		s.stats[kind] = n
	}
	s.statsMu.Unlock()
	n.Add(1)
}

// ordinaryLoop runs ordinary sessions from one address until the soak is
// over. Every one must succeed.
func (s *soak) ordinaryLoop(from string) {
	for i := 0; s.ctx.Err() == nil; i++ {
		if err := s.ordinary(from, i); err != nil {
			s.failed.Add(1)
			s.t.Errorf("ordinary client %s, session %d: %v", from, i, err)
			continue
		}
		s.served.Add(1)
	}
}

// ordinary is one ordinary session: log in, list, fetch every file and
// check it, upload one and check it, quit.
func (s *soak) ordinary(from string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.addr, ClientConfig{Network: loopbackFrom(from)})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, "anonymous", "ordinary@example.org"); err != nil {
		return err
	}
	if err := c.Type(ctx, "I"); err != nil {
		return err
	}
	var list bytes.Buffer
	if err := c.List(ctx, "pub", &list); err != nil {
		return err
	}
	if !strings.Contains(list.String(), " big\r\n") {
		return fmt.Errorf("listing of pub lacks big:\n%s", list.String())
	}
	for name, want := range s.files {
		var got bytes.Buffer
		if _, err := c.Retrieve(ctx, name, 0, &got); err != nil {
			return fmt.Errorf("RETR %s: %w", name, err)
		}
		if sha256.Sum256(got.Bytes()) != sha256.Sum256(want) {
			return fmt.Errorf("RETR %s: %d bytes that differ from the file", name, got.Len())
		}
	}
	up := fmt.Appendf(nil, "upload %d from %s\n", i, from)
	name := fmt.Sprintf("upload/%s-%d", from, i)
	if _, err := c.Store(ctx, name, bytes.NewReader(up)); err != nil {
		return fmt.Errorf("STOR: %w", err)
	}
	if got, err := os.ReadFile(filepath.Join(s.root, name)); err != nil || !bytes.Equal(got, up) {
		return fmt.Errorf("STOR %s: stored %q, %v", name, got, err)
	}
	return c.Quit(ctx)
}

// hostileLoop runs one hostile kind from from until the soak is over.
// Network errors are the server defending itself; run reports what would
// be a failure of the server with s.t.Errorf.
func (s *soak) hostileLoop(kind, from string, run func(s *soak, from string)) {
	for s.ctx.Err() == nil {
		run(s, from)
		s.count(kind)
		// Paced: the soak is about what the server refuses, not about
		// how fast two shared cores can be kept busy.
		select {
		case <-s.ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// soakConn is a raw control connection of a hostile client. Unlike
// rawClient it reports errors instead of failing the test: being cut off
// is what a hostile client expects.
type soakConn struct {
	conn net.Conn
	r    *bufio.Reader
	from string
}

// dial connects from from and reads the greeting. A refusal (421) is
// counted and returned as an error.
func (s *soak) dial(from string) (*soakConn, error) {
	conn, err := loopbackFrom(from).DialContext(trace.WithLabel(s.ctx, "control"), "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &soakConn{conn: conn, r: bufio.NewReader(conn), from: from}
	r, err := ReadReply(c.r)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.hostile.Add(1)
	if r.Code != 220 {
		conn.Close()
		s.refused.Add(1)
		return nil, fmt.Errorf("greeted with %v", r)
	}
	return c, nil
}

func (c *soakConn) cmd(line string) (*Reply, error) {
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return nil, err
	}
	return ReadReply(c.r)
}

func (c *soakConn) login() error {
	if _, err := c.cmd("USER anonymous"); err != nil {
		return err
	}
	r, err := c.cmd("PASS hostile@example.org")
	if err == nil && r.Code != 230 {
		err = fmt.Errorf("login: %v", r)
	}
	return err
}

// pasv asks for a passive port and connects to it from the client's
// address.
func (c *soakConn) pasv() (net.Conn, error) {
	r, err := c.cmd("PASV")
	if err != nil {
		return nil, err
	}
	ap, err := ParsePASV(r.Text())
	if err != nil {
		return nil, fmt.Errorf("PASV: %v", r)
	}
	return loopbackFrom(c.from).DialContext(trace.WithLabel(context.Background(), "data"), "tcp", ap.String())
}

// expect sends each line and reports a reply outside the allowed codes.
func (s *soak) expect(c *soakConn, kind string, lines map[string][]int) bool {
	for line, allowed := range lines {
		r, err := c.cmd(line)
		if err != nil {
			return false
		}
		if !slices.Contains(allowed, r.Code) {
			s.t.Errorf("%s: %q answered %v, want one of %v", kind, line, r, allowed)
		}
	}
	return true
}

// soakHostiles are the hostile kinds, one address (and the next, for a
// thief) each.
var soakHostiles = []struct {
	name string
	run  func(s *soak, from string)
}{
	{"escape", (*soak).escape},
	{"bounce", (*soak).bounce},
	{"theft", (*soak).theft},
	{"long-line", (*soak).longLine},
	{"pipeline", (*soak).pipeline},
	{"no-read", (*soak).noRead},
	{"slowloris", (*soak).slowloris},
	{"idle-flood", (*soak).idleFlood},
	{"glob-bomb", (*soak).globBomb},
	{"abuse", (*soak).abuse},
	{"guessing", (*soak).guessing},
	{"special-files", (*soak).specialFiles},
	{"slow-data", (*soak).slowData},
}

// escape tries every way out of the root; none may succeed.
func (s *soak) escape(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	if !s.expect(c, "escape", map[string][]int{
		"SIZE ../outside/canary.txt":                 {550},
		"SIZE ../../../../outside/canary.txt":        {550},
		"SIZE pub/escape/canary.txt":                 {550},
		"SIZE pub/abs-escape":                        {550},
		"SIZE %2e%2e/outside/canary.txt":             {550},
		"SIZE ..%2f..%2foutside%2fcanary.txt":        {550},
		`SIZE ..\..\outside\canary.txt`:              {550},
		"CWD pub/escape":                             {550},
		"MKD pub/escape/planted":                     {550},
		"RMD pub/escape/d":                           {550},
		"DELE pub/escape/canary.txt":                 {550},
		"MLST pub/escape/canary.txt":                 {550},
		"STAT pub/escape":                            {550},
		"SIZE /" + s.root + "/../outside/canary.txt": {550},
	}) {
		return
	}
	if !s.expect(c, "escape", map[string][]int{"RNFR upload": {350, 550}}) {
		return
	}
	if !s.expect(c, "escape", map[string][]int{"RNTO pub/escape/moved": {550, 503}}) {
		return
	}
	for _, line := range []string{"RETR pub/escape/canary.txt", "RETR pub/abs-escape", "STOR pub/escape/planted", "APPE pub/abs-escape", "LIST pub/escape", "MLSD pub/escape"} {
		data, err := c.pasv()
		if err != nil {
			return
		}
		r, err := c.cmd(line)
		data.Close()
		if err != nil {
			return
		}
		if r.Code != 550 {
			s.t.Errorf("escape: %s answered %v, want 550", line, r)
			if r.Code == 150 {
				ReadReply(c.r)
			}
		}
	}
	c.cmd("QUIT")
}

// bounce aims the server's active connections at others; all refused.
func (s *soak) bounce(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	s.expect(c, "bounce", map[string][]int{
		"PORT 192,0,2,1,7,208":              {500},
		"PORT 127,0,0,1,31,144":             {500}, // not the client's address
		"EPRT |1|192.0.2.1|2000|":           {500},
		"EPRT |1|" + from + "|22|":          {500}, // a privileged port
		"EPRT |2|::ffff:192.0.2.1|2000|":    {500},
		"EPRT |2|2001:db8::1|2000|":         {522},
		"PORT 127,0,0,1,0,21,99":            {501},
		"RETR pub/small":                    {425},
		"EPRT |9|x|1|":                      {522},
		"PORT " + strings.Repeat("9,", 200): {501},
	})
	c.cmd("QUIT")
}

// theft: a second address connects to the victim's passive port first;
// it must get nothing, and the victim its file.
func (s *soak) theft(from string) {
	thiefFrom := nextAddr(from)
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	r, err := c.cmd("PASV")
	if err != nil {
		return
	}
	ap, err := ParsePASV(r.Text())
	if err != nil {
		return
	}
	thief, err := loopbackFrom(thiefFrom).DialContext(trace.WithLabel(context.Background(), "data"), "tcp", ap.String())
	if err != nil {
		return
	}
	defer thief.Close()
	data, err := loopbackFrom(from).DialContext(trace.WithLabel(context.Background(), "data"), "tcp", ap.String())
	if err != nil {
		return
	}
	defer data.Close()
	if r, err := c.cmd("RETR pub/small"); err != nil || r.Code != 150 {
		return
	}
	data.SetDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(data)
	if final, err := ReadReply(c.r); err == nil && final.Code == 226 && !bytes.Equal(got, s.files["pub/small"]) {
		s.t.Errorf("theft: the victim got %q", got)
	}
	thief.SetDeadline(time.Now().Add(10 * time.Second))
	if stolen, _ := io.ReadAll(thief); len(stolen) > 0 {
		s.t.Errorf("theft: the thief got %d bytes", len(stolen))
	}
	c.cmd("QUIT")
}

func nextAddr(ip string) string {
	i := strings.LastIndexByte(ip, '.')
	n, _ := strconv.Atoi(ip[i+1:])
	return ip[:i+1] + strconv.Itoa(n+1)
}

// longLine sends a 1 MiB line; the server answers 500 (or resets) and
// closes.
func (s *soak) longLine(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	go func() { c.conn.Write(bytes.Repeat([]byte("A"), 1<<20)) }()
	if r, err := ReadReply(c.r); err == nil && r.Code != 500 {
		s.t.Errorf("long-line: got %v, want 500", r)
	}
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.r); errors.Is(err, os.ErrDeadlineExceeded) {
		s.t.Errorf("long-line: connection still open")
	}
}

// pipeline sends 10,000 commands in one write and reads every reply.
func (s *soak) pipeline(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	const n = 10000
	go func() { c.conn.Write(bytes.Repeat([]byte("NOOP\r\n"), n)) }()
	for i := range n {
		r, err := ReadReply(c.r)
		if err != nil {
			return
		}
		if r.Code != 200 {
			s.t.Errorf("pipeline: reply %d is %v", i, r)
			return
		}
	}
	c.cmd("QUIT")
}

// noRead sends 10,000 commands with long replies and never reads them:
// the server's writes stall, and DataTimeout ends the session.
func (s *soak) noRead(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	c.conn.Write(bytes.Repeat([]byte("HELP\r\n"), 10000))
	select {
	case <-s.ctx.Done():
	case <-time.After(3 * time.Second):
	}
}

// slowloris trickles a line a byte at a time from four connections; the
// login timeout ends each.
func (s *soak) slowloris(from string) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c, err := s.dial(from)
			if err != nil {
				return
			}
			defer c.conn.Close()
			start := time.Now()
			go func() {
				for _, b := range []byte("USER anonymous and on and on and on and on and on") {
					time.Sleep(100 * time.Millisecond)
					if _, err := c.conn.Write([]byte{b}); err != nil {
						return
					}
				}
			}()
			r, err := ReadReply(c.r)
			if err == nil && (r.Code != 421 || r.Text() != "Login timeout") {
				s.t.Errorf("slowloris: got %v, want 421 Login timeout", r)
			}
			if d := time.Since(start); d > 2*time.Second+slowBound {
				s.t.Errorf("slowloris: cut off after %v", d)
			}
		})
	}
	wg.Wait()
}

// idleFlood opens connections from one address as fast as the pacing
// allows and never logs in: MaxPerAddr of them get a session, the rest a
// one-line refusal.
func (s *soak) idleFlood(from string) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; i < 40 && s.ctx.Err() == nil; i++ {
		conn, err := loopbackFrom(from).DialContext(trace.WithLabel(s.ctx, "control"), "tcp", s.addr)
		if err != nil {
			return
		}
		s.hostile.Add(1)
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		switch {
		case err != nil:
			conn.Close()
		case line == "220 nsftp ready\r\n":
			// Held, silent, until the login timeout ends it.
			wg.Go(func() {
				defer conn.Close()
				io.Copy(io.Discard, r)
			})
		case line == "421 "+refusedPerAddr+"\r\n" || line == "421 "+refusedFull+"\r\n" || line == "421 "+refusedUnauth+"\r\n":
			s.refused.Add(1)
			if rest, _ := io.ReadAll(r); len(rest) > 0 {
				s.t.Errorf("idle-flood: more after the 421: %q", rest)
			}
			conn.Close()
		default:
			s.t.Errorf("idle-flood: got %q", line)
			conn.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// globBomb asks for patterns that a globbing server would expand
// exponentially; nsftp takes them as names.
func (s *soak) globBomb(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	s.expect(c, "glob-bomb", map[string][]int{
		"SIZE " + strings.Repeat("*/", 100) + "*": {550},
		"STAT " + strings.Repeat("{a,b}", 50):     {550},
		"MLST */../*/../*":                        {550},
		"CWD [a-z]*":                              {550},
	})
	for _, line := range []string{"LIST " + strings.Repeat("*/", 50) + "*", "NLST {a,b,c}{d,e,f}{g,h,i}*", "LIST -R /", "MLSD ../../*"} {
		data, err := c.pasv()
		if err != nil {
			return
		}
		r, err := c.cmd(line)
		if err != nil {
			data.Close()
			return
		}
		if r.Code == 150 {
			data.SetDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, data)
			if r, err = ReadReply(c.r); err != nil {
				data.Close()
				return
			}
		}
		data.Close()
		if r.Code != 226 && r.Code != 550 && r.Code != 501 {
			s.t.Errorf("glob-bomb: %s answered %v", line, r)
		}
	}
	c.cmd("QUIT")
}

// abuse breaks the protocol every way it can think of.
func (s *soak) abuse(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if !s.expect(c, "abuse", map[string][]int{
		"RETR pub/small":    {530},
		"STOR x":            {530},
		"PASV":              {530},
		"PASS before-user":  {503},
		"\xff\xf4\xff\xf2":  {500},
		"\x00\x01\x02":      {500},
		"SITE EXEC /bin/sh": {530},
	}) {
		return
	}
	if c.login() != nil {
		return
	}
	if !s.expect(c, "abuse", map[string][]int{
		"SITE EXEC /bin/sh":                 {504},
		"REST -1":                           {501},
		"REST 99999999999999999999999":      {501},
		"RNTO nowhere":                      {503},
		"TYPE X":                            {504},
		"MODE Z":                            {504},
		"STRU R":                            {504},
		"SIZE " + strings.Repeat("a", 4000): {550},
		"USER root":                         {503},
		"SIZE \x00":                         {500},
		"OPTS UTF8 OFF":                     {504},
		"XYZZY":                             {500},
	}) {
		return
	}
	// A thousand passive ports asked for, one held at a time.
	for range 1000 {
		if r, err := c.cmd("PASV"); err != nil {
			return
		} else if r.Code != 227 {
			s.t.Errorf("abuse: PASV answered %v", r)
			return
		}
	}
	for range 100 {
		if r, err := c.cmd("ABOR"); err != nil || r.Code != 225 {
			return
		}
	}
	s.expect(c, "abuse", map[string][]int{"REST 99999999": {350}})
	s.expect(c, "abuse", map[string][]int{"RETR pub/small": {554}})
	s.expect(c, "abuse", map[string][]int{"EPSV ALL": {200}})
	s.expect(c, "abuse", map[string][]int{"PORT 127,0,0,1,4,1": {503}, "PASV": {503}})
	// The Telnet IAC bytes of a flood, then a line.
	c.conn.Write(append(bytes.Repeat([]byte{0xff, 0xf4}, 2000), "NOOP\r\n"...))
	ReadReply(c.r)
	c.cmd("QUIT")
}

// guessing tries passwords for the named account that does not exist;
// the third failure ends the session.
func (s *soak) guessing(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	for i := range 3 {
		if _, err := c.cmd("USER root"); err != nil {
			return
		}
		r, err := c.cmd("PASS guess" + strconv.Itoa(i))
		if err != nil {
			return
		}
		if want := []int{530, 530, 421}[i]; r.Code != want {
			s.t.Errorf("guessing: failure %d answered %v, want %d", i+1, r, want)
		}
	}
}

// specialFiles asks for files that are not regular files, and for one on
// a hung mount.
func (s *soak) specialFiles(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	names := []string{"pub/fifo", "pub/socket", "pub/zero-out"}
	if os.Geteuid() == 0 {
		names = append(names, "pub/zero", "pub/zero-link")
	}
	for _, name := range names {
		for _, verb := range []string{"RETR", "STOR", "APPE"} {
			data, err := c.pasv()
			if err != nil {
				return
			}
			start := time.Now()
			r, err := c.cmd(verb + " " + name)
			data.Close()
			if err != nil {
				return
			}
			if r.Code != 550 {
				s.t.Errorf("special-files: %s %s answered %v", verb, name, r)
			}
			if d := time.Since(start); d > refusalBound {
				s.t.Errorf("special-files: %s %s answered after %v", verb, name, d)
			}
		}
	}
	// The hung file: the first request waits FileTimeout and the session
	// ends; later ones are refused at once.
	if r, err := c.cmd("SIZE pub/hung"); err == nil && r.Code != 421 {
		s.t.Errorf("special-files: SIZE pub/hung answered %v, want 421", r)
	}
}

// slowData opens a download and never reads it, then trickles an upload.
func (s *soak) slowData(from string) {
	c, err := s.dial(from)
	if err != nil {
		return
	}
	defer c.conn.Close()
	if c.login() != nil {
		return
	}
	data, err := c.pasv()
	if err != nil {
		return
	}
	defer data.Close()
	start := time.Now()
	if r, err := c.cmd("RETR pub/huge"); err != nil || r.Code != 150 {
		return
	}
	r, err := ReadReply(c.r)
	if err == nil && r.Code != 426 {
		s.t.Errorf("slow-data: never-read download ended with %v", r)
	}
	if d := time.Since(start); d > 2*time.Second+slowBound {
		s.t.Errorf("slow-data: never-read download ended after %v", d)
	}
	data.Close()

	up, err := c.pasv()
	if err != nil {
		return
	}
	defer up.Close()
	if r, err := c.cmd("STOR upload/trickle-" + from); err != nil || r.Code != 150 {
		return
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := up.Write([]byte{'t'}); err != nil {
				return
			}
		}
	}()
	if r, err := ReadReply(c.r); err == nil && r.Code != 426 {
		s.t.Errorf("slow-data: trickled upload ended with %v", r)
	}
	c.cmd("QUIT")
}
