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

// bandMin is how many data segments in a row, on one connection and in
// one direction, are shown as one line.
const bandMin = 4

// bandSpan is the longest a band's line covers: a longer transfer gets a
// line a second, so a live trace shows it moving.
const bandSpan = time.Second

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

// names is the article's kernel call, today's kernel function and the
// netstack call behind a socket call; for the kernel's calls, the system
// calls nsftp made.
func names(c *Call) string {
	how := c.Netstack
	if how == "" {
		how = c.Syscall
	}
	return fmt.Sprintf("%s -> %s | %s", c.Article, c.Kernel, how)
}

func (t *Text) beginLine(e *Event) {
	c := e.Call
	t.line(t.fit(t.head(e.Time, e.Host, c.Socket, c.Label), BSDCall(c, false), t.paint("dim", names(c))))
}

// callLine shows a call that ended with nothing in between on one line;
// begin may be nil (a recording without beginnings).
func (t *Text) callLine(begin, end *Event) {
	c := end.Call
	at := end.Time
	if begin != nil {
		at = begin.Time
	}
	body := BSDCall(c, true)
	if r := CallResult(c); r != "" && c.Op != OpAccept && c.Op != OpRecv && c.Op != OpRecvfrom && c.Op != OpGetsockname && c.Op != OpGetpeername {
		body += " = " + r
	}
	var states []string
	for _, s := range t.heldState {
		states = append(states, string(s.State.From)+" -> "+string(s.State.To))
	}
	if len(states) > 0 {
		body += "  " + t.paint("bold", strings.Join(states, ", "))
	} else if c.StateAfter != "" {
		body += "  " + string(c.StateAfter)
	}
	tail := t.paint("dim", names(c)) + t.errText(c)
	t.line(t.fit(t.head(at, end.Host, c.Socket, c.Label), body, tail))
}

// resultLine shows what a call whose beginning had a line of its own
// returned.
func (t *Text) resultLine(e *Event) {
	c := e.Call
	body := "└ " + string(c.Op) + "() = " + CallResult(c)
	if c.Closed {
		body = "└ " + string(c.Op) + "() ended: this program closed the socket"
		t.line(t.head(e.Time, e.Host, c.Socket, c.Label) + t.paint("dim", body))
		return
	}
	tail := fmt.Sprint(c.Duration.Round(time.Microsecond))
	if c.StateAfter != "" {
		tail = string(c.StateAfter) + "  " + tail
	}
	tail = t.paint("dim", tail) + t.errText(c)
	t.line(t.fit(t.head(e.Time, e.Host, c.Socket, c.Label), body, tail))
}

func (t *Text) errText(c *Call) string {
	if c.Err == "" || c.Err == "EOF" || c.Closed {
		return ""
	}
	return "  " + t.paint("error", "error: "+Clean(c.Err))
}

// BSDCall is a call as a program writes it, with its arguments and, when
// done, its result where the result is the point (accept, recv,
// getsockname).
func BSDCall(c *Call, done bool) string {
	switch c.Op {
	case OpSocket:
		return "socket()"
	case OpBind:
		return "bind(" + addrText(c.Local) + ")"
	case OpListen:
		return "listen(" + addrText(c.Local) + ")"
	case OpAccept:
		if done && c.Err == "" {
			return fmt.Sprintf("accept() = fd%d from %s", c.NewSocket, addrText(c.Remote))
		}
		return "accept()"
	case OpConnect:
		return "connect(" + addrText(c.Remote) + ")"
	case OpSend:
		return fmt.Sprintf("send(%d bytes)", c.Bytes)
	case OpRecv:
		if !done {
			return "recv()"
		}
		if c.Err == "EOF" {
			return "recv() = 0 (EOF: the peer's FIN)"
		}
		if c.Err != "" {
			return "recv() = -1"
		}
		return fmt.Sprintf("recv() = %d bytes", c.Bytes)
	case OpGetsockname:
		return "getsockname() = " + addrText(c.Local)
	case OpGetpeername:
		return "getpeername() = " + addrText(c.Remote)
	case OpSendto:
		return fmt.Sprintf("sendto(%d bytes, %s)", c.Bytes, addrText(c.Remote))
	case OpRecvfrom:
		if !done {
			return "recvfrom()"
		}
		if c.Err != "" {
			return "recvfrom() = -1"
		}
		return "recvfrom() = " + CallResult(c)
	}
	return string(c.Op) + "()"
}

// CallResult is what a call returned.
func CallResult(c *Call) string {
	switch {
	case c.Err == "EOF":
		return "0 (EOF: the peer's FIN)"
	case c.Err != "":
		return "-1"
	case c.Op == OpAccept:
		return fmt.Sprintf("fd%d from %s", c.NewSocket, addrText(c.Remote))
	case c.Op == OpRecv || c.Op == OpSend || c.Op == OpSendto:
		return fmt.Sprintf("%d bytes", c.Bytes)
	case c.Op == OpRecvfrom:
		return fmt.Sprintf("%d bytes from %s", c.Bytes, addrText(c.Remote))
	case c.Op == OpSocket:
		return fmt.Sprintf("fd%d", c.Socket)
	case c.Op == OpGetsockname:
		return addrText(c.Local)
	case c.Op == OpGetpeername:
		return addrText(c.Remote)
	}
	return "0"
}

func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (t *Text) stateLine(e *Event) {
	s := e.State
	body := "  " + t.paint("bold", fmt.Sprintf("%s -> %s", s.From, s.To))
	tail := s.Cause
	if s.Listener != 0 {
		tail += fmt.Sprintf(" on fd%d: a new connection", s.Listener)
	}
	if s.To == StateTimeWait {
		switch info := t.infos[e.Host]; {
		case info == nil || info.TimeWait == 0:
		case info.Kernel != "":
			tail += fmt.Sprintf("; TIME-WAIT lasts %ds on Linux (TCP_TIMEWAIT_LEN, 2 MSL)", int(info.TimeWait.Seconds()))
		case info.TimeWait != 60*time.Second:
			tail += fmt.Sprintf("; TIME-WAIT lasts %v here (2 MSL; Linux: 60s)", info.TimeWait)
		}
	}
	t.line(t.fit(t.head(e.Time, e.Host, s.Socket, s.Label), body, t.paint("dim", tail)))
	t.kernelStack(s.Stack)
}

// kernelStack shows, with Explain, the kernel functions that did what the
// line above says: the article's Figure 3, for the kernel.
func (t *Text) kernelStack(stack []string) {
	if !t.opt.Explain || len(stack) == 0 {
		return
	}
	indent := strings.Repeat(" ", headWidth+4)
	chain := strings.Join(stack, " -> ")
	if chain == t.lastChain {
		t.line(indent + t.paint("dim", "(by the same kernel functions as above)"))
		return
	}
	t.line(t.wrap(indent+t.paint("dim", "in the kernel: ")+chain, headWidth+6))
	t.lastChain = chain
}

// tcpEventLine shows what a kernel's TCP did on its own: a retransmission,
// a reset.
func (t *Text) tcpEventLine(e *Event) {
	te := e.TCPEvent
	if te == nil {
		return
	}
	var what string
	switch te.What {
	case Retransmit:
		what = "the kernel retransmits"
	case ResetSent:
		what = "the kernel sends a reset"
	case ResetReceived:
		what = "the kernel takes a reset"
	default:
		what = string(te.What)
	}
	body := "  " + t.paint("error", "! "+what)
	if te.State != "" {
		body += " in " + string(te.State)
	}
	tail := ""
	if te.Reason != "" {
		tail = "reason " + Clean(te.Reason) + "  "
	}
	if te.Src.IsValid() {
		tail += fmt.Sprintf("%s > %s", te.Src, te.Dst)
	}
	t.line(t.fit(t.head(e.Time, e.Host, te.Socket, te.Label), body, t.paint("dim", tail)))
	t.kernelStack(te.Stack)
}

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

func (t *Text) ftpLine(e *Event) string {
	m := e.Message
	head := t.head(e.Time, string(m.Side), 0, m.Conn)
	switch e.Kind {
	case KindCommand:
		arrow := "->"
		if m.Side == Server {
			arrow = "<-"
		}
		return fmt.Sprintf("%s%s %s", head, arrow, t.paint("bold", Clean(RedactCommand(m.Text))))
	case KindReply:
		arrow := "<-"
		if m.Side == Server {
			arrow = "->"
		}
		text := strings.ReplaceAll(m.Text, "\n", " / ")
		return fmt.Sprintf("%s%s %s", head, arrow, t.paint("bold", fmt.Sprintf("%d %s", m.Code, Clean(text))))
	case KindDataOpen:
		return fmt.Sprintf("%s== %s data connection open: %s <-> %s", head, m.Mode, addrText(m.Local), addrText(m.Remote))
	case KindDataClose:
		s := fmt.Sprintf("%s== data connection closed after %d bytes", head, m.Bytes)
		if m.Err != "" {
			s += ": " + Clean(m.Err)
		}
		return s
	case KindTLS:
		return fmt.Sprintf("%s== TLS: %s", head, Clean(m.Text))
	}
	s := fmt.Sprintf("%s!! %s", head, Clean(m.Text))
	if m.Err != "" {
		s += ": " + Clean(m.Err)
	}
	return s
}

// ConfigText says what a change in a host's configuration is and where it
// came from: "address 192.0.2.57/24, router 192.0.2.1, name server
// 192.0.2.1 (DHCP lease from 192.0.2.1 for 1h0m0s)".
func ConfigText(c *Config) string {
	var parts []string
	if c.Addr.IsValid() {
		parts = append(parts, "address "+c.Addr.String())
	}
	if c.Router.IsValid() {
		parts = append(parts, "router "+c.Router.String())
	}
	if len(c.DNS) > 0 {
		var ds []string
		for _, a := range c.DNS {
			ds = append(ds, a.String())
		}
		name := "name server "
		if len(ds) > 1 {
			name = "name servers "
		}
		parts = append(parts, name+strings.Join(ds, " "))
	}
	what := strings.Join(parts, ", ")
	if c.Removed {
		what = "gave up " + what
	}
	var from string
	switch c.Source {
	case FromDHCP:
		from = "DHCP"
		if !c.Removed {
			from = "DHCP lease"
			if c.Server.IsValid() {
				from += " from " + c.Server.String()
			}
			if c.Lease > 0 {
				from += " for " + c.Lease.String()
			}
		}
	case FromRA:
		from = "router advertisement"
	case FromSLAAC:
		from = "SLAAC: an advertised prefix and the interface's own identifier"
	case FromLinkLocal:
		from = "link-local"
	case FromCommandLine:
		from = "command line"
	case FromResolvConf:
		from = "/etc/resolv.conf"
	default:
		from = string(c.Source)
	}
	return what + " (" + from + ")"
}

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

func (t *Text) hostName(a netip.AddrPort) string {
	if h, ok := t.hostOf[a.Addr()]; ok {
		return h
	}
	return a.Addr().String()
}

// Bytes writes n for people: "274 bytes", "1.2 MB".
func Bytes(n int64) string {
	switch {
	case n == 1:
		return "1 byte"
	case n < 10000:
		return strconv.FormatInt(n, 10) + " bytes"
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// Duration writes d for people: "830 µs", "12.3 ms", "1.50 s".
func Duration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// thousands writes n with separators: 12,345.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
