package kernel

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestParseTracePipe reads trace_pipe's text as the kernel writes it
// (lines from a real run): each event with its fields and the stack its
// trigger recorded after it, a task name with spaces and dashes, a lost
// events line, and an event whose stack never came, handed on once the
// pipe runs dry.
func TestParseTracePipe(t *testing.T) {
	b, err := os.ReadFile("testdata/trace_pipe.txt")
	if err != nil {
		t.Fatal(err)
	}
	var p parser
	var got []*record
	emit := func(r *record) { got = append(got, r) }
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		p.line(l, emit)
	}
	if len(got) != 5 {
		t.Fatalf("%d records before the pipe ran dry, want 5 (the last still waits for its stack): %+v", len(got), got)
	}
	if p.oldest() != 2405004076000 {
		t.Errorf("oldest waiting = %d, want the last event's time", p.oldest())
	}
	p.expire(1<<62, emit)
	if len(got) != 6 || p.oldest() != 0 {
		t.Fatalf("after expire: %d records, %d waiting", len(got), p.oldest())
	}

	listen := got[0]
	if listen.event != "inet_sock_set_state" || listen.mono != 1972270097000 || listen.pid != 30093 || listen.task != "python3" {
		t.Errorf("first record: %+v", listen)
	}
	if listen.fields["newstate"] != "TCP_LISTEN" || listen.fields["sport"] != "45678" {
		t.Errorf("first record's fields: %v", listen.fields)
	}
	if want := []string{"trace_event_raw_event_inet_sock_set_state", "inet_sk_state_store", "inet_csk_listen_start",
		"__inet_listen_sk", "inet_listen", "__sys_listen", "__x64_sys_listen", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"}; !slices.Equal(listen.stack, want) {
		t.Errorf("listen's stack = %q", listen.stack)
	}
	if r := got[2]; r.event != "tcp_receive_reset" || r.task != "tcp worker-1" || r.cpu != 1 || r.stack != nil {
		t.Errorf("a record of another CPU, with no stack: %+v", r)
	}
	if r := got[3]; r.lost != 12 {
		t.Errorf("lost line: %+v", r)
	}
	if r := got[4]; r.fields["newstate"] != "TCP_ESTABLISHED" || !slices.Contains(r.stack, "tcp_finish_connect") {
		t.Errorf("the stack after a lost line belongs to its event: %+v", r)
	}
	if r := got[5]; r.stack != nil || r.fields["oldstate"] != "TCP_FIN_WAIT2" {
		t.Errorf("the event whose stack never came: %+v", r)
	}
	if s := shownStack(listen.stack); !slices.Equal(s, []string{"__x64_sys_listen", "__sys_listen", "inet_listen", "__inet_listen_sk", "inet_csk_listen_start"}) {
		t.Errorf("shown stack = %q: outermost first, without the tracing and syscall-entry frames", s)
	}
}

// TestParseStackLate: a task preempted after writing its event writes the
// stack later, on another CPU, after another task's event and stack on
// the first: each event keeps its own stack (a stack was lost this way on
// a loaded machine, and the README's connect() line lost its chain).
func TestParseStackLate(t *testing.T) {
	const ev = "inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=%d dport=21 saddr=127.0.0.1 daddr=127.0.0.2 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.2 oldstate=%s newstate=%s"
	lines := []string{
		"           nsftp-100     [000] .....    10.000100: " + fmt.Sprintf(ev, 40000, "TCP_CLOSE", "TCP_SYN_SENT"),
		"           other-200     [000] .....    10.000200: " + fmt.Sprintf(ev, 40001, "TCP_SYN_SENT", "TCP_ESTABLISHED"),
		"           other-200     [000] .....    10.000250: <stack trace>",
		" => trace_event_raw_event_inet_sock_set_state",
		" => tcp_finish_connect",
		" => __x64_sys_connect",
		"           nsftp-100     [001] .....    10.009000: <stack trace>",
		" => trace_event_raw_event_inet_sock_set_state",
		" => tcp_v4_connect",
		" => __x64_sys_connect",
		"          <idle>-0       [001] ..s2.    10.009100: " + fmt.Sprintf(ev, 40002, "TCP_FIN_WAIT2", "TCP_CLOSE"),
	}
	var p parser
	var got []*record
	for _, l := range lines {
		p.line(l, func(r *record) { got = append(got, r) })
	}
	p.expire(1<<62, func(r *record) { got = append(got, r) })
	stacks := map[string][]string{}
	for _, r := range got {
		stacks[r.fields["sport"]] = r.stack
	}
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	if s := stacks["40000"]; !slices.Contains(s, "tcp_v4_connect") || slices.Contains(s, "tcp_finish_connect") {
		t.Errorf("the preempted connect()'s stack: %q", s)
	}
	if s := stacks["40001"]; !slices.Contains(s, "tcp_finish_connect") || slices.Contains(s, "tcp_v4_connect") {
		t.Errorf("the other task's stack: %q", s)
	}
	if s := stacks["40002"]; s != nil {
		t.Errorf("the idle task's event, whose stack never came: %q", s)
	}
}

// TestKernelCause names what moved a connection as RFC 793's state
// diagram (page 23) does, from the kernel's own stack: the innermost
// frame that is a call's, a segment's or a timer's decides.
func TestKernelCause(t *testing.T) {
	for _, tc := range []struct {
		from, to trace.TCPState
		stack    string // innermost first, as the kernel prints it
		cause    string
		by       trace.CauseKind
	}{
		// OPEN (passive): CLOSED -> LISTEN.
		{trace.StateClosed, trace.StateListen, "inet_sk_state_store inet_csk_listen_start __inet_listen_sk inet_listen __sys_listen", "listen()", trace.ByCall},
		// OPEN (active): CLOSED -> SYN-SENT, snd SYN.
		{trace.StateClosed, trace.StateSynSent, "inet_sk_state_store tcp_v4_connect __inet_stream_connect __sys_connect", "connect()", trace.ByCall},
		// rcv SYN,ACK: SYN-SENT -> ESTABLISHED, even inside connect() (loopback delivers within the call).
		{trace.StateSynSent, trace.StateEstablished, "inet_sk_state_store tcp_finish_connect tcp_rcv_state_process tcp_v4_do_rcv __release_sock release_sock __inet_stream_connect __sys_connect", "rcv SYN|ACK", trace.BySegment},
		// Linux makes the socket for a SYN on a listener at the handshake's last ACK.
		{trace.StateListen, trace.StateSynReceived, "inet_sk_set_state inet_csk_clone_lock tcp_create_openreq_child tcp_v4_syn_recv_sock tcp_check_req tcp_v4_rcv", "rcv ACK completing the handshake (a request sock answered the SYN)", trace.BySegment},
		{trace.StateSynReceived, trace.StateEstablished, "inet_sk_state_store tcp_rcv_state_process tcp_child_process tcp_v4_rcv", "rcv ACK", trace.BySegment},
		// CLOSE: ESTABLISHED -> FIN-WAIT-1, snd FIN; close(2)'s work is deferred to __fput.
		{trace.StateEstablished, trace.StateFinWait1, "inet_sk_state_store __tcp_close tcp_close inet_release __sock_release sock_close __fput", "close()", trace.ByCall},
		{trace.StateEstablished, trace.StateFinWait1, "inet_sk_state_store tcp_shutdown inet_shutdown __sys_shutdown", "shutdown()", trace.ByCall},
		// rcv FIN: ESTABLISHED -> CLOSE-WAIT.
		{trace.StateEstablished, trace.StateCloseWait, "inet_sk_state_store tcp_fin tcp_data_queue tcp_rcv_established tcp_v4_do_rcv", "rcv FIN", trace.BySegment},
		// rcv ACK of FIN: FIN-WAIT-1 -> FIN-WAIT-2, LAST-ACK -> CLOSED.
		{trace.StateFinWait1, trace.StateFinWait2, "inet_sk_state_store tcp_rcv_state_process tcp_v4_do_rcv", "rcv ACK of our FIN", trace.BySegment},
		{trace.StateLastAck, trace.StateClosed, "tcp_set_state tcp_done tcp_rcv_state_process", "rcv ACK of our FIN", trace.BySegment},
		// rcv FIN in FIN-WAIT-2: TIME-WAIT (the tracepoint says TCP_CLOSE; stateEvent names it).
		{trace.StateFinWait2, trace.StateTimeWait, "tcp_set_state tcp_done tcp_fin tcp_data_queue tcp_rcv_state_process", "rcv FIN", trace.BySegment},
		// A reset.
		{trace.StateSynSent, trace.StateClosed, "tcp_set_state tcp_done tcp_reset tcp_rcv_synsent_state_process tcp_rcv_state_process", "rcv RST", trace.BySegment},
		// Timers.
		{trace.StateEstablished, trace.StateClosed, "tcp_set_state tcp_done tcp_write_err tcp_retransmit_timer tcp_write_timer_handler", "retransmission timer: the kernel gave up", trace.ByTimer},
		{trace.StateFinWait2, trace.StateClosed, "tcp_set_state tcp_done tcp_keepalive_timer call_timer_fn", "FIN-WAIT-2 timer", trace.ByTimer},
	} {
		cause, by := kernelCause(tc.from, tc.to, strings.Fields(tc.stack))
		if cause != tc.cause || by != tc.by {
			t.Errorf("%s -> %s: %q (%s), want %q (%s)", tc.from, tc.to, cause, by, tc.cause, tc.by)
		}
	}
}

// TestLinuxStates names every state of include/net/tcp_states.h as RFC
// 793 does.
func TestLinuxStates(t *testing.T) {
	for name, n := range linuxStates {
		if linuxState(n) == "" || stateNamed(name) != linuxState(n) {
			t.Errorf("%s (%d) has no RFC 793 name", name, n)
		}
	}
	if stateNamed("TCP_NEW_SYN_RECV") != trace.StateSynReceived {
		t.Errorf("a request sock is not SYN-RECEIVED")
	}
}

// TestNamesInThisKernel: the table of kernel functions (written from
// Linux 6.18's sources) names functions the running kernel has.
func TestNamesInThisKernel(t *testing.T) {
	if kallsyms() == nil {
		t.Skip("skipping: /proc/kallsyms cannot be read")
	}
	for _, op := range []trace.Op{trace.OpSocket, trace.OpBind, trace.OpListen, trace.OpAccept, trace.OpConnect,
		trace.OpSend, trace.OpRecv, trace.OpShutdown, trace.OpClose} {
		for _, v6 := range []bool{false, true} {
			if _, k := names(op, v6); strings.Contains(k, "not in this kernel") {
				t.Errorf("%s (v6 %v): %s", op, v6, k)
			}
		}
	}
}
