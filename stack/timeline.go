package stack

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/trace"
)

// Gate pauses a host before its socket calls and frames: step mode.
type Gate interface {
	// BeforeCall is called before every socket call with the call's
	// beginning (its arguments) and, for a socket with a connection, its
	// TCB. It may block, as a prompt does; if it returns an error the
	// call does not run and fails with that error.
	BeforeCall(ctx context.Context, e trace.Event) error
	// BeforeFrame is called before each frame the host sends or
	// receives, with the frame's segment event and the TCB of the
	// connection it belongs to. It may block; the frame goes on when it
	// returns. The stack may hold the connection's locks meanwhile, so it
	// must not call the host's sockets.
	BeforeFrame(e trace.Event)
}

// beforeCall passes a call about to run to the gate, with the host's
// clock held: however long the gate waits (a person at a prompt), no time
// passes for the network.
func (t *timeline) beforeCall(ctx context.Context, e trace.Event) error {
	release := t.h.clock.Hold()
	defer release()
	return t.gate.BeforeCall(ctx, e)
}

// beforeFrame passes a frame about to cross the link to the gate, with
// the host's clock held.
func (t *timeline) beforeFrame(e trace.Event) {
	release := t.h.clock.Hold()
	defer release()
	t.gate.BeforeFrame(e)
}

// timeline is a host's part of a run's timeline. It knows every TCP
// connection of the host's sockets, by netstack endpoint and by address
// pair, and records, at the moment it learns of them, each call's
// beginning and end, each frame with the socket it belongs to, and each
// change of state with its cause.
//
// netstack has no hook for state changes, so a connection's state is
// looked at wherever it can have changed: when a call begins or ends, as
// each frame of the connection crosses the link, when netstack wakes the
// socket's waiters (which is how a timer's expiry, such as TIME-WAIT's
// end, shows), and after netstack has processed each segment it received
// (its TCP probe) or, on hosts that go without the probe, after an ACK
// that can end FIN-WAIT-1, CLOSING or LAST-ACK without a frame or a
// wake-up to show it (watchLocked). A change is recorded before the frame
// or call end that revealed it, with the cause RFC 793's diagram gives
// that transition: the call in flight, the segment received, or a timer.
//
// Lock order: netstack's endpoint and waiter-queue locks, then mu, then
// the observer's. Nothing is called in netstack with mu held but atomic
// state reads; FindTransportEndpoint is called before taking mu.
type timeline struct {
	h       *Host
	obs     trace.Observer
	gate    Gate
	chains  *chainCache // nil unless outgoing frames' call chains are wanted
	samples bool        // record TCB samples of sending connections
	probing bool        // netstack's TCP probe reports to the timeline

	// watchers are the goroutines of watchLocked; unwatch ends them.
	watchers sync.WaitGroup
	unwatch  chan struct{}

	mu      sync.Mutex
	byEP    map[*tcp.Endpoint]*conn
	byTuple map[tuple]*conn
	last    *conn         // the connection of the last frame: bulk data hits it again
	live    int           // connections not yet CLOSED
	settled chan struct{} // closed while live is zero
	// synFor holds each SYN received on a listening socket until
	// netstack's new connection for it answers: the connection's first
	// cause, and the listening socket it was born on.
	synFor map[tuple]synRecord
	// udp are the UDP sockets with a port, by port: a datagram belongs
	// to the socket bound to its port on this host.
	udp map[uint16][]udpBinding
}

// udpBinding is a UDP socket's port, and the address it is bound to
// (unspecified: any of the host's, and broadcasts).
type udpBinding struct {
	id    int
	label trace.Conn
	local netip.AddrPort
}

type synRecord struct {
	listener *conn
	syn      inSeg
}

// tuple names a connection from its host's side.
type tuple struct{ local, remote netip.AddrPort }

// conn is one TCP endpoint the timeline follows: a socket, a connection
// born on a listening socket and not yet accepted, or a closed socket's
// connection still finishing (FIN-WAIT, TIME-WAIT, LAST-ACK).
type conn struct {
	id       int
	label    trace.Conn
	ep       *tcp.Endpoint
	state    trace.TCPState
	listener *conn // the listening socket a connection was born on
	tuple    tuple
	hasTuple bool
	held     bool // a Socket holds it: not yet closed, and not an unaccepted connection
	done     bool // reached CLOSED
	abort    bool // being closed with a reset

	calls []trace.Op // calls in flight on the socket

	// Recent segments received, newest last; how many were ever
	// received; and the number of the last that caused a change of
	// state: a later one is the cause of the next change it can make.
	in          []inSeg
	nIn, usedIn int
	listening   bool // a listening socket: its segments are SYNs for new connections
	wireTCB
	sampled trace.TCB // the last TCB sample recorded
	rto     bool      // the congestion window collapsed to 1: a retransmission timeout
	entry   waiter.Entry
	watched bool // a watcher looks at its state (watchLocked)
}

// wireTCB is a connection's TCB as netstack last reported it, moved on by
// the frames seen since. It is small and holds no references, so a copy
// can be moved on by a frame about to leave (for a step-mode prompt)
// without touching the connection.
type wireTCB struct {
	tcb     trace.TCB
	ws      [2]int // window scale announced in our SYN [0] and in theirs [1]; -1 none
	sndInit bool   // SND.NXT known
	rcvInit bool   // RCV.NXT known
	finSent bool   // we sent a FIN, ending at finEnd
	finEnd  uint32
	// sndMax and rcvMax are the highest sequence numbers sent and
	// received, from the frames alone: SND.NXT goes back after a timeout
	// (netstack resends from SND.UNA), and a segment below sndMax resends
	// what was sent before.
	sndMax, rcvMax       uint32
	sndMaxSet, rcvMaxSet bool
}

// inSeg is a segment received, as much as a cause needs.
type inSeg struct {
	flags    trace.TCPFlags
	seq, ack uint32
	len      int
	win      uint16 // the window field
	ws       int    // a SYN's window scale, -1 when absent
	n        int    // its number among the connection's segments received, from 1
}

const recentIn = 16

func newTimeline(h *Host, obs trace.Observer, gate Gate, explain bool) *timeline {
	t := &timeline{
		h: h, obs: obs, gate: gate,
		byEP:    map[*tcp.Endpoint]*conn{},
		byTuple: map[tuple]*conn{},
		synFor:  map[tuple]synRecord{},
		udp:     map[uint16][]udpBinding{},
		settled: make(chan struct{}),
		unwatch: make(chan struct{}),
	}
	close(t.settled)
	if explain {
		t.chains = newChainCache()
	}
	return t
}

// emit records an event of this host. Called with mu held where the
// event's order relative to others of the same connection matters.
func (t *timeline) emit(e trace.Event) {
	e.Layer = trace.LayerStack
	e.Host = t.h.name
	t.obs(e)
}

// follow starts following ep as socket id. Called without mu; the waiter
// entry is registered on wq so the socket's wake-ups (a timer's expiry
// among them) are seen.
func (t *timeline) follow(id int, label trace.Conn, ep *tcp.Endpoint, wq *waiter.Queue) *conn {
	t.mu.Lock()
	c := t.byEP[ep]
	if c == nil {
		c = t.adoptLocked(ep, id, label, nil)
	}
	c.held = true
	t.mu.Unlock()
	c.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.WritableEvents|waiter.EventHUp|waiter.EventErr,
		func(waiter.EventMask) { t.notify(c) })
	wq.EventRegister(&c.entry)
	return c
}

// adoptLocked starts following an endpoint the timeline has not seen: a
// new socket's, or one netstack made for a SYN to a listening socket.
func (t *timeline) adoptLocked(ep *tcp.Endpoint, id int, label trace.Conn, listener *conn) *conn {
	if id == 0 {
		id = t.h.newSocketID()
	}
	c := &conn{id: id, label: label, ep: ep, state: trace.StateInitial, listener: listener}
	c.ws = [2]int{-1, -1}
	if listener != nil {
		// Born as a copy of the listening socket (RFC 793, page 65:
		// "a new connection is created ... in the LISTEN state").
		c.state = trace.StateListen
	}
	c.tcb.Socket = id
	t.byEP[ep] = c
	if t.live == 0 {
		t.settled = make(chan struct{})
	}
	t.live++
	return c
}

// connID is the socket a frame belongs to, found without mu: the
// connection followed for its address pair or, failing that, netstack's
// endpoint for it (a new connection on a listening socket, or the
// listening socket itself).
func (t *timeline) find(proto tcpip.NetworkProtocolNumber, tp tuple) (c *conn, ep *tcp.Endpoint) {
	t.mu.Lock()
	c = t.knownLocked(tp)
	t.mu.Unlock()
	if c != nil {
		return c, nil
	}
	return nil, t.endpointFor(proto, tp)
}

// knownLocked is the connection followed for an address pair, if any:
// most often the last frame's (bulk data).
func (t *timeline) knownLocked(tp tuple) *conn {
	if l := t.last; l != nil && l.hasTuple && l.tuple == tp {
		return l
	}
	return t.byTuple[tp]
}

// endpointFor is netstack's endpoint for an address pair: a connection
// the timeline does not follow yet, or the listening socket a SYN is
// for. Called without mu.
func (t *timeline) endpointFor(proto tcpip.NetworkProtocolNumber, tp tuple) *tcp.Endpoint {
	id := gstack.TransportEndpointID{
		LocalPort: tp.local.Port(), LocalAddress: toTCPIP(tp.local.Addr()),
		RemotePort: tp.remote.Port(), RemoteAddress: toTCPIP(tp.remote.Addr()),
	}
	te := t.h.s.FindTransportEndpoint(proto, tcp.ProtocolNumber, id, t.h.nic)
	ep, _ := te.(*tcp.Endpoint)
	return ep
}

// resolveLocked turns what find returned into the connection, adopting
// the connection netstack made for a SYN to one of our listening sockets
// when it first sends (its SYN|ACK).
func (t *timeline) resolveLocked(c *conn, ep *tcp.Endpoint, tp tuple) *conn {
	if c == nil && ep != nil {
		c = t.byEP[ep]
		if c == nil {
			rec, ok := t.synFor[tp]
			if !ok {
				return nil // not an endpoint of ours
			}
			delete(t.synFor, tp)
			c = t.adoptLocked(ep, 0, rec.listener.label, rec.listener)
			c.addIn(rec.syn)
			// What the SYN told the listening socket is the new
			// connection's first knowledge of its peer.
			c.tcb.IRS, c.tcb.RcvNxt, c.rcvInit = rec.syn.seq, rec.syn.seq+1, true
			c.tcb.SndWnd, c.ws[1] = uint32(rec.syn.win), rec.syn.ws
		}
	}
	if c == nil {
		return nil
	}
	if !c.hasTuple && !c.listening && ep != nil && ep.EndpointState() != tcp.StateListen {
		c.tuple, c.hasTuple = tp, true
		t.byTuple[tp] = c
	}
	if c.hasTuple {
		t.last = c
	}
	return c
}

// addIn remembers a segment received, for the causes of what follows.
func (c *conn) addIn(s inSeg) {
	c.nIn++
	s.n = c.nIn
	if len(c.in) == 2*recentIn {
		// The newest recentIn stay: a copy per recentIn segments.
		c.in = c.in[:copy(c.in, c.in[recentIn:])]
	}
	c.in = append(c.in, s)
}

// notify is the waiter callback of a followed socket.
func (t *timeline) notify(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checkLocked(c)
	if c.listening {
		// A connection born on this listening socket completed its
		// handshake and waits to be accepted.
		for _, k := range t.byEP {
			if k.listener == c && !k.held {
				t.checkLocked(k)
			}
		}
	}
}

// probe is netstack's TCP probe: called after every segment a connection
// in a synchronized state processed, with a copy of its TCB. It runs with
// the endpoint's lock held.
func (t *timeline) probe(st *tcp.TCPEndpointState) {
	tp := tuple{
		local:  netip.AddrPortFrom(fromTCPIP(st.ID.LocalAddress), st.ID.LocalPort),
		remote: netip.AddrPortFrom(fromTCPIP(st.ID.RemoteAddress), st.ID.RemotePort),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.last // bulk data: the connection of the last frame
	if c == nil || !c.hasTuple || c.tuple != tp {
		c = t.byTuple[tp]
	}
	if c == nil {
		return
	}
	snd, rcv := &st.Sender, &st.Receiver
	b := &c.tcb
	b.SndUna, b.SndNxt, b.SndWnd = uint32(snd.SndUna), uint32(snd.SndNxt), uint32(snd.SndWnd)
	b.RcvNxt = uint32(rcv.RcvNxt)
	b.RcvWnd = uint32(rcv.RcvNxt.Size(rcv.RcvAcc))
	// netstack's RTO sets cwnd to 1; recovery from it lasts until the
	// window has grown back to ssthresh.
	switch {
	case snd.SndCwnd == 1 && b.Cwnd > 1:
		c.rto = true
	case snd.FastRecovery.Active, snd.SndCwnd >= snd.Ssthresh:
		c.rto = false
	}
	b.Cwnd, b.Ssthresh = snd.SndCwnd, snd.Ssthresh
	b.MSS = snd.MaxPayloadSize
	b.SRTT, b.RTO = snd.RTTState.SRTT, snd.RTO
	b.Outstanding = snd.Outstanding
	switch {
	case snd.FastRecovery.Active && len(st.SACK.ReceivedBlocks) > 0:
		b.Congestion = "sack-recovery"
	case snd.FastRecovery.Active:
		b.Congestion = "fast-recovery"
	case c.rto:
		b.Congestion = "rto-recovery"
	default:
		b.Congestion = "open"
	}
	b.Synced = true
	t.checkLocked(c)
	if t.samples && c.sndInit && seqAfter(b.SndNxt, b.ISS+1) && c.sampleChanged() {
		c.sampled = *b
		tcb := *b
		t.emit(trace.Event{Kind: trace.KindTCB, TCB: &tcb})
	}
}

// sampleChanged reports whether the TCB moved in a way a graph shows
// since the last sample: the window, the threshold, what is acknowledged,
// the congestion state.
func (c *conn) sampleChanged() bool {
	a, b := &c.sampled, &c.tcb
	return a.Cwnd != b.Cwnd || a.Ssthresh != b.Ssthresh || a.SndUna != b.SndUna ||
		a.SndWnd != b.SndWnd || a.Congestion != b.Congestion || a.State != b.State
}

// checkLocked records a change in c's state since last looked at, if any,
// with its cause.
func (t *timeline) checkLocked(c *conn) {
	if c.done {
		return
	}
	now, ok := rfcState(c.ep.EndpointState())
	if !ok || now == c.state {
		return
	}
	from := c.state
	cause, by := c.cause(from, now)
	ev := trace.State{Socket: c.id, Label: c.label, From: from, To: now, Cause: cause, By: by}
	if from == trace.StateListen && c.listener != nil {
		ev.Listener = c.listener.id
	}
	c.state = now
	c.tcb.State = now
	t.emit(trace.Event{Kind: trace.KindState, State: &ev})
	if now == trace.StateClosed {
		c.done = true
		t.live--
		if t.live == 0 {
			close(t.settled)
		}
		t.forgetLocked(c)
	}
}

// forgetLocked stops following a connection that is CLOSED and that no
// socket holds any longer.
func (t *timeline) forgetLocked(c *conn) {
	if !c.done || c.held {
		return
	}
	if t.byEP[c.ep] == c {
		delete(t.byEP, c.ep)
	}
	if c.hasTuple && t.byTuple[c.tuple] == c {
		delete(t.byTuple, c.tuple)
	}
	if t.last == c {
		t.last = nil
	}
}

// settle waits until every connection followed has reached CLOSED.
func (t *timeline) settle(ctx context.Context) error {
	t.mu.Lock()
	ch := t.settled
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callTriggers are the transitions a program's call makes (RFC 793's
// diagram: OPEN, SEND, CLOSE), and the calls that make them.
func callTrigger(from, to trace.TCPState) []trace.Op {
	switch {
	case to == trace.StateBound:
		return []trace.Op{trace.OpBind}
	case to == trace.StateListen:
		return []trace.Op{trace.OpListen}
	case to == trace.StateSynSent:
		return []trace.Op{trace.OpConnect}
	case to == trace.StateFinWait1, to == trace.StateLastAck:
		return []trace.Op{trace.OpClose, trace.OpShutdown}
	case to == trace.StateClosed:
		switch from {
		case trace.StateInitial, trace.StateBound, trace.StateListen, trace.StateSynSent:
			return []trace.Op{trace.OpClose, trace.OpShutdown, trace.OpConnect}
		}
		return []trace.Op{trace.OpClose}
	}
	return nil
}

// trigger is the segment RFC 793's diagram moves a connection from one
// state to another on: its flags and, for the ACK of our SYN or FIN, the
// acknowledgment number that makes it one; what to call it; and whether
// there is one at all.
func (c *conn) trigger(from, to trace.TCPState) (want trace.TCPFlags, ack uint32, ackSet bool, of string, ok bool) {
	switch {
	case to == trace.StateSynReceived:
		return trace.SYN, 0, false, "", true
	case from == trace.StateSynSent && to == trace.StateEstablished:
		return trace.SYN | trace.ACK, 0, false, "", true
	case to == trace.StateCloseWait, to == trace.StateClosing, from == trace.StateFinWait2 && to == trace.StateTimeWait:
		return trace.FIN, 0, false, "", true
	case from == trace.StateFinWait1 && to == trace.StateTimeWait:
		return trace.FIN | trace.ACK, c.finEnd, c.finSent, " (the ACK of our FIN with the peer's FIN)", true
	case to == trace.StateEstablished:
		return trace.ACK, c.tcb.ISS + 1, true, "", true
	case to == trace.StateFinWait2, to == trace.StateTimeWait, from == trace.StateLastAck && to == trace.StateClosed:
		return trace.ACK, c.finEnd, c.finSent, " of our FIN", true
	}
	return 0, 0, false, "", false
}

// cause says what moved c from one state to another: RFC 793's diagram
// says which call or which segment makes each transition, and the
// connection knows which calls are in flight and which segments arrived
// that caused nothing yet.
func (c *conn) cause(from, to trace.TCPState) (string, trace.CauseKind) {
	if from == trace.StateTimeWait && to == trace.StateClosed {
		return "2MSL timer: TIME-WAIT over", trace.ByTimer
	}
	if to == trace.StateClosed {
		// A reset received ends any state at once.
		if s := c.unused(trace.RST, 0, false); s != nil {
			return "rcv " + s.flags.String(), trace.BySegment
		}
	}
	for _, op := range callTrigger(from, to) {
		if slices.Contains(c.calls, op) {
			text := string(op) + "()"
			if op == trace.OpClose && c.abort {
				text = "close() with a reset (abort)"
			}
			return text, trace.ByCall
		}
	}
	if from == trace.StateListen && to == trace.StateEstablished {
		// netstack answered with a SYN cookie and kept no state until
		// the handshake's last ACK arrived.
		return "rcv ACK completing a SYN-cookie handshake", trace.BySegment
	}
	if want, ack, ackSet, of, ok := c.trigger(from, to); ok {
		if s := c.unused(want, ack, ackSet); s != nil {
			return "rcv " + s.flags.String() + of, trace.BySegment
		}
	}
	switch {
	case to == trace.StateClosed && from == trace.StateFinWait2:
		return "FIN-WAIT-2 timer", trace.ByTimer
	case to == trace.StateClosed:
		return "retransmission timer: netstack gave up", trace.ByTimer
	}
	return "netstack", trace.ByTimer
}

// unused finds, among the segments received that caused nothing yet, the
// oldest that carries want (and acknowledges ack, when ackSet), and marks
// it and those before it as used: netstack processes segments in the
// order they arrived.
func (c *conn) unused(want trace.TCPFlags, ack uint32, ackSet bool) *inSeg {
	for i := range c.in {
		s := &c.in[i]
		if s.n <= c.usedIn || !s.flags.Has(want) || ackSet && s.ack != ack {
			continue
		}
		c.usedIn = s.n
		return s
	}
	return nil
}

// rfcState names a netstack state as RFC 793 does. netstack's CONNECTING
// (connect() called, the SYN not yet sent) is the start of SYN-SENT and
// not a state of its own; its ERROR (reset, timed out) is CLOSED.
func rfcState(s tcp.EndpointState) (trace.TCPState, bool) {
	switch s {
	case tcp.StateInitial:
		return trace.StateInitial, true
	case tcp.StateBound:
		return trace.StateBound, true
	case tcp.StateListen:
		return trace.StateListen, true
	case tcp.StateConnecting:
		return "", false
	case tcp.StateSynSent:
		return trace.StateSynSent, true
	case tcp.StateSynRecv:
		return trace.StateSynReceived, true
	case tcp.StateEstablished:
		return trace.StateEstablished, true
	case tcp.StateFinWait1:
		return trace.StateFinWait1, true
	case tcp.StateFinWait2:
		return trace.StateFinWait2, true
	case tcp.StateCloseWait:
		return trace.StateCloseWait, true
	case tcp.StateClosing:
		return trace.StateClosing, true
	case tcp.StateLastAck:
		return trace.StateLastAck, true
	case tcp.StateTimeWait:
		return trace.StateTimeWait, true
	case tcp.StateClose, tcp.StateError:
		return trace.StateClosed, true
	}
	return "", false
}

// frame records one frame crossing the link, with the socket it belongs
// to and any change of state its connection made before it. head is the
// frame's beginning (enough for its headers), size its length.
func (t *timeline) frame(dir trace.Direction, head []byte, size int, link packet.LinkType, chain []string) {
	seg := packet.Decode(head, size, link)
	seg.Dir = dir
	seg.Chain = chain
	var (
		c     *conn
		ep    *tcp.Endpoint
		tp    tuple
		isTCP = seg.Proto == "tcp" && seg.Src.Addr().IsValid()
		in    inSeg
	)
	if isTCP {
		tp = tuple{local: seg.Src, remote: seg.Dst}
		if dir == trace.In {
			tp = tuple{local: seg.Dst, remote: seg.Src}
			in = inSeg{flags: seg.Flags, seq: seg.Seq, ack: seg.Ack, len: seg.Len, win: seg.Window, ws: seg.WindowScale}
		}
	}
	if t.gate == nil {
		// The common case, bulk data among it: the connection known,
		// one lock taken.
		t.mu.Lock()
		if isTCP {
			if c = t.knownLocked(tp); c == nil {
				t.mu.Unlock()
				ep = t.endpointFor(protoOf(tp.local.Addr()), tp)
				t.mu.Lock()
			}
		}
	} else if isTCP {
		c, ep = t.find(protoOf(tp.local.Addr()), tp)
	}
	if t.gate != nil {
		if seg.Proto == "udp" {
			t.mu.Lock()
			seg.Socket, seg.Label = t.udpOwnerLocked(&seg)
			t.mu.Unlock()
		}
		ev := trace.Event{Layer: trace.LayerStack, Host: t.h.name, Kind: trace.KindSegment, Segment: &seg}
		if isTCP {
			t.mu.Lock()
			if rc := t.resolveLocked(c, ep, tp); rc != nil {
				seg.Socket, seg.Label = rc.id, rc.label
				// netstack moved SND.NXT before it sent the frame: show
				// the TCB as it holds it now.
				now := rc.wireTCB
				if dir == trace.Out && !rc.listening {
					now.onSegment(&seg)
				}
				now.tcb.State = rc.state
				if s, ok := rfcState(rc.ep.EndpointState()); ok {
					now.tcb.State = s
				}
				ev.TCB = &now.tcb
			}
			t.mu.Unlock()
		}
		t.beforeFrame(ev)
		t.mu.Lock()
	}
	defer t.mu.Unlock()
	if isTCP {
		c = t.resolveLocked(c, ep, tp)
	}
	if c != nil {
		t.checkLocked(c)
		seg.Socket, seg.Label = c.id, c.label
		if !c.listening {
			c.onSegment(&seg)
		}
	}
	if seg.Proto == "udp" && seg.Socket == 0 {
		// Set before the gate too (see udpOwner); set again here in case
		// the socket closed in between.
		seg.Socket, seg.Label = t.udpOwnerLocked(&seg)
	}
	t.emit(trace.Event{Kind: trace.KindSegment, Segment: &seg})
	if dir == trace.In && c == nil && t.noSocket(&seg, isTCP, ep) {
		// netstack drops it (and answers a TCP segment with a reset):
		// no socket is there to take it, as netstat's "no socket"
		// counters say.
		drop := seg
		t.emit(trace.Event{Kind: trace.KindDrop, Segment: &drop, Drop: &trace.Drop{Reason: "no socket"}})
	}
	if c == nil || dir != trace.In {
		return
	}
	if !c.listening {
		c.addIn(in)
		if in.flags.Has(trace.ACK) && !t.probing {
			switch c.state {
			case trace.StateFinWait1, trace.StateClosing, trace.StateLastAck:
				t.watchLocked(c)
			}
		}
		return
	}
	if seg.Flags&(trace.SYN|trace.ACK) == trace.SYN {
		if len(t.synFor) > 4096 {
			clear(t.synFor) // a SYN flood: forget the oldest cause, not the run
		}
		t.synFor[tp] = synRecord{listener: c, syn: in}
	}
}

// noSocket reports whether a segment or datagram received for one of the
// host's own addresses has no socket to go to. ep is what frame found for
// a TCP segment. Called with mu held.
func (t *timeline) noSocket(seg *trace.Segment, isTCP bool, ep *tcp.Endpoint) bool {
	switch {
	case isTCP:
		return ep == nil && t.isLocal(seg.Dst.Addr())
	case seg.Proto == "udp" && seg.Socket == 0 && seg.Dst.IsValid():
		if !t.isLocal(seg.Dst.Addr()) {
			return false // broadcast and multicast: not addressed to us alone
		}
		id := gstack.TransportEndpointID{
			LocalPort: seg.Dst.Port(), LocalAddress: toTCPIP(seg.Dst.Addr()),
			RemotePort: seg.Src.Port(), RemoteAddress: toTCPIP(seg.Src.Addr()),
		}
		return t.h.s.FindTransportEndpoint(protoOf(seg.Dst.Addr()), udp.ProtocolNumber, id, t.h.nic) == nil
	}
	return false
}

// isLocal reports whether a is one of the host's addresses (as netstack
// has them: not a broadcast or multicast address).
func (t *timeline) isLocal(a netip.Addr) bool {
	return a.IsValid() && t.h.s.CheckLocalAddress(t.h.nic, protoOf(a), toTCPIP(a)) != 0
}

// dropped records that the link dropped a frame it received (see
// FrameTap), which frame recorded a moment before: the segment, as
// received, and why.
func (t *timeline) dropped(head []byte, size int, link packet.LinkType, reason string) {
	seg := packet.Decode(head, size, link)
	seg.Dir = trace.In
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit(trace.Event{Kind: trace.KindDrop, Segment: &seg, Drop: &trace.Drop{Reason: reason}})
}

// watchLocked looks at c's state until it changes, for a few
// milliseconds at most: c received an ACK in a state that an ACK of its
// FIN ends (FIN-WAIT-1, CLOSING, LAST-ACK), which netstack will process
// in a moment on its own goroutine, and which nothing else would show
// until the connection's next frame or call: netstack sends nothing for
// it and wakes no one. (A host with netstack's TCP probe sees it there.)
// The change is recorded within a tick of netstack making it.
func (t *timeline) watchLocked(c *conn) {
	select {
	case <-t.unwatch:
		return // the host is closing
	default:
	}
	if c.watched {
		return
	}
	c.watched = true
	from := c.state
	t.watchers.Add(1)
	go func() {
		defer t.watchers.Done()
		tick := time.NewTimer(watchTick)
		defer tick.Stop()
		for i := 0; i < watchTicks; i++ {
			if now, ok := rfcState(c.ep.EndpointState()); ok && now != from {
				break
			}
			if i > 0 {
				tick.Reset(watchTick)
			}
			select {
			case <-tick.C:
			case <-t.unwatch:
				return
			}
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		c.watched = false
		t.checkLocked(c)
	}()
}

// A watcher looks every watchTick, watchTicks times: netstack processes a
// segment within microseconds of its arrival unless the machine is busy.
const (
	watchTick  = 50 * time.Microsecond
	watchTicks = 200
)

// stopWatching ends the watchers: the host is closing.
func (t *timeline) stopWatching() {
	t.mu.Lock()
	close(t.unwatch)
	t.mu.Unlock()
	t.watchers.Wait()
}

// udpBound notes that UDP socket id has the local address local (its
// port, at least): the datagrams to and from it are the socket's.
func (t *timeline) udpBound(id int, label trace.Conn, local netip.AddrPort) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.udpUnboundLocked(id)
	p := local.Port()
	t.udp[p] = append(t.udp[p], udpBinding{id: id, label: label, local: local})
}

// udpUnbound forgets UDP socket id's port: it was closed.
func (t *timeline) udpUnbound(id int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.udpUnboundLocked(id)
}

func (t *timeline) udpUnboundLocked(id int) {
	for p, bs := range t.udp {
		bs = slices.DeleteFunc(bs, func(b udpBinding) bool { return b.id == id })
		if len(bs) == 0 {
			delete(t.udp, p)
		} else {
			t.udp[p] = bs
		}
	}
}

// udpOwnerLocked finds the socket a datagram belongs to on this host:
// the one bound to its local port (the source port of a datagram sent,
// the destination port of one received) and to its local address, or to
// no address in particular. 0 when none has it.
func (t *timeline) udpOwnerLocked(seg *trace.Segment) (int, trace.Conn) {
	local := seg.Src
	if seg.Dir == trace.In {
		local = seg.Dst
	}
	var id int
	var label trace.Conn
	for _, b := range t.udp[local.Port()] {
		a := b.local.Addr()
		switch {
		case a == local.Addr():
			return b.id, b.label
		case !a.IsValid() || a.IsUnspecified():
			id, label = b.id, b.label
		}
	}
	return id, label
}

// onSegment follows the connection's TCB from the wire between netstack's
// own reports (the probe): what was sent moves SND.NXT, RCV.NXT and
// RCV.WND; what was acknowledged moves SND.UNA and SND.WND. It marks a
// segment that resends sequence space (s.Retransmit): sent, below the
// highest sequence number sent before; received, below the highest
// received before.
func (c *wireTCB) onSegment(s *trace.Segment) {
	b := &c.tcb
	syn, fin := s.Flags.Has(trace.SYN), s.Flags.Has(trace.FIN)
	scaled := c.ws[0] >= 0 && c.ws[1] >= 0
	// What the segment occupies of sequence space (RFC 793 section 3.3:
	// its data, and a SYN or FIN counts as one).
	space := uint32(s.Len)
	if syn {
		space++
	}
	if fin {
		space++
	}
	if space > 0 {
		top, set := &c.sndMax, &c.sndMaxSet
		if s.Dir == trace.In {
			top, set = &c.rcvMax, &c.rcvMaxSet
		}
		s.Retransmit = *set && seqAfter(*top, s.Seq)
		if end := s.Seq + space; !*set || seqAfter(end, *top) {
			*top, *set = end, true
		}
	}
	if s.Dir == trace.Out {
		if syn {
			b.ISS = s.Seq
			c.ws[0] = s.WindowScale
			if !c.sndInit {
				b.SndUna = s.Seq
			}
		}
		end := s.Seq + uint32(s.Len)
		if syn {
			end++
		}
		if fin {
			end++
			c.finSent, c.finEnd = true, end
		}
		if !c.sndInit || seqAfter(end, b.SndNxt) {
			b.SndNxt, c.sndInit = end, true
		}
		if s.Flags.Has(trace.ACK) && (!c.rcvInit || seqAfter(s.Ack, b.RcvNxt)) {
			b.RcvNxt, c.rcvInit = s.Ack, true
		}
		b.RcvWnd = uint32(s.Window)
		if !syn && scaled {
			b.RcvWnd <<= c.ws[0]
		}
		return
	}
	if syn {
		b.IRS = s.Seq
		c.ws[1] = s.WindowScale
		if !c.rcvInit {
			b.RcvNxt, c.rcvInit = s.Seq+1, true
		}
	}
	if s.Flags.Has(trace.ACK) && seqAfter(s.Ack, b.SndUna) {
		b.SndUna = s.Ack
	}
	b.SndWnd = uint32(s.Window)
	if !syn && scaled {
		b.SndWnd <<= c.ws[1]
	}
}

// seqAfter reports whether sequence number a comes after b (RFC 793's
// arithmetic modulo 2^32).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// callBegin records a call's beginning on c (nil before socket() has made
// an endpoint) and any change of state since c was last looked at.
func (t *timeline) callBegin(c *conn, call trace.Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c != nil {
		t.checkLocked(c)
		c.calls = append(c.calls, call.Op)
	}
	t.emit(trace.Event{Kind: trace.KindCall, Phase: trace.Begin, Call: &call})
}

// callEnd records a call's end, after the change of state it made, if
// any. accepted is the connection an accept returned.
func (t *timeline) callEnd(c *conn, call trace.Call, accepted *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c != nil {
		t.checkLocked(c)
		if i := slices.Index(c.calls, call.Op); i >= 0 {
			c.calls = slices.Delete(c.calls, i, i+1)
		}
	}
	if accepted != nil {
		t.checkLocked(accepted)
	}
	t.emit(trace.Event{Kind: trace.KindCall, Phase: trace.End, Call: &call})
	if c == nil {
		return
	}
	switch call.Op {
	case trace.OpListen:
		c.listening = call.Err == ""
	case trace.OpClose:
		c.held = false
		t.forgetLocked(c)
	}
}

// aborting marks c as being closed with a reset, for the cause of its
// move to CLOSED.
func (t *timeline) aborting(c *conn) {
	t.mu.Lock()
	c.abort = true
	t.mu.Unlock()
}

// tcbOf returns c's TCB as last seen.
func (t *timeline) tcbOf(c *conn) trace.TCB {
	t.mu.Lock()
	defer t.mu.Unlock()
	return c.tcb
}
