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

	"nsftp/stack"
)

// stepper is step mode: before each socket call it says what is about to
// happen and waits for a key. Enter runs the call, c runs to the end, q
// stops cleanly: it cancels the run (the FTP client then stops at its next
// step, sending ABOR and QUIT as it would for Ctrl-C) and lets every call
// from then on run unhindered, so the session can end properly.
type stepper struct {
	mu     sync.Mutex // one prompt at a time, whichever host asks
	keys   keyReader
	out    io.Writer
	mode   stepMode
	cancel context.CancelCauseFunc
}

type stepMode int

const (
	stepping stepMode = iota
	running
)

func newStepper(stdin io.Reader, out io.Writer, cancel context.CancelCauseFunc) *stepper {
	return &stepper{keys: newKeyReader(stdin), out: out, cancel: cancel}
}

// gate returns the stack.Gate for one host.
func (s *stepper) gate(host string) stack.Gate {
	return func(ctx context.Context, c stack.Call) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.mode != stepping {
			return nil
		}
		fmt.Fprintf(s.out, "\n[step] %s fd%d %s: about to %s\n       %s -> %s | netstack: %s\n       Enter: do it   c: run to the end   q: stop > ",
			host, c.Socket, c.Label, describeCall(c), c.Article, c.Kernel, c.Netstack)
		key, err := s.keys.next(ctx)
		if err != nil {
			return err
		}
		switch key {
		case 'c':
			s.mode = running
		case 'q':
			s.mode = running
			fmt.Fprintln(s.out, "\n[step] stopping: the session ends with QUIT and every socket is closed")
			s.cancel(fmt.Errorf("%w at %s", errStopped, describeCall(c)))
		}
		return nil
	}
}

// describeCall says what a call is about to do, with its arguments.
func describeCall(c stack.Call) string {
	switch c.Op {
	case stack.OpSocket:
		return "create a TCP socket: socket()"
	case stack.OpBind:
		return "bind(" + c.Local + ")"
	case stack.OpListen:
		return "listen() on " + c.Local
	case stack.OpAccept:
		return "accept() a connection on " + c.Local
	case stack.OpConnect:
		return "connect(" + c.Remote + "), sending a SYN"
	case stack.OpSend:
		return fmt.Sprintf("send(%d bytes) to %s", c.Bytes, c.Remote)
	case stack.OpRecv:
		return "recv() from " + c.Remote
	case stack.OpClose:
		return "close() the socket"
	case stack.OpShutdown:
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
// end of input runs to the end.
type lineKeys struct{ r *bufio.Reader }

func (l *lineKeys) next(ctx context.Context) (byte, error) {
	line, err := l.r.ReadString('\n')
	if err != nil && line == "" {
		return 'c', nil
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return '\n', nil
	}
	return line[0], nil
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
