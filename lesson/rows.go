package lesson

import (
	"github.com/nsftp/nsftp/trace"
)

// show makes e a row, holding a call's beginning back until the next
// event says whether the call ended at once (one row) or something
// happened first (a row for the beginning, one for the result), as the
// text view does.
func (b *Builder) show(e *trace.Event, at int64) {
	if p := b.pending; p != nil {
		switch {
		case e.Kind == trace.KindCall && e.Phase == trace.End && e.Call != nil && sameCall(&p.e, e):
			b.pending = nil
			line := b.keep(e)
			b.callRow(p, e, line, at)
			b.settle()
			return
		case e.Kind == trace.KindState && e.State != nil && e.Host == p.e.Host && e.State.Socket == p.e.Call.Socket && e.State.By == trace.ByCall:
			// The pending call's own doing: shown on its row if it ends now.
			line := b.keep(e)
			b.stateRec(e, at, line)
			p.states = append(p.states, heldState{e: *e, line: line, at: at})
			return
		}
		b.flushPending()
	}
	switch {
	case e.Kind == trace.KindCall && e.Call != nil:
		line := b.keep(e)
		if e.Phase == trace.Begin {
			b.pending = &pendingCall{e: *e, line: line, at: at}
			return
		}
		h := b.host(e.Host, "")
		k := callKey{h, e.Call.Socket, e.Call.Op}
		if b.open[k] {
			delete(b.open, k)
			b.append(b.resultRow(e, line, at))
		} else {
			b.callRow(nil, e, line, at)
		}
	case e.Kind == trace.KindState && e.State != nil:
		line := b.keep(e)
		b.stateRec(e, at, line)
		b.append(b.stateRow(e, line, at))
	default:
		r, ok := b.plainRow(e, at)
		if !ok {
			return
		}
		r.line = b.keep(e)
		if e.Segment != nil {
			b.appendFrame(r, e.Segment)
		} else {
			b.append(r)
		}
	}
	b.settle()
}

// settle marks every row stable when nothing is held or under way.
func (b *Builder) settle() {
	if b.cur == nil && b.pending == nil {
		b.stable = len(b.rows)
	}
}

func sameCall(a, e *trace.Event) bool {
	return a.Host == e.Host && a.Call.Socket == e.Call.Socket && a.Call.Op == e.Call.Op
}

// flushPending makes a held call's beginning a row of its own, and the
// changes of state it made so far.
func (b *Builder) flushPending() {
	p := b.pending
	if p == nil {
		return
	}
	b.pending = nil
	h := b.host(p.e.Host, "")
	b.open[callKey{h, p.e.Call.Socket, p.e.Call.Op}] = true
	r := b.baseRow(&p.e, p.at)
	r.kind, r.line, r.fd, r.label = rowCall, p.line, p.e.Call.Socket, labelCode[p.e.Call.Label]
	r.flags |= flagSplit
	r.text = trace.BSDCall(p.e.Call, false)
	r.x = b.ladder(r.host, laneOf(p.e.Call.Label), shapeCall)
	b.append(r)
	for _, s := range p.states {
		b.append(b.stateRow(&s.e, s.line, s.at))
	}
}

func (b *Builder) append(r row) {
	b.rows = append(b.rows, r)
}

// appendFrame appends a frame's row, and notes it so that the time its
// receiver recorded it can be added to it.
func (b *Builder) appendFrame(r row, s *trace.Segment) {
	if r.kind == rowSegment && r.flags&flagIn == 0 && s.Proto == "tcp" {
		if len(b.recvOf) > 4096 {
			clear(b.recvOf) // frames nobody received: forget them
		}
		b.recvOf[frameKey{s.Src, s.Dst, s.Seq, s.Ack, s.Flags, s.Len}] = len(b.rows)
	}
	b.rows = append(b.rows, r)
}

// baseRow fills in what every row of an event has.
func (b *Builder) baseRow(e *trace.Event, at int64) row {
	r := row{at: at, t: b.micros(e.Time), host: -1, line: -1, line2: -1, band: -1, conn: -1, recv: -1}
	if e.Host != "" {
		r.host = b.host(e.Host, "")
	}
	return r
}

// callRow is a call that ended with nothing in between: one row. begin
// may be nil (a recording without beginnings).
func (b *Builder) callRow(p *pendingCall, end *trace.Event, line int, at int64) {
	c := end.Call
	r := b.baseRow(end, at)
	r.kind, r.fd, r.label = rowCall, c.Socket, labelCode[c.Label]
	r.line, r.line2 = line, line
	if p != nil {
		r.t = b.micros(p.e.Time)
		r.line = p.line
	}
	body := trace.BSDCall(c, true)
	if res := trace.CallResult(c); res != "" && c.Op != trace.OpAccept && c.Op != trace.OpRecv && c.Op != trace.OpRecvfrom &&
		c.Op != trace.OpGetsockname && c.Op != trace.OpGetpeername {
		body += " = " + res
	}
	if p != nil && len(p.states) > 0 {
		for i, s := range p.states {
			if i > 0 {
				body += ","
			}
			body += "  " + string(s.e.State.From) + " -> " + string(s.e.State.To)
		}
	} else if c.StateAfter != "" {
		body += "  " + string(c.StateAfter)
	}
	if c.Err != "" && c.Err != "EOF" && !c.Closed {
		body += "  error: " + trace.Clean(c.Err)
		r.flags |= flagError
	}
	r.text = body
	r.x = b.ladder(r.host, laneOf(c.Label), shapeCall)
	b.append(r)
}

// resultRow is what a call whose beginning had a row of its own returned.
func (b *Builder) resultRow(e *trace.Event, line int, at int64) row {
	c := e.Call
	r := b.baseRow(e, at)
	r.kind, r.fd, r.label, r.line, r.line2 = rowResult, c.Socket, labelCode[c.Label], line, line
	switch {
	case c.Closed:
		r.text = "└ " + string(c.Op) + "() ended: this program closed the socket"
	default:
		r.text = "└ " + string(c.Op) + "() = " + trace.CallResult(c)
		if c.StateAfter != "" {
			r.text += "  " + string(c.StateAfter)
		}
		r.text += "  " + trace.Duration(c.Duration)
		if c.Err != "" && c.Err != "EOF" {
			r.text += "  error: " + trace.Clean(c.Err)
			r.flags |= flagError
		}
	}
	r.x = b.ladder(r.host, laneOf(c.Label), shapeCall)
	return r
}

func (b *Builder) stateRec(e *trace.Event, at int64, line int) {
	h := b.host(e.Host, "")
	sk := sockKey{h, e.State.Socket}
	b.sockState[sk] = stateCode(e.State.To)
	b.states = append(b.states, stateRec{at: at, host: h, fd: e.State.Socket,
		from: stateCode(e.State.From), to: stateCode(e.State.To), cause: stateCause(e.State), line: line})
}

func stateCause(s *trace.State) string {
	c := trace.Clean(s.Cause)
	if s.Listener != 0 {
		c += " on fd" + itoa(s.Listener) + ": a new connection"
	}
	return c
}

func (b *Builder) stateRow(e *trace.Event, line int, at int64) row {
	s := e.State
	r := b.baseRow(e, at)
	r.kind, r.fd, r.label, r.line = rowState, s.Socket, labelCode[s.Label], line
	r.text = string(s.From) + " -> " + string(s.To) + "  " + stateCause(s)
	r.x = b.ladder(r.host, laneOf(s.Label), shapeState)
	return r
}

// plainRow is the row of any other event, false for events that are no
// row.
func (b *Builder) plainRow(e *trace.Event, at int64) (row, bool) {
	r := b.baseRow(e, at)
	switch {
	case e.Kind == trace.KindRun && e.Run != nil:
		r.kind = rowRun
		r.text = trace.Clean(e.Run.Title)
		if e.Run.About != "" {
			r.text += ": " + trace.Clean(e.Run.About)
		}
		r.x = sideNone
	case e.Kind == trace.KindHost && e.HostInfo != nil:
		r.kind = rowHost
		r.text = hostText(e.HostInfo)
		r.x = b.ladder(r.host, laneOther, shapeNote)
	case e.Kind == trace.KindSegment && e.Segment != nil:
		return b.segmentRow(e, r), true
	case e.Kind == trace.KindDrop && e.Segment != nil && e.Drop != nil:
		r = b.segmentRow(e, r)
		r.kind = rowDrop
		r.flags |= flagLost
		r.text = "✗ lost on the wire (" + trace.Clean(e.Drop.Reason) + "): " + r.text
		return r, true
	case e.Kind == trace.KindConfig && e.Config != nil:
		r.kind = rowConfig
		r.text = "== " + trace.ConfigText(e.Config)
		r.x = b.ladder(r.host, laneOther, shapeNote)
	case e.Kind == trace.KindTCPEvent && e.TCPEvent != nil:
		te := e.TCPEvent
		r.kind, r.fd, r.label = rowTCPEvent, te.Socket, labelCode[te.Label]
		r.text = tcpEventText(te)
		r.flags |= flagError
		r.x = b.ladder(r.host, laneOf(te.Label), shapeNote)
	case e.Message != nil:
		return b.ftpRow(e, r), true
	default:
		return r, false
	}
	return r, true
}

func hostText(h *trace.HostInfo) string {
	s := "stack up"
	if h.Kernel != "" {
		s = "the kernel's TCP: " + h.Kernel
	}
	if h.Role != "" {
		s += ", " + string(h.Role)
	}
	for _, a := range h.Addrs {
		s += " " + a.String()
	}
	if h.MAC != "" {
		s += ", MAC " + h.MAC
	}
	if h.MTU > 0 {
		s += ", MTU " + itoa(h.MTU)
	}
	if h.TimeWait > 0 {
		s += ", TIME-WAIT " + h.TimeWait.String()
	}
	return s
}

func tcpEventText(te *trace.TCPEvent) string {
	var what string
	switch te.What {
	case trace.Retransmit:
		what = "the kernel retransmits"
	case trace.ResetSent:
		what = "the kernel sends a reset"
	case trace.ResetReceived:
		what = "the kernel takes a reset"
	default:
		what = string(te.What)
	}
	s := "! " + what
	if te.State != "" {
		s += " in " + string(te.State)
	}
	if te.Reason != "" {
		s += "  reason " + trace.Clean(te.Reason)
	}
	return s
}

// segmentRow describes a frame: for TCP, as tcpdump does, with sequence
// numbers relative to each direction's first.
func (b *Builder) segmentRow(e *trace.Event, r row) row {
	s := e.Segment
	r.kind, r.fd, r.label = rowSegment, s.Socket, labelCode[s.Label]
	arrow := "> "
	if s.Dir == trace.In {
		arrow = "< "
	}
	side := b.senderSide(e)
	lane := laneOf(s.Label)
	switch s.Proto {
	case "tcp":
		r.text = arrow + b.segmentText(s)
		if s.Options != "" {
			r.text += "  <" + s.Options + ">"
		}
		if e.Kind == trace.KindSegment && b.retransmission(e) {
			r.flags |= flagRetrans
			r.text += " (retransmission)"
		}
		if ci, ok := b.connIx[connOf(s)]; ok {
			r.conn = ci
		}
		for _, f := range []struct {
			f    trace.TCPFlags
			flag int
		}{{trace.SYN, flagSYN}, {trace.FIN, flagFIN}, {trace.RST, flagRST}} {
			if s.Flags.Has(f.f) {
				r.flags |= f.flag
			}
		}
		if s.Flags.Has(trace.RST) {
			r.flags |= flagError
		}
	case "udp":
		r.flags |= flagUDP
		r.text = arrow + "udp len=" + itoa(s.Len)
		if s.Info != "" {
			r.text += "  " + trace.Clean(s.Info)
		}
	default:
		r.flags |= flagOther
		lane = laneOther
		r.text = arrow + s.Proto
		if s.Info != "" {
			r.text += " " + trace.Clean(s.Info)
		}
	}
	if s.Dir == trace.In {
		r.flags |= flagIn
	}
	shape := shapeArrow
	if e.Kind == trace.KindDrop {
		shape = shapeLost
	}
	r.x = side | lane<<2 | shape<<4
	return r
}

// senderSide is the ladder's side a frame came from.
func (b *Builder) senderSide(e *trace.Event) int {
	s := e.Segment
	if h, ok := b.traced[s.Src.Addr()]; ok {
		return b.hosts[h].Side
	}
	if e.Host == "" {
		return sideNone
	}
	side := b.hosts[b.host(e.Host, "")].Side
	if s.Dir == trace.In {
		side = 1 - side
	}
	return side
}

// segmentText is a TCP segment as the text view shows it: flags,
// sequence and acknowledgment numbers relative to each direction's first
// (once its SYN was seen), the window in bytes (scaled once both SYNs
// agreed on it) and the length.
func (b *Builder) segmentText(s *trace.Segment) string {
	seq, ack := s.Seq, s.Ack
	if isn, ok := b.isn[dirKey{s.Src, s.Dst}]; ok {
		seq -= isn
	}
	if isn, ok := b.isn[dirKey{s.Dst, s.Src}]; ok && s.Flags.Has(trace.ACK) {
		ack -= isn
	}
	t := s.Flags.String() + " seq=" + utoa(seq)
	if s.Flags.Has(trace.ACK) {
		t += " ack=" + utoa(ack)
	}
	win := int(s.Window)
	if !s.Flags.Has(trace.SYN) {
		mine, ok1 := b.ws[dirKey{s.Src, s.Dst}]
		theirs, ok2 := b.ws[dirKey{s.Dst, s.Src}]
		if ok1 && ok2 && mine >= 0 && theirs >= 0 {
			win <<= mine
		}
	}
	t += " win=" + itoa(win) + " len=" + itoa(s.Len)
	if len(s.SACK) > 0 {
		t += " sack"
		for _, blk := range s.SACK {
			lo, hi := blk.Start, blk.End
			if isn, ok := b.isn[dirKey{s.Dst, s.Src}]; ok {
				lo, hi = lo-isn, hi-isn
			}
			t += " " + utoa(lo) + "-" + utoa(hi)
		}
	}
	return t
}

// ftpRow is an FTP event's row: a command or reply as the side that
// recorded it saw it, a data connection opened or closed, TLS, a note.
func (b *Builder) ftpRow(e *trace.Event, r row) row {
	m := e.Message
	r.kind = rowFTP
	r.host = b.sideHost(m.Side)
	r.label = labelCode[m.Conn]
	side := b.hosts[r.host].Side
	ours := m.Side == b.ftpSide
	if ours {
		r.flags |= flagFTPSide
	}
	lane := laneOf(m.Conn)
	shape := shapeNote
	from := side
	switch e.Kind {
	case trace.KindCommand:
		r.flags |= flagCommand
		arrow := "-> "
		if m.Side == trace.Server {
			arrow = "<- "
			from = 1 - side
		}
		r.text = arrow + trace.Clean(trace.RedactCommand(m.Text))
		if ours {
			shape = shapeMessage
		}
	case trace.KindReply:
		r.flags |= flagReply
		arrow := "<- "
		from = 1 - side
		if m.Side == trace.Server {
			arrow, from = "-> ", side
		}
		r.text = arrow + itoa(m.Code) + " " + trace.Clean(joinLines(m.Text))
		if ours {
			shape = shapeMessage
		}
		if m.Code >= 400 {
			r.flags |= flagError
		}
	case trace.KindDataOpen:
		r.flags |= flagDataOpen
		r.text = "== " + string(m.Mode) + " data connection open: " + addr(m.Local) + " <-> " + addr(m.Remote)
	case trace.KindDataClose:
		r.flags |= flagDataClose
		r.text = "== data connection closed after " + itoa(int(m.Bytes)) + " bytes"
		if m.Err != "" {
			r.text += ": " + trace.Clean(m.Err)
			r.flags |= flagError
		}
	case trace.KindTLS:
		r.text = "== TLS: " + trace.Clean(m.Text)
	default:
		r.text = "!! " + trace.Clean(m.Text)
		if m.Err != "" {
			r.text += ": " + trace.Clean(m.Err)
			r.flags |= flagError
		}
	}
	if shape != shapeMessage {
		from = side
	}
	r.x = from | lane<<2 | shape<<4
	return r
}

func joinLines(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
		case '\n':
			out = append(out, " / "...)
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

// ladder is the ladder code of a mark on a host's lifeline.
func (b *Builder) ladder(host, lane, shape int) int {
	side := sideNone
	if host >= 0 {
		side = b.hosts[host].Side
	}
	return side | lane<<2 | shape<<4
}

func laneOf(c trace.Conn) int {
	switch c {
	case trace.Control:
		return laneControl
	case trace.Data:
		return laneData
	}
	return laneOther
}
