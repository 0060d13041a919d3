package tap

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// A Guard is a second process that puts back a user's device that nsftp
// changed, should nsftp end without doing so itself. Close puts a device
// back on every way out that runs it: a normal exit, an error, a signal
// nsftp handles. Nothing in a process runs when it is killed (SIGKILL),
// or when a goroutine other than main panics: the runtime prints the
// panic and exits without running anyone's deferred calls. The guard
// outlives it, sees its standard input close, and puts back what Open
// told it of and Close did not say was done.
//
// Open tells the guard what it found (Config.Guard) before changing
// anything, and Close says when the device is back as it was.
type Guard struct {
	cmd *exec.Cmd

	mu  sync.Mutex // guards the fields below and serialises messages
	w   io.WriteCloser
	err error // the first error writing to the guard
}

// guardMsg is one line to the guard, as JSON.
type guardMsg struct {
	// Op is "keep" (put State back unless told "done") or "done" (State
	// is back as it was).
	Op    string      `json:"op"`
	State *savedState `json:"state"`
}

// StartGuard starts cmd as a guard. cmd must run ServeGuard on its
// standard input: nsftp runs a copy of itself. Its standard output and
// error are left as cmd has them. The guard should ignore the signals a
// terminal sends its whole process group (SIGINT, SIGHUP, SIGTERM), which
// would otherwise end it with the process it guards.
func StartGuard(cmd *exec.Cmd) (*Guard, error) {
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("tap: starting the device's guard: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tap: starting the device's guard: %w", err)
	}
	return &Guard{cmd: cmd, w: w}, nil
}

// send writes one message to the guard.
func (g *Guard) send(op string, s *savedState) error {
	b, err := json.Marshal(guardMsg{Op: op, State: s})
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	if _, err := g.w.Write(append(b, '\n')); err != nil {
		g.err = fmt.Errorf("tap: the device's guard is gone: %w", err)
	}
	return g.err
}

// Close tells the guard that nothing is left to guard and waits for it to
// exit. A device Close did not put back is put back by the guard now.
func (g *Guard) Close() error {
	g.mu.Lock()
	werr := g.w.Close()
	if g.err == nil && werr != nil {
		g.err = werr
	}
	g.mu.Unlock()
	err := g.cmd.Wait()
	if err != nil {
		return fmt.Errorf("tap: the device's guard: %w", err)
	}
	return nil
}

// guardWait is how long a guard waits for the device to be free of the
// dead process's descriptor, which the kernel closes as the process
// exits, at about the time the guard's input does.
const guardWait = 5 * time.Second

// ServeGuard is a guard's work: it reads what Open and Close say from r
// (a guarded process's pipe) until r ends, then puts back every device
// that was changed and not put back, and returns what went wrong doing
// so.
func ServeGuard(r io.Reader) error {
	keep := map[string]*savedState{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		var m guardMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.State == nil {
			return fmt.Errorf("tap guard: unreadable message %q", sc.Text())
		}
		k := m.State.key()
		switch m.Op {
		case "keep":
			if _, ok := keep[k]; !ok {
				order = append(order, k)
			}
			keep[k] = m.State
		case "done":
			delete(keep, k)
		default:
			return fmt.Errorf("tap guard: unknown message %q", sc.Text())
		}
	}
	// A read error is the guarded process gone as much as EOF is.
	var errs []error
	for _, k := range order {
		s, ok := keep[k]
		if !ok {
			continue
		}
		if err := s.restore(guardWait); err != nil {
			errs = append(errs, &Error{Op: "restore", Device: s.Name, NetNS: s.NetNS, Err: err,
				Detail: "putting the device back after nsftp ended without closing it"})
		}
	}
	return errors.Join(errs...)
}
