package ftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// The server is driven by rawClient, a minimal client written here on
// ReadReply, so that these tests do not depend on the package's client.

// testServer is a Server listening on loopback, closed (and checked for
// leaked goroutines) when the test ends.
type testServer struct {
	*Server
	addr   string
	root   string
	events *eventLog
}

// startTestServer serves cfg on 127.0.0.1. Unset fields get test values:
// a fresh temporary root, the OS network, the account alice/secret, short
// timeouts.
func startTestServer(t *testing.T, cfg ServerConfig) *testServer {
	t.Helper()
	return startTestServerOn(t, cfg, "127.0.0.1:0")
}

func startTestServerOn(t *testing.T, cfg ServerConfig, address string) *testServer {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Network == nil {
		cfg.Network = &OSNetwork{}
	}
	if cfg.User == "" && !cfg.Anonymous {
		cfg.User, cfg.Password = "alice", "pw-hunter2"
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 5 * time.Second
	}
	if cfg.FailDelay == 0 {
		cfg.FailDelay = time.Millisecond
	}
	events := &eventLog{}
	if cfg.Observer == nil {
		cfg.Observer = events.add
	}
	cfg.Logf = t.Logf
	l, err := net.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Close, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
		checkNoServerGoroutines(t)
		events.checkNoSecret(t, cfg.Password)
	})
	return &testServer{Server: srv, addr: l.Addr().String(), root: cfg.Root, events: events}
}

// checkNoServerGoroutines fails if any goroutine is still running server
// code. Close has waited for every one of them to finish its work, but a
// goroutine that has signalled its end may still be on its way out, so the
// check retries briefly, as goleak does.
func checkNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		left := serverGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left:\n%s", strings.Join(left, "\n\n"))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serverGoroutines returns the stacks of goroutines running server code.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for _, marker := range []string{"ftp.(*Server).", "ftp.(*session).", "ftp.afterDone", "ftp.closeOnDone"} {
			if strings.Contains(g, marker) && !strings.Contains(g, "ftp.(*Server).Close(") {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// eventLog collects a server's events.
type eventLog struct {
	mu     sync.Mutex
	events []trace.Event
}

func (l *eventLog) add(e trace.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []trace.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// checkNoSecret fails if password appears in any event.
func (l *eventLog) checkNoSecret(t *testing.T, password string) {
	t.Helper()
	if password == "" {
		return
	}
	for _, e := range l.all() {
		if strings.Contains(fmt.Sprintf("%+v", e), password) {
			t.Errorf("event shows the password: %+v", e)
		}
	}
}

// rawClient speaks FTP line by line.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dialRaw connects to addr and reads the greeting.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRawNoGreeting(t, addr)
	c.wantReply(220)
	return c
}

func dialRawNoGreeting(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// No test should take this long; a hung server fails instead of
	// hanging the test binary.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawClient) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

func (c *rawClient) read() *Reply {
	c.t.Helper()
	r, err := ReadReply(c.r)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return r
}

func (c *rawClient) wantReply(code int) *Reply {
	c.t.Helper()
	r := c.read()
	if r.Code != code {
		c.t.Fatalf("got reply %v, want %d", r, code)
	}
	return r
}

// cmd sends line and returns the reply.
func (c *rawClient) cmd(line string) *Reply {
	c.t.Helper()
	c.send(line)
	return c.read()
}

// want sends line and fails unless the reply has the code.
func (c *rawClient) want(line string, code int) *Reply {
	c.t.Helper()
	c.send(line)
	r := c.read()
	if r.Code != code {
		c.t.Fatalf("%s: got %v, want %d", line, r, code)
	}
	return r
}

func (c *rawClient) login() {
	c.t.Helper()
	c.want("USER alice", 331)
	c.want("PASS pw-hunter2", 230)
}

// wantClosed fails unless the server closes the connection.
func (c *rawClient) wantClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := ReadReply(c.r)
	if err == nil {
		c.t.Fatalf("got reply %v, want the connection closed", r)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open")
	}
}

// dataSetup is a data connection being made: dialled at once for
// passive modes, accepted later for active ones.
type dataSetup struct {
	conn net.Conn
	ln   net.Listener
}

// prepareData sets up a data connection in mode ("PASV", "EPSV", "PORT" or
// "EPRT"), as ordinary clients do: a passive connection is made before the
// transfer command.
func (c *rawClient) prepareData(mode string) *dataSetup {
	c.t.Helper()
	host, _, _ := net.SplitHostPort(c.conn.RemoteAddr().String())
	switch mode {
	case "PASV":
		r := c.want("PASV", 227)
		ap, err := ParsePASV(r.Text())
		if err != nil {
			c.t.Fatal(err)
		}
		return &dataSetup{conn: c.dialData(ap.String())}
	case "EPSV":
		r := c.want("EPSV", 229)
		port, err := ParseEPSV(r.Text())
		if err != nil {
			c.t.Fatal(err)
		}
		return &dataSetup{conn: c.dialData(net.JoinHostPort(host, fmt.Sprint(port)))}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { ln.Close() })
	ap := netip.MustParseAddrPort(ln.Addr().String())
	switch mode {
	case "PORT":
		arg, err := FormatPORT(ap)
		if err != nil {
			c.t.Fatal(err)
		}
		c.want("PORT "+arg, 200)
	case "EPRT":
		c.want("EPRT "+FormatEPRT(ap), 200)
	default:
		c.t.Fatalf("unknown data mode %q", mode)
	}
	return &dataSetup{ln: ln}
}

func (c *rawClient) dialData(addr string) net.Conn {
	c.t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// open returns the data connection, accepting it for active modes.
func (d *dataSetup) open(t *testing.T) net.Conn {
	t.Helper()
	if d.conn != nil {
		return d.conn
	}
	d.ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	conn, err := d.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	d.ln.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { conn.Close() })
	d.conn = conn
	return conn
}

// retrieve runs a read command (RETR, LIST, ...) and returns the data
// and the preliminary and final replies.
func (c *rawClient) retrieve(mode, line string) (data []byte, first, final *Reply) {
	c.t.Helper()
	d := c.prepareData(mode)
	first = c.cmd(line)
	if first.Code != 150 {
		c.t.Fatalf("%s: got %v, want 150", line, first)
	}
	conn := d.open(c.t)
	data, err := io.ReadAll(conn)
	if err != nil {
		c.t.Fatalf("%s: reading data: %v", line, err)
	}
	conn.Close()
	return data, first, c.read()
}

// store runs STOR or APPE with data and returns the final reply.
func (c *rawClient) store(mode, line string, data []byte) *Reply {
	c.t.Helper()
	d := c.prepareData(mode)
	c.want(line, 150)
	conn := d.open(c.t)
	if _, err := conn.Write(data); err != nil {
		c.t.Fatalf("%s: writing data: %v", line, err)
	}
	conn.Close()
	return c.read()
}

// writeTree creates files (name to content) under root; a name ending in
// "/" is a directory.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestServerNewServerChecksConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeTree(t, dir, map[string]string{"f": "x"})
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
	}{
		{"no root", ServerConfig{Network: &OSNetwork{}, Anonymous: true}},
		{"root is a file", ServerConfig{Root: file, Network: &OSNetwork{}, Anonymous: true}},
		{"root missing", ServerConfig{Root: filepath.Join(dir, "nope"), Network: &OSNetwork{}, Anonymous: true}},
		{"no network", ServerConfig{Root: dir, Anonymous: true}},
		{"no account", ServerConfig{Root: dir, Network: &OSNetwork{}}},
		{"user without password", ServerConfig{Root: dir, Network: &OSNetwork{}, User: "bob"}},
		{"negative timeout", ServerConfig{Root: dir, Network: &OSNetwork{}, Anonymous: true, IdleTimeout: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := NewServer(tc.cfg); err == nil {
				s.Close()
				t.Fatal("NewServer succeeded, want an error")
			}
		})
	}
}

// TestServerLogin checks the login sequence of RFC 959 section 5.4 and
// which commands are allowed before it.
func TestServerLogin(t *testing.T) {
	ts := startTestServer(t, ServerConfig{User: "alice", Password: "pw-hunter2", Anonymous: true})
	for _, tc := range []struct {
		name  string
		lines []string
		codes []int
	}{
		{"named account", []string{"USER alice", "PASS pw-hunter2", "PWD"}, []int{331, 230, 257}},
		{"anonymous", []string{"USER anonymous", "PASS me@example.org", "PWD"}, []int{331, 230, 257}},
		{"ftp is anonymous", []string{"USER ftp", "PASS", "NOOP"}, []int{331, 230, 200}},
		{"wrong password", []string{"USER alice", "PASS wrong", "PWD"}, []int{331, 530, 530}},
		{"unknown user", []string{"USER mallory", "PASS pw-hunter2"}, []int{331, 530}},
		{"PASS before USER", []string{"PASS pw-hunter2"}, []int{503}},
		// Section 4.1.1: most commands need a login first.
		{"commands need login", []string{"PWD", "LIST", "RETR x", "PASV", "STOR x", "CWD /", "TYPE I", "SITE CHMOD 777 x", "MFMT 20200101000000 x"}, []int{530, 530, 530, 530, 530, 530, 530, 530, 530}},
		// RFC 2389 section 3 (FEAT), RFC 959 SYST and NOOP, and the TLS
		// question (RFC 4217 AUTH) work before login.
		{"allowed before login", []string{"SYST", "FEAT", "NOOP", "AUTH TLS"}, []int{215, 211, 200, 502}},
		{"unknown command", []string{"XYZZ", "ACCT x"}, []int{502, 502}},
		{"bad command line", []string{"TOOLONGVERB", "NOOP"}, []int{500, 200}},
		{"second USER after login", []string{"USER alice", "PASS pw-hunter2", "USER ftp"}, []int{331, 230, 503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr)
			for i, line := range tc.lines {
				c.want(line, tc.codes[i])
			}
			c.want("QUIT", 221)
			c.wantClosed()
		})
	}
}

func TestServerAnonymousNeedsConfig(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	c := dialRaw(t, ts.addr)
	c.want("USER anonymous", 331)
	c.want("PASS x@y", 530)
}

// TestServerLoginFailures checks RFC 2577 section 5: failed logins are
// answered ever more slowly, and the third ends the session.
func TestServerLoginFailures(t *testing.T) {
	const delay = 50 * time.Millisecond
	ts := startTestServer(t, ServerConfig{FailDelay: delay})
	c := dialRaw(t, ts.addr)

	c.want("USER alice", 331)
	start := time.Now()
	c.want("PASS guess1", 530)
	if d := time.Since(start); d >= delay {
		t.Errorf("first failure took %v, want no delay", d)
	}

	c.want("USER alice", 331)
	start = time.Now()
	c.want("PASS guess2", 530)
	if d := time.Since(start); d < delay {
		t.Errorf("second failure took %v, want at least %v", d, delay)
	}

	c.want("USER alice", 331)
	start = time.Now()
	c.want("PASS guess3", 421)
	if d := time.Since(start); d < 2*delay {
		t.Errorf("third failure took %v, want at least %v", d, 2*delay)
	}
	c.wantClosed()

	for _, e := range ts.events.all() {
		if strings.Contains(e.Text, "guess") {
			t.Errorf("event shows a password: %+v", e)
		}
		if e.Kind == trace.KindCommand && strings.HasPrefix(e.Text, "PASS") && e.Text != "PASS ****" {
			t.Errorf("PASS event not masked: %q", e.Text)
		}
	}
}

func TestServerFailDelay(t *testing.T) {
	base := time.Second
	for n, want := range map[int]time.Duration{1: 0, 2: base, 3: 2 * base, 4: 4 * base, 5: 8 * base, 9: 8 * base} {
		if got := failDelay(base, n); got != want {
			t.Errorf("failDelay(%v, %d) = %v, want %v", base, n, got, want)
		}
	}
}

// TestServerRetrieve fetches files in every data connection mode (RFC 959
// section 4.1.2 PORT/PASV, RFC 2428 EPRT/EPSV) and compares digests.
func TestServerRetrieve(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	files := map[string][]byte{
		"empty": {},
		"one":   {'x'},
		"big":   randomBytes(t, 1<<20),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts.root, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"PASV", "EPSV", "PORT", "EPRT"} {
		for name, content := range files {
			t.Run(mode+"/"+name, func(t *testing.T) {
				c := dialRaw(t, ts.addr)
				c.login()
				c.want("TYPE I", 200)
				data, first, final := c.retrieve(mode, "RETR "+name)
				if want := fmt.Sprintf("(%d bytes)", len(content)); !strings.Contains(first.Text(), want) {
					t.Errorf("150 reply %q does not say %s", first.Text(), want)
				}
				if final.Code != 226 {
					t.Errorf("final reply %v, want 226", final)
				}
				if sha256.Sum256(data) != sha256.Sum256(content) {
					t.Errorf("got %d bytes that differ from the %d of the file", len(data), len(content))
				}
			})
		}
	}

	var opens, closes int
	sawBig := false
	for _, e := range ts.events.all() {
		switch e.Kind {
		case trace.KindDataOpen:
			opens++
			if e.Mode != "active" && e.Mode != "passive" || e.Conn != "data" || e.Side != "server" {
				t.Errorf("bad data-open event %+v", e)
			}
		case trace.KindDataClose:
			closes++
			sawBig = sawBig || e.Bytes == 1<<20
		}
	}
	if opens != 12 || closes != 12 {
		t.Errorf("got %d data-open and %d data-close events, want 12 each", opens, closes)
	}
	if !sawBig {
		t.Errorf("no data-close event counted 1 MiB")
	}
}

// TestServerRestart checks REST in stream mode (RFC 3659 section 5).
func TestServerRestart(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"f": "0123456789", "g": "abc"})
	c := dialRaw(t, ts.addr)
	c.login()

	c.want("REST 4", 350)
	data, first, final := c.retrieve("EPSV", "RETR f")
	if string(data) != "456789" || final.Code != 226 {
		t.Errorf("REST 4 RETR: got %q, %v", data, final)
	}
	if !strings.Contains(first.Text(), "(6 bytes)") {
		t.Errorf("150 reply %q, want the 6 bytes left", first.Text())
	}

	// The offset applies to one transfer only.
	if data, _, _ := c.retrieve("EPSV", "RETR f"); string(data) != "0123456789" {
		t.Errorf("RETR after a restarted one: got %q", data)
	}

	c.want("REST 11", 350)
	c.prepareData("EPSV")
	c.want("RETR f", 554)
	c.want("REST -1", 501)
	c.want("REST x", 501)

	// REST + STOR writes at the offset, keeping what is before it.
	c.want("REST 2", 350)
	if r := c.store("EPSV", "STOR g", []byte("CDE")); r.Code != 226 {
		t.Fatalf("REST 2 STOR: %v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(ts.root, "g")); string(b) != "abCDE" {
		t.Errorf("after REST 2 STOR: %q, want abCDE", b)
	}
}

func TestServerStore(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"old": "old content", "sub/": ""})
	content := randomBytes(t, 300<<10)
	c := dialRaw(t, ts.addr)
	c.login()

	for _, mode := range []string{"PASV", "EPRT"} {
		name := "new-" + mode
		if r := c.store(mode, "STOR "+name, content); r.Code != 226 {
			t.Fatalf("STOR: %v", r)
		}
		if b, _ := os.ReadFile(filepath.Join(ts.root, name)); !bytes.Equal(b, content) {
			t.Errorf("%s: stored %d bytes, want the %d sent", mode, len(b), len(content))
		}
	}

	if r := c.store("EPSV", "STOR old", []byte("new")); r.Code != 226 {
		t.Fatalf("STOR over a file: %v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(ts.root, "old")); string(b) != "new" {
		t.Errorf("STOR over a file: %q, want new", b)
	}
	if r := c.store("EPSV", "APPE old", []byte(" and more")); r.Code != 226 {
		t.Fatalf("APPE: %v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(ts.root, "old")); string(b) != "new and more" {
		t.Errorf("APPE: %q", b)
	}
	if r := c.store("EPSV", "STOR /sub/../sub/inner", []byte("x")); r.Code != 226 {
		t.Fatalf("STOR in a subdirectory: %v", r)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "sub", "inner")); err != nil {
		t.Error(err)
	}

	c.want("STOR x", 425) // no data connection set up
	c.prepareData("EPSV")
	c.want("STOR sub", 550)        // a directory
	c.want("STOR nodir/file", 550) // no such directory
	if left := tempFiles(ts.root); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

// TestServerReadOnly checks that, without Write, every command that
// changes the tree is refused and changes nothing.
func TestServerReadOnly(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	writeTree(t, ts.root, map[string]string{"f": "keep", "d/": ""})
	c := dialRaw(t, ts.addr)
	c.login()
	c.prepareData("EPSV")
	for _, line := range []string{"STOR f", "STOR new", "APPE f", "DELE f", "MKD m", "RMD d", "RNFR f", "RNTO g"} {
		c.want(line, 550)
	}
	if b, _ := os.ReadFile(filepath.Join(ts.root, "f")); string(b) != "keep" {
		t.Errorf("f changed to %q", b)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "new")); err == nil {
		t.Errorf("STOR created a file")
	}
	// The EPSV is still there for a read.
	c.send("RETR f")
	c.wantReply(150)
}

// TestServerStoreBroken checks that an upload that does not complete
// leaves the file it would replace untouched, and no temporary file.
func TestServerStoreBroken(t *testing.T) {
	for _, how := range []string{"reset", "ABOR", "QUIT-less disconnect"} {
		t.Run(how, func(t *testing.T) {
			ts := startTestServer(t, ServerConfig{Write: true})
			writeTree(t, ts.root, map[string]string{"keep": "precious"})
			c := dialRaw(t, ts.addr)
			c.login()
			d := c.prepareData("EPSV")
			c.want("STOR keep", 150)
			conn := d.open(t)
			if _, err := conn.Write(randomBytes(t, 100<<10)); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "reset":
				// A reset, unlike a close, is not the end of the file.
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
				c.wantReply(426)
			case "ABOR":
				c.send("ABOR")
				c.wantReply(426)
				c.wantReply(226)
			case "QUIT-less disconnect":
				c.conn.Close()
				// The server notices and ends the session; Close in the
				// cleanup would hang if it did not.
			}
			waitFor(t, func() bool {
				b, _ := os.ReadFile(filepath.Join(ts.root, "keep"))
				return string(b) == "precious" && len(tempFiles(ts.root)) == 0
			})
			if how != "QUIT-less disconnect" {
				c.want("NOOP", 200)
			}
		})
	}
}

func tempFiles(root string) []string {
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".nsftp-upload-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerListings checks LIST, NLST (RFC 959 section 4.1.3) and MLSD,
// MLST (RFC 3659 section 7).
func TestServerListings(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	writeTree(t, ts.root, map[string]string{
		"a.txt":        "hello",
		"with space":   "",
		"sub/b.bin":    "12345678",
		"bad\r\nname":  "x", // never on the wire: it would end a line
		"semi;colon=x": "",
	})
	if err := os.Symlink("a.txt", filepath.Join(ts.root, "link")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 5, 17, 10, 30, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(ts.root, "a.txt"), mtime, mtime)
	os.Chmod(filepath.Join(ts.root, "a.txt"), 0o644)

	c := dialRaw(t, ts.addr)
	c.login()
	wantNames := []string{"a.txt", "link", "semi;colon=x", "sub", "with space"}

	lines := func(data []byte) []string {
		t.Helper()
		s := string(data)
		if s != "" && !strings.HasSuffix(s, "\r\n") {
			t.Errorf("listing does not end in CRLF: %q", s)
		}
		s = strings.TrimSuffix(s, "\r\n")
		if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\r") {
			t.Errorf("bare CR or LF in listing %q", s)
		}
		if s == "" {
			return nil
		}
		return strings.Split(s, "\r\n")
	}

	t.Run("NLST", func(t *testing.T) {
		data, _, final := c.retrieve("EPSV", "NLST")
		got := lines(data)
		slices.Sort(got)
		if !slices.Equal(got, wantNames) || final.Code != 226 {
			t.Errorf("NLST: %q, %v; want %q", got, final, wantNames)
		}
		data, _, _ = c.retrieve("EPSV", "NLST -a sub")
		if got := lines(data); !slices.Equal(got, []string{"b.bin"}) {
			t.Errorf("NLST -a sub: %q", got)
		}
	})

	t.Run("LIST", func(t *testing.T) {
		data, _, final := c.retrieve("PASV", "LIST -la")
		var names []string
		for _, l := range lines(data) {
			e, err := ParseListLine(l, time.Now())
			if err != nil {
				t.Errorf("LIST line %q: %v", l, err)
				continue
			}
			names = append(names, e.Name)
			switch e.Name {
			case "a.txt":
				// An old date shows only the day in ls format.
				y, m, d := e.ModTime.Date()
				if e.Type != "file" || e.Size != 5 || y != 2020 || m != 5 || d != 17 || e.Perm != "-rw-r--r--" {
					t.Errorf("a.txt: %+v", e)
				}
			case "sub":
				if e.Type != "dir" {
					t.Errorf("sub: %+v", e)
				}
			case "link":
				if e.Type != "link" || e.Target != "a.txt" {
					t.Errorf("link: %+v", e)
				}
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, wantNames) || final.Code != 226 {
			t.Errorf("LIST names %q, %v; want %q", names, final, wantNames)
		}
		data, _, _ = c.retrieve("PASV", "LIST sub/b.bin")
		if l := lines(data); len(l) != 1 || !strings.HasSuffix(l[0], " b.bin") {
			t.Errorf("LIST of a file: %q", l)
		}
	})

	t.Run("MLSD", func(t *testing.T) {
		data, _, final := c.retrieve("EPSV", "MLSD")
		var names []string
		for _, l := range lines(data) {
			e, err := ParseMLSDLine(l)
			if err != nil {
				t.Errorf("MLSD line %q: %v", l, err)
				continue
			}
			names = append(names, e.Name)
			switch e.Name {
			case "a.txt", "link": // the link is described by its target
				if e.Type != "file" || e.Size != 5 || !e.ModTime.Equal(mtime) || e.Perm != "r" {
					t.Errorf("%s: %+v", e.Name, e)
				}
			case "sub":
				if e.Type != "dir" || e.Perm != "el" {
					t.Errorf("sub: %+v", e)
				}
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, wantNames) || final.Code != 226 {
			t.Errorf("MLSD names %q, %v; want %q", names, final, wantNames)
		}
		// RFC 3659 section 7.2.1: MLSD of a file is an error.
		c.prepareData("EPSV")
		c.want("MLSD a.txt", 501)
	})

	t.Run("MLST", func(t *testing.T) {
		r := c.want("MLST sub/b.bin", 250)
		if len(r.Lines) != 3 || !strings.HasPrefix(r.Lines[1], " ") {
			t.Fatalf("MLST reply %q, want three lines, the middle one starting with a space", r.Lines)
		}
		e, err := ParseMLSDLine(r.Lines[1][1:])
		if err != nil || e.Name != "/sub/b.bin" || e.Type != "file" || e.Size != 8 {
			t.Errorf("MLST entry %+v, %v", e, err)
		}
		c.want("MLST nothere", 550)
	})

	t.Run("STAT path", func(t *testing.T) {
		r := c.want("STAT sub", 213)
		if !strings.Contains(r.Text(), "b.bin") {
			t.Errorf("STAT sub: %q", r.Text())
		}
	})
}

// TestServerConfinement checks that no path leads out of the served root:
// not "..", not an absolute path, not a symbolic link.
func TestServerConfinement(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "outside"})
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"sub/f.txt": "inside", "top.txt": "top"})
	rel, err := filepath.Rel(ts.root, outside)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(ts.root, "abs-link")))
	must(os.Symlink(filepath.Join(rel, "secret.txt"), filepath.Join(ts.root, "rel-link")))
	must(os.Symlink(rel, filepath.Join(ts.root, "dir-link")))
	must(os.Symlink("../top.txt", filepath.Join(ts.root, "sub", "up-link"))) // inside: fine

	c := dialRaw(t, ts.addr)
	c.login()
	secretRel := filepath.ToSlash(filepath.Join(rel, "secret.txt"))
	for _, tc := range []struct{ line, want string }{
		// Lexically, ".." stops at the served root (RFC 959 leaves path
		// syntax to the server): these name files inside it, or nothing.
		{"SIZE ../top.txt", "213 3"},
		{"SIZE /../../top.txt", "213 3"},
		{"SIZE ../../../../../../../../" + secretRel, "550"},
		{"SIZE " + filepath.ToSlash(filepath.Join(outside, "secret.txt")), "550"}, // absolute: inside the root
		{"SIZE /sub/f.txt", "213 6"},
		{"SIZE sub/up-link", "213 3"},
		// Symbolic links out of the root are refused by os.Root.
		{"SIZE abs-link", "550"},
		{"SIZE rel-link", "550"},
		{"CWD dir-link", "550"},
		{"SIZE dir-link/secret.txt", "550"},
		{"MDTM rel-link", "550"},
		{"DELE dir-link/secret.txt", "550"},
		{"RNFR dir-link/secret.txt", "550"},
		{"MKD dir-link/new", "550"},
		{"MLST rel-link", "550"},
	} {
		r := c.cmd(tc.line)
		if got := r.String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %s, want %s", tc.line, got, tc.want)
		}
	}
	for _, line := range []string{"RETR rel-link", "RETR abs-link", "RETR dir-link/secret.txt", "RETR ../" + secretRel} {
		c.prepareData("EPSV")
		if r := c.cmd(line); r.Code != 550 {
			t.Errorf("%s: got %v, want 550", line, r)
		}
	}
	c.prepareData("EPSV")
	c.want("STOR dir-link/planted", 550)
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Errorf("STOR wrote outside the root")
	}

	// The virtual working directory (RFC 959 PWD, appendix II quoting).
	c.want("CWD sub", 250)
	if r := c.want("PWD", 257); r.Text() != `"/sub" is the current directory` {
		t.Errorf("PWD: %q", r.Text())
	}
	if data, _, _ := c.retrieve("EPSV", "RETR /top.txt"); string(data) != "top" {
		t.Errorf("absolute path from /sub: %q", data)
	}
	c.want("CDUP", 250)
	c.want("CDUP", 250)
	if r := c.want("XPWD", 257); r.Text() != `"/" is the current directory` {
		t.Errorf("PWD after CDUP at the root: %q", r.Text())
	}
	c.want(`MKD a"b`, 257)
	c.want(`CWD a"b`, 250)
	if r := c.want("PWD", 257); r.Text() != `"/a""b" is the current directory` {
		t.Errorf("PWD with a quote: %q", r.Text())
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret.txt")); string(b) != "outside" {
		t.Errorf("the outside file changed")
	}
}

// recordingNetwork is the OS network, recording what it is asked to dial
// and keeping every listener it opens.
type recordingNetwork struct {
	OSNetwork
	mu    sync.Mutex
	dials []string
	lns   []*loggedListener
}

func (n *recordingNetwork) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	l, err := n.OSNetwork.Listen(ctx, network, address)
	if err != nil {
		return nil, err
	}
	ll := &loggedListener{Listener: l}
	n.mu.Lock()
	n.lns = append(n.lns, ll)
	n.mu.Unlock()
	return ll, nil
}

func (n *recordingNetwork) listeners() []*loggedListener {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.lns)
}

// loggedListener knows whether it was closed.
type loggedListener struct {
	net.Listener
	closed atomic.Bool
}

func (l *loggedListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

func (n *recordingNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	n.mu.Lock()
	n.dials = append(n.dials, string(trace.LabelOf(ctx))+" "+address)
	n.mu.Unlock()
	return n.OSNetwork.DialContext(ctx, network, address)
}

// DialFrom records, as DialContext does.
func (n *recordingNetwork) DialFrom(ctx context.Context, network, local, address string) (net.Conn, error) {
	n.mu.Lock()
	n.dials = append(n.dials, string(trace.LabelOf(ctx))+" "+local+" "+address)
	n.mu.Unlock()
	return n.OSNetwork.DialFrom(ctx, network, local, address)
}

// serverPorts finds a port P whose neighbour P-1 is free too, on loopback,
// for a server that connects from L-1. They are found below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), where it never hands a
// port to a program that asks for any: a free ephemeral port could be
// given to another test between this check and the server's bind.
func serverPorts(t *testing.T) (control, data int) {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low < 4000 {
		t.Skipf("the ephemeral port range starts at %d: no room below it for a pair of ports", low)
	}
	for range 50 {
		p := 2000 + mrand.IntN(low-2000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p-1)); err == nil {
			l2.Close()
			return p, p - 1
		}
	}
	t.Fatal("no pair of free ports")
	return 0, 0
}

// TestServerActiveFromL1: in active mode the data connection comes from
// the control connection's port less one, as RFC 959 section 3.2 says
// (port 20 for a server on 21), several transfers in a row; where that
// port cannot be had, from an ephemeral one, and a note says so.
func TestServerActiveFromL1(t *testing.T) {
	control, data := serverPorts(t)
	ts := startTestServerOn(t, ServerConfig{}, fmt.Sprintf("127.0.0.1:%d", control))
	writeTree(t, ts.root, map[string]string{"f": "data"})
	c := dialRaw(t, ts.addr)
	c.login()
	for i := range 3 {
		d := c.prepareData("PORT")
		c.want("RETR f", 150)
		conn := d.open(t)
		if got := conn.RemoteAddr().(*net.TCPAddr).Port; got != data {
			t.Errorf("transfer %d: data connection from port %d, want %d (L-1)", i+1, got, data)
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		if string(b) != "data" {
			t.Errorf("transfer %d: got %q", i+1, b)
		}
		c.wantReply(226)
	}

	// Someone else listens on L-1: the transfer still happens.
	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", data))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d := c.prepareData("PORT")
	c.want("RETR f", 150)
	conn := d.open(t)
	if got := conn.RemoteAddr().(*net.TCPAddr).Port; got == data {
		t.Errorf("data connection from the busy port %d", got)
	}
	io.ReadAll(conn)
	conn.Close()
	c.wantReply(226)
	noted := false
	for _, e := range ts.events.all() {
		noted = noted || e.Kind == trace.KindNote && strings.Contains(e.Text, "ephemeral port") && e.Err != ""
	}
	if !noted {
		t.Error("no note of the ephemeral port")
	}
}

// TestServerActiveRefused checks the bounce protection of RFC 2577
// section 3: the server connects only to the client's own address, on an
// unprivileged port, and refuses before trying anything.
func TestServerActiveRefused(t *testing.T) {
	nw := &recordingNetwork{}
	ts := startTestServer(t, ServerConfig{Network: nw})
	writeTree(t, ts.root, map[string]string{"f": "data"})
	c := dialRaw(t, ts.addr)
	c.login()
	for _, tc := range []struct {
		line string
		code int
	}{
		{"PORT 192,0,2,1,4,1", 500},        // someone else (RFC 5737 TEST-NET-1)
		{"PORT 127,0,0,1,0,80", 500},       // privileged port
		{"EPRT |1|192.0.2.1|1025|", 500},   // someone else
		{"EPRT |1|127.0.0.1|21|", 500},     // privileged port
		{"EPRT |2|2001:db8::1|1025|", 522}, // RFC 2428: wrong family, use (1)
		{"EPRT |3|x|1025|", 522},           // unknown network protocol
		{"PORT 1,2,3", 501},                // RFC 959 syntax
		{"EPRT |1|999.0.0.1|1025|", 501},
	} {
		c.want(tc.line, tc.code)
	}
	// No PORT was accepted, so there is nothing to connect to.
	c.want("RETR f", 425)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if len(nw.dials) > 0 {
		t.Errorf("server dialled %q", nw.dials)
	}
}

// TestServerPassiveTheft checks that a passive data connection from
// another address than the client's is refused (RFC 2577 section 8), and
// that the client still gets its connection.
func TestServerPassiveTheft(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	writeTree(t, ts.root, map[string]string{"f": "the goods"})
	c := dialRaw(t, ts.addr)
	c.login()
	r := c.want("PASV", 227)
	ap, err := ParsePASV(r.Text())
	if err != nil {
		t.Fatal(err)
	}
	// Linux routes all of 127/8 to the loopback interface, so a second
	// local address plays the thief.
	thiefDialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	thief, err := thiefDialer.Dial("tcp", ap.String())
	if err != nil {
		t.Skipf("cannot connect from 127.0.0.2: %v", err)
	}
	defer thief.Close()
	data := c.dialData(ap.String())
	c.want("RETR f", 150)

	thief.SetReadDeadline(time.Now().Add(5 * time.Second))
	if stolen, _ := io.ReadAll(thief); len(stolen) > 0 {
		t.Errorf("thief got %q", stolen)
	}
	got, err := io.ReadAll(data)
	if err != nil || string(got) != "the goods" {
		t.Errorf("client got %q, %v", got, err)
	}
	c.wantReply(226)

	refused := false
	for _, e := range ts.events.all() {
		if e.Kind == trace.KindNote && e.Conn == "data" && strings.Contains(e.Text, "127.0.0.2") {
			refused = true
		}
	}
	if !refused {
		t.Errorf("no note about the refused connection")
	}
}

func TestServerSessionLimit(t *testing.T) {
	ts := startTestServer(t, ServerConfig{MaxSessions: 2, MaxPerAddr: 2})
	a := dialRaw(t, ts.addr)
	dialRaw(t, ts.addr)
	c := dialRawNoGreeting(t, ts.addr)
	if r := c.read(); r.Code != 421 || r.Text() != "Too many connections" {
		t.Errorf("third session: %v, want 421 Too many connections", r)
	}
	c.wantClosed()

	a.want("QUIT", 221)
	a.wantClosed()
	// The freed slot is taken back once the session has ended.
	waitFor(t, func() bool {
		c := dialRawNoGreeting(t, ts.addr)
		defer c.conn.Close()
		return c.read().Code == 220
	})
}

func TestServerTimeouts(t *testing.T) {
	t.Run("login", func(t *testing.T) {
		ts := startTestServer(t, ServerConfig{LoginTimeout: 100 * time.Millisecond})
		c := dialRaw(t, ts.addr)
		c.want("USER alice", 331) // a command is not a login
		if r := c.read(); r.Code != 421 || r.Text() != "Login timeout" {
			t.Errorf("got %v, want 421 Login timeout", r)
		}
		c.wantClosed()
	})
	t.Run("idle", func(t *testing.T) {
		ts := startTestServer(t, ServerConfig{IdleTimeout: 300 * time.Millisecond, LoginTimeout: 100 * time.Millisecond})
		c := dialRaw(t, ts.addr)
		c.login()
		// Past the login timeout, logged in: only idleness counts now.
		time.Sleep(150 * time.Millisecond)
		c.want("NOOP", 200)
		start := time.Now()
		if r := c.read(); r.Code != 421 || r.Text() != "Idle timeout" {
			t.Errorf("got %v, want 421 Idle timeout", r)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("idle timeout after %v, want about 300ms", d)
		}
		c.wantClosed()
	})
	t.Run("passive accept", func(t *testing.T) {
		ts := startTestServer(t, ServerConfig{DataTimeout: 100 * time.Millisecond})
		writeTree(t, ts.root, map[string]string{"f": "x"})
		c := dialRaw(t, ts.addr)
		c.login()
		c.want("EPSV", 229)
		c.want("RETR f", 150) // and never connect
		c.wantReply(425)
		c.want("NOOP", 200)
	})
}

// TestServerAbort checks ABOR (RFC 959 section 4.1.3): during a transfer,
// 426 for the transfer and then 226 for the ABOR; with none, 225.
func TestServerAbort(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	// A sparse file: large, but costs no disk.
	f, err := os.Create(filepath.Join(ts.root, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()

	c := dialRaw(t, ts.addr)
	c.login()
	c.want("ABOR", 225)

	d := c.prepareData("EPSV")
	c.want("RETR huge", 150)
	conn := d.open(t)
	if _, err := io.ReadFull(conn, make([]byte, 128<<10)); err != nil {
		t.Fatal(err)
	}
	// The transfer now stalls on the unread data; STAT still answers.
	if r := c.want("STAT", 213); !strings.Contains(r.Text(), "bytes so far") {
		t.Errorf("STAT during a transfer: %q", r.Text())
	}
	// Sent the way RFC 959 describes: Telnet IP and Synch first.
	if _, err := c.conn.Write([]byte("\xff\xf4\xff\xf2ABOR\r\n")); err != nil {
		t.Fatal(err)
	}
	c.wantReply(426)
	c.wantReply(226)
	// The server resets the data connection rather than let the rest of
	// its socket buffer drain to the client; any end but a timeout will do.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("data connection still open after ABOR")
		}
	}
	c.want("NOOP", 200)

	// ABOR as Python's ftplib sends it, as urgent data: the LF is lost.
	d = c.prepareData("PASV")
	c.want("RETR huge", 150)
	conn = d.open(t)
	if _, err := io.ReadFull(conn, make([]byte, 128<<10)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c.conn, "ABOR\r")
	c.wantReply(426)
	c.wantReply(226)
	conn.Close()
	c.want("NOOP", 200)

	// Commands sent during a transfer wait for it; QUIT comes after.
	d = c.prepareData("EPSV")
	c.want("RETR huge", 150)
	conn = d.open(t)
	c.send("NOOP")
	c.send("QUIT")
	time.Sleep(50 * time.Millisecond)
	conn.Close() // the client gives up: the transfer fails
	c.wantReply(426)
	c.wantReply(200)
	c.wantReply(221)
	c.wantClosed()
}

// TestServerCommands checks the small commands, a row per RFC section.
func TestServerCommands(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"f": "12345", "d/": ""})
	mtime := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	os.Chtimes(filepath.Join(ts.root, "f"), mtime, mtime)
	c := dialRaw(t, ts.addr)
	c.login()
	for _, tc := range []struct {
		rfc, line, want string
	}{
		{"RFC 959 4.1.3", "SYST", "215 UNIX Type: L8"},
		{"RFC 959 4.1.2", "TYPE A", "200"},
		{"RFC 959 4.1.2", "TYPE A N", "200"},
		{"RFC 959 4.1.2", "TYPE I", "200"},
		{"RFC 959 4.1.2", "TYPE L 8", "200"},
		{"RFC 959 4.1.2", "TYPE E", "504"},
		{"RFC 959 4.1.2", "MODE S", "200"},
		{"RFC 959 4.1.2", "MODE B", "504"},
		{"RFC 959 4.1.2", "STRU F", "200"},
		{"RFC 959 4.1.2", "STRU R", "504"},
		{"RFC 959 4.1.3", "NOOP", "200"},
		{"RFC 959 4.1.3", "ALLO 100", "202"},
		{"RFC 959 4.1.3", "HELP", "214"},
		{"RFC 959 4.1.3", "STAT", "211"},
		{"RFC 959 4.1.1", "CWD nothere", "550"},
		{"RFC 959 4.1.1", "CWD f", "550"},
		{"RFC 959 4.1.1", "CWD", "501"},
		{"RFC 959 4.1.3", "MKD d", "550"},
		{"RFC 959 4.1.3", "MKD new", `257 "/new" directory created`},
		{"RFC 959 4.1.3", "XMKD new2", "257"},
		{"RFC 959 4.1.3", "RMD new", "250"},
		{"RFC 959 4.1.3", "XRMD new2", "250"},
		{"RFC 959 4.1.3", "RMD f", "550"},
		{"RFC 959 4.1.3", "RMD /", "550"},
		{"RFC 959 4.1.3", "DELE d", "550"},
		{"RFC 959 4.1.3", "DELE nothere", "550"},
		{"RFC 959 4.1.3", "RNTO g", "503"},
		{"RFC 959 4.1.3", "RNFR nothere", "550"},
		{"RFC 959 4.1.3", "RNFR f", "350"},
		{"RFC 959 4.1.3", "RNTO g", "250"},
		{"RFC 959 4.1.3", "RNFR g", "350"},
		{"RFC 959 4.1.3", "NOOP", "200"}, // RNTO must follow RNFR at once
		{"RFC 959 4.1.3", "RNTO f", "503"},
		{"RFC 959 4.1.3", "RNFR g", "350"},
		{"RFC 959 4.1.3", "RNTO f", "250"},
		{"RFC 3659 4", "SIZE f", "213 5"},
		{"RFC 3659 4", "SIZE d", "550"},
		{"RFC 3659 4", "SIZE nothere", "550"},
		{"RFC 3659 3", "MDTM f", "213 20210203040506"},
		{"RFC 3659 3", "MDTM nothere", "550"},
		{"RFC 2389 4", "OPTS UTF8 ON", "200"},
		{"RFC 2389 4", "OPTS FOO", "501"},
		{"RFC 2428 3", "EPSV 1", "229"},
		{"RFC 2428 3", "EPSV 2", "522 Network protocol not supported, use (1)"},
		{"RFC 2428 3", "EPSV 9", "501"},
		{"RFC 959 4.1.3", "DELE g", "550"},
		{"RFC 959 4.1.3", "DELE f", "250"},
		{"RFC 2428 4", "EPSV ALL", "200"},
		{"RFC 2428 4", "PASV", "503"},
		{"RFC 2428 4", "PORT 127,0,0,1,4,1", "503"},
		{"RFC 2428 4", "EPSV", "229"},
	} {
		r := c.cmd(tc.line)
		if got := r.String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s: got %s, want %s", tc.rfc, tc.line, got, tc.want)
		}
	}

	// RFC 2389 section 3: each feature on its own line, after a space.
	r := c.want("FEAT", 211)
	for _, f := range []string{"EPRT", "EPSV", "MDTM", "MLST type*;size*;modify*;perm*;", "PASV", "REST STREAM", "SIZE", "UTF8"} {
		if !slices.Contains(r.Lines, " "+f) {
			t.Errorf("FEAT lacks %q: %q", f, r.Lines)
		}
	}
	c.want("QUIT", 221)
	c.wantClosed()
}

func TestServerLongLine(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	c := dialRaw(t, ts.addr)
	c.send("NOOP " + strings.Repeat("x", MaxLineLength+10))
	// The server closes with part of the line unread, which resets the
	// connection and may destroy the reply on the way: either will do.
	if r, err := ReadReply(c.r); err == nil && r.Code != 500 {
		t.Errorf("got %v, want 500", r)
	}
	c.wantClosed()
}

// TestServerIPv6 runs the data connection modes of RFC 2428 over IPv6.
func TestServerIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	ts := startTestServerOn(t, ServerConfig{}, "[::1]:0")
	writeTree(t, ts.root, map[string]string{"f": "over six"})
	c := dialRaw(t, ts.addr)
	c.login()
	for _, mode := range []string{"EPSV", "EPRT"} {
		data, _, final := c.retrieve(mode, "RETR f")
		if string(data) != "over six" || final.Code != 226 {
			t.Errorf("%s: %q, %v", mode, data, final)
		}
	}
	c.want("PASV", 522)
	c.want("PORT 127,0,0,1,4,1", 500) // not the client's address
	c.want("EPRT |1|127.0.0.1|1025|", 522)
	c.want("EPSV 1", 522)
}

// TestServerClose checks that Close ends every session, whatever it is
// doing, and leaves no goroutine behind.
func TestServerClose(t *testing.T) {
	before := runtime.NumGoroutine()
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()

	srv, err := NewServer(ServerConfig{Root: root, Network: &OSNetwork{}, Anonymous: true, Write: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()

	login := func() *rawClient {
		c := dialRaw(t, l.Addr().String())
		c.want("USER ftp", 331)
		c.want("PASS x", 230)
		return c
	}
	dialRaw(t, l.Addr().String()) // not logged in
	login()                       // idle
	waiting := login()            // waiting for a passive connection
	waiting.want("EPSV", 229)
	waiting.want("RETR huge", 150)
	stalled := login() // sending into a full socket
	d := stalled.prepareData("EPSV")
	stalled.want("RETR huge", 150)
	d.open(t)
	uploading := login() // receiving
	d2 := uploading.prepareData("PASV")
	uploading.want("STOR up", 150)
	d2.open(t).Write([]byte("partial"))
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	checkNoServerGoroutines(t)
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := srv.Serve(context.Background(), l); err == nil {
		t.Errorf("Serve after Close succeeded")
	}
	if len(tempFiles(root)) > 0 {
		t.Errorf("upload cut by Close left a temporary file")
	}
	// The test's own client connections close in cleanups; the count
	// must come back once they have.
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines before, %d after", before, n)
		}
	})
}

// TestServerServeContext checks that cancelling Serve's context stops it
// and the sessions it started.
func TestServerServeContext(t *testing.T) {
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), Network: &OSNetwork{}, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	c := dialRaw(t, l.Addr().String())
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	c.wantClosed()
	checkNoServerGoroutines(t)
}

// TestServerUrgentABOR checks the repair of an ABOR whose LF, sent as TCP
// urgent data (RFC 959 section 4.1.3, Python's ftplib), never arrives.
func TestServerUrgentABOR(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ABOR\r", "ABOR\r\n"},
		{"ABOR\r\n", "ABOR\r\n"},
		{"abor\rNOOP\r\n", "abor\r\nNOOP\r\n"},
		{"\xff\xf4\xffABOR\r\nNOOP\r\n", "\xff\xf4\xffABOR\r\nNOOP\r\n"},
		{"NOOP\r\nABOR\rSTAT\r\n", "NOOP\r\nABOR\r\nSTAT\r\n"},
		{"RETR ABOR\r\n", "RETR ABOR\r\n"},
		{"ABORT\r\n", "ABORT\r\n"},
		{"ABOR\r\r\n", "ABOR\r\n\r\n"}, // still malformed, and still refused
	} {
		// One byte at a time, so every boundary is exercised.
		u := &urgentABOR{r: &oneByteReader{s: tc.in}}
		got, err := io.ReadAll(u)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	ts := startTestServer(t, ServerConfig{})
	c := dialRaw(t, ts.addr)
	c.login()
	io.WriteString(c.conn, "ABOR\r")
	c.wantReply(225)
	c.want("NOOP", 200)
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:1], r.s)
	r.s = r.s[n:]
	return n, nil
}

// TestServerPassiveReplaced checks that a new PASV closes the listener of
// the one before, so a client repeating PASV holds one port only. It
// watches the server's own listeners: a dial to the old port would test
// the machine instead, where another test's listener may be handed that
// port the moment it is free (under load one was, and the dial connected).
func TestServerPassiveReplaced(t *testing.T) {
	n := &recordingNetwork{}
	ts := startTestServer(t, ServerConfig{Network: n})
	c := dialRaw(t, ts.addr)
	c.login()
	for i, cmd := range []string{"PASV", "EPSV", "PASV"} {
		code := map[string]int{"PASV": 227, "EPSV": 229}[cmd]
		c.want(cmd, code)
		lns := n.listeners()
		if len(lns) != i+1 {
			t.Fatalf("after %d passive commands, %d listeners opened", i+1, len(lns))
		}
		for j, l := range lns[:i] {
			if !l.closed.Load() {
				t.Fatalf("after %s, the listener of passive command %d (%s) is open", cmd, j+1, l.Addr())
			}
			if _, err := l.Listener.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("the replaced listener %s accepts: %v", l.Addr(), err)
			}
		}
		if lns[i].closed.Load() {
			t.Errorf("the listener %s the %s reply names is closed", lns[i].Addr(), cmd)
		}
	}
}
