package cli

// nsftp on a TAP network configured the way real ones are: dnsmasq on the
// kernel's side of tap0 hands out addresses by DHCP, advertises an IPv6
// prefix and a router, and answers for the names of the FTP servers. Each
// test builds its network in namespaces of its own (see tapnet_test.go)
// and needs root, dnsmasq and vsftpd; they skip otherwise (CI installs
// them).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// dnsmasq is a DHCP, DNS and router-advertisement server a test runs on
// tap0 in its namespace.
type dnsmasq struct {
	log, leases string
}

// The DHCP range of the tests' dnsmasq, and the names it answers for.
const (
	dhcpRange = "192.0.2.50,192.0.2.99,255.255.255.0,1h"
	ftpName   = "ftp.nsftp.test"
)

// startDnsmasq runs dnsmasq on tap0 in ns with the tests' defaults (DHCP
// from 192.0.2.50 to .99, itself as router and name server, names under
// nsftp.test answered from its own records only, NXDOMAIN for the rest)
// and the given options, and stops it when the test ends.
func (ns *labNS) startDnsmasq(opts ...string) *dnsmasq {
	tb := ns.tb
	tb.Helper()
	needTAPRoot(tb, "dnsmasq")
	dir := tb.TempDir()
	d := &dnsmasq{log: filepath.Join(dir, "dnsmasq.log"), leases: filepath.Join(dir, "leases")}
	// "-6" (ours, not dnsmasq's): no DHCPv4, router advertisements only.
	v4 := !slices.Contains(opts, "-6")
	opts = slices.DeleteFunc(slices.Clone(opts), func(o string) bool { return o == "-6" })
	args := []string{
		"--keep-in-foreground", "--conf-file=/dev/null", "--log-facility=" + d.log,
		"--pid-file=" + filepath.Join(dir, "pid"), "--dhcp-leasefile=" + d.leases,
		// --bind-dynamic: tap0's addresses as they come too; its
		// link-local one does when nsftp attaches.
		"--interface=tap0", "--bind-dynamic", "--user=root", "--group=root",
		"--no-resolv", "--no-hosts", "--local=/nsftp.test/",
		"--log-dhcp", "--log-queries", "--dhcp-authoritative",
		// dnsmasq pings an address before offering it; the duplicate
		// address test must be able to offer a taken one.
		"--no-ping",
		"--host-record=" + ftpName + "," + kernelIP,
	}
	ready := "sockets bound exclusively"
	if v4 {
		args = append(args, "--dhcp-range="+dhcpRange)
	} else {
		ready = "router advertisement on"
	}
	cmd := ns.command("dnsmasq", append(args, opts...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.logText(), ready); {
		select {
		case <-exited:
			tb.Fatalf("dnsmasq exited: %s\n%s", out.String(), d.logText())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("dnsmasq is not serving after 10s (no %q in its log):\n%s%s", ready, out.String(), d.logText())
		}
	}
	return d
}

func (d *dnsmasq) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// released waits a little for dnsmasq to log the release of addr (it
// writes its log and lease file as it handles each message) and reports
// whether it did and the lease file no longer holds addr.
func (d *dnsmasq) released(addr string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		leases, _ := os.ReadFile(d.leases)
		if strings.Contains(d.logText(), "DHCPRELEASE(tap0) "+addr+" ") && !strings.Contains(string(leases), " "+addr+" ") {
			return true
		}
	}
	return false
}

// dhcpFlags are the nsftp flags that put it on ns's tap0 with no address
// of its own: DHCP and router advertisements configure it.
func (ns *labNS) dhcpFlags(extra ...string) []string {
	return append([]string{"--tap", "tap0", "--tap-netns", ns.path}, extra...)
}

// readRecording reads a run nsftp recorded with --record.
func readRecording(t *testing.T, path string) []trace.Event {
	t.Helper()
	return testkit.ReadRecording(t, path)
}

// TestTAPDHCPGetByName is the whole story of reaching a server by name
// from a fresh stack: nsftp, given no address, gets one from dnsmasq by
// DHCP, looks ftp.nsftp.test up with dnsmasq over its own UDP, downloads
// from vsftpd, and gives the lease back. The recording shows each step as
// UDP socket calls and datagrams; the pcap and the diagram have them too.
func TestTAPDHCPGetByName(t *testing.T) {
	needTAPRoot(t, "vsftpd", "dnsmasq", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	dm := ns.startDnsmasq()
	srv := ns.startVsftpd(kernelIP)
	sum := writeRandomFile(t, filepath.Join(srv.root, "f.bin"), 1<<20, 7)
	dir := t.TempDir()
	dest, rec, pcap, svg := filepath.Join(dir, "f.bin"), filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "run.pcap"), filepath.Join(dir, "run.svg")

	start := time.Now()
	_, errOut, code := runTAP(t, slices.Concat([]string{"get", "ftp://" + ftpName + "/f.bin", dest, "-q",
		"--record", rec, "--pcap", pcap, "--diagram", svg}, ns.dhcpFlags())...)
	if code != 0 {
		t.Fatalf("nsftp get by name with DHCP: exit %d: %s\ndnsmasq:\n%s", code, errOut, dm.logText())
	}
	t.Logf("get by name, DHCP first, in %v", time.Since(start).Round(time.Millisecond))
	if got := fileSHA(t, dest); got != sum {
		t.Fatalf("sha256 %s, served %s", got, sum)
	}

	evs := readRecording(t, rec)
	// (Not RFC793: the recording stops as the run ends, with the
	// control connection in LAST-ACK or CLOSED, whichever came first.)
	tracetest.Causal(t, evs)
	var leased string
	var dhcpCalls, dnsCalls []string
	datagrams := map[string]bool{}
	for _, e := range evs {
		switch {
		case e.Kind == trace.KindCall && e.Phase == trace.End && e.Call.Proto == "udp":
			line := trace.BSDCall(e.Call, true)
			switch e.Call.Label {
			case trace.DHCP:
				dhcpCalls = append(dhcpCalls, line)
			case trace.DNS:
				dnsCalls = append(dnsCalls, line)
			}
		case e.Kind == trace.KindSegment && e.Segment.Proto == "udp":
			s := e.Segment
			if s.Socket == 0 {
				t.Errorf("datagram without its socket: %s %s", s.Addrs(), s.Info)
			}
			f := strings.Fields(s.Info)
			if len(f) >= 2 {
				datagrams[string(s.Dir)+" "+string(s.Label)+" "+f[0]+" "+f[1]] = true
			}
		case e.Kind == trace.KindConfig && e.Config.Source == trace.FromDHCP && !e.Config.Removed:
			leased = e.Config.Addr.Addr().String()
		}
	}
	for _, want := range []string{"out dhcp DHCP DISCOVER", "in dhcp DHCP OFFER", "out dhcp DHCP REQUEST", "in dhcp DHCP ACK",
		"out dhcp DHCP RELEASE", "out dns DNS query", "in dns DNS answer"} {
		if !datagrams[want] {
			t.Errorf("the recording has no %q datagram; it has %v", want, datagrams)
		}
	}
	for _, want := range []string{"bind(0.0.0.0:68)", "sendto(300 bytes, 255.255.255.255:67)", "recvfrom() = 300 bytes from 192.0.2.1:67"} {
		if !slices.Contains(dhcpCalls, want) {
			t.Errorf("no DHCP call %q among %q", want, dhcpCalls)
		}
	}
	if !slices.ContainsFunc(dnsCalls, func(s string) bool {
		return strings.HasPrefix(s, "recvfrom() = ") && strings.HasSuffix(s, "from 192.0.2.1:53")
	}) {
		t.Errorf("no recvfrom of the name server's answer among the DNS calls %q", dnsCalls)
	}
	if leased == "" {
		t.Fatal("the recording has no DHCP lease")
	}
	if !dm.released(leased) {
		t.Errorf("dnsmasq did not see %s released:\n%s\nleases: %s", leased, dm.logText(), must(os.ReadFile(dm.leases)))
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("DHCP DISCOVER")) || !bytes.Contains(b, []byte("DNS query A "+ftpName)) {
		t.Errorf("the diagram lacks the DHCP exchange or the DNS query (%v)", err)
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-r", pcap, "-Y", "dhcp || dns", "-T", "fields", "-e", "dhcp.option.dhcp", "-e", "dns.qry.name").CombinedOutput()
		if err != nil || !strings.Contains(string(out), ftpName) || strings.Count(string(out), "\n") < 6 {
			t.Errorf("tshark finds too little DHCP and DNS in the pcap (%v):\n%s", err, out)
		}
	}
}

func must(b []byte, _ error) string { return string(b) }

// noDAD has the kernel use its link-local address on dev at once when the
// link comes up (nsftp attaching raises the carrier), without a second
// of duplicate address detection, as on a router whose link has long been
// up: RFC 4861 section 6.1.2 makes hosts drop a router advertisement from
// any other source, and dnsmasq would send its first ones from the
// global address meanwhile.
func (ns *labNS) noDAD(dev string) {
	ns.tb.Helper()
	if out, err := ns.command("sysctl", "-qw", "net.ipv6.conf."+dev+".accept_dad=0").CombinedOutput(); err != nil {
		ns.tb.Fatalf("sysctl accept_dad in %s: %v: %s", ns.name, err, out)
	}
}

// farNS is a second namespace behind ns, reached through ns as a router:
// 198.51.100.0/24 and 2001:db8:2::/64 on a veth pair, forwarding on in
// ns, the far host at .10 and ::10 routing back through ns.
func (ns *labNS) farNS() *labNS {
	tb := ns.tb
	tb.Helper()
	far := newLabNS(tb)
	ns.ip("link", "add", "vlab", "type", "veth", "peer", "name", "vfar", "netns", far.name)
	ns.ip("addr", "add", "198.51.100.1/24", "dev", "vlab")
	ns.ip("addr", "add", "2001:db8:2::1/64", "dev", "vlab", "nodad")
	ns.ip("link", "set", "vlab", "up")
	far.ip("addr", "add", "198.51.100.10/24", "dev", "vfar")
	far.ip("addr", "add", "2001:db8:2::10/64", "dev", "vfar", "nodad")
	far.ip("link", "set", "vfar", "up")
	far.ip("route", "add", "default", "via", "198.51.100.1")
	far.ip("-6", "route", "add", "default", "via", "2001:db8:2::1")
	if out, err := ns.command("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1").CombinedOutput(); err != nil {
		tb.Fatalf("turning forwarding on in %s: %v: %s", ns.name, err, out)
	}
	return far
}

// TestTAPDHCPGateway reaches servers on another subnet by name, through
// the router the network names: IPv4 through DHCP's router option, IPv6
// through the router that advertises itself (RFC 4861), from an address
// nsftp formed from the advertised prefix (SLAAC, RFC 4862).
func TestTAPDHCPGateway(t *testing.T) {
	needTAPRoot(t, "vsftpd", "dnsmasq", "ss", "sysctl")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	ns.ip("addr", "add", "2001:db8:1::1/64", "dev", "tap0", "nodad")
	ns.noDAD("tap0")
	far := ns.farNS()
	ns.startDnsmasq("--enable-ra", "--dhcp-range=2001:db8:1::,ra-stateless,64",
		"--host-record=far4.nsftp.test,198.51.100.10", "--host-record=far6.nsftp.test,2001:db8:2::10")
	// One vsftpd on both families: IPv6's wildcard takes IPv4 too.
	srv := far.startVsftpd("198.51.100.10", "listen=NO", "listen_ipv6=YES")
	sum := writeRandomFile(t, filepath.Join(srv.root, "f.bin"), 2<<20, 8)

	for _, name := range []string{"far4.nsftp.test", "far6.nsftp.test"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dest, rec := filepath.Join(dir, "f.bin"), filepath.Join(dir, "run.jsonl")
			_, errOut, code := runTAP(t, slices.Concat([]string{"get", "ftp://" + name + "/f.bin", dest, "-q", "--record", rec}, ns.dhcpFlags())...)
			if code != 0 {
				t.Fatalf("nsftp get ftp://%s/: exit %d: %s", name, code, errOut)
			}
			if got := fileSHA(t, dest); got != sum {
				t.Fatalf("sha256 %s, served %s", got, sum)
			}
			var router, remote string
			for _, e := range readRecording(t, rec) {
				if e.Kind == trace.KindConfig && e.Config.Router.IsValid() && !e.Config.Removed {
					router += fmt.Sprintf(" %v (%s)", e.Config.Router, e.Config.Source)
				}
				if e.Kind == trace.KindCall && e.Call.Op == trace.OpConnect && e.Call.Label == trace.Control && e.Phase == trace.End {
					remote = e.Call.Remote.Addr().String()
				}
			}
			wantRemote, wantRouter := "198.51.100.10", "192.0.2.1 (dhcp)"
			if strings.HasPrefix(name, "far6") {
				wantRemote, wantRouter = "2001:db8:2::10", "(ra)"
			}
			if remote != wantRemote || !strings.Contains(router, wantRouter) {
				t.Errorf("connected to %s through routers%s; want %s through %s", remote, router, wantRemote, wantRouter)
			}
		})
	}
}

// TestTAPGatewayAndDNSFlags: --gateway and --dns take the place of what
// DHCP said. dnsmasq names no router and a name server that is not there;
// with the flags nsftp reaches the server on the other subnet by name.
func TestTAPGatewayAndDNSFlags(t *testing.T) {
	needTAPRoot(t, "vsftpd", "dnsmasq", "ss", "sysctl")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	far := ns.farNS()
	ns.startDnsmasq("--dhcp-option=3", "--dhcp-option=option:dns-server,192.0.2.9", "--host-record=far4.nsftp.test,198.51.100.10")
	srv := far.startVsftpd("198.51.100.10")
	sum := writeRandomFile(t, filepath.Join(srv.root, "f.bin"), 1<<20, 11)
	dest := filepath.Join(t.TempDir(), "f.bin")
	_, errOut, code := runTAP(t, slices.Concat([]string{"get", "ftp://far4.nsftp.test/f.bin", dest, "-q"},
		ns.dhcpFlags("--gateway", kernelIP, "--dns", kernelIP))...)
	if code != 0 {
		t.Fatalf("nsftp get with --gateway and --dns: exit %d: %s", code, errOut)
	}
	if got := fileSHA(t, dest); got != sum {
		t.Fatalf("sha256 %s, served %s", got, sum)
	}
}

// TestTAPServeDHCP serves a directory from an address DHCP gave: nsftp
// serve with no --addr listens on its lease, curl on the kernel's side
// downloads from it, and the lease is released when serve ends.
func TestTAPServeDHCP(t *testing.T) {
	needTAPRoot(t, "dnsmasq", "curl")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	dm := ns.startDnsmasq()
	root := t.TempDir()
	sum := writeRandomFile(t, filepath.Join(root, "f"), 1<<20, 10)
	srv := startServeArgs(t, slices.Concat([]string{"serve", root}, ns.dhcpFlags()))
	m := regexp.MustCompile(`serving \S+ on (192\.0\.2\.\d+):21 `).FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("nsftp serve does not say it serves on a leased address:\n%s", srv.stderr.String())
	}
	got := filepath.Join(t.TempDir(), "f")
	if out, err := ns.command("curl", "-sS", "--max-time", "60", "-o", got, "ftp://"+m[1]+"/f").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s\nnsftp serve:\n%s", err, out, srv.stderr.String())
	}
	if s := fileSHA(t, got); s != sum {
		t.Errorf("curl's download: sha256 %s, want %s", s, sum)
	}
	srv.stop(t)
	if !dm.released(m[1]) {
		t.Errorf("dnsmasq did not see %s released when serve ended:\n%s", m[1], dm.logText())
	}
}

// TestTAPIPv6Only runs nsftp on a network with router advertisements and
// no DHCP: DHCP gives up, IPv6 goes on. The address comes from the
// advertised prefix (SLAAC), the name server from the advertisement
// (RDNSS, RFC 8106: a link-local address), and the server is reached over
// IPv6 by name.
func TestTAPIPv6Only(t *testing.T) {
	needTAPRoot(t, "vsftpd", "dnsmasq", "ss", "sysctl")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	ns.ip("addr", "add", "2001:db8:1::1/64", "dev", "tap0", "nodad")
	ns.noDAD("tap0")
	ns.startDnsmasq("-6", "--enable-ra", "--dhcp-range=2001:db8:1::,ra-stateless,64", "--host-record=ftp6.nsftp.test,2001:db8:1::1")
	srv := ns.startVsftpd(kernelIP, "listen=NO", "listen_ipv6=YES", "listen_address6=2001:db8:1::1")
	sum := writeRandomFile(t, filepath.Join(srv.root, "f.bin"), 1<<20, 9)
	dir := t.TempDir()
	dest, rec := filepath.Join(dir, "f.bin"), filepath.Join(dir, "run.jsonl")
	_, errOut, code := runTAP(t, slices.Concat([]string{"get", "ftp://ftp6.nsftp.test/f.bin", dest, "-q", "--record", rec}, ns.dhcpFlags("--dhcp-timeout", "2s"))...)
	if code != 0 {
		t.Fatalf("nsftp get over IPv6 only: exit %d: %s", code, errOut)
	}
	if got := fileSHA(t, dest); got != sum {
		t.Fatalf("sha256 %s, served %s", got, sum)
	}
	var dns, slaac string
	for _, e := range readRecording(t, rec) {
		if e.Kind == trace.KindConfig && e.Config.Source == trace.FromRA && len(e.Config.DNS) > 0 {
			dns = e.Config.DNS[0].String()
		}
		if e.Kind == trace.KindConfig && e.Config.Source == trace.FromSLAAC {
			slaac = e.Config.Addr.String()
		}
		if e.Kind == trace.KindSegment && e.Segment.Label == trace.DNS && e.Segment.Dir == trace.Out && dns != "" && e.Segment.Dst.Addr().String() != dns {
			t.Errorf("a DNS query to %v, not to the advertised name server %s", e.Segment.Dst, dns)
		}
	}
	if !strings.HasPrefix(dns, "fe80::") || !strings.HasPrefix(slaac, "2001:db8:1:0:") {
		t.Errorf("the advertised name server %q and the SLAAC address %q are not what dnsmasq advertised", dns, slaac)
	}
}

// TestTAPNetworkFailures checks that each way of not reaching a server on
// a real network ends in one line and exit 3, in bounded time: no DHCP
// answer, a name that does not exist, no name server, no route, and an
// address another host already holds.
func TestTAPNetworkFailures(t *testing.T) {
	needTAPRoot(t, "dnsmasq")
	stacktest.CheckGoroutines(t)
	for _, tc := range []struct {
		name    string
		dnsmasq []string // nil: no dnsmasq at all
		setup   func(ns *labNS)
		url     string
		extra   []string
		bound   time.Duration
		msg     []string
		check   func(t *testing.T, d *dnsmasq)
	}{{
		name:  "no DHCP",
		url:   "ftp://" + kernelIP + "/f",
		extra: []string{"--dhcp-timeout", "2s"},
		bound: 30 * time.Second,
		msg:   []string{"no DHCP server answered on tap0 in 2s", "DHCPDISCOVERs sent", "--addr CIDR"},
	}, {
		name:    "NXDOMAIN",
		dnsmasq: []string{},
		url:     "ftp://nope.nsftp.test/f",
		bound:   30 * time.Second,
		msg:     []string{"nope.nsftp.test: no such host", "the name server 192.0.2.1 says NXDOMAIN"},
	}, {
		name: "no name server",
		// dnsmasq's DNS off, and a name server named that is not there.
		dnsmasq: []string{"--port=0", "--dhcp-option=option:dns-server,192.0.2.9"},
		url:     "ftp://" + ftpName + "/f",
		bound:   40 * time.Second,
		msg:     []string{"cannot look up " + ftpName + ": no name server answered over tap0", "192.0.2.9 did not answer in 5s", "--dns"},
	}, {
		name: "no route",
		// An empty router option: DHCP names no router.
		dnsmasq: []string{"--dhcp-option=3", "--host-record=far.nsftp.test,198.51.100.10"},
		url:     "ftp://far.nsftp.test/f",
		bound:   30 * time.Second,
		msg:     []string{"no route to 198.51.100.10", "no IPv4 default router", "DHCP named none", "--gateway"},
	}, {
		name: "duplicate address",
		// dnsmasq leases nsftp an address the kernel's side of tap0
		// already has: the kernel answers the ARP probe.
		dnsmasq: []string{"--dhcp-host=02:00:5e:00:53:01,192.0.2.77"},
		setup:   func(ns *labNS) { ns.ip("addr", "add", "192.0.2.77/32", "dev", "tap0") },
		url:     "ftp://" + ftpName + "/f",
		extra:   []string{"--mac", "02:00:5e:00:53:01"},
		bound:   30 * time.Second,
		msg:     []string{"leased us 192.0.2.77, but that address is already in use on tap0", "answered our ARP probe", "DHCPDECLINE sent"},
		check: func(t *testing.T, d *dnsmasq) {
			if !strings.Contains(d.logText(), "DHCPDECLINE(tap0) 192.0.2.77") {
				t.Errorf("dnsmasq did not hear the DHCPDECLINE:\n%s", d.logText())
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newLabNS(t)
			ns.tap("tap0", kernelCIDR, 0)
			if tc.setup != nil {
				tc.setup(ns)
			}
			var d *dnsmasq
			if tc.dnsmasq != nil {
				d = ns.startDnsmasq(tc.dnsmasq...)
			}
			msg := slices.Clone(tc.msg)
			if tc.name == "duplicate address" {
				mac := strings.Fields(ns.ip("-br", "link", "show", "dev", "tap0"))[2]
				msg = append(msg, mac)
			}
			dest := filepath.Join(t.TempDir(), "f")
			start := time.Now()
			_, errOut, code := runTAP(t, slices.Concat([]string{"get", tc.url, dest}, ns.dhcpFlags(tc.extra...))...)
			took := time.Since(start)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code != ExitNetwork || len(lines) != 1 || !strings.HasPrefix(lines[0], "nsftp: ") {
				t.Fatalf("exit %d, %q; want exit %d and one line", code, errOut, ExitNetwork)
			}
			for _, want := range msg {
				if !strings.Contains(errOut, want) {
					t.Errorf("%q does not say %q", lines[0], want)
				}
			}
			if took > tc.bound {
				t.Errorf("took %v to fail, more than %v", took, tc.bound)
			}
			t.Logf("%s (after %v)", lines[0], took.Round(time.Millisecond))
			if tc.check != nil {
				tc.check(t, d)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed get left %s behind", dest)
			}
		})
	}
}
