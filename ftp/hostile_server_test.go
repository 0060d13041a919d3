package ftp

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Hostile clients against the server: names that try to leave the served
// root, bytes that try to end a command line early, clients that connect
// and never finish a line. The friendly cases are in server_test.go.

// TestServerTraversal tries every way out of the root that a name can
// take. FTP paths are not URLs: "%2e%2e" is a literal name (RFC 959 leaves
// path syntax to the server, and nothing in FTP percent-decodes), so it
// must reach a directory of that name and nothing else.
func TestServerTraversal(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "outside", "d/": ""})
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{
		"top.txt":         "top",
		"%2e%2e/lit.txt":  "literal",
		"sub/f.txt":       "inside",
		"..%2f/x.txt":     "odd but inside",
		"sub/deeper/g.tx": "g",
	})
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
	must(os.Symlink(rel, filepath.Join(ts.root, "dir-link")))
	must(os.Symlink("..", filepath.Join(ts.root, "up-link")))
	must(os.Symlink("../../..", filepath.Join(ts.root, "sub", "deeper", "way-up")))

	c := dialRaw(t, ts.addr)
	c.login()
	secret := filepath.ToSlash(filepath.Join(rel, "secret.txt"))
	for _, tc := range []struct{ rfc, line, want string }{
		// Percent-escapes are literal.
		{"RFC 959 3.2", "SIZE %2e%2e/lit.txt", "213 7"},
		{"RFC 959 3.2", "SIZE %2e%2e/top.txt", "550"},
		{"RFC 959 3.2", "SIZE %2e%2e%2f%2e%2e%2f" + strings.ReplaceAll(secret, "/", "%2f"), "550"},
		{"RFC 959 3.2", "SIZE ..%2f/x.txt", "213 14"},
		// Dot-dot stops at the root, however it is spelled.
		{"RFC 959 3.2", "SIZE ../../../../../../../../" + secret, "550"},
		{"RFC 959 3.2", "SIZE sub/../../../top.txt", "213 3"},
		{"RFC 959 3.2", "SIZE sub/./../sub//f.txt", "213 6"},
		{"RFC 959 3.2", "SIZE //../top.txt", "213 3"},
		{"RFC 959 3.2", "SIZE " + filepath.Join(outside, "secret.txt"), "550"},
		{"RFC 959 3.2", "SIZE ...", "550"},
		{"RFC 959 3.2", `SIZE ..\..\top.txt`, "550"},
		// Links out of the root, directly or through "..".
		{"RFC 2577 7", "SIZE abs-link", "550"},
		{"RFC 2577 7", "SIZE up-link/top.txt", "550"},
		{"RFC 2577 7", "CWD up-link", "550"},
		{"RFC 2577 7", "SIZE sub/deeper/way-up/top.txt", "550"},
		{"RFC 2577 7", "STAT dir-link", "550"},
		{"RFC 2577 7", "MLST dir-link/secret.txt", "550"},
		{"RFC 2577 7", "RNFR top.txt", "350"},
		{"RFC 2577 7", "RNTO dir-link/planted", "550"},
		{"RFC 2577 7", "MKD dir-link/d/new", "550"},
		{"RFC 2577 7", "RMD dir-link/d", "550"},
		{"RFC 2577 7", "DELE dir-link/secret.txt", "550"},
		// The working directory cannot leave either.
		{"RFC 959 4.1.1", "CWD /../../..", "250"},
		{"RFC 959 4.1.1", "PWD", `257 "/"`},
		{"RFC 959 4.1.1", "CWD %2e%2e", "250"},
		{"RFC 959 4.1.1", "PWD", `257 "/%2e%2e"`},
		{"RFC 959 4.1.1", "SIZE lit.txt", "213 7"},
		{"RFC 959 4.1.1", "CDUP", "250"},
		{"RFC 959 4.1.1", "CDUP", "250"},
		{"RFC 959 4.1.1", "PWD", `257 "/"`},
	} {
		if r := c.cmd(tc.line); !strings.HasPrefix(r.String(), tc.want) {
			t.Errorf("%s: %s: got %s, want %s", tc.rfc, tc.line, r, tc.want)
		}
	}
	// Listings and transfers through a link out of the root.
	for _, line := range []string{"LIST dir-link", "NLST dir-link", "MLSD dir-link", "RETR abs-link", "RETR up-link/top.txt"} {
		c.prepareData("EPSV")
		if r := c.cmd(line); r.Code != 550 {
			t.Errorf("%s: got %v, want 550", line, r)
		}
	}
	for _, line := range []string{"APPE abs-link", "STOR abs-link", "STOR dir-link/planted", "STOR up-link/planted"} {
		c.prepareData("EPSV")
		c.want(line, 550)
	}
	// An upload to "../../x" lands in the root.
	if r := c.store("EPSV", "STOR ../../escaped.txt", []byte("x")); r.Code != 226 {
		t.Errorf("STOR ../../escaped.txt: %v", r)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "escaped.txt")); err != nil {
		t.Errorf("STOR ../../escaped.txt did not land in the root: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret.txt")); string(b) != "outside" {
		t.Errorf("the file outside the root now holds %q", b)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 2 {
		t.Errorf("something was created outside the root: %d entries", len(entries))
	}
}

// TestServerBadBytesInNames sends names with NUL, CR and LF inside the
// command line itself, as a hostile client can (RFC 959 section 4.1.3:
// a command line ends at CRLF, and the Telnet NVT has no NUL in text). The
// line is refused with 500, nothing is touched, and the session goes on.
func TestServerBadBytesInNames(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"a": "a"})
	c := dialRaw(t, ts.addr)
	c.login()
	for _, raw := range []string{
		"SIZE a\x00b\r\n",
		"MKD x\x00y\r\n",
		"RETR ../\x00/etc/passwd\r\n",
		"DELE a\rb\r\n",
		"RNFR a\x00\r\n",
		"CWD \x00\r\n",
	} {
		if _, err := io.WriteString(c.conn, raw); err != nil {
			t.Fatal(err)
		}
		if r := c.read(); r.Code != 500 {
			t.Errorf("%q: got %v, want 500", raw, r)
		}
	}
	c.want("NOOP", 200)
	// The line ends at the LF: what follows is the next command, which
	// must pass the login and argument checks like any other.
	io.WriteString(c.conn, "SIZE a\nDELE a\r\n")
	c.wantReply(213)
	c.wantReply(250)
	wantEntries(t, ts.root)
	// The same bytes from the resolver's side, for paths that arrive by
	// other routes.
	s := &session{cwd: "/"}
	for _, arg := range []string{"a\x00b", "a\rb", "a\nb"} {
		if _, _, ok := s.resolve(arg); ok {
			t.Errorf("resolve(%q) accepted it", arg)
		}
	}
}

func wantEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "/") != strings.Join(names, "/") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// TestServerActiveMapped: an EPRT with an IPv4-mapped IPv6 address is
// judged as the IPv4 address it carries, so a bounce cannot hide behind
// the mapping (RFC 2577 section 3).
func TestServerActiveMapped(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	c := dialRaw(t, ts.addr)
	c.login()
	c.want("EPRT |2|::ffff:192.0.2.9|1025|", 500)
	c.want("EPRT |2|::ffff:127.0.0.1|1025|", 200)
	c.want("PORT 127,0,0,1,0,0", 501)
	c.want("EPRT |1|127.0.0.1|0|", 501)
	c.want("EPRT |1|127.0.0.1|1023|", 500)
}

// TestServerSlowloris: a client that trickles bytes and never ends a line
// is still cut off by the login and idle timeouts, which count time, not
// bytes.
func TestServerSlowloris(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   ServerConfig
		login bool
		want  string
	}{
		{"before login", ServerConfig{LoginTimeout: 300 * time.Millisecond}, false, "Login timeout"},
		{"after login", ServerConfig{IdleTimeout: 300 * time.Millisecond}, true, "Idle timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, tc.cfg)
			c := dialRaw(t, ts.addr)
			if tc.login {
				c.login()
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, b := range []byte("NOOP and on and on and on and on") {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if _, err := c.conn.Write([]byte{b}); err != nil {
						return
					}
				}
			}()
			start := time.Now()
			r := c.read()
			close(stop)
			<-done
			if r.Code != 421 || r.Text() != tc.want {
				t.Errorf("got %v, want 421 %s", r, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("cut off after %v", d)
			}
			c.wantClosed()
		})
	}
}

// resetConn is a connection that a client has already reset: like a
// socket of nsftp's stack then, it no longer knows its addresses.
type resetConn struct{ net.Conn }

func (resetConn) LocalAddr() net.Addr  { return nil }
func (resetConn) RemoteAddr() net.Addr { return nil }

// resetNet hands out reset connections for data.
type resetNet struct{ refusingNet }

func (resetNet) DialContext(context.Context, string, string) (net.Conn, error) {
	a, b := net.Pipe()
	b.Close()
	return resetConn{a}, nil
}

// TestServerResetConnections: a connection reset before the server looks
// at its addresses must not crash the server. A client could do that to
// a data connection, or to a control connection over the session limit,
// at will.
func TestServerResetConnections(t *testing.T) {
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), Anonymous: true, Network: resetNet{}, DataTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a, b := net.Pipe()
	defer b.Close()
	go io.Copy(io.Discard, b)
	srv.reject(resetConn{a}, refusedFull)

	ctrl, peer := net.Pipe()
	defer peer.Close()
	s := newSession(context.Background(), srv, ctrl, nil)
	defer s.cancel()
	var moved atomic.Int64
	r := s.runData(s.ctx, &dataPlan{mode: "active", target: netip.MustParseAddrPort("192.0.2.1:2000")}, &moved,
		func(io.ReadWriter) error { return nil })
	if !r.opened {
		t.Errorf("runData: %+v", r)
	}
}
