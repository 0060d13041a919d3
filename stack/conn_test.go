package stack_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestConnContract runs golang.org/x/net/nettest's net.Conn contract on the
// TCP connections a Pair's hosts make with DialContext and accept from
// Listen: reads and writes, concurrent use, every kind of deadline (one
// in the past fails a Read or Write at once, with data to move or not),
// Close waking blocked calls. On a clean wire and on one that loses,
// delays and reorders frames.
func TestConnContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		path stack.Path
	}{
		{"clean", stack.Path{}},
		{"lossy", stack.Path{Loss: 2, Delay: 2 * time.Millisecond, Jitter: time.Millisecond, Reorder: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := stacktest.Pair(t, stack.PairConfig{Wire: stack.WireConfig{Path: tc.path}})
			ctx := context.Background()
			l, err := p.Server.Listen(ctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "0"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				accepted := make(chan net.Conn, 1)
				go func() {
					c, err := l.Accept()
					if err != nil {
						c = nil
					}
					accepted <- c
				}()
				c1, err = p.Client.DialContext(ctx, "tcp", l.Addr().String())
				if err != nil {
					return nil, nil, nil, err
				}
				c2 = <-accepted
				if c2 == nil {
					c1.Close()
					return nil, nil, nil, errors.New("accept failed")
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}

// TestDialErrors: DialContext's failures are net.Dialer's: *net.OpError
// with Op, Net and Addr, wrapping the errno, and a context whose deadline
// passes gives a timeout.
func TestDialErrors(t *testing.T) {
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()

	_, err := p.Client.DialContext(ctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "9"))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != "tcp" || oe.Addr == nil || oe.Addr.String() != stack.ServerIPv4+":9" {
		t.Errorf("refused dial: got %#v, want *net.OpError{Op: dial, Net: tcp, Addr: %s:9}", err, stack.ServerIPv4)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused dial: %v does not wrap ECONNREFUSED", err)
	}

	if _, err := p.Client.DialContext(ctx, "sctp", "192.0.2.2:9"); !errors.As(err, &oe) || oe.Net != "sctp" {
		t.Errorf("unknown network: got %v, want an *net.OpError naming it", err)
	}
	if _, err := p.Client.DialContext(ctx, "tcp6", net.JoinHostPort(stack.ServerIPv4, "21")); err == nil {
		t.Error("tcp6 to an IPv4 address: no error")
	}
	if _, err := p.Client.DialContext(ctx, "tcp", "no-such-host.invalid:21"); err == nil {
		t.Error("a host name on a host with no name server: no error")
	}

	// A host that answers nothing: the SYN is lost on a wire that is down.
	q := stacktest.Pair(t, stack.PairConfig{Wire: stack.WireConfig{Path: stack.Path{Down: []stack.Outage{{At: 0, For: time.Hour}}}}})
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = q.Client.DialContext(dctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "21"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial past its context's deadline: got %v, want a net.Error whose Timeout is true", err)
	}
}

// TestUDPEcho: DialContext("udp") and ListenPacket give Go's datagram
// shapes, a datagram a Read or Write, and a read deadline that passes
// gives os.ErrDeadlineExceeded.
func TestUDPEcho(t *testing.T) {
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()
	pc, err := p.Server.ListenPacket(ctx, "udp", net.JoinHostPort(stack.ServerIPv4, "7"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	c, err := p.Client.DialContext(ctx, "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("echo of %q: got %q, %v", msg, buf[:n], err)
		}
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read with nothing to read past its deadline: got %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestDialHostName: a host name in DialContext's address is looked up by
// the host's own resolver, its queries sent through the host to the name
// server it was given, and Resolver answers the same.
func TestDialHostName(t *testing.T) {
	n := stacktest.Network(t, stack.NetworkConfig{Hosts: []stack.HostConfig{{}, {}, {Name: "ns"}}})
	client, server, ns := n.Hosts[0], n.Hosts[1], n.Hosts[2]
	stacktest.ServeDNS(t, ns, stacktest.Zone{Records: map[string][]netip.Addr{
		"ftp.example.test.": {netip.MustParseAddr(stack.ServerIPv4)},
	}})
	if err := client.Configure(stack.Change{Source: trace.FromCommandLine, DNS: []netip.Addr{netip.MustParseAddr("192.0.2.3")}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := server.Listen(ctx, "tcp", ":21")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := client.DialContext(ctx, "tcp", "ftp.example.test:21")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != stack.ServerIPv4+":21" {
		t.Errorf("dialled %s, want %s:21", got, stack.ServerIPv4)
	}
	c.Close()
	addrs, err := client.Resolver().LookupNetIP(ctx, "ip4", "ftp.example.test")
	if err != nil || len(addrs) != 1 || addrs[0].Unmap().String() != stack.ServerIPv4 {
		t.Errorf("Resolver: %v, %v; want [%s]", addrs, err, stack.ServerIPv4)
	}
	if _, err := client.DialContext(ctx, "tcp", "nowhere.example.test:21"); err == nil {
		t.Error("a name the server does not know: no error")
	}
}

// TestListenNetworks: Listen and ListenPacket take the networks and
// addresses net.ListenConfig's do, and refuse the others with an
// *net.OpError.
func TestListenNetworks(t *testing.T) {
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()
	for _, tc := range []struct {
		network, address, want string // want "" for an error
	}{
		{"tcp", ":0", "0.0.0.0"},
		{"tcp4", stack.ServerIPv4 + ":0", stack.ServerIPv4},
		{"tcp6", ":0", "::"},
		{"tcp6", "[" + stack.ServerIPv6 + "]:0", stack.ServerIPv6},
		{"tcp6", stack.ServerIPv4 + ":0", ""},
		{"udp", ":0", ""},
		{"tcp", "nohost", ""},
	} {
		l, err := p.Server.Listen(ctx, tc.network, tc.address)
		var oe *net.OpError
		switch {
		case tc.want == "" && (err == nil || !errors.As(err, &oe) || oe.Op != "listen"):
			t.Errorf("Listen(%q, %q) = %v, want an *net.OpError", tc.network, tc.address, err)
		case tc.want != "" && err != nil:
			t.Errorf("Listen(%q, %q): %v", tc.network, tc.address, err)
		case tc.want != "" && netip.MustParseAddrPort(l.Addr().String()).Addr().String() != tc.want:
			t.Errorf("Listen(%q, %q) listens on %v, want %s", tc.network, tc.address, l.Addr(), tc.want)
		}
		if l != nil {
			l.Close()
		}
	}
	if _, err := p.Server.ListenPacket(ctx, "tcp", ":0"); err == nil {
		t.Error(`ListenPacket("tcp"): no error`)
	}
}
