package lesson

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	"github.com/nsftp/nsftp/trace"
)

// startBand opens a band with its first data segment.
func (b *Builder) startBand(e *trace.Event, at int64) {
	s := e.Segment
	k := connOf(s)
	c := &openBand{id: -1, key: k, conn: b.connIx[k], from: s.Src, side: b.senderSide(e),
		host: -1, fd: s.Socket, label: labelCode[s.Label], start: e.Time, firstRow: len(b.rows)}
	if e.Host != "" {
		c.host = b.host(e.Host, "")
	}
	b.cur = c
	b.addData(e, at)
}

// absorb takes e into the band under way if it belongs there: a data
// segment of its connection and direction, a bare ACK coming back, a
// frame of it the wire lost, a send or recv on its sockets.
func (b *Builder) absorb(e *trace.Event, at int64) bool {
	c := b.cur
	s := e.Segment
	switch {
	case e.Kind == trace.KindDrop && s != nil:
		if s.Proto != "tcp" || connOf(s) != c.key {
			return false
		}
		c.drops++
		r, _ := b.plainRow(e, at)
		b.member(e, at, r)
		return true
	case e.Kind == trace.KindSegment && s != nil:
		if s.Proto != "tcp" || connOf(s) != c.key || s.Flags&(trace.SYN|trace.FIN|trace.RST) != 0 {
			return false
		}
		if s.Src == c.from && s.Len > 0 {
			if c.collapsed && e.Time.Sub(c.start) >= bandSpan {
				// A long transfer: a band for the last second, and on.
				b.endBand()
				b.startBand(e, at)
				return true
			}
			b.addData(e, at)
			return true
		}
		if s.Src != c.from && s.Len == 0 {
			c.acks++
			b.member(e, at, b.segmentRow(e, b.baseRow(e, at)))
			return true
		}
		return false
	case e.Kind == trace.KindCall && e.Call != nil:
		cl := e.Call
		if (cl.Op != trace.OpSend && cl.Op != trace.OpRecv) || cl.Err != "" || e.Host == "" {
			return false
		}
		h := b.host(e.Host, "")
		if b.sockConn[sockKey{h, cl.Socket}]-1 != c.conn {
			return false
		}
		var r row
		if e.Phase == trace.End {
			i := 0
			if cl.Op == trace.OpRecv {
				i = 1
			}
			c.calls[b.hosts[h].Side][i]++
			delete(b.open, callKey{h, cl.Socket, cl.Op})
			r = b.resultRow(e, -1, at)
		} else {
			r = b.baseRow(e, at)
			r.kind, r.fd, r.label = rowCall, cl.Socket, labelCode[cl.Label]
			r.flags |= flagSplit
			b.open[callKey{h, cl.Socket, cl.Op}] = true
			r.text = trace.BSDCall(cl, false)
			r.x = b.ladder(h, laneOf(cl.Label), shapeCall)
		}
		b.member(e, at, r)
		return true
	}
	return false
}

// addData takes a data segment into the band.
func (b *Builder) addData(e *trace.Event, at int64) {
	c := b.cur
	s := e.Segment
	if c.segs == 0 {
		c.first = e.Time
	}
	r := b.segmentRow(e, b.baseRow(e, at))
	c.segs++
	c.bytes += int64(s.Len)
	if r.flags&flagRetrans != 0 {
		c.retrans++
	}
	c.last = e.Time
	b.member(e, at, r)
	if !c.collapsed && c.segs >= bandMin {
		b.collapse()
	}
}

// member adds a band's event: a row when every event is kept, held back
// while the band may yet be too short, counted only once it is a band
// whose events the page leaves out.
func (b *Builder) member(e *trace.Event, at int64, r row) {
	c := b.cur
	c.lastAt = at
	if !b.opt.Bands {
		r.line = b.keep(e)
		if r.line2 >= 0 || r.kind == rowResult {
			r.line2 = r.line
		}
		if c.id >= 0 {
			r.band = c.id
			r.flags |= flagBandEvent
		}
		if e.Segment != nil {
			b.appendFrame(r, e.Segment)
		} else {
			b.append(r)
		}
		b.stable = c.firstRow
		if c.id >= 0 {
			b.updateBand(c)
		}
		return
	}
	if c.collapsed {
		return
	}
	c.held = append(c.held, heldRow{r: r, line: b.encode(e)})
}

// collapse makes the band under way a band: it is long enough.
func (b *Builder) collapse() {
	c := b.cur
	c.collapsed = true
	c.id = len(b.bands)
	b.bands = append(b.bands, band{first: -1, last: -1, row: -1})
	if !b.opt.Bands {
		for i := c.firstRow; i < len(b.rows); i++ {
			b.rows[i].band = c.id
			b.rows[i].flags |= flagBandEvent
		}
		b.bands[c.id].first = c.firstRow
		b.updateBand(c)
		return
	}
	// The band's own row stands for its events; its TCB samples wait for
	// the band's end, the last of each socket's kept.
	held := c.held
	c.held = nil
	for _, h := range held {
		if h.tcb != nil {
			if c.lastTCB == nil {
				c.lastTCB = map[sockKey]heldRow{}
			}
			c.lastTCB[sockKey{h.tcb.host, h.tcb.fd}] = h
		}
	}
	r := row{kind: rowBand, t: b.micros(c.start), host: c.host, fd: c.fd, label: c.label,
		line: -1, line2: -1, band: c.id, conn: c.conn, recv: -1, x: c.side | laneOf(labelOf(c.label))<<2 | shapeBand<<4}
	b.bands[c.id].row = len(b.rows)
	b.append(r)
	b.updateBand(c)
}

func labelOf(code int) trace.Conn {
	for l, c := range labelCode {
		if c == code {
			return l
		}
	}
	return ""
}

// updateBand writes the band under way's figures into its entry.
func (b *Builder) updateBand(c *openBand) {
	bd := &b.bands[c.id]
	bd.at, bd.t0, bd.t1 = c.lastAt, b.micros(c.start), b.micros(c.last)
	bd.host, bd.fd, bd.label, bd.side, bd.conn = c.host, c.fd, c.label, c.side, c.conn
	bd.segs, bd.acks, bd.retrans, bd.drops, bd.bytes, bd.calls = c.segs, c.acks, c.retrans, c.drops, c.bytes, c.calls
	if bd.first >= 0 {
		bd.last = len(b.rows) - 1
	}
	bd.text = b.bandText(c)
	if bd.row >= 0 {
		r := &b.rows[bd.row]
		r.at, r.text = c.lastAt, bd.text
	}
}

// bandText is a band's line, as the text view writes it.
func (b *Builder) bandText(c *openBand) string {
	to := c.key.a
	if to == c.from {
		to = c.key.b
	}
	s := "═ " + thousands(c.segs) + " segments " + b.addrHost(c.from) + " -> " + b.addrHost(to) + ", " +
		trace.Bytes(c.bytes) + " in " + trace.Duration(c.last.Sub(c.first)) + ", " + itoa(c.retrans) + " retransmitted"
	if c.drops > 0 {
		s += ", " + itoa(c.drops) + " lost on the wire"
	}
	s += "  " + thousands(c.acks) + " ACKs back"
	var sends, recvs int
	for _, side := range c.calls {
		sends += side[0]
		recvs += side[1]
	}
	if sends > 0 {
		s += "; send() ×" + thousands(sends)
	}
	if recvs > 0 {
		s += "; recv() ×" + thousands(recvs)
	}
	return s
}

// addrHost names the traced host with address a, or writes the address.
func (b *Builder) addrHost(a netip.AddrPort) string {
	if h, ok := b.traced[a.Addr()]; ok {
		return b.hosts[h].Name
	}
	return a.Addr().String()
}

// endBand ends the band under way: a band of its own, or, when it did
// not grow long enough and its events were held back, its events' rows.
func (b *Builder) endBand() {
	c := b.cur
	if c == nil {
		return
	}
	b.cur = nil
	switch {
	case c.collapsed:
		b.updateBand(c)
		if b.opt.Bands {
			last := slices.SortedFunc(maps.Values(c.lastTCB), func(x, y heldRow) int { return cmp.Compare(x.tcb.at, y.tcb.at) })
			for _, h := range last {
				h.tcb.line = len(b.lines)
				b.lines = append(b.lines, h.line)
				b.tcbs = append(b.tcbs, *h.tcb)
			}
		}
	case b.opt.Bands:
		for _, h := range c.held {
			b.lines = append(b.lines, h.line)
			if h.tcb != nil {
				h.tcb.line = len(b.lines) - 1
				b.tcbs = append(b.tcbs, *h.tcb)
				continue
			}
			h.r.line = len(b.lines) - 1
			if h.r.kind == rowResult {
				h.r.line2 = h.r.line
			}
			b.append(h.r)
		}
	}
	b.stable = len(b.rows)
	b.closedBand = len(b.bands)
	b.settle()
}
