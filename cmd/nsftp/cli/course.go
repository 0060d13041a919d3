package cli

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// course is a Sink that keeps what a networking course asks about a run's
// TCP, beyond netstack's counters: each sender's largest congestion window
// and last smoothed RTT (from its TCB samples), and each data
// connection's goodput (new bytes delivered over the time they took).
type course struct {
	senders map[courseKey]*courseSender
	order   []courseKey
	conns   map[[2]netip.AddrPort]*courseConn
	corder  [][2]netip.AddrPort
	traced  map[netip.Addr]bool
}

type courseKey struct {
	host   string
	socket int
}

type courseSender struct {
	maxCwnd, mss int
	srtt         time.Duration
}

type courseConn struct {
	label       trace.Conn
	bytes       int64
	first, last time.Time
	top         uint32 // the highest sequence number delivered
	started     bool
	resent      int // data segments the sender marked as retransmissions
}

func newCourse() *course {
	return &course{senders: map[courseKey]*courseSender{}, conns: map[[2]netip.AddrPort]*courseConn{}, traced: map[netip.Addr]bool{}}
}

// Event implements trace.Sink.
func (c *course) Event(e *trace.Event) {
	switch {
	case e.HostInfo != nil:
		for _, p := range e.HostInfo.Addrs {
			c.traced[p.Addr()] = true
		}
	case e.TCB != nil:
		k := courseKey{e.Host, e.TCB.Socket}
		s := c.senders[k]
		// netstack samples senders only; the kernel samples every
		// connection (TCP_INFO after each call): one is a sender once
		// it has had data acknowledged (beyond its SYN).
		if s == nil && e.TCB.Source != "" && e.TCB.BytesAcked <= 1 {
			return
		}
		if s == nil {
			s = &courseSender{}
			c.senders[k] = s
			c.order = append(c.order, k)
		}
		s.maxCwnd = max(s.maxCwnd, e.TCB.Cwnd)
		if e.TCB.MSS > 0 {
			s.mss = e.TCB.MSS
		}
		if e.TCB.SRTT > 0 {
			s.srtt = e.TCB.SRTT
		}
	case e.Segment != nil && e.Segment.Proto == "tcp" && e.Segment.Len > 0 && e.Segment.Label != trace.Control:
		seg := e.Segment
		k := [2]netip.AddrPort{seg.Src, seg.Dst}
		cc := c.conns[k]
		if cc == nil {
			cc = &courseConn{label: seg.Label}
			c.conns[k] = cc
			c.corder = append(c.corder, k)
		}
		// Retransmissions as the sender marked them: each as it left a
		// traced sender, or as it arrived from an untraced one.
		if seg.Retransmit && (seg.Dir == trace.Out || !c.traced[seg.Src.Addr()]) {
			cc.resent++
		}
		// Goodput is what the receiver got: count data as it arrived, at
		// the receiving host, or as it left a traced sender towards an
		// untraced receiver.
		if seg.Dir == trace.Out && c.traced[seg.Dst.Addr()] || seg.Dir == trace.In && !c.traced[seg.Dst.Addr()] {
			return
		}
		end := seg.Seq + uint32(seg.Len)
		if !cc.started {
			cc.first, cc.top, cc.started = e.Time, seg.Seq, true
		}
		if n := int32(end - cc.top); n > 0 {
			cc.bytes += int64(n)
			cc.top = end
		}
		cc.last = e.Time
	}
}

// Flush implements trace.Sink.
func (c *course) Flush() error { return nil }

// print writes the course's figures for the hosts: the counters that tell
// of loss and recovery, then each sender's window and RTT and each data
// connection's goodput.
func (c *course) print(w io.Writer, hosts []*stack.Host, before []stack.Stats) {
	fmt.Fprintln(w, "TCP under pressure:")
	for i, h := range hosts {
		d := h.Stats().Sub(before[i])
		fmt.Fprintf(w, "  %s: %d retransmissions, %d fast retransmits, %d timeouts, %d SACK recoveries, %d spurious recoveries\n",
			h.Name(), d["TCP.Retransmits"], d["TCP.FastRetransmit"], d["TCP.Timeouts"], d["TCP.SACKRecovery"],
			d["TCP.SpuriousRecovery"]+d["TCP.SpuriousRTORecovery"])
	}
	for _, k := range c.order {
		s := c.senders[k]
		window := fmt.Sprintf("%d segments", s.maxCwnd)
		if s.mss > 0 {
			window += " (" + trace.Bytes(int64(s.maxCwnd*s.mss)) + ")"
		}
		fmt.Fprintf(w, "  %s fd%d sent with a congestion window of at most %s; final SRTT %v\n",
			k.host, k.socket, window, s.srtt.Round(10*time.Microsecond))
	}
	for _, k := range c.corder {
		cc := c.conns[k]
		d := cc.last.Sub(cc.first)
		if d <= 0 {
			continue
		}
		fmt.Fprintf(w, "  %s connection %s > %s: goodput %s (%s in %s), %d data segments retransmitted\n", cc.label, k[0], k[1],
			trace.BitRate(float64(cc.bytes)*8/d.Seconds()), trace.Bytes(cc.bytes), trace.Duration(d), cc.resent)
	}
}
