package lesson

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sync"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// Row kinds: what a row of the event list is. The page's script has the
// same numbers (kind in page.js).
const (
	rowRun      = 0  // the run's title
	rowHost     = 1  // a host's stack came up
	rowCall     = 2  // a socket call: its beginning, or the whole call when nothing came between
	rowResult   = 3  // what a call that waited returned
	rowSegment  = 4  // a frame, once, as its sender sent it
	rowState    = 5  // a TCP connection changed state
	rowFTP      = 6  // an FTP command, reply, data connection opened or closed, TLS, note
	rowConfig   = 7  // a host's address, router or name servers
	rowDrop     = 8  // the wire lost a frame
	rowTCPEvent = 9  // the kernel's TCP did something on its own
	rowBand     = 10 // bulk data, collapsed: its events are not in the page
)

// Row flags.
const (
	flagRetrans   = 1 << iota // a TCP segment that carries nothing new
	flagLost                  // a frame the wire lost
	flagError                 // a call that failed, a RST
	flagSplit                 // a call's beginning, whose result is a later row
	flagCommand               // an FTP command
	flagReply                 // an FTP reply
	flagDataOpen              // an FTP data connection opened
	flagDataClose             // an FTP data connection closed
	flagUDP                   // a UDP datagram
	flagOther                 // a frame neither TCP nor UDP (ARP, ICMP, NDP)
	flagSYN                   // a TCP segment with SYN
	flagFIN                   // with FIN
	flagRST                   // with RST
	flagFTPSide               // an FTP event of the side the ladder draws the dialogue of
	flagIn                    // a frame recorded by its receiver only: its sender is not traced
	flagBandEvent             // an event of a band (a member row)
)

// Ladder shapes, in a row's ladder code: x = side | lane<<2 | shape<<4.
const (
	shapeNone    = 0
	shapeArrow   = 1 // a frame from side to the other
	shapeCall    = 2 // a call's box beside side's lifeline
	shapeState   = 3 // a change of state on side's lifeline
	shapeBand    = 4 // bulk data from side
	shapeNote    = 5 // a mark on side's lifeline
	shapeLost    = 6 // a frame from side lost halfway
	shapeMessage = 7 // an FTP command or reply from side
)

// Lanes, as the ladder has them.
const (
	laneOther   = 0
	laneControl = 1
	laneData    = 2
)

// Sides.
const (
	sideClient = 0
	sideServer = 1
	sideNone   = 2
)

// labelCode numbers the sockets' labels for the page.
var labelCode = map[trace.Conn]int{"": 0, trace.Control: 1, trace.Data: 2, trace.DHCP: 3, trace.DNS: 4}

// stateNames are the TCP states, numbered for the page.
var stateNames = []trace.TCPState{
	trace.StateInitial, trace.StateBound, trace.StateListen, trace.StateSynSent, trace.StateSynReceived,
	trace.StateEstablished, trace.StateFinWait1, trace.StateFinWait2, trace.StateCloseWait, trace.StateClosing,
	trace.StateLastAck, trace.StateTimeWait, trace.StateClosed,
}

func stateCode(s trace.TCPState) int {
	for i, n := range stateNames {
		if n == s {
			return i
		}
	}
	return -1
}

// bandMin is how many data segments in a row, on one connection and in
// one direction, make a band, as in the text view and the ladder.
const bandMin = 4

// bandSpan is the longest a band covers, as in the text view: a long
// transfer is a band a second, so a class can step through it.
const bandSpan = time.Second

// row is one row of the event list.
type row struct {
	kind  int
	at    int64 // the moment: the seq of the last event the row covers
	t     int64 // µs since the run's first event
	host  int
	fd    int
	label int
	line  int // the line of the row's event (a call's beginning), -1 when none
	line2 int // the line of a call's end, -1 when none
	text  string
	x     int // ladder code
	flags int
	band  int   // the band the row belongs to, -1 when none
	conn  int   // the TCP connection of a segment, -1 when none
	recv  int64 // µs at which the other traced host received the frame, -1
}

// band is a run of data segments on one connection and in one direction,
// with the bare ACKs coming back and the send and recv calls that moved
// the data: the text view's band.
type band struct {
	first, last int // member rows, -1 when the members are not in the page
	row         int // the band's own row when the members are not in the page, -1
	at          int64
	t0, t1      int64
	host, fd    int
	label       int
	side        int
	conn        int
	segs, acks  int
	retrans     int
	drops       int
	bytes       int64
	calls       [2][2]int // per side: sends, recvs
	text        string
}

// stateRec is a change of a socket's state.
type stateRec struct {
	at       int64
	host, fd int
	from, to int
	cause    string
	line     int
}

// tcbRec is a TCB sample: its JSON line.
type tcbRec struct {
	at       int64
	host, fd int
	line     int
}

// hostRec is a host of the run.
type hostRec struct {
	Name  string         `json:"name"`
	Role  trace.Role     `json:"role,omitempty"`
	Side  int            `json:"side"`
	MAC   string         `json:"mac,omitempty"`
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	MTU   int            `json:"mtu,omitempty"`
	// Kernel says the host is a kernel's TCP (--net os).
	Kernel string `json:"kernel,omitempty"`
}

// connRec is a TCP connection: its ends, each direction's initial
// sequence number and window scale (from the SYNs), and each traced
// host's socket on it.
type connRec struct {
	A     string    `json:"a"`
	B     string    `json:"b"`
	ISN   [2]*int64 `json:"isn"` // A's, B's
	WS    [2]int    `json:"ws"`
	Socks [][2]int  `json:"socks"` // [host, fd]
	Label int       `json:"label"`
	key   connKey
}

type (
	dirKey  struct{ src, dst netip.AddrPort }
	connKey struct{ a, b netip.AddrPort }
	sockKey struct{ host, fd int }
	callKey struct {
		host, fd int
		op       trace.Op
	}
	frameKey struct {
		src, dst netip.AddrPort
		seq, ack uint32
		flags    trace.TCPFlags
		n        int
	}
)

func connOf(s *trace.Segment) connKey {
	a, b := s.Src, s.Dst
	if b.Addr().Less(a.Addr()) || (a.Addr() == b.Addr() && b.Port() < a.Port()) {
		a, b = b, a
	}
	return connKey{a, b}
}

// Options tune a Builder.
type Options struct {
	// Title heads the page; empty means the run's own.
	Title string
	// Bands says to keep only a summary of each band of bulk data, as the
	// text view shows it, and not its events: for runs too long to keep
	// every segment in a page (see EveryLimit).
	Bands bool
}

// EveryLimit is the most events of a run whose page keeps every segment
// steppable (Write decides by it): a 100 MiB demo records 150,000; a 1
// GiB demo 1.5 million, whose page keeps its bands.
const EveryLimit = 400_000

// Builder turns a run's events into the page's model. It is a
// trace.Sink: a live run feeds it as events come, a recording all at
// once. Its methods may be called from several goroutines.
type Builder struct {
	mu  sync.Mutex
	opt Options

	n      int64 // events seen
	lastAt int64
	t0     time.Time
	title  string
	about  string

	hosts   []hostRec
	hostIdx map[string]int
	traced  map[netip.Addr]int // addresses of hosts that record their frames -> host
	ftpSide trace.Role

	lines  [][]byte
	rows   []row
	stable int // rows below this never change again, but for changes
	// changes are the rows changed below stable: a frame's row learning
	// when its receiver recorded it.
	changes []int
	bands   []band
	states  []stateRec
	tcbs    []tcbRec
	conns   []*connRec
	connIx  map[connKey]int

	isn        map[dirKey]uint32
	ws         map[dirKey]int
	sockConn   map[sockKey]int
	sockState  map[sockKey]int
	open       map[callKey]bool
	recvOf     map[frameKey]int // a frame's row, until its receiver records it
	pending    *pendingCall
	cur        *openBand
	encodeBuf  bytes.Buffer
	encoder    *json.Encoder
	closedBand int   // bands below this never change again
	ver        int64 // counts changes, for Version
	graph      *graphJSON
}

// pendingCall is a call's beginning not yet made a row: if its end comes
// next, the call is one row, as the text view shows it.
type pendingCall struct {
	e      trace.Event
	line   int
	at     int64
	states []heldState
}

type heldState struct {
	e    trace.Event
	line int
	at   int64
}

// openBand is the band under way.
type openBand struct {
	id        int // in b.bands, -1 until it has bandMin segments
	conn      int
	key       connKey
	from      netip.AddrPort
	side      int
	host, fd  int
	label     int
	start     time.Time
	first     time.Time
	last      time.Time
	lastAt    int64
	segs      int
	acks      int
	retrans   int
	drops     int
	bytes     int64
	calls     [2][2]int
	firstRow  int // every event kept: the first member's row
	held      []heldRow
	lastTCB   map[sockKey]heldRow // Bands: the band's last TCB sample of each socket
	collapsed bool
}

// heldRow is a band member held back (Bands) until the band is long
// enough to be one row, or a TCB sample held back until its band ends.
type heldRow struct {
	r    row
	line []byte
	tcb  *tcbRec
}

// NewBuilder returns a Builder.
func NewBuilder(opt Options) *Builder {
	b := &Builder{
		opt: opt, title: opt.Title, hostIdx: map[string]int{}, traced: map[netip.Addr]int{},
		connIx: map[connKey]int{}, isn: map[dirKey]uint32{}, ws: map[dirKey]int{},
		sockConn: map[sockKey]int{}, sockState: map[sockKey]int{}, open: map[callKey]bool{},
		recvOf: map[frameKey]int{},
	}
	b.encoder = json.NewEncoder(&b.encodeBuf)
	b.encoder.SetEscapeHTML(false)
	return b
}

// Event implements trace.Sink.
func (b *Builder) Event(e *trace.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.event(e)
}

// Flush implements trace.Sink: a call's beginning held back and the band
// under way become rows.
func (b *Builder) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushPending()
	b.ver++
	return nil
}

// Finish ends the run: the band under way is closed.
func (b *Builder) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endBand()
	b.flushPending()
	b.stable = len(b.rows)
	b.closedBand = len(b.bands)
	b.ver++
}

// SetGraph adds the run's time-sequence graph to the model, drawn from
// its events (a live run's, once it is over).
func (b *Builder) SetGraph(events []trace.Event) {
	b.mu.Lock()
	t0 := b.t0
	b.mu.Unlock()
	g := graphOf(events, t0)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.graph = g
	b.ver++
}

// Version changes whenever the model does.
func (b *Builder) Version() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ver
}

func (b *Builder) encode(e *trace.Event) []byte {
	b.encodeBuf.Reset()
	if err := b.encoder.Encode(e); err != nil {
		return []byte(`{"kind":"note","layer":"nsftp","text":"this event could not be encoded"}`)
	}
	return bytes.Clone(bytes.TrimRight(b.encodeBuf.Bytes(), "\n"))
}

func (b *Builder) keep(e *trace.Event) int {
	b.lines = append(b.lines, b.encode(e))
	return len(b.lines) - 1
}

func (b *Builder) micros(t time.Time) int64 {
	if t.IsZero() || b.t0.IsZero() {
		return 0
	}
	return t.Sub(b.t0).Microseconds()
}

func (b *Builder) event(e *trace.Event) {
	b.n++
	b.ver++
	at := int64(e.Seq)
	if at <= b.lastAt {
		at = b.lastAt + 1 // a recording without seq, or out of order
	}
	b.lastAt = at
	if b.t0.IsZero() && !e.Time.IsZero() {
		b.t0 = e.Time
	}
	switch {
	case e.Kind == trace.KindRun && e.Run != nil && b.title == "":
		b.title, b.about = e.Run.Title, e.Run.About
	case e.Kind == trace.KindHost && e.HostInfo != nil:
		h := b.host(e.Host, e.HostInfo.Role)
		hr := &b.hosts[h]
		hr.MAC, hr.Addrs, hr.MTU, hr.Kernel = e.HostInfo.MAC, e.HostInfo.Addrs, e.HostInfo.MTU, e.HostInfo.Kernel
		for _, p := range e.HostInfo.Addrs {
			b.traced[p.Addr()] = h
		}
	case e.Kind == trace.KindConfig && e.Config != nil && e.Config.Addr.IsValid() && !e.Config.Removed:
		b.traced[e.Config.Addr.Addr()] = b.host(e.Host, "")
	case e.Message != nil && e.Kind != trace.KindRun:
		if b.ftpSide == "" || (e.Side == trace.Client && b.ftpSide != trace.Client) {
			b.ftpSide = e.Side
		}
	}
	if e.Kind == trace.KindTCB && e.TCB != nil {
		b.tcb(e, at)
		return
	}
	if s := e.Segment; s != nil && e.Kind == trace.KindSegment {
		b.learn(e)
		if s.Dir == trace.In {
			if _, ok := b.traced[s.Src.Addr()]; ok {
				b.received(e)
				return
			}
		}
	}
	if c := b.cur; c != nil {
		if b.absorb(e, at) {
			return
		}
		b.endBand()
	}
	if b.bulk(e) {
		b.flushPending()
		b.startBand(e, at)
		return
	}
	b.show(e, at)
}

// host is the index of the named host, added if new.
func (b *Builder) host(name string, role trace.Role) int {
	if i, ok := b.hostIdx[name]; ok {
		if role != "" && b.hosts[i].Role == "" {
			b.hosts[i].Role = role
		}
		return i
	}
	side := sideClient
	switch {
	case role == trace.Server || role == "" && name == "server":
		side = sideServer
	case role == trace.Client || role == "" && name == "client":
	default:
		for _, h := range b.hosts {
			if h.Side == sideClient {
				side = sideServer
			}
		}
	}
	b.hosts = append(b.hosts, hostRec{Name: name, Role: role, Side: side})
	b.hostIdx[name] = len(b.hosts) - 1
	return len(b.hosts) - 1
}

// sideHost is the host that plays an FTP side.
func (b *Builder) sideHost(r trace.Role) int {
	for i, h := range b.hosts {
		if h.Role == r {
			return i
		}
	}
	return b.host(string(r), r)
}

// learn notes what a frame tells: its connection, initial sequence
// numbers and window scales, the highest sequence number sent.
func (b *Builder) learn(e *trace.Event) {
	s := e.Segment
	if s.Proto != "tcp" || !s.Src.IsValid() {
		return
	}
	k := connOf(s)
	ci, ok := b.connIx[k]
	if !ok {
		ci = len(b.conns)
		b.conns = append(b.conns, &connRec{A: k.a.String(), B: k.b.String(), WS: [2]int{-1, -1}, key: k, Label: labelCode[s.Label]})
		b.connIx[k] = ci
	}
	c := b.conns[ci]
	if c.Label == 0 && s.Label != "" {
		c.Label = labelCode[s.Label]
	}
	if s.Socket != 0 && e.Host != "" {
		sk := sockKey{b.host(e.Host, ""), s.Socket}
		if b.sockConn[sk] != ci+1 {
			b.sockConn[sk] = ci + 1
			c.Socks = append(c.Socks, [2]int{sk.host, sk.fd})
		}
	}
	d := dirKey{s.Src, s.Dst}
	if s.Flags.Has(trace.SYN) {
		b.isn[d] = s.Seq
		b.ws[d] = s.WindowScale
		i := 0
		if s.Src != k.a {
			i = 1
		}
		v := int64(s.Seq)
		c.ISN[i] = &v
		c.WS[i] = s.WindowScale
	}
}

// retransmission reports a segment its recording host marked as
// resending sequence space: the host knows what it sent.
func (b *Builder) retransmission(e *trace.Event) bool {
	return e.Segment.Proto == "tcp" && e.Segment.Retransmit
}

// received notes when a frame a traced host sent reached the other.
func (b *Builder) received(e *trace.Event) {
	s := e.Segment
	k := frameKey{s.Src, s.Dst, s.Seq, s.Ack, s.Flags, s.Len}
	if r, ok := b.recvOf[k]; ok {
		delete(b.recvOf, k)
		if r < len(b.rows) {
			b.rows[r].recv = b.micros(e.Time)
			b.changes = append(b.changes, r)
		}
	}
}

func (b *Builder) tcb(e *trace.Event, at int64) {
	if e.Host == "" {
		return
	}
	sk := sockKey{b.host(e.Host, ""), e.TCB.Socket}
	rec := tcbRec{at: at, host: sk.host, fd: sk.fd}
	if c := b.cur; c != nil && c.collapsed && b.opt.Bands && b.sockConn[sk]-1 == c.conn {
		// Only the band's last sample of each socket stays; the band's
		// moment is after it, so the band's row shows it.
		if c.lastTCB == nil {
			c.lastTCB = map[sockKey]heldRow{}
		}
		c.lastTCB[sk] = heldRow{line: b.encode(e), tcb: &rec}
		c.lastAt = at
		b.updateBand(c)
		return
	}
	if c := b.cur; c != nil && !c.collapsed && b.opt.Bands {
		c.held = append(c.held, heldRow{line: b.encode(e), tcb: &rec})
		return
	}
	rec.line = b.keep(e)
	b.tcbs = append(b.tcbs, rec)
}

// bulk reports whether e is a data segment that can open a band: data on
// a connection that is not the control connection, with no flag that
// opens, closes or resets.
func (b *Builder) bulk(e *trace.Event) bool {
	s := e.Segment
	return e.Kind == trace.KindSegment && s != nil && s.Proto == "tcp" && s.Len > 0 && s.Label != trace.Control &&
		s.Flags&(trace.SYN|trace.FIN|trace.RST) == 0
}
