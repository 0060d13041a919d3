package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"nsftp/ftp"
	"nsftp/stack"
)

// record is one event of a run, from the stack (socket calls, segments)
// or from the FTP layer (commands, replies, data connections), kept in the
// order they happened for the diagram.
type record struct {
	Stack *stack.Event
	FTP   *ftp.Event
}

// tracer joins the stack's socket and segment events and the FTP dialogue
// into one timeline and renders it: as text for people (--trace), as JSON
// lines for programs (--trace=json), FTP steps only (-v), or not at all
// (records kept for a diagram). Every event passes through one mutex, so
// the order shown is the order things happened in.
type tracer struct {
	mu       sync.Mutex
	w        io.Writer
	format   string // "text", "json", "ftp" (commands and replies only) or ""
	segments bool   // capture and show segments
	explain  bool   // show each outgoing segment's netstack call chain
	color    bool
	start    time.Time
	err      error // first write error
	stopped  bool  // events after stop are dropped: teardown is not the run

	keep    bool     // keep records (for a diagram)
	records []record // every event, in order, when keep is set

	// pending holds the socket calls that have begun (seen through the
	// hosts' gates) and not yet completed, so the segments they cause can
	// be shown under them.
	pending   map[pendingKey]*pendingCall
	isn       map[string]uint32 // initial sequence numbers by "src>dst"
	wscale    map[string]int    // window scale by "src>dst", from the SYNs
	lastChain string
}

type pendingKey struct {
	host string
	fd   int
}

type pendingCall struct {
	call   stack.Call
	host   string
	at     time.Time
	opened bool // its header line is printed and segments follow it
}

func newTracer(w io.Writer, format string, segments bool) *tracer {
	t := &tracer{w: w, format: format, segments: segments, start: time.Now(),
		pending: map[pendingKey]*pendingCall{}, isn: map[string]uint32{}, wscale: map[string]int{}}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == "" {
		t.color = true
	}
	return t
}

// gate wraps a host's gate (nil for none) so the tracer learns of each
// call as it begins.
func (t *tracer) gate(host string, next stack.Gate) stack.Gate {
	return func(ctx context.Context, c stack.Call) error {
		if next != nil {
			if err := next(ctx, c); err != nil {
				return err
			}
		}
		t.begin(host, c)
		return nil
	}
}

func (t *tracer) begin(host string, c stack.Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.format != "text" {
		return
	}
	t.pending[pendingKey{host, c.Socket}] = &pendingCall{call: c, host: host, at: time.Now()}
}

func (t *tracer) stackEvent(ev stack.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if t.keep {
		t.records = append(t.records, record{Stack: &ev})
	}
	switch t.format {
	case "json":
		t.writeJSON(struct {
			Layer string `json:"layer"`
			stack.Event
		}{"stack", ev})
	case "text":
		if ev.Call != nil {
			t.callDone(ev)
		} else if ev.Segment != nil && t.segments {
			t.segment(ev)
		}
	}
}

func (t *tracer) ftpEvent(ev ftp.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if t.keep {
		t.records = append(t.records, record{FTP: &ev})
	}
	switch t.format {
	case "json":
		t.writeJSON(struct {
			Layer string `json:"layer"`
			ftp.Event
		}{"ftp", ev})
	case "text", "ftp":
		if t.format == "ftp" && ev.Side == "server" {
			return
		}
		t.printf("%s\n", t.ftpLine(ev))
	}
}

func (t *tracer) writeJSON(v any) {
	if t.err != nil {
		return
	}
	enc := json.NewEncoder(t.w)
	enc.SetEscapeHTML(false) // "sock->ops->bind" stays readable
	t.err = enc.Encode(v)
}

func (t *tracer) printf(format string, args ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.w, format, args...)
}

func (t *tracer) stamp(at time.Time) string {
	return fmt.Sprintf("%9.3fms", float64(at.Sub(t.start).Microseconds())/1000)
}

// paint colours s for a terminal: control blue, data orange, errors red.
func (t *tracer) paint(kind, s string) string {
	if !t.color {
		return s
	}
	codes := map[string]string{"control": "34", "data": "33", "error": "31", "dim": "2", "bold": "1"}
	if c, ok := codes[kind]; ok {
		return "\033[" + c + "m" + s + "\033[0m"
	}
	return s
}

// head is the start of every line: time, host, socket and connection.
func (t *tracer) head(at time.Time, host string, fd int, label string) string {
	sock := "    "
	if fd > 0 {
		sock = fmt.Sprintf("fd%-2d", fd)
	}
	return fmt.Sprintf("%s %-6s %s %s", t.stamp(at), host, sock, t.paint(label, fmt.Sprintf("%-7s", label)))
}

// callDone renders a completed socket call. If segments were shown under
// it, its header went out when the first of them did, and this line gives
// the result; otherwise the whole call is one line.
func (t *tracer) callDone(ev stack.Event) {
	c := ev.Call
	key := pendingKey{ev.Host, c.Socket}
	p := t.pending[key]
	delete(t.pending, key)
	state := c.StateAfter
	if c.StateBefore != "" && c.StateBefore != c.StateAfter {
		state = c.StateBefore + " -> " + c.StateAfter
	}
	errText := ""
	if c.Err != "" && c.Err != "EOF" {
		errText = "  " + t.paint("error", "error: "+c.Err)
	}
	if p != nil && p.opened {
		t.printf("%s %s %-38s %s  %v%s\n", t.head(ev.Time, ev.Host, c.Socket, c.Label), "  =",
			callResult(*c), t.paint("bold", state), c.Duration.Round(time.Microsecond), errText)
		return
	}
	t.printf("%s %-42s %s%s\n", t.head(ev.Time, ev.Host, c.Socket, c.Label), bsdCall(*c, true),
		callNamesText(*c)+"  "+t.paint("bold", state), errText)
}

// bsdCall is the BSD call with its arguments and, when done, its result.
func bsdCall(c stack.Call, done bool) string {
	switch c.Op {
	case stack.OpSocket:
		return "socket()"
	case stack.OpBind:
		return "bind(" + c.Local + ")"
	case stack.OpListen:
		return "listen(" + c.Local + ")"
	case stack.OpAccept:
		if done && c.Err == "" {
			return fmt.Sprintf("accept() = fd%d from %s", c.NewSocket, c.Remote)
		}
		return "accept()"
	case stack.OpConnect:
		return "connect(" + c.Remote + ")"
	case stack.OpSend:
		return fmt.Sprintf("send(%d bytes)", c.Bytes)
	case stack.OpRecv:
		if !done {
			return "recv()"
		}
		if c.Err == "EOF" {
			return "recv() = 0 (EOF: the peer's FIN)"
		}
		return fmt.Sprintf("recv() = %d bytes", c.Bytes)
	case stack.OpGetsockname:
		return "getsockname() = " + c.Local
	case stack.OpGetpeername:
		return "getpeername() = " + c.Remote
	default:
		return string(c.Op) + "()"
	}
}

// callResult is what a call returned, for the line that closes a call
// whose segments were shown under it.
func callResult(c stack.Call) string {
	switch {
	case c.Err != "" && c.Err != "EOF":
		return "failed"
	case c.Op == stack.OpAccept:
		return fmt.Sprintf("fd%d from %s", c.NewSocket, c.Remote)
	case c.Op == stack.OpRecv && c.Err == "EOF":
		return "0 (EOF: the peer's FIN)"
	case c.Op == stack.OpRecv || c.Op == stack.OpSend:
		return fmt.Sprintf("%d bytes", c.Bytes)
	default:
		return "0"
	}
}

// callNamesText is the article's kernel call, today's kernel function and
// the netstack call behind a socket call.
func callNamesText(c stack.Call) string {
	return fmt.Sprintf("%s -> %s | %s", c.Article, c.Kernel, c.Netstack)
}

// segment renders one frame, under the pending call it belongs to if any.
func (t *tracer) segment(ev stack.Event) {
	s := ev.Segment
	if s.Proto == "tcp" && strings.Contains(s.Flags, "SYN") {
		t.isn[s.Src+">"+s.Dst] = s.Seq
		t.wscale[s.Src+">"+s.Dst] = s.WindowScale
	}
	var owner *pendingCall
	if s.Proto == "tcp" {
		owner = t.owner(ev.Host, s)
	}
	if owner != nil && !owner.opened {
		owner.opened = true
		c := owner.call
		t.printf("%s %-42s %s\n", t.head(owner.at, owner.host, c.Socket, c.Label), bsdCall(c, false), callNamesText(c))
	}
	indent := strings.Repeat(" ", 11+1+6+1+4+1+7) + " "
	if owner != nil {
		indent += "  | "
	}
	dir := t.paint("dim", ">")
	if s.Dir == "in" {
		dir = t.paint("dim", "<")
	}
	if s.Proto != "tcp" {
		t.printf("%s%s %s %s\n", indent, dir, s.Proto, s.Info)
		return
	}
	// Sequence numbers relative to each direction's initial one, as
	// tcpdump and Wireshark show them, once the SYN has been seen.
	seq, ack := s.Seq, s.Ack
	if isn, ok := t.isn[s.Src+">"+s.Dst]; ok {
		seq -= isn
	}
	if isn, ok := t.isn[s.Dst+">"+s.Src]; ok && strings.Contains(s.Flags, "ACK") {
		ack -= isn
	}
	line := fmt.Sprintf("%s%s %s > %s  %-12s seq=%d", indent, dir, s.Src, s.Dst, s.Flags, seq)
	if strings.Contains(s.Flags, "ACK") {
		line += fmt.Sprintf(" ack=%d", ack)
	}
	// The window in bytes: scaled (RFC 7323) once both SYNs agreed on it,
	// except in the SYNs themselves.
	win := int(s.Window)
	if !strings.Contains(s.Flags, "SYN") {
		mine, ok1 := t.wscale[s.Src+">"+s.Dst]
		theirs, ok2 := t.wscale[s.Dst+">"+s.Src]
		if ok1 && ok2 && mine >= 0 && theirs >= 0 {
			win <<= mine
		}
	}
	line += fmt.Sprintf(" win=%d len=%d", win, s.Len)
	if s.Options != "" {
		line += " <" + s.Options + ">"
	}
	t.printf("%s\n", line)
	if t.explain && len(s.Chain) > 0 {
		chain := strings.Join(s.Chain, " -> ")
		if chain == t.lastChain {
			t.printf("%s    %s\n", indent, t.paint("dim", "(made by the same netstack calls as above)"))
		} else {
			t.printf("%s    %s %s\n", indent, t.paint("dim", "made by:"), chain)
			t.lastChain = chain
		}
	}
}

// owner finds the call in progress on host whose connection a segment
// belongs to: the segment's local end must be the call's local address
// (or the call has none yet, as a connect before its SYN), and its remote
// end the call's peer (or the call has none, as an accept).
func (t *tracer) owner(host string, s *stack.Segment) *pendingCall {
	local, remote := s.Src, s.Dst
	if s.Dir == "in" {
		local, remote = s.Dst, s.Src
	}
	var best *pendingCall
	for k, p := range t.pending {
		if k.host != host {
			continue
		}
		c := p.call
		localOK := c.Local == "" || c.Local == local || strings.HasSuffix(c.Local, ":0")
		remoteOK := c.Remote == "" || c.Remote == remote
		if c.Op == stack.OpAccept {
			remoteOK = true
		}
		if localOK && remoteOK && (c.Local != "" || c.Remote != "") {
			if best == nil || p.at.After(best.at) {
				best = p
			}
		}
	}
	return best
}

func (t *tracer) ftpLine(ev ftp.Event) string {
	head := t.head(ev.Time, ev.Side, 0, ev.Conn)
	switch ev.Kind {
	case ftp.EventCommand:
		arrow := "->"
		if ev.Side == "server" {
			arrow = "<-"
		}
		return fmt.Sprintf("%s %s %s", head, arrow, t.paint("bold", ftp.Sanitize(ev.Text)))
	case ftp.EventReply:
		arrow := "<-"
		if ev.Side == "server" {
			arrow = "->"
		}
		text := strings.ReplaceAll(ev.Text, "\n", " / ")
		return fmt.Sprintf("%s %s %s", head, arrow, t.paint("bold", fmt.Sprintf("%d %s", ev.Code, ftp.Sanitize(text))))
	case ftp.EventDataOpen:
		return fmt.Sprintf("%s == %s data connection open: %s <-> %s", head, ev.Mode, ev.Local, ev.Remote)
	case ftp.EventDataClose:
		return fmt.Sprintf("%s == data connection closed after %d bytes", head, ev.Bytes)
	case ftp.EventTLS:
		return fmt.Sprintf("%s == TLS: %s", head, ftp.Sanitize(ev.Text))
	default:
		return fmt.Sprintf("%s !! %s", head, ftp.Sanitize(ev.Text))
	}
}

// close stops the tracer and reports its first write error.
func (t *tracer) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	return t.err
}
