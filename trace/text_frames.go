package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// dropLine shows a frame the wire lost, or a host dropped on receipt:
// the segment, and why.
func (t *Text) dropLine(e *Event) {
	s, d := e.Segment, e.Drop
	if s == nil || d == nil {
		return
	}
	what := s.Proto
	if s.Proto == "tcp" {
		what = t.SegmentText(s)
	} else if s.Info != "" {
		what += " " + s.Info
	}
	if e.Layer == LayerStack {
		// A host dropped a frame it received: the frame is above,
		// with the socket it would have gone to, if any.
		body := "  " + t.paint("error", "✗ dropped ("+d.Reason+"):") + " " + what
		t.line(t.fit(t.head(e.Time, e.Host, s.Socket, s.Label), body, t.paint("dim", s.Addrs())))
		return
	}
	body := "  " + t.paint("error", "✗ lost on the wire ("+d.Reason+"):") + " " + what
	t.line(t.fit(t.head(e.Time, "wire", 0, s.Label), body, t.paint("dim", s.Addrs())))
}

func (t *Text) segmentLine(e *Event) {
	s := e.Segment
	arrow := ">"
	if s.Dir == In {
		arrow = "<"
	}
	arrow = t.paint("dim", arrow)
	head := t.head(e.Time, e.Host, s.Socket, s.Label)
	if s.Proto == "udp" {
		// A datagram: its addresses say as much as its contents (a
		// DHCP client's 0.0.0.0 to the broadcast address).
		body := fmt.Sprintf("  %s udp len=%d", arrow, s.Len)
		if s.Info != "" {
			body += "  " + Clean(s.Info)
		}
		tail := t.paint("dim", s.Addrs())
		if t.opt.Width > 0 && headWidth+visibleLen(body) > t.opt.Width {
			// A DHCP answer says more than a line holds: its words wrap,
			// the addresses go below.
			t.line(t.wrap(head+body, headWidth+4))
			t.line(strings.Repeat(" ", headWidth+4) + tail)
		} else {
			t.line(t.fit(head, body, tail))
		}
		t.chainLine(s)
		return
	}
	if s.Proto != "tcp" {
		body := fmt.Sprintf("  %s %s", arrow, s.Proto)
		if s.Info != "" {
			body += " " + Clean(s.Info)
		}
		t.line(head + body)
		t.chainLine(s)
		return
	}
	body := "  " + arrow + " " + t.SegmentText(s)
	if t.retransmission(s) {
		body += " " + t.paint("error", "(retransmission)")
	}
	tail := fmt.Sprintf("%s > %s", s.Src, s.Dst)
	if s.Options != "" {
		tail = "<" + s.Options + ">  " + tail
	}
	switch {
	case t.opt.Width > 0 && !s.Flags.Has(SYN):
		// Narrow: the socket's column says which connection this is.
		t.line(head + body)
	default:
		t.line(t.fit(head, body, t.paint("dim", tail)))
	}
	t.chainLine(s)
}

// chainLine shows, with Explain, the netstack functions that made an
// outgoing frame.
func (t *Text) chainLine(s *Segment) {
	if !t.opt.Explain || s.Dir != Out || len(s.Chain) == 0 {
		return
	}
	indent := strings.Repeat(" ", headWidth+4)
	chain := strings.Join(s.Chain, " -> ")
	if chain == t.lastChain {
		t.line(indent + t.paint("dim", "(made by the same netstack calls as above)"))
		return
	}
	t.lastChain = chain
	t.line(t.wrapChain(indent+t.paint("dim", "made by: "), s.Chain, len(indent)+len("made by: ")))
}

// wrapChain joins the functions of a chain with arrows after prefix,
// breaking it after an arrow where the width would be passed; continuation
// lines are indented by indent.
func (t *Text) wrapChain(prefix string, chain []string, indent int) string {
	var b strings.Builder
	b.WriteString(prefix)
	col := visibleLen(prefix)
	for i, name := range chain {
		if i > 0 {
			// Room for this one, and for the arrow after it if more come.
			need := col + 4 + len(name)
			if i < len(chain)-1 {
				need += 3
			}
			if t.opt.Width > 0 && need > t.opt.Width && col > indent {
				b.WriteString(" ->\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteString(" -> ")
				col += 4
			}
		}
		b.WriteString(name)
		col += len(name)
	}
	return b.String()
}

// SegmentText describes a TCP segment as tcpdump does: flags, sequence and
// acknowledgment numbers relative to each direction's first (once its SYN
// was seen), the window in bytes (scaled, RFC 7323, once both SYNs agreed
// on it) and the length.
func (t *Text) SegmentText(s *Segment) string {
	seq, ack := s.Seq, s.Ack
	if isn, ok := t.isn[dirKey{s.Src, s.Dst}]; ok {
		seq -= isn
	}
	if isn, ok := t.isn[dirKey{s.Dst, s.Src}]; ok && s.Flags.Has(ACK) {
		ack -= isn
	}
	b := fmt.Sprintf("%-8s seq=%d", s.Flags, seq)
	if s.Flags.Has(ACK) {
		b += " ack=" + strconv.FormatUint(uint64(ack), 10)
	}
	win := int(s.Window)
	if !s.Flags.Has(SYN) {
		mine, ok1 := t.wscale[dirKey{s.Src, s.Dst}]
		theirs, ok2 := t.wscale[dirKey{s.Dst, s.Src}]
		if ok1 && ok2 && mine >= 0 && theirs >= 0 {
			win <<= mine
		}
	}
	b += fmt.Sprintf(" win=%d len=%d", win, s.Len)
	return b
}

func (t *Text) hostName(a netip.AddrPort) string {
	if h, ok := t.hostOf[a.Addr()]; ok {
		return h
	}
	return a.Addr().String()
}
