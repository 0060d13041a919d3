package kernel

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// feed parses trace_pipe's text into the Watch's events, as the reader
// does.
func feed(t *testing.T, w *Watch, text string) []trace.Event {
	t.Helper()
	var p parser
	var out []trace.Event
	emit := func(r *record) {
		evs, _ := w.kernelEvents(r)
		out = append(out, evs...)
	}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		p.line(l, emit)
	}
	p.expire(1<<62, emit)
	return out
}

// testWatch is a Watch that records nothing and reads no kernel, with a
// socket of the run's own at local, connected to remote.
func testWatch(local, remote string) (*Watch, *sockRef) {
	w := &Watch{byTuple: map[tuple]*sockRef{}}
	n := &Network{cfg: Config{Host: "server"}}
	r := &sockRef{net: n, id: 4, label: trace.Data}
	w.socks = append(w.socks, r)
	w.addrs(r, netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote))
	return w, r
}

// TestProbeSamples reads tcp:tcp_probe and tcp:tcp_cong_state_set lines
// as this kernel writes them (6.18): a sample of the run's connection
// each time the window, the threshold, what is acknowledged or the
// congestion state moves, in the TCB's names (Linux's infinite ssthresh
// as 0, srtt in microseconds); a change of congestion state once, with
// the last sample's figures; nothing for another connection.
func TestProbeSamples(t *testing.T) {
	b, err := os.ReadFile("testdata/trace_pipe_samples.txt")
	if err != nil {
		t.Fatal(err)
	}
	w, ref := testWatch("127.0.0.2:5000", "127.0.0.1:33004")
	w.sampled(ref, &trace.TCB{MSS: 1448, RTO: 204 * time.Millisecond, Congestion: "open"})
	evs := feed(t, w, string(b))
	type got struct {
		src        trace.TCBSource
		cwnd, ss   int
		una        uint32
		congestion string
	}
	var gots []got
	for _, e := range evs {
		if e.Kind != trace.KindTCB || e.Host != "server" || e.Layer != trace.LayerKernel {
			t.Fatalf("not a kernel sample of the server's: %+v", e)
		}
		s := e.TCB
		if s.Socket != 4 || s.MSS != 1448 || s.Local != netip.MustParseAddrPort("127.0.0.2:5000") || s.State != trace.StateEstablished {
			t.Errorf("sample of the wrong socket, or without its MSS: %+v", s)
		}
		gots = append(gots, got{s.Source, s.Cwnd, s.Ssthresh, s.SndUna, s.Congestion})
	}
	want := []got{
		{trace.FromTCPProbe, 10, 0, 0xc58c6929, "open"},
		{trace.FromTCPProbe, 12, 0, 0xc58c7929, "open"},
		{trace.FromCongState, 12, 0, 0xc58c7929, "fast-recovery"},
		{trace.FromTCPProbe, 8, 8, 0xc58c8929, "fast-recovery"},
	}
	if len(gots) != len(want) {
		t.Fatalf("samples %+v, want %+v", gots, want)
	}
	for i := range want {
		if gots[i] != want[i] {
			t.Errorf("sample %d = %+v, want %+v", i, gots[i], want[i])
		}
	}
	if s := evs[0].TCB; s.SRTT != 75*time.Microsecond || s.SndWnd != 64512 || s.RcvWnd != 65536 || s.SndNxt != 0xc58ca1b9 {
		t.Errorf("first sample's figures: %+v", s)
	}
	// IPv6's addresses, bracketed.
	w6, _ := testWatch("[2001:db8::2]:5000", "[2001:db8::1]:40000")
	if evs := feed(t, w6, string(b)); len(evs) != 1 || evs[0].TCB.Cwnd != 20 || evs[0].TCB.Ssthresh != 14 {
		t.Errorf("the IPv6 sample: %+v", evs)
	}
}

// TestFilterText: the per-segment tracepoints' filter names the run's
// ports and ranges, matches nothing for none, and is cleared past
// maxFilterPorts.
func TestFilterText(t *testing.T) {
	many := make([]uint16, maxFilterPorts+1)
	for i := range many {
		many[i] = uint16(1000 + i)
	}
	for _, tc := range []struct {
		ports  []uint16
		ranges [][2]uint16
		want   string
	}{
		{nil, nil, "sport == 0 && dport == 0"},
		{[]uint16{21}, nil, "sport == 21 || dport == 21"},
		{[]uint16{20, 21}, [][2]uint16{{10000, 11023}}, "(sport >= 10000 && sport <= 11023) || (dport >= 10000 && dport <= 11023) || sport == 20 || dport == 20 || sport == 21 || dport == 21"},
		{many, nil, "0"},
	} {
		if got := filterText(tc.ports, tc.ranges); got != tc.want {
			t.Errorf("filterText(%v, %v) = %q, want %q", tc.ports, tc.ranges, got, tc.want)
		}
	}
	// The kernel takes a filter of less than a page.
	full := make([]uint16, maxFilterPorts)
	for i := range full {
		full[i] = uint16(60000 + i)
	}
	if n := len(filterText(full, [][2]uint16{{10000, 11023}})); n >= 4096 {
		t.Errorf("a filter of %d ports is %d bytes: tracefs refuses a page or more", maxFilterPorts, n)
	}
}

// stateRecord is an inet_sock_set_state record of a connection from
// local to remote, with its stack innermost first.
func stateRecord(local, remote, from, to, stack string) *record {
	l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
	return &record{event: "inet_sock_set_state", stack: strings.Fields(stack), fields: map[string]string{
		"family": "AF_INET", "protocol": "IPPROTO_TCP", "sport": itoa(int(l.Port())), "dport": itoa(int(r.Port())),
		"saddr": l.Addr().String(), "daddr": r.Addr().String(), "oldstate": from, "newstate": to,
	}}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPeerStates follows the kernel's sockets at the far end of the run's
// connections, told of by the near stack: a connection the near end
// opened (the kernel's socket born on its listener) and one the kernel
// opened to a near listener (its port not chosen at its first change);
// each is the peer host's, labelled as the near end, numbered apart from
// the run's own. The kernel's FIN-WAIT-2 handed to a timewait sock by
// close() stays CLOSED, said as such; a FIN in FIN-WAIT-2 is TIME-WAIT.
// Nothing of other connections is taken.
func TestPeerStates(t *testing.T) {
	w := &Watch{byTuple: map[tuple]*sockRef{}}
	w.startPeer(PeerConfig{Host: "peer (Linux)", Role: trace.Server})
	w.PeerConnection(netip.MustParseAddrPort("192.0.2.2:40000"), netip.MustParseAddrPort("192.0.2.1:21"), trace.Control)
	w.PeerListening(netip.MustParseAddrPort("0.0.0.0:50001"), trace.Data)
	const (
		rcv   = "inet_sk_state_store tcp_rcv_state_process tcp_v4_do_rcv tcp_v4_rcv"
		fin   = "tcp_set_state tcp_done tcp_fin tcp_data_queue tcp_rcv_state_process tcp_v4_rcv"
		close = "tcp_set_state tcp_done __tcp_close tcp_close inet_release __sock_release sock_close __fput"
	)
	recs := []*record{
		// The control connection: born on vsftpd's listener.
		stateRecord("192.0.2.1:21", "192.0.2.2:40000", "TCP_LISTEN", "TCP_SYN_RECV", "inet_sk_set_state inet_csk_clone_lock tcp_create_openreq_child tcp_v4_syn_recv_sock tcp_check_req tcp_v4_rcv"),
		stateRecord("192.0.2.1:21", "192.0.2.2:40000", "TCP_SYN_RECV", "TCP_ESTABLISHED", rcv),
		// Someone else's connection to a port 21.
		stateRecord("192.0.2.1:21", "192.0.2.7:40000", "TCP_SYN_RECV", "TCP_ESTABLISHED", rcv),
		// The data connection: vsftpd connects to nsftp's listener.
		stateRecord("192.0.2.1:0", "192.0.2.2:50001", "TCP_CLOSE", "TCP_SYN_SENT", "inet_sk_state_store tcp_v4_connect __inet_stream_connect __sys_connect"),
		stateRecord("192.0.2.1:33333", "192.0.2.2:50001", "TCP_SYN_SENT", "TCP_ESTABLISHED", "inet_sk_state_store tcp_finish_connect tcp_rcv_state_process"),
		stateRecord("192.0.2.1:33333", "192.0.2.2:50001", "TCP_ESTABLISHED", "TCP_FIN_WAIT1", "inet_sk_state_store tcp_shutdown inet_shutdown __sys_shutdown"),
		stateRecord("192.0.2.1:33333", "192.0.2.2:50001", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2", rcv),
		stateRecord("192.0.2.1:33333", "192.0.2.2:50001", "TCP_FIN_WAIT2", "TCP_CLOSE", close),
		// The control connection ends on the near end's FIN.
		stateRecord("192.0.2.1:21", "192.0.2.2:40000", "TCP_ESTABLISHED", "TCP_FIN_WAIT1", "inet_sk_state_store __tcp_close tcp_close inet_release sock_close __fput"),
		stateRecord("192.0.2.1:21", "192.0.2.2:40000", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2", rcv),
		stateRecord("192.0.2.1:21", "192.0.2.2:40000", "TCP_FIN_WAIT2", "TCP_CLOSE", fin),
	}
	var evs []trace.Event
	for _, r := range recs {
		e, _ := w.kernelEvents(r)
		evs = append(evs, e...)
	}
	type step struct {
		fd       int
		label    trace.Conn
		from, to trace.TCPState
	}
	want := []step{
		{3, trace.Control, trace.StateListen, trace.StateSynReceived},
		{3, trace.Control, trace.StateSynReceived, trace.StateEstablished},
		{4, trace.Data, trace.StateClosed, trace.StateSynSent},
		{4, trace.Data, trace.StateSynSent, trace.StateEstablished},
		{4, trace.Data, trace.StateEstablished, trace.StateFinWait1},
		{4, trace.Data, trace.StateFinWait1, trace.StateFinWait2},
		{4, trace.Data, trace.StateFinWait2, trace.StateClosed},
		{3, trace.Control, trace.StateEstablished, trace.StateFinWait1},
		{3, trace.Control, trace.StateFinWait1, trace.StateFinWait2},
		{3, trace.Control, trace.StateFinWait2, trace.StateTimeWait},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(evs), len(want), evs)
	}
	for i, e := range evs {
		s := e.State
		if got := (step{s.Socket, s.Label, s.From, s.To}); got != want[i] || e.Host != "peer (Linux)" || e.Layer != trace.LayerKernel {
			t.Errorf("change %d: %s %+v, want %+v", i, e.Host, got, want[i])
		}
	}
	if c := evs[6].State.Cause; !strings.HasPrefix(c, "close()") || !strings.Contains(c, "still in FIN-WAIT-2, to a timewait sock") {
		t.Errorf("close() in FIN-WAIT-2: cause %q", c)
	}
	if c := evs[9].State.Cause; !strings.HasPrefix(c, "rcv FIN") || !strings.Contains(c, "a timewait sock keeps TIME-WAIT") {
		t.Errorf("a FIN in FIN-WAIT-2: cause %q", c)
	}
}
