package trace

import (
	"io"
	"net/netip"
	"time"
)

// LadderOptions tune WriteLadder. The zero value draws a run with the
// defaults.
type LadderOptions struct {
	// Title heads the drawing; empty means the run's own (its run event).
	Title string

	// BandMin is the number of data-carrying segments from which a run of
	// them on one connection and direction is drawn as one band: 0 means
	// 4, a negative value never collapses.
	BandMin int

	// Names shows getsockname and getpeername calls, which are left out
	// by default: they change nothing on the wire or in the TCP state.
	Names bool
}

// WriteLadder draws a run as a self-contained SVG ladder (sequence)
// diagram.
//
// The client's lifeline is on the left, the server's on the right, each
// split into a control and a data lane, the layout of the 2005 article's
// Figure 2. Time flows down, one row per event in the order they happened:
// wall-clock time would pile every event of a run into a few pixels. FTP
// commands and replies are bold arrows, TCP segments thin ones (each frame
// once, as its sender sent it), socket calls boxes beside their host's
// lifeline (the article's Figure 1) drawn where the call began, with its
// result where it ended, and every change of TCP state beside the
// lifeline where it happened. A bulk transfer's data segments, their ACKs
// and the send/recv calls that moved them are collapsed into one band, so
// a diagram of a 1 GB download stays readable.
//
// All text from the run, including replies from a possibly hostile
// server, goes through Clean and is escaped; a PASS command's argument
// never appears.
func WriteLadder(w io.Writer, events []Event, opt LadderOptions) error {
	if opt.BandMin == 0 {
		opt.BandMin = 4
	}
	d := newLadder(events, opt)
	items := openDataFirst(d.collapseBands(d.items(events)))
	if len(items) > 0 {
		// The subtitle's times count from the first row.
		d.t0 = items[0].at
	}
	_, err := w.Write(d.render(items))
	return err
}

// openDataFirst moves each data connection's opening row up to the first
// row that carries its data, when the FTP layer recorded the opening only
// after data had crossed: in active mode the client's FTP layer knows the
// connection is open when accept() returns, and the server may send the
// file and its FIN before that. The connection was open (its handshake
// done, as the rows above show) before any data crossed it, and the
// diagram's data-connection bar starts there.
func openDataFirst(items []ladderItem) []ladderItem {
	for i := 0; i < len(items); i++ {
		ev := items[i].ftp
		if ev == nil || ev.Kind != KindDataOpen || !ev.Local.IsValid() || !ev.Remote.IsValid() {
			continue
		}
		conn := connOf(&Segment{Src: ev.Local, Dst: ev.Remote})
		first := -1
		for j := i - 1; j >= 0; j-- {
			it := items[j]
			if it.ftp != nil && (it.ftp.Kind == KindDataOpen || it.ftp.Kind == KindDataClose) {
				break // an earlier data connection's
			}
			switch {
			case it.band != nil && it.band.conn == conn,
				it.seg != nil && it.seg.tcp && it.seg.conn == conn && (it.seg.s.Len > 0 || it.seg.s.Flags.Has(FIN)):
				first = j
			}
		}
		if first < 0 {
			continue
		}
		open := items[i]
		open.at, open.late = items[first].at, true
		copy(items[first+1:i+1], items[first:i])
		items[first] = open
	}
	return items
}

// ladderSide is one of the diagram's two lifelines.
type ladderSide int

const (
	sideClient ladderSide = iota
	sideServer
)

func (s ladderSide) other() ladderSide { return 1 - s }

func (s ladderSide) String() string {
	if s == sideClient {
		return "client"
	}
	return "server"
}

func sideOf(r Role) (ladderSide, bool) {
	switch r {
	case Client:
		return sideClient, true
	case Server:
		return sideServer, true
	}
	return 0, false
}

// ladderLane is the connection an event belongs to.
type ladderLane int

const (
	laneOther ladderLane = iota // not FTP's: ARP, a stray TCP connection
	laneControl
	laneData
)

func laneOf(c Conn) ladderLane {
	switch c {
	case Control:
		return laneControl
	case Data:
		return laneData
	}
	return laneOther
}

// ladder is what the diagram learns from the whole run before drawing it:
// which host is which lifeline, and their addresses.
type ladder struct {
	opt     LadderOptions
	title   string
	side    map[string]ladderSide // stack host name -> lifeline
	name    [2]string
	ip      [2]string
	traced  map[netip.Addr]bool // addresses of hosts that record their frames
	sideAt  map[netip.Addr]ladderSide
	ftpSide Role // the side whose FTP events are drawn
	t0      time.Time
	// connOfSock is the connection each host's socket is on, from the
	// frames: a band takes in the calls on its connection.
	connOfSock map[sockKey]connKey
	callY      map[*ladderCall]float64 // where each call's box is drawn
	laneOfConn map[connKey]ladderLane  // a connection's lane, from its segments

	stats struct{ events, segments, banded, bands, calls, states int }
}

func newLadder(events []Event, opt LadderOptions) *ladder {
	d := &ladder{opt: opt, side: map[string]ladderSide{}, traced: map[netip.Addr]bool{}, sideAt: map[netip.Addr]ladderSide{}, title: opt.Title,
		callY: map[*ladderCall]float64{}, laneOfConn: map[connKey]ladderLane{}}
	d.name = [2]string{"client", "server"}
	named := [2]bool{}
	place := func(host string, s ladderSide) {
		if _, ok := d.side[host]; ok {
			return
		}
		d.side[host] = s
		if !named[s] {
			d.name[s], named[s] = host, true
		}
	}
	// Each host's role says its side; a host without one takes the side
	// its name says, or the one left.
	for _, e := range events {
		if d.t0.IsZero() {
			d.t0 = e.Time
		}
		switch {
		case e.Kind == KindRun && e.Run != nil && d.title == "":
			d.title = e.Run.Title
		case e.Kind == KindHost && e.HostInfo != nil:
			s, ok := sideOf(e.HostInfo.Role)
			if !ok {
				s, ok = sideOf(Role(e.Host))
			}
			if !ok {
				s = sideClient
				if named[sideClient] {
					s = sideServer
				}
			}
			place(e.Host, s)
			for _, p := range e.HostInfo.Addrs {
				d.traced[p.Addr()] = true
				d.sideAt[p.Addr()] = s
				if d.ip[s] == "" && p.Addr().Is4() {
					d.ip[s] = p.Addr().String()
				}
			}
		case e.Message != nil:
			if d.ftpSide == "" || (e.Side == Client && d.ftpSide != Client) {
				d.ftpSide = e.Side
			}
		}
	}
	// Addresses a host was given as it ran (DHCP, SLAAC) are its own too.
	for _, e := range events {
		if e.Kind == KindConfig && e.Config != nil && e.Config.Addr.IsValid() && !e.Config.Removed {
			d.traced[e.Config.Addr.Addr()] = true
			if s, ok := d.side[e.Host]; ok && d.ip[s] == "" && e.Config.Addr.Addr().Is4() {
				d.ip[s] = e.Config.Addr.Addr().String()
			}
		}
	}
	for _, e := range events {
		if e.Message != nil {
			s, _ := sideOf(e.Side)
			d.setIP(s, e.Local)
			d.setIP(s.other(), e.Remote)
		}
		if e.Host != "" {
			if _, ok := d.side[e.Host]; !ok {
				s, ok := sideOf(Role(e.Host))
				if !ok {
					s = sideClient
				}
				place(e.Host, s)
			}
		}
	}
	return d
}

func (d *ladder) setIP(s ladderSide, ap netip.AddrPort) {
	if d.ip[s] != "" || !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
		return
	}
	d.ip[s] = ap.Addr().Unmap().String()
}

// A ladderItem is one row of the diagram: a segment, an FTP event, a socket
// call (or its result), a change of state, or a band of bulk data.
type ladderItem struct {
	at     time.Time
	seg    *ladderSeg
	ftp    *Event
	call   *ladderCall
	result *ladderCall // the end of a call whose box is further up
	state  *ladderState
	band   *ladderBand
	config *Event // a host's change of configuration: an address, a router
	// late marks a data connection's opening drawn above where the FTP
	// layer recorded it (openDataFirst): its time is not the row's.
	late bool
}

// ladderSeg is a frame on the link, TCP or not.
type ladderSeg struct {
	s    *Segment
	at   time.Time
	from ladderSide
	lane ladderLane
	conn connKey
	tcp  bool
	lost string // the wire lost it, and why
}

// bulk reports whether the segment can be part of a band: data on a
// connection that is not the control connection (whose segments carry
// the commands and replies), and no connection-changing flags.
func (s *ladderSeg) bulk() bool {
	return s.tcp && s.lane != laneControl && s.s.Len > 0 && !s.special() && s.lost == ""
}

// special reports whether the segment opens, closes or resets its
// connection: always drawn on its own.
func (s *ladderSeg) special() bool { return s.s.Flags&(SYN|FIN|RST) != 0 }

// bareACK reports a segment that only acknowledges.
func (s *ladderSeg) bareACK() bool { return s.tcp && s.s.Flags == ACK && s.s.Len == 0 }

// ladderCall is one socket call, from its beginning to its end.
type ladderCall struct {
	host   string
	side   ladderSide
	lane   ladderLane
	begin  *Call
	end    *Call // nil until it ended (and if the run stopped first)
	at     time.Time
	endAt  time.Time
	states []*State // changes the call made while its box was the last row
	// split says the call's result is drawn on a row of its own, lower
	// down, because something happened in between.
	split bool
}

func (c *ladderCall) call() *Call {
	if c.end != nil {
		return c.end
	}
	return c.begin
}

// tiny reports a call drawn small: getsockname and getpeername change
// nothing on the wire or in the TCP state.
func (c *ladderCall) tiny() bool {
	op := c.begin.Op
	return op == OpGetsockname || op == OpGetpeername
}

// ladderState is a change of TCP state.
type ladderState struct {
	host string
	side ladderSide
	lane ladderLane
	s    *State
	at   time.Time
}

// ladderBand is a run of data-carrying segments on one connection and in
// one direction, with the bare ACKs and the send/recv calls interleaved
// with them.
type ladderBand struct {
	start    time.Time // of the first member
	conn     connKey
	dirKnown bool
	from     ladderSide
	members  []ladderItem // everything absorbed, in order, to fall back on
	segs     int
	retrans  int
	bytes    int64
	maxLen   int
	acks     int
	drops    int // frames of the band the wire lost
	first    time.Time
	last     time.Time
	calls    [2][]*bandCalls // per side: the sends and the recvs that moved the data
}

// bandCalls sums the calls of one kind on one socket within a band.
type bandCalls struct {
	host   string
	side   ladderSide
	socket int
	op     Op
	n      int
	bytes  int64
}

// items turns the events into rows, leaving out what is not drawn: each
// frame is drawn once, as its sender sent it, and the FTP dialogue as one
// side traced it.
func (d *ladder) items(events []Event) []ladderItem {
	var out []ladderItem
	open := map[callKey]int{} // calls begun, by their row
	connOfSock := map[sockKey]connKey{}
	for i := range events {
		e := &events[i]
		if e.Kind == KindEnd {
			continue // the recording's end, not an event of the run
		}
		d.stats.events++
		switch {
		case e.Kind == KindCall && e.Call != nil:
			c := e.Call
			if !d.opt.Names && (c.Op == OpGetsockname || c.Op == OpGetpeername) {
				continue
			}
			k := callKey{e.Host, c.Socket, c.Op}
			if e.Phase == Begin {
				d.stats.calls++
				out = append(out, ladderItem{at: e.Time, call: &ladderCall{host: e.Host, side: d.side[e.Host],
					lane: laneOf(c.Label), begin: c, at: e.Time}})
				open[k] = len(out) - 1
				continue
			}
			row, ok := open[k]
			if !ok {
				// An end without its beginning (a recording from before
				// beginnings were recorded): a box of its own.
				d.stats.calls++
				out = append(out, ladderItem{at: e.Time, call: &ladderCall{host: e.Host, side: d.side[e.Host],
					lane: laneOf(c.Label), begin: c, end: c, at: e.Time, endAt: e.Time}})
				continue
			}
			delete(open, k)
			lc := out[row].call
			lc.end, lc.endAt = c, e.Time
			if row != len(out)-1 {
				lc.split = true
				out = append(out, ladderItem{at: e.Time, result: lc})
			}
		case e.Kind == KindState && e.State != nil:
			d.stats.states++
			st := &ladderState{host: e.Host, side: d.side[e.Host], lane: laneOf(e.State.Label), s: e.State, at: e.Time}
			if n := len(out); n > 0 && st.s.By == ByCall {
				if lc := out[n-1].call; lc != nil && lc.end == nil && lc.host == e.Host && lc.begin.Socket == st.s.Socket {
					lc.states = append(lc.states, st.s)
					continue
				}
			}
			out = append(out, ladderItem{at: e.Time, state: st})
		case e.Kind == KindSegment && e.Segment != nil:
			s := e.Segment
			if s.Proto == "tcp" && s.Socket != 0 {
				connOfSock[sockKey{e.Host, s.Socket}] = connOf(s)
			}
			if s.Dir == In && d.traced[s.Src.Addr()] {
				continue // drawn as its sender sent it
			}
			d.stats.segments++
			from := d.side[e.Host]
			if s.Dir == In {
				from = from.other()
			}
			si := &ladderSeg{s: s, at: e.Time, from: from, lane: laneOf(s.Label), tcp: s.Proto == "tcp"}
			if si.tcp {
				si.conn = connOf(s)
				d.laneOfConn[si.conn] = si.lane
			} else {
				si.lane = laneOther
			}
			out = append(out, ladderItem{at: e.Time, seg: si})
		case e.Kind == KindConfig && e.Config != nil:
			out = append(out, ladderItem{at: e.Time, config: e})
		case e.Kind == KindDrop && e.Segment != nil && e.Drop != nil:
			s := e.Segment
			from, ok := d.sideAt[s.Src.Addr()]
			if !ok {
				continue
			}
			si := &ladderSeg{s: s, at: e.Time, from: from, lane: laneOther, tcp: s.Proto == "tcp", lost: e.Drop.Reason}
			if si.tcp {
				si.conn = connOf(s)
				si.lane = d.laneOfConn[si.conn]
			}
			out = append(out, ladderItem{at: e.Time, seg: si})
		case e.Message != nil:
			if e.Side != d.ftpSide {
				continue // both ends traced: draw the dialogue once
			}
			out = append(out, ladderItem{at: e.Time, ftp: e})
		}
	}
	d.connOfSock = connOfSock
	return out
}

// collapseBands replaces each run of at least BandMin data-carrying
// segments on one connection and in one direction, with the bare ACKs and
// the data connection's send/recv calls between them, by one band. A run
// ends at anything else: a SYN, FIN or RST, a segment of another
// connection, an FTP event, any other socket call or change of state.
func (d *ladder) collapseBands(in []ladderItem) []ladderItem {
	if d.opt.BandMin < 0 {
		return in
	}
	var (
		out []ladderItem
		b   *ladderBand
	)
	flush := func() {
		if b == nil {
			return
		}
		if b.segs >= d.opt.BandMin {
			out = append(out, ladderItem{at: b.start, band: b})
			d.stats.bands++
			d.stats.banded += b.segs + b.acks
		} else {
			out = append(out, b.members...)
		}
		b = nil
	}
	bulkCall := func(lc *ladderCall) bool {
		c := lc.call()
		return (c.Op == OpSend || c.Op == OpRecv) && lc.lane != laneControl && c.Err == ""
	}
	for _, it := range in {
		switch {
		case it.seg != nil && it.seg.bulk():
			s := it.seg
			if b != nil && (b.conn != s.conn || (b.dirKnown && b.from != s.from)) {
				flush()
			}
			if b == nil {
				b = &ladderBand{conn: s.conn, start: it.at}
			}
			if !b.dirKnown {
				b.dirKnown, b.from, b.first = true, s.from, s.at
			}
			b.segs++
			if s.s.Retransmit {
				b.retrans++
			}
			b.bytes += int64(s.s.Len)
			b.maxLen = max(b.maxLen, s.s.Len)
			b.last = s.at
			b.members = append(b.members, it)
		case it.seg != nil && it.seg.lost != "" && b != nil && b.conn == it.seg.conn:
			b.drops++
			b.members = append(b.members, it)
		case it.seg != nil && it.seg.bareACK() && b != nil && b.conn == it.seg.conn:
			b.acks++
			b.members = append(b.members, it)
		case it.call != nil && bulkCall(it.call) && (b == nil || b.conn == d.connOfSock[sockKey{it.call.host, it.call.begin.Socket}]):
			if b == nil {
				b = &ladderBand{conn: d.connOfSock[sockKey{it.call.host, it.call.begin.Socket}], start: it.at}
			}
			b.members = append(b.members, it)
			if !it.call.split {
				b.count(it.call) // else counted where it returned
			}
		case it.result != nil && bulkCall(it.result) && b != nil && b.conn == d.connOfSock[sockKey{it.result.host, it.result.begin.Socket}]:
			// A send or recv that waited while the band's data moved.
			b.members = append(b.members, it)
			b.count(it.result)
		default:
			flush()
			out = append(out, it)
		}
	}
	flush()
	return out
}

func (b *ladderBand) count(lc *ladderCall) {
	c := lc.call()
	for _, r := range b.calls[lc.side] {
		if r.socket == c.Socket && r.op == c.Op {
			r.n++
			r.bytes += int64(c.Bytes)
			return
		}
	}
	b.calls[lc.side] = append(b.calls[lc.side], &bandCalls{host: lc.host, side: lc.side, socket: c.Socket, op: c.Op, n: 1, bytes: int64(c.Bytes)})
}
