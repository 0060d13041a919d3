package cli

import (
	"io"
	"net/netip"
	"strings"
	"time"

	"nsftp/ftp"
	"nsftp/stack"
)

// diagramOptions tune writeDiagram. The zero value draws a run with the
// defaults.
type diagramOptions struct {
	Title string // e.g. "nsftp demo: active-mode download of hello.txt"

	// BandMin is the number of data-carrying segments from which a run of
	// them on one connection and direction is drawn as one band: 0 means
	// 4, a negative value never collapses.
	BandMin int

	// Names shows getsockname and getpeername calls, which are left out
	// by default: they change nothing on the wire or in the TCP state.
	Names bool
}

// writeDiagram draws a run as a self-contained SVG ladder (sequence) diagram.
//
// The client's lifeline is on the left, the server's on the right, each
// split into a control and a data lane, the layout of the 2005 article's
// Figure 2. Time flows down, one row per event in the order the tracer saw
// them: wall-clock time would pile every event of a run into a few pixels.
// FTP commands and replies are bold arrows, TCP segments thin ones, socket
// calls boxes beside their host's lifeline (the article's Figure 1), with
// the TCP state they moved through next to the lifeline. A bulk transfer's
// data segments, their ACKs and the send/recv calls that moved them are
// collapsed into one band, so a diagram of a 1 GB download stays readable.
//
// All text from the run, including replies from a possibly hostile server,
// is stripped of control characters and escaped; a PASS command's argument
// never appears.
func writeDiagram(w io.Writer, recs []record, opt diagramOptions) error {
	if opt.BandMin == 0 {
		opt.BandMin = 4
	}
	d := newLadder(recs, opt)
	items := d.collapseCalls(d.collapseBands(d.items(recs)))
	_, err := w.Write(d.render(items))
	return err
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

// ladderLane is the connection an event belongs to.
type ladderLane int

const (
	laneOther ladderLane = iota // not known to be FTP's: ARP, a stray TCP connection
	laneControl
	laneData
)

func ladderLaneOf(label string) ladderLane {
	switch label {
	case "control":
		return laneControl
	case "data":
		return laneData
	}
	return laneOther
}

// ladder is what the diagram learns from the whole run before drawing it:
// which host is which lifeline, their addresses, and which connection each
// address pair belongs to.
type ladder struct {
	opt     diagramOptions
	side    map[string]ladderSide // stack host name -> lifeline
	name    [2]string
	ip      [2]string
	segHost string // the host whose link's segments are drawn
	ftpSide string // the side whose FTP events are drawn
	t0      time.Time

	// Segments carry addresses only; the connection they belong to is
	// learnt from socket calls and FTP data-connection events, by address
	// pair first and by single address (a listener's) second.
	pairLane map[string]ladderLane
	addrLane map[string]ladderLane

	stats struct{ records, segments, banded, bands, calls int }
}

func newLadder(recs []record, opt diagramOptions) *ladder {
	d := &ladder{
		opt:      opt,
		side:     map[string]ladderSide{},
		pairLane: map[string]ladderLane{},
		addrLane: map[string]ladderLane{},
	}
	d.name = [2]string{"client", "server"}

	// Which host is which: by name first (the demo's), then by what the
	// host did on the control connection, then by order of appearance.
	var hosts []string
	vote := map[string]ladderSide{}
	for _, r := range recs {
		ev := r.Stack
		if ev == nil {
			continue
		}
		if _, ok := vote[ev.Host]; !ok {
			hosts = append(hosts, ev.Host)
			vote[ev.Host] = -1
		}
		if c := ev.Call; c != nil && vote[ev.Host] < 0 && c.Label == "control" && c.Err == "" {
			switch c.Op {
			case stack.OpConnect:
				vote[ev.Host] = sideClient
			case stack.OpListen, stack.OpAccept:
				vote[ev.Host] = sideServer
			}
		}
	}
	named := [2]bool{}
	for _, h := range hosts {
		s := vote[h]
		switch h {
		case "client":
			s = sideClient
		case "server":
			s = sideServer
		}
		if s < 0 {
			s = sideClient
			if named[sideClient] {
				s = sideServer
			}
		}
		d.side[h] = s
		if !named[s] {
			d.name[s], named[s] = h, true
		}
	}

	for _, r := range recs {
		if ev := r.Stack; ev != nil {
			if d.t0.IsZero() || ev.Time.Before(d.t0) {
				d.t0 = ev.Time
			}
			if ev.Segment != nil && d.segHost == "" && d.side[ev.Host] == sideClient {
				d.segHost = ev.Host
			}
		}
		if ev := r.FTP; ev != nil {
			if d.t0.IsZero() || ev.Time.Before(d.t0) {
				d.t0 = ev.Time
			}
			if d.ftpSide == "" || (ev.Side == "client" && d.ftpSide != "client") {
				d.ftpSide = ev.Side
			}
		}
	}

	for _, r := range recs {
		switch {
		case r.Stack != nil && r.Stack.Call != nil:
			c, s := r.Stack.Call, d.side[r.Stack.Host]
			d.learn(ladderLaneOf(c.Label), c.Local, c.Remote)
			d.setIP(s, c.Local)
			d.setIP(s.other(), c.Remote)
		case r.Stack != nil && r.Stack.Segment != nil:
			if d.segHost == "" {
				d.segHost = r.Stack.Host // no client host captured: use any
			}
			if r.Stack.Host == d.segHost {
				from := d.from(r.Stack.Host, r.Stack.Segment)
				d.setIP(from, r.Stack.Segment.Src)
				d.setIP(from.other(), r.Stack.Segment.Dst)
			}
		case r.FTP != nil:
			ev := r.FTP
			if ev.Kind == ftp.EventDataOpen || ev.Kind == ftp.EventDataClose {
				d.learn(laneData, ev.Local, ev.Remote)
			} else {
				d.learn(ladderLaneOf(ev.Conn), ev.Local, ev.Remote)
			}
			s := sideClient
			if ev.Side == "server" {
				s = sideServer
			}
			d.setIP(s, ev.Local)
			d.setIP(s.other(), ev.Remote)
		}
	}
	return d
}

// learn records that the connection between local and remote, and each of
// the two addresses, belong to lane l.
func (d *ladder) learn(l ladderLane, local, remote string) {
	if l == laneOther {
		return
	}
	okL, okR := ladderAddr(local), ladderAddr(remote)
	if okL {
		if _, seen := d.addrLane[local]; !seen {
			d.addrLane[local] = l
		}
	}
	if okR {
		if _, seen := d.addrLane[remote]; !seen {
			d.addrLane[remote] = l
		}
	}
	if okL && okR {
		d.pairLane[ladderConn(local, remote)] = l
	}
}

// ladderAddr reports whether a is an address with a port that names one end
// of one connection (not a wildcard).
func ladderAddr(a string) bool {
	ap, err := netip.ParseAddrPort(a)
	return err == nil && ap.Port() != 0 && !ap.Addr().IsUnspecified()
}

// ladderConn names a TCP connection the same way from both of its ends.
func ladderConn(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + " " + b
}

func (d *ladder) setIP(s ladderSide, addr string) {
	if d.ip[s] != "" || addr == "" {
		return
	}
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(addr); err == nil {
		ip = a
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		d.ip[s] = ip.Unmap().String()
	}
}

// from is the side that sent a segment seen on host's link.
func (d *ladder) from(host string, s *stack.Segment) ladderSide {
	if s.Dir == "in" {
		return d.side[host].other()
	}
	return d.side[host]
}

func (d *ladder) segLane(s *stack.Segment) ladderLane {
	if l, ok := d.pairLane[ladderConn(s.Src, s.Dst)]; ok {
		return l
	}
	if l, ok := d.addrLane[s.Src]; ok {
		return l
	}
	return d.addrLane[s.Dst]
}

// A ladderItem is one row of the diagram: a segment, an FTP event, a socket
// call or a run of them, or a band of collapsed bulk data.
type ladderItem struct {
	at    time.Time
	seg   *ladderSeg
	ftp   *ftp.Event
	calls *ladderCalls
	band  *ladderBand
}

// ladderSeg is a frame on the link, TCP or not.
type ladderSeg struct {
	s    *stack.Segment
	at   time.Time
	from ladderSide
	lane ladderLane
	conn string // ladderConn; "" for frames that are not TCP
}

// bulk reports whether the segment can be part of a band: data on a
// connection that is not the control connection (whose segments carry
// the commands and replies), and no connection-changing flags.
func (s *ladderSeg) bulk() bool {
	return s.conn != "" && s.lane != laneControl && s.s.Len > 0 && !s.special()
}

// special reports whether the segment opens, closes or resets its
// connection: always drawn on its own.
func (s *ladderSeg) special() bool {
	f := s.s.Flags
	return strings.Contains(f, "SYN") || strings.Contains(f, "FIN") || strings.Contains(f, "RST")
}

// bareACK reports a segment that only acknowledges.
func (s *ladderSeg) bareACK() bool { return s.conn != "" && s.s.Flags == "ACK" && s.s.Len == 0 }

// ladderCalls is one socket call, or consecutive sends or recvs on one socket.
type ladderCalls struct {
	host  string
	side  ladderSide
	lane  ladderLane
	conn  string
	calls []*stack.Call
	at    time.Time
}

// tiny reports a call drawn small: getsockname and getpeername change
// nothing on the wire or in the TCP state.
func (r *ladderCalls) tiny() bool {
	op := r.calls[0].Op
	return op == stack.OpGetsockname || op == stack.OpGetpeername
}

// bytes sums what the run's calls moved.
func (r *ladderCalls) bytes() int64 {
	var n int64
	for _, c := range r.calls {
		n += int64(c.Bytes)
	}
	return n
}

// joins reports whether the call c on host can extend the run.
func (r *ladderCalls) joins(host string, c *stack.Call) bool {
	last := r.calls[len(r.calls)-1]
	return r.host == host && c.Socket == last.Socket && c.Op == last.Op &&
		(c.Op == stack.OpSend || c.Op == stack.OpRecv) &&
		last.Err == "" && (c.Err == "" || c.Err == "EOF")
}

// ladderBand is a run of data-carrying segments on one connection and in one
// direction, with the bare ACKs and the send/recv calls interleaved with
// them.
type ladderBand struct {
	start    time.Time // of the first member, a segment or a call
	conn     string
	dirKnown bool
	from     ladderSide
	members  []ladderItem // everything absorbed, in order, to fall back on
	segs     int
	bytes    int64
	maxLen   int
	acks     int
	first    time.Time
	last     time.Time
	calls    []*ladderCalls
}

// items turns the records into rows, leaving out what is not drawn.
func (d *ladder) items(recs []record) []ladderItem {
	var out []ladderItem
	for _, r := range recs {
		d.stats.records++
		switch {
		case r.Stack != nil && r.Stack.Call != nil:
			c := r.Stack.Call
			if !d.opt.Names && (c.Op == stack.OpGetsockname || c.Op == stack.OpGetpeername) {
				continue
			}
			d.stats.calls++
			run := &ladderCalls{host: r.Stack.Host, side: d.side[r.Stack.Host], lane: ladderLaneOf(c.Label), calls: []*stack.Call{c}, at: r.Stack.Time}
			if ladderAddr(c.Local) && ladderAddr(c.Remote) {
				run.conn = ladderConn(c.Local, c.Remote)
			}
			out = append(out, ladderItem{at: r.Stack.Time, calls: run})
		case r.Stack != nil && r.Stack.Segment != nil:
			if r.Stack.Host != d.segHost {
				continue // the same frame, seen from the other end of the wire
			}
			s := r.Stack.Segment
			d.stats.segments++
			si := &ladderSeg{s: s, at: r.Stack.Time, from: d.from(r.Stack.Host, s)}
			if s.Proto == "tcp" {
				si.conn = ladderConn(s.Src, s.Dst)
				si.lane = d.segLane(s)
			}
			out = append(out, ladderItem{at: r.Stack.Time, seg: si})
		case r.FTP != nil:
			if r.FTP.Side != d.ftpSide {
				continue // both ends traced: draw the dialogue once
			}
			out = append(out, ladderItem{at: r.FTP.Time, ftp: r.FTP})
		}
	}
	return out
}

// collapseBands replaces each run of at least BandMin data-carrying
// segments on one connection and in one direction, with the bare ACKs and
// the data connection's send/recv calls between them, by one band. A run
// ends at anything else: a SYN, FIN or RST, a segment of another
// connection, an FTP event, any other socket call.
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
			b.bytes += int64(s.s.Len)
			b.maxLen = max(b.maxLen, s.s.Len)
			b.last = s.at
			b.members = append(b.members, it)
		case it.seg != nil && it.seg.bareACK() && b != nil && b.conn == it.seg.conn:
			b.acks++
			b.members = append(b.members, it)
		case it.calls != nil && ladderBulkCall(it.calls) && (b == nil || b.conn == it.calls.conn):
			if b == nil {
				b = &ladderBand{conn: it.calls.conn, start: it.at}
			}
			b.members = append(b.members, it)
			c := it.calls.calls[0]
			joined := false
			for _, r := range b.calls {
				if r.joins(it.calls.host, c) {
					r.calls = append(r.calls, c)
					joined = true
					break
				}
			}
			if !joined {
				r := *it.calls
				r.calls = []*stack.Call{c}
				b.calls = append(b.calls, &r)
			}
		default:
			flush()
			out = append(out, it)
		}
	}
	flush()
	return out
}

// ladderBulkCall reports whether a call can be part of a band: a send or recv
// that went well on a connection that is not the control connection.
func ladderBulkCall(r *ladderCalls) bool {
	c := r.calls[0]
	return (c.Op == stack.OpSend || c.Op == stack.OpRecv) && c.Err == "" && r.conn != "" && r.lane != laneControl
}

// collapseCalls merges consecutive sends (or recvs) on one socket into
// one box.
func (d *ladder) collapseCalls(in []ladderItem) []ladderItem {
	var out []ladderItem
	for _, it := range in {
		if it.calls != nil && len(out) > 0 {
			if prev := out[len(out)-1].calls; prev != nil && prev.joins(it.calls.host, it.calls.calls[0]) {
				prev.calls = append(prev.calls, it.calls.calls[0])
				continue
			}
		}
		if it.calls != nil {
			r := *it.calls // items may share runs with a flattened band
			r.calls = append([]*stack.Call(nil), r.calls...)
			it.calls = &r
		}
		out = append(out, it)
	}
	return out
}
