package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// stepper is step mode: before each socket call, or each segment, it says
// what is about to happen, shows the connection's TCB, and waits for a
// key. Enter runs to the next call, s to the next segment (or call), c
// runs to the end, q stops cleanly: it cancels the run (the FTP client
// then stops at its next step and ends the session with QUIT, as it would
// for Ctrl-C) and lets every call from then on run unhindered.
type stepper struct {
	mu     sync.Mutex // one prompt at a time, whichever host asks
	keys   keyReader
	out    io.Writer
	rec    *trace.Recorder // flushed before each prompt, so the trace so far is shown
	mode   stepMode
	cancel context.CancelCauseFunc
	// frameIn says to stop at frames received too, not only at frames
	// sent: on a TAP the kernel's frames are stopped at only as they
	// arrive; on a virtual wire every frame was stopped at as it left.
	frameIn bool
	// kernel says the run is on the kernel's TCP (--net os), whose
	// segments cannot be stopped at: it sends them on its own.
	kernel bool
	// announce, if set, is told what each prompt is before (the live
	// lesson in a browser shows it).
	announce func(e trace.Event)
}

type stepMode int

const (
	stepCalls    stepMode = iota // stop before each call
	stepSegments                 // stop before each call and each segment
	running
)

var _ stack.Gate = (*stepper)(nil)

func newStepper(stdin io.Reader, out io.Writer, rec *trace.Recorder, cancel context.CancelCauseFunc) *stepper {
	return &stepper{keys: newKeyReader(stdin), out: out, rec: rec, cancel: cancel}
}

const stepKeys = "Enter: next call   s: next segment   c: run to the end   q: stop > "

// BeforeCall implements stack.Gate.
func (s *stepper) BeforeCall(ctx context.Context, e trace.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == running {
		return nil
	}
	c := e.Call
	s.rec.Flush()
	how := "netstack: " + c.Netstack
	if e.Layer == trace.LayerKernel {
		how = "the kernel's TCP, by " + c.Syscall
	}
	fmt.Fprintf(s.out, "\n[step] %s fd%d %s: about to %s\n       %s -> %s | %s\n",
		e.Host, c.Socket, c.Label, describeCall(c), c.Article, c.Kernel, how)
	if e.Layer == trace.LayerKernel {
		s.showTCPInfo(e.TCB)
	} else {
		s.showTCB(e.TCB)
	}
	if s.announce != nil {
		s.announce(e)
	}
	return s.prompt(ctx, "before "+trace.BSDCall(c, false)+" on "+e.Host+" fd"+fmt.Sprint(c.Socket))
}

// BeforeFrame implements stack.Gate.
func (s *stepper) BeforeFrame(e trace.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := e.Segment
	if s.mode != stepSegments || (seg.Dir == trace.In && !s.frameIn) {
		return
	}
	s.rec.Flush()
	fmt.Fprintf(s.out, "\n[step] %s\n       %s\n", describeFrame(e), seg.Addrs())
	s.showTCB(e.TCB)
	if s.announce != nil {
		s.announce(e)
	}
	// A frame cannot be refused: q stops the session, whose remaining
	// frames then pass.
	s.prompt(context.Background(), "at a segment on "+e.Host)
}

// describeFrame says what a frame about to cross a host's link is: who
// sends or receives it, and what it carries.
func describeFrame(e trace.Event) string {
	seg := e.Segment
	who := e.Host
	if seg.Socket != 0 {
		who += fmt.Sprintf(" fd%d %s", seg.Socket, seg.Label)
	}
	verb := "send"
	if seg.Dir == trace.In {
		verb = "receive"
	}
	what := seg.Proto
	if seg.Proto == "tcp" {
		what = describeSegment(seg, e.TCB)
	} else if seg.Info != "" {
		what += " " + seg.Info
	}
	return who + ": about to " + verb + " " + what
}

// describeSegment says what a TCP segment carries: its sequence and
// acknowledgment numbers relative to the connection's first, as the
// trace shows them, when the TCB knows them; the window as the field
// says it, unscaled.
func describeSegment(seg *trace.Segment, b *trace.TCB) string {
	seq, ack := seg.Seq, seg.Ack
	if b != nil {
		mine, theirs := b.ISS, b.IRS
		if seg.Dir == trace.In {
			mine, theirs = theirs, mine
		}
		if mine != 0 || seg.Flags.Has(trace.SYN) {
			seq -= mine
		}
		if theirs != 0 {
			ack -= theirs
		}
	}
	s := fmt.Sprintf("%s seq=%d", seg.Flags, seq)
	if seg.Flags.Has(trace.ACK) {
		s += fmt.Sprintf(" ack=%d", ack)
	}
	return s + fmt.Sprintf(" window field=%d len=%d", seg.Window, seg.Len)
}

// showTCB prints a connection's transmission control block in RFC 793's
// names, sequence numbers relative to the connection's first (ISS for
// ours, IRS for the peer's) as tcpdump shows them.
func (s *stepper) showTCB(b *trace.TCB) {
	if b == nil {
		return
	}
	fmt.Fprintf(s.out, "       TCB %s  SND.UNA=%d SND.NXT=%d SND.WND=%d  RCV.NXT=%d RCV.WND=%d\n",
		b.State, b.SndUna-b.ISS, b.SndNxt-b.ISS, b.SndWnd, b.RcvNxt-b.IRS, b.RcvWnd)
	if b.Cwnd == 0 {
		return // netstack has not reported on the connection yet
	}
	ssthresh := "∞"
	if b.Ssthresh > 0 && b.Ssthresh < 1<<20 {
		ssthresh = fmt.Sprint(b.Ssthresh)
	}
	line := fmt.Sprintf("           cwnd=%d ssthresh=%s", b.Cwnd, ssthresh)
	if b.SRTT > 0 {
		line += fmt.Sprintf(" SRTT=%v", b.SRTT)
	}
	if b.RTO > 0 {
		line += fmt.Sprintf(" RTO=%v", b.RTO)
	}
	if b.Congestion != "" {
		line += " congestion: " + b.Congestion
	}
	fmt.Fprintln(s.out, line+"  (sequence numbers relative to ISS and IRS)")
}

// showTCPInfo prints what the kernel's TCP_INFO says of a connection:
// the kernel keeps its sequence numbers to itself there.
func (s *stepper) showTCPInfo(b *trace.TCB) {
	if b == nil {
		return
	}
	ssthresh := "∞"
	if b.Ssthresh > 0 {
		ssthresh = fmt.Sprint(b.Ssthresh)
	}
	fmt.Fprintf(s.out, "       TCP_INFO %s  cwnd=%d ssthresh=%s mss=%d SRTT=%v RTTVAR=%v RTO=%v snd_wnd=%d rcv_wnd=%d congestion: %s\n",
		b.State, b.Cwnd, ssthresh, b.MSS, b.SRTT, b.RTTVar, b.RTO, b.SndWnd, b.RcvWnd, b.Congestion)
	fmt.Fprintf(s.out, "           in flight %d (SACKed %d, lost %d, retransmitted %d), %d retransmitted in all; %d bytes acknowledged, %d received\n",
		b.Outstanding, b.Sacked, b.Lost, b.Retrans, b.TotalRetrans, b.BytesAcked, b.BytesReceived)
}

// prompt waits for a key and acts on it; where says where a q stopped.
func (s *stepper) prompt(ctx context.Context, where string) error {
	fmt.Fprint(s.out, "       "+stepKeys)
	key, err := s.keys.next(ctx)
	if err != nil {
		fmt.Fprintln(s.out)
		return err
	}
	switch key {
	case 'c':
		s.mode = running
		fmt.Fprintln(s.out, "c: running to the end")
	case 's':
		if s.kernel {
			s.mode = stepCalls
			fmt.Fprintln(s.out, "s: the kernel sends and takes segments on its own, nothing can stop them: to the next call")
			break
		}
		s.mode = stepSegments
		fmt.Fprintln(s.out, "s: to the next segment")
	case 'q':
		s.mode = running
		fmt.Fprintln(s.out, "q")
		s.cancel(&stoppedError{where: where})
	default:
		s.mode = stepCalls
		fmt.Fprintln(s.out, "next call")
	}
	return nil
}

// describeCall says what a call is about to do, with its arguments.
func describeCall(c *trace.Call) string {
	switch c.Op {
	case trace.OpSocket:
		if c.Proto == "udp" {
			return "create a UDP socket: socket()"
		}
		return "create a TCP socket: socket()"
	case trace.OpConnect:
		if c.Proto == "udp" {
			return "connect(" + c.Remote.String() + "): fix the peer; no packet is sent"
		}
		return "connect(" + c.Remote.String() + "), sending a SYN"
	case trace.OpSendto:
		return fmt.Sprintf("sendto(%d bytes) to %s: one datagram", c.Bytes, c.Remote)
	case trace.OpRecvfrom:
		return "recvfrom(): wait for a datagram on " + c.Local.String()
	case trace.OpBind:
		return "bind(" + c.Local.String() + ")"
	case trace.OpListen:
		return "listen() on " + c.Local.String()
	case trace.OpAccept:
		return "accept() a connection on " + c.Local.String()
	case trace.OpSend:
		return fmt.Sprintf("send(%d bytes) to %s", c.Bytes, c.Remote)
	case trace.OpRecv:
		return "recv() from " + c.Remote.String()
	case trace.OpClose:
		return "close() the socket"
	case trace.OpShutdown:
		return "shutdown() the socket"
	default:
		return string(c.Op) + "()"
	}
}

// keyReader reads step-mode keys: single keys from a terminal, lines from
// anything else (so a script can drive it: an empty line steps).
type keyReader interface {
	next(ctx context.Context) (byte, error)
}

func newKeyReader(stdin io.Reader) keyReader {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &terminalKeys{f: f}
	}
	return &lineKeys{r: bufio.NewReader(stdin)}
}

// lineKeys reads one line per key; its first character is the key. The
// end of input runs to the end. A line is read apart, so a run being
// stopped (Ctrl-C) is not held up by a prompt waiting for input; the read
// then finishes on its own, and its line is the next key asked for.
type lineKeys struct {
	r       *bufio.Reader
	pending chan lineRead // a read in flight; next is called under the stepper's lock
}

type lineRead struct {
	line string
	err  error
}

func (l *lineKeys) next(ctx context.Context) (byte, error) {
	if l.pending == nil {
		ch := make(chan lineRead, 1)
		l.pending = ch
		go func() {
			line, err := l.r.ReadString('\n')
			ch <- lineRead{line, err}
		}()
	}
	select {
	case r := <-l.pending:
		l.pending = nil
		if r.err != nil && r.line == "" {
			return 'c', nil
		}
		line := strings.TrimSpace(r.line)
		if line == "" {
			return '\n', nil
		}
		return line[0], nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// terminalKeys reads single key presses from a terminal in raw mode.
type terminalKeys struct{ f *os.File }

func (t *terminalKeys) next(ctx context.Context) (byte, error) {
	fd := int(t.f.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return 0, err
	}
	defer term.Restore(fd, old)
	type result struct {
		b   byte
		err error
	}
	// The read cannot be interrupted, so it runs apart and ctx is watched
	// here; a read left behind at exit is harmless.
	ch := make(chan result, 1)
	go func() {
		var b [1]byte
		_, err := t.f.Read(b[:])
		ch <- result{b[0], err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return 0, r.err
		}
		switch r.b {
		case 3, 4: // Ctrl-C, Ctrl-D
			return 'q', nil
		case '\r':
			return '\n', nil
		}
		return r.b, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
