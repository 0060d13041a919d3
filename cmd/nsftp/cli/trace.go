package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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

// tracer joins the stack's socket and segment events and the FTP
// dialogue into one timeline, and renders it as text or JSON lines. All
// events pass through one mutex, so their order is the order they
// happened in.
type tracer struct {
	mu       sync.Mutex
	w        io.Writer
	format   string // "text", "json" or "" (record only)
	segments bool   // capture and show segments
	start    time.Time
	err      error // first write error
	stopped  bool  // events after stop are dropped: teardown is not the run
	keep     bool     // keep records (for a diagram)
	records  []record // every event, in order, when keep is set

	// indent: segments are shown under the socket call they belong to.
	lastCallHost string
}

func newTracer(w io.Writer, format string, segments bool) *tracer {
	return &tracer{w: w, format: format, segments: segments, start: time.Now()}
}

// configureHost makes a stack host report to the tracer.
func (t *tracer) configureHost(cfg *stack.HostConfig) {
	cfg.Observer = t.stackEvent
	if t.segments {
		if cfg.Capture == nil {
			cfg.Capture = &stack.CaptureConfig{}
		}
		cfg.Capture.Segments = true
	}
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
			t.printf("%s\n", t.callLine(ev))
		} else if ev.Segment != nil && t.segments {
			t.printf("%s\n", t.segmentLine(ev))
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
	case "text":
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

// callLine renders a socket call: what the program called, what the 2005
// article's kernel code called, today's kernel function, the netstack
// call, and the TCP state it moved through.
func (t *tracer) callLine(ev stack.Event) string {
	c := ev.Call
	var call string
	switch c.Op {
	case stack.OpSocket:
		call = "socket()"
	case stack.OpBind:
		call = "bind(" + c.Local + ")"
	case stack.OpListen:
		call = "listen()"
	case stack.OpAccept:
		call = "accept()"
		if c.Err == "" {
			call = fmt.Sprintf("accept() = fd%d from %s", c.NewSocket, c.Remote)
		}
	case stack.OpConnect:
		call = "connect(" + c.Remote + ")"
	case stack.OpSend:
		call = fmt.Sprintf("send(%d bytes)", c.Bytes)
	case stack.OpRecv:
		if c.Err == "EOF" {
			call = "recv() = 0, EOF"
		} else {
			call = fmt.Sprintf("recv() = %d bytes", c.Bytes)
		}
	case stack.OpShutdown:
		call = "shutdown()"
	case stack.OpClose:
		call = "close()"
	case stack.OpGetsockname:
		call = "getsockname() = " + c.Local
	case stack.OpGetpeername:
		call = "getpeername() = " + c.Remote
	default:
		call = string(c.Op) + "()"
	}
	state := c.StateAfter
	if c.StateBefore != "" && c.StateBefore != c.StateAfter {
		state = c.StateBefore + " -> " + c.StateAfter
	}
	line := fmt.Sprintf("%s %-6s fd%-2d %-7s %-38s %s -> %s | %s | %s",
		t.stamp(ev.Time), ev.Host, c.Socket, c.Label, call, c.Article, c.Kernel, c.Netstack, state)
	if c.Err != "" && c.Err != "EOF" {
		line += " | error: " + c.Err
	}
	return line
}

func (t *tracer) segmentLine(ev stack.Event) string {
	s := ev.Segment
	dir := ">"
	if s.Dir == "in" {
		dir = "<"
	}
	if s.Proto != "tcp" {
		return fmt.Sprintf("%s %-6s        %s %s %s", t.stamp(ev.Time), ev.Host, dir, s.Proto, s.Info)
	}
	return fmt.Sprintf("%s %-6s        %s %s > %s %s seq=%d ack=%d win=%d len=%d",
		t.stamp(ev.Time), ev.Host, dir, s.Src, s.Dst, s.Flags, s.Seq, s.Ack, s.Window, s.Len)
}

func (t *tracer) ftpLine(ev ftp.Event) string {
	host := ev.Side
	switch ev.Kind {
	case ftp.EventCommand:
		arrow := "->"
		if ev.Side == "server" {
			arrow = "<-"
		}
		return fmt.Sprintf("%s %-6s     %-7s %s %s", t.stamp(ev.Time), host, ev.Conn, arrow, ftp.Sanitize(ev.Text))
	case ftp.EventReply:
		arrow := "<-"
		if ev.Side == "server" {
			arrow = "->"
		}
		text := strings.ReplaceAll(ev.Text, "\n", " / ")
		return fmt.Sprintf("%s %-6s     %-7s %s %d %s", t.stamp(ev.Time), host, ev.Conn, arrow, ev.Code, ftp.Sanitize(text))
	case ftp.EventDataOpen:
		return fmt.Sprintf("%s %-6s     data    == %s data connection open: %s <-> %s", t.stamp(ev.Time), host, ev.Mode, ev.Local, ev.Remote)
	case ftp.EventDataClose:
		return fmt.Sprintf("%s %-6s     data    == data connection closed after %d bytes", t.stamp(ev.Time), host, ev.Bytes)
	default:
		return fmt.Sprintf("%s %-6s     %-7s !! %s", t.stamp(ev.Time), host, ev.Conn, ftp.Sanitize(ev.Text))
	}
}

// close stops the tracer and reports its first write error.
func (t *tracer) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	return t.err
}
