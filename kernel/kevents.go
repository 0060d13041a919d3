package kernel

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// kernelEvents turns an event the kernel reported into the timeline's,
// for the run's sockets; others' are dropped. changed is the run's own
// socket, still open, whose state the event changed.
func (w *Watch) kernelEvents(r *record) (evs []trace.Event, changed *Socket) {
	switch r.event {
	case "inet_sock_set_state":
		if e, s, ok := w.stateEvent(r); ok {
			return []trace.Event{e}, s
		}
	case "tcp_retransmit_skb":
		return w.tcpEvent(r, trace.Retransmit), nil
	case "tcp_send_reset":
		return w.tcpEvent(r, trace.ResetSent), nil
	case "tcp_receive_reset":
		return w.tcpEvent(r, trace.ResetReceived), nil
	case "tcp_probe":
		return w.probeEvent(r), nil
	case "tcp_cong_state_set":
		return w.congEvent(r), nil
	}
	return nil, nil
}

// linuxStates are the names inet_sock_set_state prints.
var linuxStates = map[string]int{
	"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
	"TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
	"TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11, "TCP_NEW_SYN_RECV": 12,
}

func stateNamed(s string) trace.TCPState { return linuxState(linuxStates[s]) }

// ends reads an event's addresses: saddr/daddr (v4) or saddrv6/daddrv6,
// with sport and dport.
func ends(f map[string]string) (local, remote netip.AddrPort) {
	sa, da := f["saddr"], f["daddr"]
	if f["family"] == "AF_INET6" {
		sa, da = f["saddrv6"], f["daddrv6"]
	}
	s, _ := netip.ParseAddr(sa)
	d, _ := netip.ParseAddr(da)
	sp, _ := strconv.ParseUint(f["sport"], 10, 16)
	dp, _ := strconv.ParseUint(f["dport"], 10, 16)
	return netip.AddrPortFrom(s.Unmap(), uint16(sp)), netip.AddrPortFrom(d.Unmap(), uint16(dp))
}

// stateEvent is a change of state of one of the run's sockets, with its
// cause read off the kernel's stack.
func (w *Watch) stateEvent(r *record) (trace.Event, *Socket, bool) {
	f := r.fields
	from, to := stateNamed(f["oldstate"]), stateNamed(f["newstate"])
	if from == "" || to == "" || from == to {
		return trace.Event{}, nil, false
	}
	// The kernel's events name a socket by its ends only (its address
	// is not printed): a listening socket by its local end, a connect's
	// first change by the address it connects to (its port is not chosen
	// yet), the rest by the connection's ends.
	local, remote := ends(f)
	w.mu.Lock()
	defer w.mu.Unlock()
	var ref *sockRef
	switch {
	case to == trace.StateListen:
		ref = w.listenerLocked(local, true)
	case from == trace.StateListen && !remote.IsValid() || from == trace.StateListen && remote.Port() == 0:
		ref = w.listenerLocked(local, false)
	default:
		ref = w.findLocked(local, remote, false)
		if ref == nil {
			ref = w.peerConnectLocked(local, remote, from, to)
		}
	}
	if ref == nil {
		return trace.Event{}, nil, false
	}
	ref.seen = true
	cause, by := kernelCause(from, to, r.stack)
	// Linux hands a connection entering TIME-WAIT to a small timewait
	// sock (tcp_time_wait) and frees the socket: the tracepoint sees it
	// go to TCP_CLOSE, on the segment that RFC 793 moves it to TIME-WAIT
	// on. A connection in FIN-WAIT-2 whose socket is closed (close()
	// after shutdown(), or the ACK of its FIN after close()) is handed
	// to one too, still in FIN-WAIT-2 (tcp_time_wait(sk, TCP_FIN_WAIT2)):
	// its socket is freed, the tracepoint says TCP_CLOSE, and no
	// tracepoint follows the timewait sock to TIME-WAIT when the peer's
	// FIN comes. The FIN's arrival is tcp_fin on the stack.
	handoff := to == trace.StateClosed && from == trace.StateFinWait2 && cause != "rcv RST" &&
		slices.Contains(r.stack, "tcp_done") && !slices.Contains(r.stack, "tcp_fin")
	timeWait := !handoff && to == trace.StateClosed && by == trace.BySegment && cause != "rcv RST" &&
		(from == trace.StateFinWait1 || from == trace.StateFinWait2 || from == trace.StateClosing)
	if timeWait {
		to = trace.StateTimeWait
		cause, _ = kernelCause(from, to, r.stack)
		cause += " (tcp_time_wait frees the socket: a timewait sock keeps TIME-WAIT, and the tracepoint says TCP_CLOSE)"
	}
	if handoff {
		if by == trace.BySegment {
			// The ACK of the FIN of a socket already closed: its move to
			// FIN-WAIT-2 and its handing on are one.
			cause = "rcv ACK of our FIN"
		}
		cause += " (tcp_time_wait hands the connection, still in FIN-WAIT-2, to a timewait sock and frees the socket: the tracepoint says TCP_CLOSE; the connection goes to TIME-WAIT when the peer's FIN comes, which no tracepoint reports)"
	}
	st := &trace.State{Socket: ref.id, Label: ref.label, From: from, To: to, Cause: cause, By: by, Stack: shownStack(r.stack)}
	if from == trace.StateListen && to == trace.StateSynReceived {
		if l := w.listenerLocked(local, false); l != nil {
			st.Listener = l.id
		}
	}
	if to == trace.StateClosed || timeWait {
		ref.ended = true
		defer w.portsChanged()
	}
	return ref.event(trace.Event{Kind: trace.KindState, State: st}), ref.sock, true
}

// listenerLocked is the run's listening socket on local; fresh asks for
// one the kernel has not shown yet (its move to LISTEN).
func (w *Watch) listenerLocked(local netip.AddrPort, fresh bool) *sockRef {
	for _, l := range slices.Backward(w.socks) {
		if l.listening && !l.ended && l.local.Port() == local.Port() &&
			(l.local.Addr() == local.Addr() || l.local.Addr().IsUnspecified() || local.Addr().IsUnspecified()) &&
			(!fresh || !l.seen) {
			return l
		}
	}
	return nil
}

// tcpEvent is a retransmission or a reset on one of the run's
// connections.
func (w *Watch) tcpEvent(r *record, what trace.TCPDo) []trace.Event {
	f := r.fields
	local, remote := ends(f)
	if s, ok := f["src"]; ok {
		local, _ = netip.ParseAddrPort(s)
		remote, _ = netip.ParseAddrPort(f["dest"])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ref := w.byTuple[tuple{local, remote}]
	te := &trace.TCPEvent{What: what, Src: local, Dst: remote, State: stateNamed(f["state"]),
		Reason: f["reason"], Stack: shownStack(r.stack)}
	if ref == nil && what == trace.ResetSent {
		// A reset the kernel sends for no socket (a port nobody listens
		// on): the run's socket is the one it goes to.
		if to := w.byTuple[tuple{remote, local}]; to != nil {
			te.Reason = strings.TrimSpace(te.Reason + " (to fd" + strconv.Itoa(to.id) + ")")
			return []trace.Event{to.event(trace.Event{Kind: trace.KindTCPEvent, TCPEvent: te})}
		}
	}
	if ref == nil {
		return nil
	}
	te.Socket, te.Label = ref.id, ref.label
	return []trace.Event{ref.event(trace.Event{Kind: trace.KindTCPEvent, TCPEvent: te})}
}

// Kernel functions that say what made a change, when they are on the
// stack: the innermost of them decides.
var (
	segmentFuncs = []string{
		"tcp_rcv_state_process", "tcp_rcv_established", "tcp_rcv_synsent_state_process",
		"tcp_fin", "tcp_reset", "tcp_check_req", "tcp_child_process", "tcp_ack",
		"tcp_v4_do_rcv", "tcp_v6_do_rcv", "tcp_v4_rcv", "tcp_v6_rcv",
	}
	callFuncs = map[string]string{
		"tcp_v4_connect": "connect()", "tcp_v6_connect": "connect()",
		"inet_csk_listen_start": "listen()", "__inet_listen_sk": "listen()", "inet_listen": "listen()",
		"__tcp_close": "close()", "tcp_close": "close()",
		"tcp_shutdown": "shutdown()", "inet_shutdown": "shutdown()",
		"tcp_disconnect": "connect(AF_UNSPEC)",
	}
)

// kernelCause says what moved a connection from one state to another:
// the call, the segment received or the timer on the kernel's stack, with
// the segment named as RFC 793's diagram names it for the transition.
func kernelCause(from, to trace.TCPState, stack []string) (string, trace.CauseKind) {
	for _, fn := range stack {
		if name, ok := callFuncs[fn]; ok {
			return name, trace.ByCall
		}
		if fn == "tcp_write_err" {
			return "retransmission timer: the kernel gave up", trace.ByTimer
		}
		if strings.Contains(fn, "timer") {
			if from == trace.StateFinWait2 {
				return "FIN-WAIT-2 timer", trace.ByTimer
			}
			return "timer: " + fn, trace.ByTimer
		}
		if slices.Contains(segmentFuncs, fn) {
			if to == trace.StateClosed && slices.Contains(stack, "tcp_reset") {
				return "rcv RST", trace.BySegment
			}
			return "rcv " + segmentFor(from, to), trace.BySegment
		}
	}
	if len(stack) == 0 {
		return "the kernel (no stack trace)", trace.ByTimer
	}
	return "the kernel: " + stack[min(1, len(stack)-1)], trace.ByTimer
}

// segmentFor names the segment RFC 793's diagram moves a connection on.
func segmentFor(from, to trace.TCPState) string {
	switch {
	case from == trace.StateListen && to == trace.StateSynReceived:
		return "ACK completing the handshake (a request sock answered the SYN)"
	case from == trace.StateSynSent && to == trace.StateEstablished:
		return "SYN|ACK"
	case to == trace.StateSynReceived:
		return "SYN"
	case from == trace.StateFinWait1 && to == trace.StateTimeWait:
		return "FIN|ACK (the ACK of our FIN with the peer's FIN)"
	case to == trace.StateCloseWait, to == trace.StateClosing, from == trace.StateFinWait2 && to == trace.StateTimeWait:
		return "FIN"
	case to == trace.StateFinWait2, to == trace.StateTimeWait, from == trace.StateLastAck && to == trace.StateClosed:
		return "ACK of our FIN"
	case to == trace.StateEstablished:
		return "ACK"
	}
	return "segment"
}

// shownStack is a kernel stack as the views show it: outermost first,
// without the tracing machinery and the system call entry's plumbing.
func shownStack(stack []string) []string {
	var out []string
	for i := len(stack) - 1; i >= 0; i-- {
		fn := stack[i]
		switch {
		case strings.HasPrefix(fn, "trace_event_raw_event_"), strings.HasPrefix(fn, "perf_trace_"),
			strings.HasPrefix(fn, "entry_SYSCALL"), fn == "do_syscall_64", fn == "x64_sys_call",
			fn == "inet_sk_state_store", fn == "inet_sk_set_state", fn == "ret_from_fork", fn == "ret_from_fork_asm":
			continue
		}
		out = append(out, fn)
	}
	return out
}

// probeEvent is a per-ACK sample of one of the run's connections, from
// tcp:tcp_probe: the sender's state as the kernel began to process a
// segment that arrived, recorded when it differs from the last in what a
// graph shows (the window, the threshold, what is acknowledged, the
// congestion state), as netstack's samples are, or in the window it
// offers (a receiver's samples change in nothing else).
func (w *Watch) probeEvent(r *record) []trace.Event {
	f := r.fields
	local, _ := netip.ParseAddrPort(f["src"])
	remote, _ := netip.ParseAddrPort(f["dest"])
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	w.mu.Lock()
	defer w.mu.Unlock()
	ref := w.byTuple[tuple{local, remote}]
	if ref == nil || ref.ended {
		return nil
	}
	b := &trace.TCB{Socket: ref.id, State: trace.StateEstablished, Local: local, Remote: remote,
		SndNxt: hex32(f["snd_nxt"]), SndUna: hex32(f["snd_una"]), Cwnd: atoi(f["snd_cwnd"]),
		SndWnd: uint32(atoi(f["snd_wnd"])), RcvWnd: uint32(atoi(f["rcv_wnd"])),
		SRTT: time.Duration(atoi(f["srtt"])) * time.Microsecond, Congestion: ref.congestion,
		Synced: true, Source: trace.FromTCPProbe}
	if ss := atoi(f["ssthresh"]); ss < infiniteSsthresh {
		b.Ssthresh = ss
	}
	if b.Congestion == "" {
		b.Congestion = "open"
	}
	if ref.last != nil {
		b.MSS, b.RTO = ref.last.MSS, ref.last.RTO
	}
	if p := ref.probed; p != nil && p.Cwnd == b.Cwnd && p.Ssthresh == b.Ssthresh && p.SndUna == b.SndUna &&
		p.SndWnd == b.SndWnd && p.RcvWnd == b.RcvWnd && p.Congestion == b.Congestion {
		return nil
	}
	ref.probed, ref.last = b, b
	c := *b
	return []trace.Event{ref.event(trace.Event{Kind: trace.KindTCB, TCB: &c})}
}

// congEvent is a change of one of the run's connections' congestion
// state, from tcp:tcp_cong_state_set, as a sample with its other figures
// from the last one.
func (w *Watch) congEvent(r *record) []trace.Event {
	local, remote := ends(r.fields)
	w.mu.Lock()
	defer w.mu.Unlock()
	ref := w.byTuple[tuple{local, remote}]
	if ref == nil || ref.ended {
		return nil
	}
	name := congestionName(uint8(atoi(r.fields["cong_state"])))
	if name == ref.congestion || ref.congestion == "" && name == "open" {
		ref.congestion = name
		return nil
	}
	ref.congestion = name
	if ref.last == nil {
		return nil // nothing to draw it with yet; the next sample says it
	}
	b := *ref.last
	b.Congestion, b.Source = name, trace.FromCongState
	ref.last = &b
	c := b
	return []trace.Event{ref.event(trace.Event{Kind: trace.KindTCB, TCB: &c})}
}

func atoi(s string) int {
	n, _ := strconv.ParseInt(s, 10, 64)
	return int(n)
}

// hex32 reads "0x1f2e3d4c".
func hex32(s string) uint32 {
	n, _ := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	return uint32(n)
}
