package trace

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TextOptions tune the text view. The zero value shows everything, bulk
// data collapsed, on lines of any length.
type TextOptions struct {
	// Width is the terminal's width in columns. A call line that would be
	// wider puts the article's, the kernel's and netstack's names on a
	// continuation line, and a segment line leaves out its addresses
	// (a SYN's go on a continuation line). 0 means no limit: a pipe or a
	// file keeps full lines.
	Width int
	// Color paints the view for a terminal: control blue, data orange,
	// errors red.
	Color bool
	// Explain shows, under each outgoing segment, the netstack functions
	// that produced it (when recorded).
	Explain bool
	// Every shows every segment of bulk data, instead of one line per run
	// of them.
	Every bool
	// FTP, if set, shows only the FTP dialogue as that side saw it (-v).
	FTP Role
}

// Text renders events as lines for people: one per socket call (or two,
// its beginning and its result, when something happened in between), per
// TCP state change, per frame (each frame once, as its sender sent it) and
// per FTP step, in the order they happened. Times are milliseconds since
// the first event. It is a Sink, and a pure function of the events: a
// recording read back renders exactly as the live run did.
type Text struct {
	w   *lineWriter
	opt TextOptions
	err error

	t0     time.Time
	hostOf map[netip.Addr]string // addresses of the hosts that record frames
	infos  map[string]*HostInfo

	isn    map[dirKey]uint32 // initial sequence numbers, from the SYNs
	wscale map[dirKey]int    // window scales, from the SYNs
	connOf map[sockKey]connKey

	// A bulk transfer's events are nearly all of one connection, one
	// way: the last key each map was asked for, and its answer, spare
	// hashing two addresses for every segment (a traced download's
	// largest cost in this view).
	last struct {
		sock  sockKey
		conn  connKey
		hasC  bool
		src   netip.Addr
		trace bool // src is a traced host's
		hasT  bool
	}

	held      *Event   // a call's beginning, not yet shown
	heldState []*Event // state changes the held call made
	open      map[callKey]bool
	band      *textBand
	lastChain string
}

type (
	dirKey  struct{ src, dst netip.AddrPort }
	connKey struct{ a, b netip.AddrPort }
	sockKey struct {
		host   string
		socket int
	}
	callKey struct {
		host   string
		socket int
		op     Op
	}
)

func connOf(s *Segment) connKey {
	a, b := s.Src, s.Dst
	if b.Addr().Less(a.Addr()) || (a.Addr() == b.Addr() && b.Port() < a.Port()) {
		a, b = b, a
	}
	return connKey{a, b}
}

// NewText returns a text view writing to w.
func NewText(w io.Writer, opt TextOptions) *Text {
	return &Text{
		w: newLineWriter(w, 32<<10), opt: opt,
		hostOf: map[netip.Addr]string{}, infos: map[string]*HostInfo{},
		isn: map[dirKey]uint32{}, wscale: map[dirKey]int{},
		connOf: map[sockKey]connKey{}, open: map[callKey]bool{},
	}
}

// Event implements Sink.
func (t *Text) Event(e *Event) {
	if t.t0.IsZero() {
		t.t0 = e.Time
	}
	switch e.Kind {
	case KindHost:
		if e.HostInfo != nil {
			t.infos[e.Host] = e.HostInfo
			for _, p := range e.HostInfo.Addrs {
				t.hostOf[p.Addr()] = e.Host
				t.last.hasT = false
			}
		}
		return
	case KindTCB:
		return
	case KindConfig:
		if c := e.Config; c != nil && c.Addr.IsValid() && !c.Removed {
			t.hostOf[c.Addr.Addr()] = e.Host
			t.last.hasT = false
		}
	}
	if t.opt.FTP != "" {
		if e.Message != nil && e.Side == t.opt.FTP {
			t.line(t.ftpLine(e))
		}
		return
	}
	if e.Kind == KindDrop {
		if t.band != nil && e.Segment != nil && e.Segment.Proto == "tcp" && connOf(e.Segment) == t.band.conn {
			t.band.drops++
			return
		}
		t.endBand()
		t.show(e)
		return
	}
	if s := e.Segment; s != nil {
		t.learn(e)
		if t.duplicate(e) {
			return
		}
	}
	if t.band != nil && t.band.absorb(t, e) {
		return
	}
	t.endBand()
	if !t.opt.Every && t.bulk(e) {
		t.band = newTextBand(t, e)
		return
	}
	t.show(e)
}

// Flush implements Sink: a call's beginning held back and a band under way
// are shown, and the output is flushed.
func (t *Text) Flush() error {
	if t.opt.FTP == "" {
		t.endBand()
		t.flushHeld()
	}
	if t.err == nil {
		t.err = t.w.Flush()
	}
	return t.err
}

// EndBatch implements LineSink: the lines shown so far are written out (a
// call's beginning held back and a band under way stay held).
func (t *Text) EndBatch() error {
	if t.err == nil {
		t.err = t.w.Flush()
	}
	return t.err
}

// learn notes what segments tell: which socket is on which connection,
// initial sequence numbers and window scales.
func (t *Text) learn(e *Event) {
	s := e.Segment
	if s.Proto != "tcp" {
		return
	}
	if s.Socket != 0 {
		k, c := sockKey{e.Host, s.Socket}, connOf(s)
		if !t.last.hasC || k != t.last.sock || c != t.last.conn {
			t.connOf[k] = c
			t.last.sock, t.last.conn, t.last.hasC = k, c, true
		}
	}
	d := dirKey{s.Src, s.Dst}
	if s.Flags.Has(SYN) {
		t.isn[d] = s.Seq
		t.wscale[d] = s.WindowScale
	}
}

// connOfSocket is the connection a host's socket was last seen on.
func (t *Text) connOfSocket(k sockKey) connKey {
	if t.last.hasC && t.last.sock == k {
		return t.last.conn
	}
	return t.connOf[k]
}

func (t *Text) traced(a netip.AddrPort) bool {
	if t.last.hasT && t.last.src == a.Addr() {
		return t.last.trace
	}
	_, ok := t.hostOf[a.Addr()]
	t.last.src, t.last.trace, t.last.hasT = a.Addr(), ok, true
	return ok
}

// duplicate reports a frame received from a host that records its own
// frames: it was shown as that host sent it.
func (t *Text) duplicate(e *Event) bool {
	return e.Segment.Dir == In && t.traced(e.Segment.Src)
}

// retransmission reports a segment its recording host marked as resending
// sequence space (Segment.Retransmit): the host knows what it sent, and
// the view does not guess it again.
func (t *Text) retransmission(s *Segment) bool { return s.Proto == "tcp" && s.Retransmit }

// show renders one event, holding a call's beginning back until the next
// event says whether the call ended at once (one line) or something
// happened first (a line for the beginning, and one for the result).
func (t *Text) show(e *Event) {
	if h := t.held; h != nil {
		switch {
		case e.Kind == KindCall && e.Phase == End && sameCall(h, e):
			t.held = nil
			t.callLine(h, e)
			t.heldState = t.heldState[:0]
			return
		case e.Kind == KindState && e.Host == h.Host && e.State.Socket == h.Call.Socket && e.State.By == ByCall:
			// The held call's own doing: shown on its line if it ends now.
			ev := *e
			t.heldState = append(t.heldState, &ev)
			return
		}
		t.flushHeld()
	}
	switch e.Kind {
	case KindRun:
		t.runLine(e)
	case KindCall:
		if e.Call == nil {
			return
		}
		if e.Phase == Begin {
			ev := *e
			t.held = &ev
			return
		}
		k := callKey{e.Host, e.Call.Socket, e.Call.Op}
		if t.open[k] {
			delete(t.open, k)
			t.resultLine(e)
			return
		}
		t.callLine(nil, e)
	case KindSegment:
		t.segmentLine(e)
	case KindState:
		t.stateLine(e)
	case KindConfig:
		if e.Config != nil {
			t.line(t.wrap(t.head(e.Time, e.Host, 0, "")+"== "+ConfigText(e.Config), headWidth+3))
		}
	case KindDrop:
		t.dropLine(e)
	case KindTCPEvent:
		t.tcpEventLine(e)
	default:
		if e.Message != nil {
			t.line(t.wrap(t.ftpLine(e), headWidth+3))
		}
	}
}

// flushHeld shows a held call's beginning on a line of its own, and the
// state changes it made so far.
func (t *Text) flushHeld() {
	h := t.held
	if h == nil {
		return
	}
	t.held = nil
	t.open[callKey{h.Host, h.Call.Socket, h.Call.Op}] = true
	t.beginLine(h)
	for _, s := range t.heldState {
		t.stateLine(s)
	}
	t.heldState = t.heldState[:0]
}

func sameCall(a, b *Event) bool {
	return a.Host == b.Host && a.Call.Socket == b.Call.Socket && a.Call.Op == b.Call.Op
}

func (t *Text) line(s string) {
	if t.err != nil {
		return
	}
	t.w.WriteString(s)
	_, t.err = t.w.WriteString("\n")
}

// paint colours s for a terminal.
func (t *Text) paint(kind, s string) string {
	if !t.opt.Color || s == "" {
		return s
	}
	codes := map[string]string{"control": "34", "data": "33", "error": "31", "dim": "2", "bold": "1"}
	if c, ok := codes[kind]; ok {
		return "\033[" + c + "m" + s + "\033[0m"
	}
	return s
}

// headWidth is the width of a line's head: time, host, socket, connection.
const headWidth = 11 + 1 + 6 + 1 + 4 + 1 + 7 + 1

func (t *Text) stamp(at time.Time) string {
	return stamp(at.Sub(t.t0), 11, 3)
}

// stamp is a time since a run's first event for a column of the given
// width: milliseconds with decimals places below 10 s ("  123.456ms"),
// seconds from there on, with as many places as the column leaves room
// for (" 12.345678s", "1234.5678s"), so the column stays aligned however
// long the run.
func stamp(d time.Duration, width, decimals int) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%*.*fms", width-2, decimals, float64(d.Microseconds())/1000)
	}
	digits := len(strconv.FormatInt(int64(d/time.Second), 10))
	places := min(max(width-3-digits, 0), 6) // a space, the point, the s
	return fmt.Sprintf("%*.*fs", width-1, places, d.Seconds())
}

// head is the start of every line: time, host, socket and connection.
func (t *Text) head(at time.Time, host string, fd int, label Conn) string {
	sock := "    "
	if fd > 0 {
		sock = fmt.Sprintf("fd%-2d", fd)
	}
	return fmt.Sprintf("%s %-6s %s %s ", t.stamp(at), host, sock, t.paint(string(label), fmt.Sprintf("%-7s", label)))
}

// fit puts tail after body when the line fits the width, else on a
// continuation line: under the body, or further left when it would not fit
// there either.
func (t *Text) fit(head, body, tail string) string {
	if tail == "" {
		return head + body
	}
	n := visibleLen(tail)
	if t.opt.Width <= 0 || headWidth+visibleLen(body)+2+n <= t.opt.Width {
		return head + body + "  " + tail
	}
	indent := headWidth + 2
	if indent+n > t.opt.Width {
		indent = max(4, t.opt.Width-n)
	}
	if indent+n > t.opt.Width {
		// Longer than a line (a kernel's cause can be): broken at spaces.
		return head + body + "\n" + t.wrap(strings.Repeat(" ", indent)+tail, indent)
	}
	return head + body + "\n" + strings.Repeat(" ", indent) + tail
}

// visibleLen is the width of s on a terminal, colour codes left out.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == '\033' {
			if j := strings.IndexByte(s[i:], 'm'); j >= 0 {
				i += j + 1
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

func (t *Text) runLine(e *Event) {
	if e.Run == nil {
		return
	}
	s := Clean(e.Run.Title)
	if e.Run.About != "" {
		s += ": " + Clean(e.Run.About)
	}
	t.line(t.wrap(s, 0))
	t.line("")
}

// wrap breaks s at spaces to fit the width, continuation lines indented
// by indent.
func (t *Text) wrap(s string, indent int) string {
	if t.opt.Width <= 0 || visibleLen(s) <= t.opt.Width {
		return s
	}
	var b strings.Builder
	col := 0
	for i, w := range strings.Split(s, " ") {
		n := visibleLen(w)
		if i > 0 {
			if col+1+n > t.opt.Width && col > indent {
				b.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += n
	}
	return b.String()
}
