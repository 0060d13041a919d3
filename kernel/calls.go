package kernel

import (
	"context"
	"errors"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/trace"
)

// pendingCall is a call in flight: its description and start time.
type pendingCall struct {
	trace.Call
	start time.Time
}

// syscallOf is the system call each socket call is, when one is all it
// takes.
var syscallOf = map[trace.Op]string{
	trace.OpSocket:   "socket(2), non-blocking",
	trace.OpBind:     "bind(2)",
	trace.OpListen:   "listen(2)",
	trace.OpAccept:   "accept4(2)",
	trace.OpConnect:  "connect(2)",
	trace.OpSend:     "write(2)",
	trace.OpRecv:     "read(2)",
	trace.OpShutdown: "shutdown(2), SHUT_WR",
	trace.OpClose:    "close(2)",
}

// begin describes a call about to run, passes it to the gate (step mode)
// when gated, and records its beginning. Nothing is read from the kernel
// when nobody is watching.
func (s *Socket) begin(ctx context.Context, c trace.Call, gated bool) (pendingCall, error) {
	n := s.n
	if s.ref != nil {
		n.cfg.Watch.callBegin(s.ref, c.Op)
	}
	if n.cfg.Observer == nil {
		return pendingCall{Call: c}, nil
	}
	p, ti := s.describe(c)
	if gated && n.cfg.Gate != nil {
		ev := trace.Event{Layer: trace.LayerKernel, Host: n.cfg.Host, Kind: trace.KindCall, Phase: trace.Begin, Call: &p.Call, TCB: s.sample(ti)}
		if err := n.cfg.Gate.BeforeCall(ctx, ev); err != nil {
			if s.ref != nil {
				n.cfg.Watch.callEnd(s.ref, c.Op)
			}
			return p, err
		}
	}
	p.start = time.Now()
	n.emit(trace.Event{Kind: trace.KindCall, Phase: trace.Begin, Call: &p.Call})
	if c.Op == trace.OpClose {
		// The last look at the connection through its descriptor, still
		// open: the kernel goes on with it after close(2), out of
		// TCP_INFO's reach.
		s.emitSample(ti)
	}
	return p, nil
}

// describe fills in a call's names, socket and the kernel's state for it,
// and returns the TCP_INFO the state was read from (nil for a socket not
// yet made, or closed).
func (s *Socket) describe(c trace.Call) (pendingCall, *tcpInfo) {
	c.Socket, c.Label, c.FD = s.id, s.label, s.fd
	c.Article, c.Kernel = names(c.Op, s.v6)
	c.Syscall = syscallOf[c.Op]
	var ti *tcpInfo
	if s.f != nil && (!s.isClosed() || c.Op == trace.OpClose) {
		// close(2) has not run yet: the descriptor is still open.
		ti = s.info()
		c.StateBefore = ti.state()
	}
	if !c.Local.IsValid() {
		c.Local = s.localAddrPort()
	}
	if !c.Remote.IsValid() {
		c.Remote = s.remoteAddrPort()
	}
	return pendingCall{Call: c}, ti
}

func (s *Socket) end(c *pendingCall, n int, err error, how string) {
	s.endWith(c, n, err, how, nil)
}

// endWith completes c and records its end; how, if not empty, says what
// system calls it took. For accept, stateOf is the new connection, whose
// state is the interesting "after".
func (s *Socket) endWith(c *pendingCall, n int, err error, how string, stateOf *Socket) {
	if s.ref != nil {
		s.n.cfg.Watch.callEnd(s.ref, c.Op)
	}
	if s.n.cfg.Observer == nil {
		return
	}
	c.Duration = time.Since(c.start)
	c.Bytes = n
	if how != "" {
		c.Syscall = how
	}
	if c.FD == 0 {
		c.FD = s.fd
	}
	if err != nil {
		c.Err = err.Error()
		c.Closed = errors.Is(err, net.ErrClosed) && c.Op != trace.OpClose
	}
	if stateOf == nil {
		stateOf = s
	}
	var ti *tcpInfo
	if stateOf.f != nil && !stateOf.isClosed() {
		ti = stateOf.info()
		c.StateAfter = ti.state()
		if l := stateOf.localAddrPort(); l.IsValid() {
			c.Local = l
		}
		if r := stateOf.remoteAddrPort(); r.IsValid() {
			c.Remote = r
		}
	}
	s.n.emit(trace.Event{Kind: trace.KindCall, Phase: trace.End, Call: &c.Call})
	stateOf.emitSample(ti)
}

// tcpInfo is what getsockopt(TCP_INFO) returned: the structure, and how
// much of it this kernel filled in (older kernels know fewer fields).
type tcpInfo struct {
	unix.TCPInfo
	n int
}

// info reads the kernel's TCP_INFO for the socket; nil if it cannot.
func (s *Socket) info() *tcpInfo {
	var ti *tcpInfo
	s.rc.Control(func(fd uintptr) { ti = getTCPInfo(int(fd)) })
	return ti
}

// getTCPInfo is getsockopt(fd, IPPROTO_TCP, TCP_INFO) with the length the
// kernel wrote, which unix.GetsockoptTCPInfo does not return.
func getTCPInfo(fd int) *tcpInfo {
	ti := &tcpInfo{}
	n := uint32(unsafe.Sizeof(ti.TCPInfo))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&ti.TCPInfo)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return nil
	}
	ti.n = int(n)
	return ti
}

// state is the TCP state TCP_INFO says, "" for none.
func (ti *tcpInfo) state() trace.TCPState {
	if ti == nil {
		return ""
	}
	return linuxState(int(ti.State))
}

// has reports whether the kernel filled in the field at offset off of
// size size.
func (ti *tcpInfo) has(off, size uintptr) bool { return int(off+size) <= ti.n }

// sample is the socket's TCP_INFO as a TCB, for step mode's prompt and the
// timeline's samples; nil for a socket with no connection.
func (s *Socket) sample(ti *tcpInfo) *trace.TCB {
	if ti == nil {
		return nil
	}
	b := tcbOf(ti)
	switch b.State {
	case trace.StateClosed, trace.StateListen, "":
		return nil
	}
	b.Socket = s.id
	if !s.remoteAddrPort().IsValid() {
		// Connected before the call that connected it returned (a
		// change of state the kernel told first).
		s.learnAddrs()
	}
	b.Local, b.Remote = s.localAddrPort(), s.remoteAddrPort()
	return b
}

// emitSample records the socket's TCP_INFO as a TCB sample, when the run
// asks for samples, and tells the Watch the socket's segment size (the
// tracepoints' samples do not carry it).
func (s *Socket) emitSample(ti *tcpInfo) {
	if ti == nil || !s.n.cfg.Samples || s.n.cfg.Observer == nil {
		return
	}
	b := s.sample(ti)
	if b == nil {
		return
	}
	if s.ref != nil {
		s.n.cfg.Watch.sampled(s.ref, b)
	}
	s.n.emit(trace.Event{Kind: trace.KindTCB, TCB: b})
}

// TCBOf puts what TCP_INFO says in the TCB's names (see tcbOf).
func TCBOf(ti *unix.TCPInfo) *trace.TCB {
	return tcbOf(&tcpInfo{TCPInfo: *ti, n: int(unsafe.Sizeof(*ti))})
}

// tcbOf puts what TCP_INFO says in the TCB's names: the state, cwnd and
// ssthresh in segments (ssthresh 0 while it is Linux's "infinite"), the
// send MSS, the smoothed RTT, its variation and the RTO, the segments in
// flight, SACKed, lost and retransmitted, the windows (snd_wnd and
// rcv_wnd where this kernel reports them: Linux 6.x), the congestion
// state, the receive buffer's estimate, the delivery rate and the bytes
// acknowledged and received.
func tcbOf(ti *tcpInfo) *trace.TCB {
	b := &trace.TCB{
		State:         linuxState(int(ti.State)),
		Cwnd:          int(ti.Snd_cwnd),
		MSS:           int(ti.Snd_mss),
		SRTT:          time.Duration(ti.Rtt) * time.Microsecond,
		RTTVar:        time.Duration(ti.Rttvar) * time.Microsecond,
		RTO:           time.Duration(ti.Rto) * time.Microsecond,
		Outstanding:   int(ti.Unacked),
		Sacked:        int(ti.Sacked),
		Lost:          int(ti.Lost),
		Retrans:       int(ti.Retrans),
		TotalRetrans:  int(ti.Total_retrans),
		RcvSpace:      ti.Rcv_space,
		DeliveryRate:  ti.Delivery_rate,
		BytesAcked:    ti.Bytes_acked,
		BytesReceived: ti.Bytes_received,
		Synced:        true,
		Source:        trace.FromTCPInfo,
	}
	if ti.has(unsafe.Offsetof(ti.Snd_wnd), unsafe.Sizeof(ti.Snd_wnd)) {
		b.SndWnd = ti.Snd_wnd
	}
	if ti.has(unsafe.Offsetof(ti.Rcv_wnd), unsafe.Sizeof(ti.Rcv_wnd)) {
		b.RcvWnd = ti.Rcv_wnd
	}
	if ti.Snd_ssthresh < infiniteSsthresh {
		b.Ssthresh = int(ti.Snd_ssthresh)
	}
	b.Congestion = congestionName(ti.Ca_state)
	return b
}

// infiniteSsthresh is Linux's ssthresh before the first loss
// (TCP_INFINITE_SSTHRESH).
const infiniteSsthresh = 0x7fffffff

// congestionName names Linux's congestion-control state (enum
// tcp_ca_state) as the trace names netstack's.
func congestionName(s uint8) string {
	switch s {
	case 1:
		return "disorder"
	case 2:
		return "cwr"
	case 3:
		return "fast-recovery"
	case 4:
		return "rto-recovery"
	}
	return "open"
}

// linuxState names a Linux TCP state (include/net/tcp_states.h) as RFC
// 793 does. TCP_NEW_SYN_RECV is a request sock's, a half-open connection
// the kernel keeps no socket for: SYN-RECEIVED.
func linuxState(s int) trace.TCPState {
	switch s {
	case 1:
		return trace.StateEstablished
	case 2:
		return trace.StateSynSent
	case 3, 12:
		return trace.StateSynReceived
	case 4:
		return trace.StateFinWait1
	case 5:
		return trace.StateFinWait2
	case 6:
		return trace.StateTimeWait
	case 7:
		return trace.StateClosed
	case 8:
		return trace.StateCloseWait
	case 9:
		return trace.StateLastAck
	case 10:
		return trace.StateListen
	case 11:
		return trace.StateClosing
	}
	return ""
}
