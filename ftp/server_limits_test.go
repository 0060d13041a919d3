package ftp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// One address must not lock out the rest. These tests flood a server with
// connections that never log in, from one address, and check that the
// flood gets MaxPerAddr sessions and a one-line 421 for every connection
// past that, while a client from another address is served at once: on
// loopback (127.0.0.2 and 127.0.0.3, which need no root on Linux), on
// nsftp's own stack, and across a veth between two network namespaces.

func TestServerAddrKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:21", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:21", "192.0.2.7/32"}, // a mapped address is the IPv4 address
		{"[2001:db8:1:2:3:4:5:6]:21", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:21", "2001:db8:1:2::/64"}, // the same subscriber
		{"[fe80::1%eth0]:21", "fe80::/64"},
	} {
		if got := addrKey(netip.MustParseAddrPort(tc.addr)); got.String() != tc.want {
			t.Errorf("addrKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := addrKey(netip.AddrPort{}); got.IsValid() {
		t.Errorf("addrKey of no address = %s, want the zero Prefix", got)
	}
}

// TestServerLimitDefaults: with MaxSessions alone set, the defaults never
// let one address, or connections that have not logged in, take every slot.
func TestServerLimitDefaults(t *testing.T) {
	for _, tc := range []struct{ max, perAddr, unauth int }{
		{0, 8, 16}, {32, 8, 16}, {3, 2, 3}, {1, 1, 1}, {100, 8, 16},
	} {
		srv, err := NewServer(ServerConfig{Root: t.TempDir(), Anonymous: true, Network: &OSNetwork{}, MaxSessions: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		if srv.cfg.MaxPerAddr != tc.perAddr || srv.cfg.MaxUnauthenticated != tc.unauth {
			t.Errorf("MaxSessions %d: MaxPerAddr %d, MaxUnauthenticated %d; want %d, %d",
				tc.max, srv.cfg.MaxPerAddr, srv.cfg.MaxUnauthenticated, tc.perAddr, tc.unauth)
		}
		srv.Close()
	}
}

// serveListener serves cfg on l until the test ends, then closes the server
// and checks that it left nothing running.
func serveListener(t *testing.T, cfg ServerConfig, l net.Listener) *Server {
	t.Helper()
	cfg.Logf = t.Logf
	srv, err := NewServer(cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		checkNoServerGoroutines(t)
	})
	return srv
}

// floodResult is what a flood of idle connections got.
type floodResult struct {
	greeted []net.Conn // sessions the flood holds, never logged in
	refused int        // connections turned away, each checked
}

// flood opens n connections with dial and never logs in on any. A
// connection turned away must get exactly one line, 421 with want, and be
// closed at once; anything else fails the test. The greeted connections are
// left open until the test ends.
func flood(t *testing.T, dial func() (net.Conn, error), n int, want string) floodResult {
	t.Helper()
	var res floodResult
	for range n {
		c, err := dial()
		if err != nil {
			t.Fatalf("flood: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		start := time.Now()
		c.SetReadDeadline(start.Add(10 * time.Second))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("flood: no first line: %v", err)
		}
		if line == "220 nsftp ready\r\n" {
			res.greeted = append(res.greeted, c)
			continue
		}
		if line != "421 "+want+"\r\n" {
			t.Fatalf("flood: got %q, want a greeting or 421 %s", line, want)
		}
		rest, err := io.ReadAll(r)
		if err != nil || len(rest) > 0 {
			t.Errorf("flood: after the 421: %q, %v; want the connection closed", rest, err)
		}
		if d := time.Since(start); d > refusalBound {
			t.Errorf("flood: refusal took %v", d)
		}
		c.Close()
		res.refused++
	}
	return res
}

// servedAtOnce logs in with network n, as an ordinary client, and fetches
// the file "f" (which holds "content"); the greeting must come at once.
func servedAtOnce(t *testing.T, n Network, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, addr, ClientConfig{Network: n})
	if err != nil {
		t.Fatalf("the other address was not served: %v", err)
	}
	defer c.Close()
	if d := time.Since(start); d > refusalBound {
		t.Errorf("the other address was greeted after %v", d)
	}
	if err := c.Login(ctx, "anonymous", "me@example.org"); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := c.Retrieve(ctx, "f", 0, &got); err != nil || got.String() != "content" {
		t.Errorf("RETR f: %q, %v", got.String(), err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Error(err)
	}
}

func contentRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// loopbackFrom is the OS network, dialling from a chosen loopback address.
func loopbackFrom(ip string) *OSNetwork {
	return &OSNetwork{Dialer: net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}}
}

// TestServerAddrFloodLoopback is the case with the defaults: more
// idle connections from 127.0.0.2 than the server has sessions, and then a
// client from 127.0.0.3.
func TestServerAddrFloodLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveListener(t, ServerConfig{Root: contentRoot(t), Anonymous: true, Network: &OSNetwork{}}, l)
	fds := openFDs(t)
	attacker := loopbackFrom("127.0.0.2")
	if c, err := attacker.DialContext(trace.WithLabel(context.Background(), "control"), "tcp", l.Addr().String()); err != nil {
		t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
	} else {
		c.Close()
		waitFor(t, func() bool { s, _, _ := srv.slotCounts(); return s == 0 })
	}
	res := flood(t, func() (net.Conn, error) {
		return attacker.DialContext(trace.WithLabel(context.Background(), "control"), "tcp", l.Addr().String())
	}, 40, refusedPerAddr)
	if len(res.greeted) != defaultMaxPerAddr || res.refused != 40-defaultMaxPerAddr {
		t.Errorf("the flood got %d sessions and %d refusals, want %d and %d", len(res.greeted), res.refused, defaultMaxPerAddr, 40-defaultMaxPerAddr)
	}
	if s, unauth, addrs := srv.slotCounts(); s != defaultMaxPerAddr || unauth != defaultMaxPerAddr || addrs != 1 {
		t.Errorf("counts during the flood: %d sessions, %d not logged in, %d addresses", s, unauth, addrs)
	}
	servedAtOnce(t, loopbackFrom("127.0.0.3"), l.Addr().String())
	for _, c := range res.greeted {
		c.Close()
	}
	waitBaseline(t, srv, fds)
}

// TestServerUnauthenticatedLimit: connections that have not logged in, from
// any number of addresses, get MaxUnauthenticated slots; logging in, or
// the login timeout, gives one back.
func TestServerUnauthenticatedLimit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveListener(t, ServerConfig{Root: contentRoot(t), Anonymous: true, Network: &OSNetwork{},
		MaxUnauthenticated: 3, LoginTimeout: time.Second}, l)
	fds := openFDs(t)
	dialFrom := func(ip string) *rawClient {
		conn, err := loopbackFrom(ip).DialContext(trace.WithLabel(context.Background(), "control"), "tcp", l.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from %s here: %v", ip, err)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { conn.Close() })
		return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	}
	var idle []*rawClient
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		c := dialFrom(ip)
		c.wantReply(220)
		idle = append(idle, c)
	}
	late := dialFrom("127.0.0.5")
	if r := late.read(); r.Code != 421 || r.Text() != refusedUnauth {
		t.Errorf("fourth connection not logged in: %v, want 421 %s", r, refusedUnauth)
	}
	late.wantClosed()
	late.conn.Close()

	// A login frees a slot of the three.
	idle[0].want("USER anonymous", 331)
	idle[0].want("PASS x", 230)
	next := dialFrom("127.0.0.5")
	next.wantReply(220)
	if s, unauth, _ := srv.slotCounts(); s != 4 || unauth != 3 {
		t.Errorf("%d sessions, %d not logged in; want 4 and 3", s, unauth)
	}
	// And the login timeout frees the rest.
	for _, c := range append(idle[1:], next) {
		if r := c.read(); r.Code != 421 || r.Text() != "Login timeout" {
			t.Errorf("got %v, want 421 Login timeout", r)
		}
		c.wantClosed()
		c.conn.Close()
	}
	waitFor(t, func() bool { _, unauth, _ := srv.slotCounts(); return unauth == 0 })
	idle[0].want("QUIT", 221)
	idle[0].conn.Close()
	waitBaseline(t, srv, fds)
}

// TestServerAddrFloodWire runs the flood on nsftp's own stack: the server
// sees the same net.Conn, and the limit is the same. The flood comes from
// the Pair's client host; a third host on the wire is served.
func TestServerAddrFloodWire(t *testing.T) {
	stacktest.CheckGoroutines(t)
	p := stacktest.Pair(t, stack.PairConfig{})
	port, err := p.Wire.NewPort()
	if err != nil {
		t.Fatal(err)
	}
	other, err := stack.NewHost(stack.HostConfig{Name: "other", Link: port,
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.3/24")}, MinRTO: stack.WireMinRTO})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	ctx := context.Background()
	l, err := p.Server.Listen(trace.WithLabel(ctx, "control"), "tcp", "192.0.2.2:21")
	if err != nil {
		t.Fatal(err)
	}
	const perAddr = 4
	srv := serveListener(t, ServerConfig{Root: contentRoot(t), Anonymous: true, Network: p.Server, MaxPerAddr: perAddr}, l)
	res := flood(t, func() (net.Conn, error) {
		return p.Client.DialContext(trace.WithLabel(ctx, "control"), "tcp", "192.0.2.2:21")
	}, 12, refusedPerAddr)
	if len(res.greeted) != perAddr || res.refused != 12-perAddr {
		t.Errorf("the flood got %d sessions and %d refusals, want %d and %d", len(res.greeted), res.refused, perAddr, 12-perAddr)
	}
	servedAtOnce(t, other, "192.0.2.2:21")
	for _, c := range res.greeted {
		c.Close()
	}
	waitFor(t, func() bool { s, _, _ := srv.slotCounts(); return s == 0 })
}

// TestServerAddrFloodNetns runs the flood across a real link: the server in
// one network namespace, the flood (198.51.100.2) and the other client
// (198.51.100.3) in another, joined by a veth pair. It needs root.
func TestServerAddrFloodNetns(t *testing.T) {
	ns := newNetnsPair(t, "198.51.100.1", "198.51.100.2", "198.51.100.3")
	serverNet := &netnsNetwork{path: ns.server}
	l, err := serverNet.Listen(trace.WithLabel(context.Background(), "control"), "tcp", "198.51.100.1:21")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveListener(t, ServerConfig{Root: contentRoot(t), Anonymous: true, Network: serverNet}, l)
	attacker := &netnsNetwork{path: ns.client, local: "198.51.100.2"}
	const n = defaultMaxSessions + 8
	res := flood(t, func() (net.Conn, error) {
		return attacker.DialContext(trace.WithLabel(context.Background(), "control"), "tcp", "198.51.100.1:21")
	}, n, refusedPerAddr)
	if len(res.greeted) != defaultMaxPerAddr || res.refused != n-defaultMaxPerAddr {
		t.Errorf("the flood got %d sessions and %d refusals, want %d and %d", len(res.greeted), res.refused, defaultMaxPerAddr, n-defaultMaxPerAddr)
	}
	servedAtOnce(t, &netnsNetwork{path: ns.client, local: "198.51.100.3"}, "198.51.100.1:21")
	for _, c := range res.greeted {
		c.Close()
	}
	waitFor(t, func() bool { s, _, _ := srv.slotCounts(); return s == 0 })
}
