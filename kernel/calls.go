package kernel

import (
	"context"
	"errors"
	"net"
	"time"

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
	p := s.describe(c)
	if gated && n.cfg.Gate != nil {
		ev := trace.Event{Layer: trace.LayerKernel, Host: n.cfg.Host, Kind: trace.KindCall, Phase: trace.Begin, Call: &p.Call, TCB: s.tcb()}
		if err := n.cfg.Gate.BeforeCall(ctx, ev); err != nil {
			if s.ref != nil {
				n.cfg.Watch.callEnd(s.ref, c.Op)
			}
			return p, err
		}
	}
	p.start = time.Now()
	n.emit(trace.Event{Kind: trace.KindCall, Phase: trace.Begin, Call: &p.Call})
	return p, nil
}

// describe fills in a call's names, socket and the kernel's state for it.
func (s *Socket) describe(c trace.Call) pendingCall {
	c.Socket, c.Label, c.FD = s.id, s.label, s.fd
	c.Article, c.Kernel = names(c.Op, s.v6)
	c.Syscall = syscallOf[c.Op]
	if s.f != nil && !s.isClosed() {
		c.StateBefore = s.state()
	}
	if !c.Local.IsValid() {
		c.Local = s.localAddrPort()
	}
	if !c.Remote.IsValid() {
		c.Remote = s.remoteAddrPort()
	}
	return pendingCall{Call: c}
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
	if stateOf.f != nil && !stateOf.isClosed() {
		c.StateAfter = stateOf.state()
		if l := stateOf.localAddrPort(); l.IsValid() {
			c.Local = l
		}
		if r := stateOf.remoteAddrPort(); r.IsValid() {
			c.Remote = r
		}
	}
	s.n.emit(trace.Event{Kind: trace.KindCall, Phase: trace.End, Call: &c.Call})
}

// info reads the kernel's TCP_INFO for the socket; nil if it cannot.
func (s *Socket) info() *unix.TCPInfo {
	var ti *unix.TCPInfo
	s.rc.Control(func(fd uintptr) {
		ti, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	return ti
}

// state is the socket's TCP state as the kernel holds it.
func (s *Socket) state() trace.TCPState {
	ti := s.info()
	if ti == nil {
		return ""
	}
	return linuxState(int(ti.State))
}

// tcb is the kernel's TCP_INFO for a step-mode prompt, in the TCB's
// names: the kernel does not give its sequence numbers there. Nil for a
// socket with no connection.
func (s *Socket) tcb() *trace.TCB {
	if s.f == nil || s.isClosed() {
		return nil
	}
	ti := s.info()
	if ti == nil {
		return nil
	}
	b := TCBOf(ti)
	switch b.State {
	case trace.StateClosed, trace.StateListen:
		return nil
	}
	b.Socket = s.id
	return b
}

// TCBOf puts what TCP_INFO says in the TCB's names: the state, cwnd and
// ssthresh in segments (ssthresh 0 while it is Linux's "infinite"),
// the send MSS, the smoothed RTT and RTO, the windows, and the
// congestion state.
func TCBOf(ti *unix.TCPInfo) *trace.TCB {
	b := &trace.TCB{
		State:  linuxState(int(ti.State)),
		SndWnd: ti.Snd_wnd,
		RcvWnd: ti.Rcv_wnd,
		Cwnd:   int(ti.Snd_cwnd),
		MSS:    int(ti.Snd_mss),
		SRTT:   time.Duration(ti.Rtt) * time.Microsecond,
		RTO:    time.Duration(ti.Rto) * time.Microsecond,
		Synced: true,
	}
	if ti.Snd_ssthresh < 0x7fffffff {
		b.Ssthresh = int(ti.Snd_ssthresh)
	}
	b.Congestion = congestionName(ti.Ca_state)
	return b
}

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
