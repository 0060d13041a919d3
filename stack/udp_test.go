package stack_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestUDPTraced sends a datagram each way between two UDP sockets and
// checks the timeline: every call begun and ended with the UDP names, and
// each datagram recorded with the socket it belongs to on both hosts.
func TestUDPTraced(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	p := stacktest.Pair(t, stack.PairConfig{
		Client: stack.HostConfig{Observer: tl.rec.Record},
		Server: stack.HostConfig{Observer: tl.rec.Record},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvAddr := netip.AddrPortFrom(netip.MustParseAddr(stack.ServerIPv4), 5353)
	srv, err := p.Server.UDPSocket(trace.WithLabel(ctx, trace.DNS), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Bind(ctx, srvAddr); err != nil {
		t.Fatal(err)
	}
	cl, err := p.Client.UDPSocket(trace.WithLabel(ctx, trace.DNS), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SendTo(ctx, []byte("query"), srvAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, from, err := srv.RecvFrom(ctx, buf)
	if err != nil || string(buf[:n]) != "query" || from.Port() != cl.LocalAddrPort().Port() {
		t.Fatalf("server recvfrom: %q from %v, %v; want \"query\" from the client's %v", buf[:n], from, err, cl.LocalAddrPort())
	}
	if _, err := srv.SendTo(ctx, []byte("answer!"), from); err != nil {
		t.Fatal(err)
	}
	// recvfrom truncates a datagram longer than the buffer, as recvfrom(2).
	n, from, err = cl.RecvFrom(ctx, buf[:6])
	if err != nil || string(buf[:n]) != "answer" || from != srvAddr {
		t.Fatalf("client recvfrom: %q from %v, %v; want \"answer\" (cut to 6) from %v", buf[:n], from, err, srvAddr)
	}
	cl.Close()
	srv.Close()
	evs := tl.events()

	ops := map[string][]trace.Op{}
	for _, e := range evs {
		if e.Kind == trace.KindCall && e.Phase == trace.End {
			c := e.Call
			if c.Proto != "udp" || c.Label != trace.DNS || c.Kernel == "" || c.Article == "" || c.Netstack == "" {
				t.Errorf("%s: call %+v lacks its UDP names or label", e.Host, c)
			}
			ops[e.Host] = append(ops[e.Host], c.Op)
		}
	}
	want := map[string]string{
		"client": "socket sendto recvfrom close",
		"server": "socket bind recvfrom sendto close",
	}
	for host, w := range want {
		var got []string
		for _, op := range ops[host] {
			got = append(got, string(op))
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s's calls: %v, want %s", host, got, w)
		}
	}
	// Each datagram is recorded twice, by its sender and its receiver,
	// each time with that host's socket.
	seen := 0
	for _, e := range evs {
		s := e.Segment
		if e.Kind != trace.KindSegment || s.Proto != "udp" {
			continue
		}
		seen++
		wantFD := cl.ID()
		if e.Host == "server" {
			wantFD = srv.ID()
		}
		if s.Socket != wantFD || s.Label != trace.DNS {
			t.Errorf("%s %s datagram %s belongs to fd%d %q, want fd%d dns", e.Host, s.Dir, s.Addrs(), s.Socket, s.Label, wantFD)
		}
	}
	if seen != 4 {
		t.Errorf("%d UDP segment events, want 4 (two datagrams, each sent and received)", seen)
	}
	var b bytes.Buffer
	tx := trace.NewText(&b, trace.TextOptions{})
	for i := range evs {
		tx.Event(&evs[i])
	}
	tx.Flush()
	if !strings.Contains(b.String(), "sendto(5 bytes, 192.0.2.2:5353)") || !strings.Contains(b.String(), "recvfrom() = 5 bytes from 192.0.2.1:") {
		t.Errorf("the text view lacks the sendto or the recvfrom:\n%s", b.String())
	}
}

// TestUDPConnectedRefused checks a connected UDP socket as Go's resolver
// uses it (net.Conn, one datagram per Write and per Read), and that the
// peer's ICMP port unreachable fails the next Read with ECONNREFUSED, as
// on Linux (RFC 1122 section 4.1.3.3: UDP passes ICMP errors up).
func TestUDPConnectedRefused(t *testing.T) {
	stacktest.CheckGoroutines(t)
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.Client.UDPSocket(trace.WithLabel(ctx, trace.DNS), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(ctx, netip.AddrPortFrom(netip.MustParseAddr(stack.ServerIPv4), 53)); err != nil {
		t.Fatal(err)
	}
	var c net.Conn = s
	if _, ok := c.(net.PacketConn); !ok {
		t.Fatal("a UDPSocket is not a net.PacketConn: Go's resolver would treat it as a stream")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 16))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read after the peer's port unreachable: %v, want ECONNREFUSED", err)
	}
}

// newBareHost is a host on w with no address at all, as a DHCP client
// starts.
func newBareHost(t *testing.T, w *stack.Wire, cfg stack.HostConfig) *stack.Host {
	t.Helper()
	port, err := w.NewPort()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Link = port
	h, err := stack.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newWire is a virtual wire closed when the test ends (after the hosts
// on it, whose cleanups run first).
func newWire(t *testing.T) *stack.Wire {
	t.Helper()
	w, err := stack.NewWire(stack.WireConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestUnconfiguredBroadcast is a DHCP client's first exchange (RFC 2131
// section 4.1): a host with no address sends from 0.0.0.0:68 to
// 255.255.255.255:67 and hears the server's broadcast answer on port 68.
func TestUnconfiguredBroadcast(t *testing.T) {
	stacktest.CheckGoroutines(t)
	w := newWire(t)
	server := newBareHost(t, w, stack.HostConfig{Name: "server", Addrs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(stack.ServerIPv4), 24)}})
	client := newBareHost(t, w, stack.HostConfig{Name: "client"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ss, err := server.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	ss.SetBroadcast(true)
	if err := ss.Bind(ctx, netip.MustParseAddrPort("0.0.0.0:67")); err != nil {
		t.Fatal(err)
	}
	bcast := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port)
	}
	err = client.Unconfigured(func() error {
		cs, err := client.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
		if err != nil {
			return err
		}
		defer cs.Close()
		cs.SetBroadcast(true)
		if err := cs.Bind(ctx, netip.MustParseAddrPort("0.0.0.0:68")); err != nil {
			return err
		}
		if _, err := cs.SendTo(ctx, []byte("DISCOVER"), bcast(67)); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, from, err := ss.RecvFrom(ctx, buf)
		if err != nil || string(buf[:n]) != "DISCOVER" || from != netip.MustParseAddrPort("0.0.0.0:68") {
			t.Errorf("server: %q from %v, %v; want DISCOVER from 0.0.0.0:68", buf[:n], from, err)
		}
		if _, err := ss.SendTo(ctx, []byte("OFFER"), bcast(68)); err != nil {
			return err
		}
		n, from, err = cs.RecvFrom(ctx, buf)
		if err != nil || string(buf[:n]) != "OFFER" || from.Addr() != netip.MustParseAddr(stack.ServerIPv4) {
			t.Errorf("client: %q from %v, %v; want OFFER from the server", buf[:n], from, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 0.0.0.0 was the interface's only while the exchange ran.
	if a := client.Addresses(); len(a) != 0 {
		t.Errorf("after the exchange the client has addresses %v, want none", a)
	}
}

// TestProbeAddress checks RFC 5227's probe: an address nobody holds is
// free after ProbeWait; one another host holds is a DuplicateAddressError
// naming that host's Ethernet address.
func TestProbeAddress(t *testing.T) {
	stacktest.CheckGoroutines(t)
	w := newWire(t)
	server := newBareHost(t, w, stack.HostConfig{Name: "server", Addrs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(stack.ServerIPv4), 24)}})
	client := newBareHost(t, w, stack.HostConfig{Name: "client", ProbeWait: 150 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	start := time.Now()
	if err := client.ProbeAddress(ctx, netip.MustParseAddr("192.0.2.77")); err != nil {
		t.Fatalf("probing a free address: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("a free address was declared free after %v, before the probes' time was up", d)
	}
	err := client.ProbeAddress(ctx, netip.MustParseAddr(stack.ServerIPv4))
	var dup *stack.DuplicateAddressError
	if !errors.As(err, &dup) {
		t.Fatalf("probing the server's address: %v, want a DuplicateAddressError", err)
	}
	if dup.Holder.String() != server.MAC().String() || dup.Addr != netip.MustParseAddr(stack.ServerIPv4) {
		t.Errorf("duplicate %v held by %v, want %v held by the server's %v", dup.Addr, dup.Holder, netip.MustParseAddr(stack.ServerIPv4), server.MAC())
	}
	if !strings.Contains(err.Error(), server.MAC().String()) {
		t.Errorf("the error does not name who answered: %v", err)
	}
}

// TestConfigure gives a bare host an address, a router and name servers
// as it runs, and takes the address away again: each change is a config
// event before anything uses it, and the route table follows.
func TestConfigure(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	w := newWire(t)
	server := newBareHost(t, w, stack.HostConfig{Name: "server", Addrs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(stack.ServerIPv4), 24)}})
	client := newBareHost(t, w, stack.HostConfig{Name: "client", Observer: tl.rec.Record})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := listen(t, server, serverAddr)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	if _, err := client.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", serverAddr.String()); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("dial with no address: %v, want ENETUNREACH", err)
	}
	lease := netip.MustParsePrefix("192.0.2.9/24")
	dnsDHCP := []netip.Addr{netip.MustParseAddr("192.0.2.53")}
	if err := client.Configure(stack.Change{Source: trace.FromDHCP, Addr: lease, Router: netip.MustParseAddr("192.0.2.254"), DNS: dnsDHCP}); err != nil {
		t.Fatal(err)
	}
	c, err := client.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", serverAddr.String())
	if err != nil {
		t.Fatalf("dial after DHCP's address: %v", err)
	}
	c.Close()
	if got := client.NameServers(); len(got) != 1 || got[0] != dnsDHCP[0] {
		t.Errorf("name servers %v, want DHCP's %v", got, dnsDHCP)
	}
	// What the user says wins over what DHCP said.
	mine := netip.MustParseAddr("198.51.100.53")
	if err := client.Configure(stack.Change{Source: trace.FromCommandLine, DNS: []netip.Addr{mine}, Router: netip.MustParseAddr("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	if got := client.NameServers(); len(got) != 1 || got[0] != mine {
		t.Errorf("name servers %v, want the user's %v", got, mine)
	}
	if got := client.Routers(); len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("routers %v, want the user's 192.0.2.1", got)
	}
	if err := client.Configure(stack.Change{Source: trace.FromDHCP, Removed: true, Addr: lease}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", serverAddr.String()); err == nil {
		t.Fatal("dial after the address was given up succeeded")
	}
	evs := tl.events()
	var configs []string
	for _, e := range evs {
		if e.Kind == trace.KindConfig {
			configs = append(configs, trace.ConfigText(e.Config))
		}
	}
	want := []string{
		"address 192.0.2.9/24, router 192.0.2.254, name server 192.0.2.53 (DHCP lease)",
		"router 192.0.2.1, name server 198.51.100.53 (command line)",
		"gave up address 192.0.2.9/24 (DHCP)",
	}
	if strings.Join(configs, "\n") != strings.Join(want, "\n") {
		t.Errorf("config events:\n%s\nwant:\n%s", strings.Join(configs, "\n"), strings.Join(want, "\n"))
	}
	// The address came before the SYN that used it.
	var addrAt, synAt uint64
	for _, e := range evs {
		switch {
		case e.Kind == trace.KindConfig && addrAt == 0:
			addrAt = e.Seq
		case e.Kind == trace.KindSegment && e.Segment.Proto == "tcp" && e.Segment.Flags == trace.SYN && synAt == 0:
			synAt = e.Seq
		}
	}
	if addrAt == 0 || synAt < addrAt {
		t.Errorf("the address (event %d) is not recorded before the first SYN (event %d)", addrAt, synAt)
	}
}
