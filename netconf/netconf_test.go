package netconf_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// The network of these tests: a server host at 192.0.2.1 (and
// 2001:db8::1) running a small DHCP and DNS server on its own stack, and
// a client host that starts with no address, on one virtual wire.
var (
	serverAddr4 = netip.MustParsePrefix("192.0.2.1/24")
	serverAddr6 = netip.MustParsePrefix("2001:db8::1/64")
	leaseAddr   = netip.MustParseAddr("192.0.2.57")
)

type lab struct {
	server, client *stack.Host
	events         func() []trace.Event
}

func newLab(t *testing.T) *lab {
	t.Helper()
	w, err := stack.NewWire(stack.WireConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	host := func(cfg stack.HostConfig) *stack.Host {
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
	l := &lab{
		server: host(stack.HostConfig{Name: "server", Addrs: []netip.Prefix{serverAddr4, serverAddr6}}),
		client: host(stack.HostConfig{Name: "client", Observer: rec.Record, ProbeWait: 150 * time.Millisecond}),
	}
	l.events = func() []trace.Event { rec.Stop(); return keep.Events }
	return l
}

// dhcpServer is a DHCP server on a host's own stack that offers one
// address, and remembers the message types it was sent.
type dhcpServer struct {
	mu   sync.Mutex
	seen []dhcpv4.MessageType
	last *dhcpv4.DHCPv4
}

func (d *dhcpServer) types() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s []string
	for _, m := range d.seen {
		s = append(s, m.String())
	}
	return strings.Join(s, " ")
}

// serveDHCP answers DISCOVER with an OFFER of addr and REQUEST with an
// ACK, both broadcast (the client asked for broadcasts), until the test
// ends. The router and name server are the server itself.
func serveDHCP(t *testing.T, h *stack.Host, addr netip.Addr) *dhcpServer {
	return serveDHCPFor(t, h, addr, time.Hour, false)
}

// serveDHCPFor is serveDHCP with leases that last the given time. A
// REQUEST from an address (a renewal) is answered at that address.
//
// A server that naks answers every REQUEST with a DHCPNAK.
func serveDHCPFor(t *testing.T, h *stack.Host, addr netip.Addr, lease time.Duration, naks bool) *dhcpServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.UDPSocket(trace.WithLabel(ctx, trace.DHCP), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	s.SetBroadcast(true)
	if err := s.Bind(ctx, netip.MustParseAddrPort("0.0.0.0:67")); err != nil {
		t.Fatal(err)
	}
	d := &dhcpServer{}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		me := net.IP(serverAddr4.Addr().AsSlice())
		for {
			n, _, err := s.RecvFrom(ctx, buf)
			if err != nil {
				return
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				continue
			}
			d.mu.Lock()
			d.seen = append(d.seen, m.MessageType())
			d.last = m
			d.mu.Unlock()
			var typ dhcpv4.MessageType
			switch m.MessageType() {
			case dhcpv4.MessageTypeDiscover:
				typ = dhcpv4.MessageTypeOffer
			case dhcpv4.MessageTypeRequest:
				typ = dhcpv4.MessageTypeAck
				if naks {
					typ = dhcpv4.MessageTypeNak
				}
			default:
				continue
			}
			r, err := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(typ),
				dhcpv4.WithYourIP(net.IP(addr.AsSlice())), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
				dhcpv4.WithOption(dhcpv4.OptRouter(me)), dhcpv4.WithOption(dhcpv4.OptDNS(me)),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(me)),
				dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)))
			if err != nil {
				continue
			}
			to := netip.MustParseAddrPort("255.255.255.255:68")
			if ci, ok := netip.AddrFromSlice(m.ClientIPAddr); ok && !ci.Unmap().IsUnspecified() {
				to = netip.AddrPortFrom(ci.Unmap(), 68)
			}
			s.SendTo(ctx, r.ToBytes(), to)
		}
	}()
	return d
}

// TestAcquireAndRelease runs RFC 2131's exchange against a server on the
// wire: the client gets the offered address, router and name server, and
// gives the address back at the end.
func TestAcquireAndRelease(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	srv := serveDHCP(t, l.server, leaseAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lease, err := netconf.Acquire(ctx, l.client, netconf.DHCPConfig{Device: "wire0", Hostname: "nsftp"})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Addr != netip.PrefixFrom(leaseAddr, 24) || lease.Router != serverAddr4.Addr() || lease.Server != serverAddr4.Addr() ||
		len(lease.DNS) != 1 || lease.DNS[0] != serverAddr4.Addr() || lease.Duration != time.Hour {
		t.Errorf("lease %+v", lease)
	}
	if a := l.client.Addresses(); len(a) != 1 || a[0] != lease.Addr {
		t.Errorf("the client's addresses are %v, want the lease's %v", a, lease.Addr)
	}
	if r := l.client.Routers(); len(r) != 1 || r[0] != serverAddr4.Addr() {
		t.Errorf("the client's routers are %v", r)
	}
	if got := srv.types(); got != "DISCOVER REQUEST" {
		t.Errorf("the server heard %s", got)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("releasing twice: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.HasSuffix(srv.types(), "RELEASE") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.types(); got != "DISCOVER REQUEST RELEASE" {
		t.Errorf("the server heard %s, want the release last", got)
	}
	srv.mu.Lock()
	if ci := srv.last.ClientIPAddr.String(); ci != leaseAddr.String() {
		t.Errorf("the release names %s, want %s", ci, leaseAddr)
	}
	srv.mu.Unlock()
	if a := l.client.Addresses(); len(a) != 0 {
		t.Errorf("after the release the client still has %v", a)
	}

	// The trace tells it all: the exchange as UDP socket calls and
	// datagrams, and the configuration it brought.
	evs := l.events()
	tracetest.Causal(t, evs)
	var calls, datagrams, configs []string
	for _, e := range evs {
		switch {
		case e.Kind == trace.KindCall && e.Phase == trace.End && e.Call.Label == trace.DHCP:
			calls = append(calls, trace.BSDCall(e.Call, true))
		case e.Kind == trace.KindSegment && e.Segment.Proto == "udp":
			if e.Segment.Label != trace.DHCP {
				t.Errorf("datagram %s has no socket: %+v", e.Segment.Info, e.Segment)
			}
			datagrams = append(datagrams, strings.Fields(e.Segment.Info)[1])
		case e.Kind == trace.KindConfig:
			configs = append(configs, trace.ConfigText(e.Config))
		}
	}
	if got := strings.Join(datagrams, " "); got != "DISCOVER OFFER REQUEST ACK RELEASE" {
		t.Errorf("datagrams: %s", got)
	}
	wantCalls := []string{"socket()", "bind(0.0.0.0:68)", "sendto(300 bytes, 255.255.255.255:67)", "recvfrom() = 300 bytes from 192.0.2.1:67",
		"sendto(300 bytes, 255.255.255.255:67)", "recvfrom() = 300 bytes from 192.0.2.1:67", "close()",
		"socket()", "bind(192.0.2.57:68)", "sendto(300 bytes, 192.0.2.1:67)", "close()"}
	if strings.Join(calls, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("DHCP calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(wantCalls, "\n"))
	}
	if len(configs) != 2 || !strings.Contains(configs[0], "DHCP lease from 192.0.2.1 for 1h0m0s") || !strings.HasPrefix(configs[1], "gave up address 192.0.2.57/24") {
		t.Errorf("config events: %q", configs)
	}
}

// TestLeaseRenewed: a lease is renewed at T1, half its time (RFC 2131
// section 4.4.5), by a REQUEST from the leased address itself, and the
// host keeps the address.
func TestLeaseRenewed(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	srv := serveDHCPFor(t, l.server, leaseAddr, 2*time.Second, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lease, err := netconf.Acquire(ctx, l.client, netconf.DHCPConfig{Device: "wire0"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); srv.types() != "DISCOVER REQUEST REQUEST" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := srv.types(); got != "DISCOVER REQUEST REQUEST" {
		t.Fatalf("the server heard %s, want a renewing REQUEST after the first", got)
	}
	srv.mu.Lock()
	if ci := srv.last.ClientIPAddr.String(); ci != leaseAddr.String() {
		t.Errorf("the renewal comes from %s, want %s", ci, leaseAddr)
	}
	srv.mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // past the first lease's end
	if !l.client.HasAddress(lease.Addr) {
		t.Errorf("the client lost %v although the lease was renewed", lease.Addr)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAcquireRefused: a server that answers every REQUEST with a DHCPNAK
// sends the client back to DISCOVER (RFC 2131 section 3.1, step 5) a few
// times, then the client gives up and says so.
func TestAcquireRefused(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	srv := serveDHCPFor(t, l.server, leaseAddr, time.Hour, true)
	_, err := netconf.Acquire(context.Background(), l.client, netconf.DHCPConfig{Device: "wire0"})
	if !errors.Is(err, netconf.ErrNoLease) || !strings.Contains(err.Error(), "refused our DHCPREQUEST for 192.0.2.57 on wire0 4 times") {
		t.Fatalf("Acquire from a server that refuses: %v", err)
	}
	if got := srv.types(); got != strings.Repeat("DISCOVER REQUEST ", 3)+"DISCOVER REQUEST" {
		t.Errorf("the server heard %s", got)
	}
}

// TestAcquireNoServer: on a network without DHCP, Acquire gives up when
// told, saying how long it waited, on which device, and what to do.
func TestAcquireNoServer(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	start := time.Now()
	_, err := netconf.Acquire(context.Background(), l.client, netconf.DHCPConfig{Device: "wire0", Wait: 1500 * time.Millisecond})
	took := time.Since(start)
	var ne *netconf.Error
	if !errors.As(err, &ne) || !errors.Is(err, netconf.ErrNoLease) {
		t.Fatalf("Acquire with no server: %v, want an ErrNoLease", err)
	}
	for _, want := range []string{"no DHCP server answered on wire0 in 1.5s", "2 DHCPDISCOVERs", "--addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if took > 10*time.Second {
		t.Errorf("Acquire gave up after %v, told 1.5s", took)
	}
	if a := l.client.Addresses(); len(a) != 0 {
		t.Errorf("the client has addresses %v after failing", a)
	}
}

// TestAcquireDuplicate: the server leases an address another host holds;
// the ARP probe finds it (RFC 5227), the server hears a DHCPDECLINE (RFC
// 2131 section 4.4.1), and the error names the holder's Ethernet address.
func TestAcquireDuplicate(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	srv := serveDHCP(t, l.server, serverAddr4.Addr()) // the server's own address
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := netconf.Acquire(ctx, l.client, netconf.DHCPConfig{Device: "wire0"})
	var dup *stack.DuplicateAddressError
	if !errors.As(err, &dup) {
		t.Fatalf("Acquire of a taken address: %v, want a DuplicateAddressError", err)
	}
	for _, want := range []string{"192.0.2.1", "already in use on wire0", l.server.MAC().String(), "DHCPDECLINE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.HasSuffix(srv.types(), "DECLINE") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.types(); got != "DISCOVER REQUEST DECLINE" {
		t.Errorf("the server heard %s", got)
	}
	if a := l.client.Addresses(); len(a) != 0 {
		t.Errorf("the client took %v anyway", a)
	}
}

// configured gives the lab's client an address and the server as its
// name server, as a lease would.
func configured(t *testing.T, l *lab, dns ...netip.Addr) {
	t.Helper()
	if err := l.client.Configure(stack.Change{Source: trace.FromDHCP, Addr: netip.PrefixFrom(leaseAddr, 24), DNS: dns}); err != nil {
		t.Fatal(err)
	}
}

var records = map[string][]netip.Addr{
	"ftp.example.test.":  {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
	"far.example.test.":  {netip.MustParseAddr("198.51.100.10")},
	"v6.example.test.":   {netip.MustParseAddr("2001:db8::1")},
	"none.example.test.": nil,
}

// TestResolver looks names up through the client's own stack: A and AAAA
// both, NXDOMAIN as "no such host" naming the server, and a name server
// that is not there as "no name server answered", in bounded time.
func TestResolver(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	stacktest.ServeDNS(t, l.server, stacktest.Zone{Records: records})
	configured(t, l, serverAddr4.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := netconf.NewResolver(l.client, "wire0")

	addrs, err := r.LookupNetIP(ctx, "ftp.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 {
		t.Errorf("ftp.example.test: %v, want its A and AAAA", addrs)
	}
	_, err = r.LookupNetIP(ctx, "nope.example.test")
	if !errors.Is(err, netconf.ErrNoSuchHost) || !strings.Contains(err.Error(), "NXDOMAIN") || !strings.Contains(err.Error(), "192.0.2.1") {
		t.Errorf("nope.example.test: %v, want no such host, NXDOMAIN from 192.0.2.1", err)
	}
	_, err = r.LookupNetIP(ctx, "none.example.test")
	if !errors.Is(err, netconf.ErrNoSuchHost) || strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("none.example.test: %v, want no such host without NXDOMAIN (the name exists, with no address)", err)
	}

	// The queries and answers are in the trace, as the dns socket's.
	var queries, answers int
	for _, e := range l.events() {
		if s := e.Segment; s != nil && s.Proto == "udp" && s.Label == trace.DNS {
			switch {
			case strings.HasPrefix(s.Info, "DNS query A ftp.example.test."), strings.HasPrefix(s.Info, "DNS query AAAA ftp.example.test."):
				queries++
			case strings.HasPrefix(s.Info, "DNS answer A ftp.example.test. = 192.0.2.1"), strings.HasPrefix(s.Info, "DNS answer AAAA ftp.example.test. = 2001:db8::1"):
				answers++
			}
		}
	}
	if queries != 2 || answers != 2 {
		t.Errorf("the trace shows %d queries and %d answers for ftp.example.test, want 2 and 2", queries, answers)
	}
}

// TestResolverTCP: an answer too long for UDP comes back truncated, and
// the question goes again over TCP (RFC 7766), through the stack too.
func TestResolverTCP(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	stacktest.ServeDNS(t, l.server, stacktest.Zone{Records: records, TruncateUDP: []string{"ftp.example.test."}})
	configured(t, l, serverAddr4.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs, err := netconf.NewResolver(l.client, "wire0").LookupNetIP(ctx, "ftp.example.test")
	if err != nil || len(addrs) != 2 {
		t.Fatalf("lookup over TCP: %v, %v", addrs, err)
	}
	var tcp int
	for _, e := range l.events() {
		if e.Kind == trace.KindCall && e.Phase == trace.End && e.Call.Op == trace.OpConnect && e.Call.Proto == "" &&
			e.Call.Label == trace.DNS && e.Call.Remote == netip.MustParseAddrPort("192.0.2.1:53") && e.Call.Err == "" {
			tcp++
		}
	}
	if tcp != 2 {
		t.Errorf("%d TCP connections to the name server, want 2 (A and AAAA)", tcp)
	}
}

// TestResolverNoServer: a name server that does not answer is given its
// time and then named in the error; one that refuses (port 53 closed) is
// passed over at once.
func TestResolverNoServer(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	silent := netip.MustParseAddr("192.0.2.99") // nobody
	configured(t, l, silent, serverAddr4.Addr())
	r := netconf.NewResolver(l.client, "wire0")
	r.ServerWait = time.Second
	start := time.Now()
	_, err := r.LookupNetIP(context.Background(), "ftp.example.test")
	took := time.Since(start)
	if !errors.Is(err, netconf.ErrNoNameServer) {
		t.Fatalf("lookup with no name server: %v", err)
	}
	for _, want := range []string{"192.0.2.99 did not answer in 1s", "192.0.2.1 refused the query", "wire0", "--dns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if took > 10*time.Second {
		t.Errorf("the lookup gave up after %v; each server had 1s", took)
	}
}

// TestResolverResolvConf: a host given no name server takes those of
// resolv.conf it can reach, and says why when there are none.
func TestResolverResolvConf(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	stacktest.ServeDNS(t, l.server, stacktest.Zone{Records: records})
	configured(t, l)
	dir := t.TempDir()
	r := netconf.NewResolver(l.client, "wire0")
	r.ResolvConf = filepath.Join(dir, "resolv.conf")
	os.WriteFile(r.ResolvConf, []byte("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0\n"), 0o644)
	_, err := r.LookupNetIP(context.Background(), "ftp.example.test")
	if !errors.Is(err, netconf.ErrNoNameServer) || !strings.Contains(err.Error(), "127.0.0.53") || !strings.Contains(err.Error(), "--dns") {
		t.Errorf("resolv.conf with only a loopback server: %v", err)
	}
	os.WriteFile(r.ResolvConf, []byte("nameserver 127.0.0.53\nnameserver 192.0.2.1\n"), 0o644)
	if _, err := r.LookupNetIP(context.Background(), "ftp.example.test"); err != nil {
		t.Fatalf("resolv.conf with a server on the link: %v", err)
	}
	if ns := l.client.NameServers(); len(ns) != 1 || ns[0] != serverAddr4.Addr() {
		t.Errorf("name servers after reading resolv.conf: %v", ns)
	}
}

// TestNetworkDial dials a name: looked up, then connected; an address the
// host has no route to is a one-line ErrNoRoute saying why.
func TestNetworkDial(t *testing.T) {
	stacktest.CheckGoroutines(t)
	l := newLab(t)
	stacktest.ServeDNS(t, l.server, stacktest.Zone{Records: records})
	configured(t, l, serverAddr4.Addr())
	ln, err := l.server.Listen(trace.WithLabel(context.Background(), trace.Control), "tcp", "0.0.0.0:21")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 hello\r\n"))
			c.Close()
		}
	}()
	n := &netconf.Network{Host: l.client, Resolver: netconf.NewResolver(l.client, "wire0"), Device: "wire0"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := n.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", "ftp.example.test:21")
	if err != nil {
		t.Fatal(err)
	}
	// The client has IPv4 only: the A record's address is tried first.
	if got := c.RemoteAddr().String(); got != "192.0.2.1:21" {
		t.Errorf("connected to %s, want 192.0.2.1:21", got)
	}
	c.Close()

	_, err = n.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", "far.example.test:21")
	if !errors.Is(err, netconf.ErrNoRoute) {
		t.Fatalf("dial off the subnet with no router: %v, want ErrNoRoute", err)
	}
	for _, want := range []string{"no route to 198.51.100.10", "192.0.2.57/24", "no IPv4 default router", "--gateway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
