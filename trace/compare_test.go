package trace_test

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// TestKernelExplainGolden renders the kernel's recording with the kernel
// functions behind each change of state (--explain), and checks what a
// reader learns from it: every change has its stack, outermost first,
// from the system call or the softirq that made it.
func TestKernelExplainGolden(t *testing.T) {
	evs := load(t, "demo-os-active")
	out := text(evs, trace.TextOptions{Explain: true})
	golden(t, filepath.Join("testdata", "demo-os-active-explain.txt"), out)
	for _, want := range []string{
		"CLOSED -> SYN-SENT  connect()\n",
		"in the kernel: __x64_sys_connect -> __sys_connect",
		"tcp_v4_connect",
		"LISTEN -> SYN-RECEIVED  rcv ACK completing the handshake (a request sock answered the SYN) on fd3",
		"tcp_create_openreq_child",
		"FIN-WAIT-2 -> TIME-WAIT  rcv FIN (tcp_time_wait frees the socket",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the kernel's trace with --explain lacks %q", want)
		}
	}
}

// TestCompareGolden puts the recorded runs on netstack and on the kernel
// side by side, and checks the differences a reader should be shown.
func TestCompareGolden(t *testing.T) {
	var b bytes.Buffer
	err := trace.WriteCompare(&b, load(t, "demo-active"), load(t, "demo-os-active"),
		trace.CompareOptions{Width: 160, Left: "netstack", Right: "Linux"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "compare-active.txt"), b.Bytes())
	out := b.String()

	// With Explain, the kernel's own stack under each of its changes of
	// state, in the kernel's column.
	var x bytes.Buffer
	if err := trace.WriteCompare(&x, load(t, "demo-active"), load(t, "demo-os-active"),
		trace.CompareOptions{Width: 160, Left: "netstack", Right: "Linux", Explain: true}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(x.String(), "\n") {
		_, right, ok := strings.Cut(line, " │ ")
		if ok && strings.Contains(right, "in the kernel: __x64_sys_connect -> __sys_connect") {
			found = true
		}
		if n := len([]rune(line)); n > 160 && !strings.HasPrefix(line, "      ") {
			t.Errorf("explained line is %d columns wide: %q", n, line)
		}
	}
	if !found {
		t.Errorf("with Explain, the kernel's column has no stack of connect's change of state:\n%s", x.String())
	}
	for i, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 160 && !strings.HasPrefix(line, "      ") {
			t.Errorf("line %d is %d columns wide: %q", i+1, n, line)
		}
	}
	for _, want := range []string{
		"── -> RETR hello.txt ──",
		"What differs",
		"a listening socket's connection becomes a socket in SYN-RECEIVED\n      netstack  as the SYN arrives, before its SYN|ACK\n      Linux     as the handshake's last ACK arrives, after its SYN|ACK",
		"the states of the server data connection\n      netstack  INITIAL > BOUND > SYN-SENT",
		"TIME-WAIT on the server\n      netstack  data and control sockets, for 50.0 ms\n      Linux     data and control sockets, for 60s",
		"Nagle's algorithm (RFC 896)",
		"a delayed ACK (RFC 1122 section 4.2.3.2)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the comparison lacks %q", want)
		}
	}
}

// TestCompareCallStatesAfterClose: without privilege the kernel's side
// shows no changes of state, and the states the calls saw stand in for
// them. A recv() that another thread's close() cuts short ends on a
// socket TCP_INFO can no longer reach; netstack's would end in whatever
// state the connection had got to by then (FIN-WAIT-1 or, a moment later,
// TIME-WAIT), so it is left out on both sides, as close's own end is.
func TestCompareCallStatesAfterClose(t *testing.T) {
	run := func(layer trace.Layer, after trace.TCPState, unseen bool) []trace.Event {
		t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
		var evs []trace.Event
		add := func(e trace.Event) {
			e.Seq, e.Time, e.Layer, e.Host = uint64(len(evs)+1), t0.Add(time.Duration(len(evs))*time.Millisecond), layer, "server"
			evs = append(evs, e)
		}
		info := &trace.HostInfo{Role: trace.Server, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}
		if unseen {
			info.Unseen = []trace.Unseen{{What: trace.SeenStates, Why: "tracefs is root's"}, {What: trace.SeenSegments, Why: "a packet socket needs CAP_NET_RAW"}}
		}
		add(trace.Event{Kind: trace.KindHost, HostInfo: info})
		call := func(ph trace.Phase, op trace.Op, before, after trace.TCPState) {
			add(trace.Event{Kind: trace.KindCall, Phase: ph, Call: &trace.Call{Socket: 4, Label: trace.Control, Op: op, StateBefore: before, StateAfter: after}})
		}
		call(trace.Begin, trace.OpRecv, trace.StateEstablished, "")
		call(trace.Begin, trace.OpClose, trace.StateEstablished, "")
		call(trace.End, trace.OpClose, trace.StateEstablished, trace.StateFinWait1)
		call(trace.End, trace.OpRecv, trace.StateEstablished, after)
		return evs
	}
	var b bytes.Buffer
	err := trace.WriteCompare(&b, run(trace.LayerStack, trace.StateTimeWait, false), run(trace.LayerKernel, "", true),
		trace.CompareOptions{Width: 160, Left: "netstack", Right: "Linux"})
	if err != nil {
		t.Fatal(err)
	}
	_, diff, _ := strings.Cut(b.String(), "What differs")
	if strings.Contains(diff, "TIME-WAIT") || !strings.Contains(diff, "The same on both: the states the calls on the server control connection saw") {
		t.Errorf("the states a call cut short by close() saw are compared:\nWhat differs%s", diff)
	}
}
