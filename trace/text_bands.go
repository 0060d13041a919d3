package trace

import (
	"fmt"
	"net/netip"
	"time"
)

// bandMin is how many data segments in a row, on one connection and in
// one direction, are shown as one line.
const bandMin = 4

// bandSpan is the longest a band's line covers: a longer transfer gets a
// line a second, so a live trace shows it moving.
const bandSpan = time.Second

// bulk reports whether e is a data segment that can open a band: data on
// a connection that is not the control connection (whose segments carry
// the commands and replies), with no flag that opens, closes or resets.
func (t *Text) bulk(e *Event) bool {
	s := e.Segment
	return s != nil && s.Proto == "tcp" && s.Len > 0 && s.Label != Control &&
		s.Flags&(SYN|FIN|RST) == 0
}

// textBand is a run of data segments on one connection in one direction,
// with the bare ACKs coming back and the send and recv calls that moved
// the data.
type textBand struct {
	conn    connKey
	from    netip.AddrPort
	host    string
	socket  int
	label   Conn
	start   time.Time
	first   time.Time // first data segment
	last    time.Time
	segs    int
	retrans int
	acks    int
	bytes   int64
	calls   map[Op]int
	// members are the band's events until it is long enough to be one
	// line (collapsed).
	members   []Event
	collapsed bool
	// aside are frames that have nothing to do with the band (ARP, NDP,
	// an ACK of another connection) that came while it ran: shown after
	// its line rather than cutting it in two.
	aside []Event
	drops int // frames of the band the wire lost
}

func newTextBand(t *Text, e *Event) *textBand {
	s := e.Segment
	b := &textBand{conn: connOf(s), from: s.Src, host: e.Host, socket: s.Socket, label: s.Label,
		start: e.Time, calls: map[Op]int{}}
	b.add(t, e)
	return b
}

func (b *textBand) add(t *Text, e *Event) {
	s := e.Segment
	if b.segs == 0 {
		b.first = e.Time
	}
	b.segs++
	b.bytes += int64(s.Len)
	if t.retransmission(s) {
		b.retrans++
	}
	b.last = e.Time
	b.keep(e)
}

// keep holds e until the band is long enough to be one line, in case it
// is not.
func (b *textBand) keep(e *Event) {
	switch {
	case b.collapsed:
	case b.segs >= bandMin:
		b.collapsed, b.members = true, nil
	default:
		b.members = append(b.members, *e)
	}
}

// absorb takes e into the band if it belongs there.
func (b *textBand) absorb(t *Text, e *Event) bool {
	switch {
	case e.Segment != nil:
		s := e.Segment
		if b.collapsed && (s.Proto != "tcp" || connOf(s) != b.conn && s.Len == 0 && s.Flags&(SYN|FIN|RST) == 0) {
			b.aside = append(b.aside, *e)
			return true
		}
		if s.Proto != "tcp" || connOf(s) != b.conn || s.Flags&(SYN|FIN|RST) != 0 {
			return false
		}
		if s.Src == b.from && s.Len > 0 {
			if b.collapsed && e.Time.Sub(b.start) >= bandSpan {
				// A long transfer: a line for the last second, and on.
				t.showBand(b)
				for i := range b.aside {
					t.show(&b.aside[i])
				}
				*b = textBand{conn: b.conn, from: b.from, host: b.host, socket: b.socket, label: b.label,
					start: e.Time, calls: map[Op]int{}, collapsed: true}
			}
			b.add(t, e)
			return true
		}
		if s.Src != b.from && s.Len == 0 {
			b.acks++
			b.keep(e)
			return true
		}
		return false
	case e.Kind == KindCall && e.Call != nil:
		c := e.Call
		if (c.Op != OpSend && c.Op != OpRecv) || c.Err != "" {
			return false
		}
		if t.connOfSocket(sockKey{e.Host, c.Socket}) != b.conn {
			return false
		}
		if e.Phase == End {
			b.calls[c.Op]++
		}
		b.keep(e)
		return true
	}
	return false
}

// endBand shows the band under way: as one line when it grew long enough,
// else event by event.
func (t *Text) endBand() {
	b := t.band
	if b == nil {
		return
	}
	t.band = nil
	if b.collapsed {
		t.showBand(b)
		for i := range b.aside {
			t.show(&b.aside[i])
		}
		return
	}
	for i := range b.members {
		t.show(&b.members[i])
	}
}

func (t *Text) showBand(b *textBand) {
	t.flushHeld()
	to := b.conn.a
	if to == b.from {
		to = b.conn.b
	}
	body := fmt.Sprintf("  ═ %s segments %s -> %s, %s in %s, ", thousands(b.segs), t.hostName(b.from), t.hostName(to),
		Bytes(b.bytes), Duration(b.last.Sub(b.first)))
	if b.retrans > 0 {
		body += t.paint("error", fmt.Sprintf("%d retransmitted", b.retrans))
	} else {
		body += "0 retransmitted"
	}
	if b.drops > 0 {
		body += t.paint("error", fmt.Sprintf(", %d lost on the wire", b.drops))
	}
	tail := fmt.Sprintf("%s ACKs back", thousands(b.acks))
	if n := b.calls[OpSend]; n > 0 {
		tail += fmt.Sprintf("; send() ×%s", thousands(n))
	}
	if n := b.calls[OpRecv]; n > 0 {
		tail += fmt.Sprintf("; recv() ×%s", thousands(n))
	}
	t.line(t.fit(t.head(b.start, b.host, b.socket, b.label), body, t.paint("dim", tail)))
}
