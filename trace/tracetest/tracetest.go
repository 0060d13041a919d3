// Package tracetest checks recorded timelines against what a timeline
// promises: RFC 793's state diagram for every socket, and causal order.
// Tests of the stack, of the command and of recordings share it.
package tracetest

import (
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// socket names a socket: its host and number.
type socket struct {
	host string
	fd   int
}

// RFC793 checks each socket's changes of state against RFC 793's state
// diagram (page 23): every change is a transition the diagram allows,
// takes the socket from the state the last one left it in, and names its
// cause; every socket ends CLOSED, or, on a Linux host (whose TIME-WAIT
// lasts 60s, longer than a run waits), in TIME-WAIT. It returns the
// states seen.
func RFC793(t testing.TB, evs []trace.Event) map[trace.TCPState]bool {
	t.Helper()
	last := map[socket]trace.TCPState{}
	var order []socket
	seen := map[trace.TCPState]bool{}
	linux := map[string]bool{}
	for _, e := range evs {
		if e.Kind == trace.KindHost && e.HostInfo != nil && e.HostInfo.Kernel != "" {
			linux[e.Host] = true
		}
		if e.Kind != trace.KindState || e.State == nil {
			continue
		}
		s := e.State
		k := socket{e.Host, s.Socket}
		prev, ok := last[k]
		switch {
		case ok && prev != s.From:
			t.Errorf("%s fd%d: %s -> %s follows %s", e.Host, s.Socket, s.From, s.To, prev)
		case !ok && s.From != trace.StateInitial && s.From != trace.StateListen && s.From != trace.StateClosed:
			t.Errorf("%s fd%d begins in %s", e.Host, s.Socket, s.From)
		}
		if !ok {
			order = append(order, k)
		}
		if !trace.Allowed(s.From, s.To) {
			t.Errorf("%s fd%d: %s -> %s is not in RFC 793's diagram (cause %q)", e.Host, s.Socket, s.From, s.To, s.Cause)
		}
		if s.Cause == "" || s.Cause == "netstack" {
			t.Errorf("%s fd%d: %s -> %s has no cause", e.Host, s.Socket, s.From, s.To)
		}
		last[k] = s.To
		seen[s.To] = true
	}
	for _, k := range order {
		if s := last[k]; s != trace.StateClosed && !(s == trace.StateTimeWait && linux[k.host]) {
			t.Errorf("%s fd%d ends in %s, not CLOSED", k.host, k.fd, s)
		}
	}
	return seen
}

// Causal checks a timeline's order: events are numbered 1, 2, ... and
// times never go back; every call ends after it began; every data
// segment a socket sends follows the beginning of a send on it, every
// datagram the beginning of a sendto; no recv returns more bytes than had
// arrived on the wire for its socket before it ended, and no recvfrom
// returns a datagram that had not arrived (on a host whose frames were
// recorded at all: the kernel's are not without privilege).
func Causal(t testing.TB, evs []trace.Event) {
	t.Helper()
	framed := map[string]bool{}
	for _, e := range evs {
		if e.Kind == trace.KindSegment {
			framed[e.Host] = true
		}
	}
	var prev time.Time
	sendBegun := map[socket]bool{}
	received := map[socket]int{}
	sendtoBegun := map[socket]bool{}
	datagrams := map[socket]int{}
	open := map[socket]map[trace.Op]bool{}
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i+1, e.Seq)
		}
		if e.Time.Before(prev) {
			t.Errorf("event %d goes back in time: %v after %v", e.Seq, e.Time, prev)
		}
		prev = e.Time
		switch {
		case e.Kind == trace.KindCall && e.Call != nil:
			k := socket{e.Host, e.Call.Socket}
			if open[k] == nil {
				open[k] = map[trace.Op]bool{}
			}
			if e.Phase == trace.Begin {
				open[k][e.Call.Op] = true
				switch e.Call.Op {
				case trace.OpSend:
					sendBegun[k] = true
				case trace.OpSendto:
					sendtoBegun[k] = true
				}
				continue
			}
			if !open[k][e.Call.Op] {
				t.Errorf("event %d: %s fd%d %s ends without beginning", e.Seq, e.Host, e.Call.Socket, e.Call.Op)
			}
			delete(open[k], e.Call.Op)
			if e.Call.Op == trace.OpRecv && e.Call.Bytes > 0 && framed[e.Host] {
				if received[k] < e.Call.Bytes {
					t.Errorf("event %d: %s fd%d recv() = %d bytes, but only %d arrived before it", e.Seq, e.Host, e.Call.Socket, e.Call.Bytes, received[k])
				}
				received[k] -= e.Call.Bytes
			}
			if e.Call.Op == trace.OpRecvfrom && e.Call.Err == "" && framed[e.Host] {
				if datagrams[k] == 0 {
					t.Errorf("event %d: %s fd%d recvfrom() returned a datagram before one arrived", e.Seq, e.Host, e.Call.Socket)
				}
				datagrams[k]--
			}
		case e.Kind == trace.KindSegment && e.Segment != nil && e.Segment.Proto == "udp" && e.Segment.Socket != 0:
			s := e.Segment
			k := socket{e.Host, s.Socket}
			if s.Dir == trace.Out && !sendtoBegun[k] {
				t.Errorf("event %d: %s fd%d sends a datagram before any sendto() began", e.Seq, e.Host, s.Socket)
			}
			if s.Dir == trace.In {
				datagrams[k]++
			}
		case e.Kind == trace.KindSegment && e.Segment != nil && e.Segment.Proto == "tcp" && e.Segment.Len > 0:
			s := e.Segment
			k := socket{e.Host, s.Socket}
			if s.Socket == 0 {
				t.Errorf("event %d: a data segment with no socket: %+v", e.Seq, s)
			}
			if s.Dir == trace.Out && !sendBegun[k] {
				t.Errorf("event %d: %s fd%d sends data before any send() began", e.Seq, e.Host, s.Socket)
			}
			if s.Dir == trace.In {
				received[k] += s.Len
			}
		}
	}
}

// Lifecycle is the states every FTP download on two traced hosts shows
// between its connections: each connection is opened by one side and
// closed first by the other.
var Lifecycle = []trace.TCPState{
	trace.StateSynSent, trace.StateSynReceived, trace.StateEstablished,
	trace.StateFinWait1, trace.StateFinWait2, trace.StateCloseWait,
	trace.StateLastAck, trace.StateTimeWait, trace.StateClosed,
}
