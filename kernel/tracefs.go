package kernel

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/trace"
)

// tracefs is a tracefs instance made for one run (instances/nsftp-PID-RANDOM),
// with the kernel's TCP tracepoints enabled in it, read from its
// trace_pipe into the run's timeline. An instance has its own buffer,
// events, triggers and clock: the global tracing state is never touched,
// and removing the instance removes everything the run set up.
type tracefs struct {
	w        *Watch
	src      *trace.Source
	root     string // the tracefs mount
	mounted  bool   // mounted for this run, at root
	dir      string // the instance
	pipe     int    // trace_pipe, non-blocking
	clock    clock
	parser   parser
	stop     chan struct{}
	done     chan struct{}
	lost     int
	closeOne sync.Once
	closeErr error
	mark     *watermark // everything that happened before it was read

	filtered []string      // the enabled tracepoints filtered by port
	refilt   chan struct{} // the run's ports changed
	refDone  chan struct{} // the filter goroutine ended
	noFilter bool          // the tracepoints went unfiltered (too many ports)
}

// The tracepoints the run enables; which take a stack trace of the
// kernel functions that led to them (the trigger runs in the event's own
// context, so the stack is the real one); which are the per-segment
// samples (WatchConfig.Samples), filtered in the kernel to the run's
// ports and not to be had on every kernel (tcp_cong_state_set is Linux
// 5.19's).
var tracepoints = []struct {
	event   string
	stack   bool
	samples bool
}{
	{"sock/inet_sock_set_state", true, false},
	{"tcp/tcp_retransmit_skb", true, false},
	{"tcp/tcp_send_reset", true, false},
	{"tcp/tcp_receive_reset", false, false},
	{"tcp/tcp_probe", false, true},
	{"tcp/tcp_cong_state_set", false, true},
}

// instancePrefix names the run's instances; the pid is for finding those
// of runs that were killed.
const instancePrefix = "nsftp-"

var (
	instanceRE = regexp.MustCompile(`^nsftp-([0-9]+)-[0-9a-f]+$`)
	mountRE    = regexp.MustCompile(`/nsftp-tracefs-([0-9]+)-[0-9a-f]+$`)
)

func startTracefs(w *Watch, rec *trace.Recorder) (*tracefs, error) {
	root, mounted, err := mountTracefs()
	if err != nil {
		return nil, err
	}
	t := &tracefs{w: w, root: root, mounted: mounted, pipe: -1, stop: make(chan struct{}), done: make(chan struct{}),
		refilt: make(chan struct{}, 1), refDone: make(chan struct{})}
	removeStaleInstances(root)
	if err := t.setup(); err != nil {
		t.teardown()
		return nil, err
	}
	t.clock = newClock(rec)
	t.mark = newWatermark(t.clock.at(t.clock.mono()))
	t.src = rec.NewSource(func(upTo time.Time) { t.mark.wait(upTo, 200*time.Millisecond) })
	go t.read()
	go t.filterLoop()
	return t, nil
}

// mountTracefs finds where tracefs is mounted; if nowhere, it mounts it
// for this run on a directory of its own, to be unmounted when the run
// ends (the system's mount at /sys/kernel/tracing is left as it is:
// absent).
func mountTracefs() (root string, mounted bool, err error) {
	if os.Geteuid() != 0 {
		return "", false, errors.New("tracefs is root's (CAP_SYS_ADMIN)")
	}
	removeStaleMounts()
	for _, m := range tracefsMounts() {
		if _, err := os.Stat(filepath.Join(m, "instances")); err == nil {
			return m, false, nil
		}
	}
	// The name carries the pid, for a later run to find the mount of one
	// that was killed (removeStaleMounts).
	dir, err := os.MkdirTemp("", fmt.Sprintf("nsftp-tracefs-%d-*", os.Getpid()))
	if err != nil {
		return "", false, fmt.Errorf("tracefs: %w", err)
	}
	if err := unix.Mount("nodev", dir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		if errors.Is(err, unix.ENODEV) {
			return "", false, errors.New("this kernel has no tracefs (CONFIG_TRACING)")
		}
		return "", false, fmt.Errorf("mounting tracefs: %w", err)
	}
	return dir, true, nil
}

// tracefsMounts lists the mount points of tracefs in this mount
// namespace, /sys/kernel/tracing first.
func tracefsMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 35 0:10 / /sys/kernel/tracing rw,... - tracefs nodev rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "tracefs ") {
			continue
		}
		p := unescapeMount(fields[4])
		if p == "/sys/kernel/tracing" {
			out = append([]string{p}, out...)
		} else if !mountRE.MatchString(p) {
			out = append(out, p)
		}
	}
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// removeStaleMounts unmounts the tracefs mounts of nsftp runs that were
// killed before they could.
func removeStaleMounts() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if len(fields) < 5 || !strings.HasPrefix(post, "tracefs ") {
			continue
		}
		p := unescapeMount(fields[4])
		if m := mountRE.FindStringSubmatch(p); m != nil && !alive(m[1]) {
			if unix.Unmount(p, unix.MNT_DETACH) == nil {
				os.Remove(p)
			}
		}
	}
}

// removeStaleInstances removes the instances of nsftp runs that were
// killed before they could.
func removeStaleInstances(root string) {
	entries, _ := os.ReadDir(filepath.Join(root, "instances"))
	for _, e := range entries {
		if m := instanceRE.FindStringSubmatch(e.Name()); m != nil && !alive(m[1]) {
			os.Remove(filepath.Join(root, "instances", e.Name()))
		}
	}
}

// alive reports whether process pid exists.
func alive(pid string) bool {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return false
	}
	return unix.Kill(n, 0) != unix.ESRCH
}

func randomHex() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setup makes the instance and enables the tracepoints in it.
func (t *tracefs) setup() error {
	t.dir = filepath.Join(t.root, "instances", fmt.Sprintf("%s%d-%s", instancePrefix, os.Getpid(), randomHex()))
	if err := os.Mkdir(t.dir, 0o700); err != nil {
		t.dir = ""
		return fmt.Errorf("making a tracefs instance: %w", err)
	}
	// The monotonic clock, so events line up with the run's own.
	if err := t.write("trace_clock", "mono"); err != nil {
		return err
	}
	for _, tp := range tracepoints {
		ev := filepath.Join("events", tp.event)
		name := strings.Replace(tp.event, "/", ":", 1)
		if tp.samples && !t.w.cfg.Samples {
			continue
		}
		if _, err := os.Stat(filepath.Join(t.dir, ev)); err != nil {
			if tp.samples {
				t.w.missing = append(t.w.missing, fmt.Sprintf("no %s samples: this kernel has no tracepoint %s", tp.event[4:], name))
				continue
			}
			return fmt.Errorf("this kernel has no tracepoint %s", name)
		}
		switch {
		case tp.event == "sock/inet_sock_set_state":
			// Only TCP's: the tracepoint is SCTP's and MPTCP's too.
			if err := t.write(filepath.Join(ev, "filter"), "protocol == 6"); err != nil {
				return err
			}
		case tp.samples:
			// Set while the tracepoint is off, which costs the kernel
			// nothing; later changes wait for its readers (filter.go).
			if err := t.write(filepath.Join(ev, "filter"), t.w.filter()); err != nil {
				return err
			}
			t.filtered = append(t.filtered, ev)
		}
		if tp.stack {
			if err := t.write(filepath.Join(ev, "trigger"), "stacktrace"); err != nil {
				return err
			}
		}
		if err := t.write(filepath.Join(ev, "enable"), "1"); err != nil {
			return err
		}
	}
	fd, err := unix.Open(filepath.Join(t.dir, "trace_pipe"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the instance's trace_pipe: %w", err)
	}
	t.pipe = fd
	return nil
}

func (t *tracefs) write(name, value string) error {
	if err := os.WriteFile(filepath.Join(t.dir, name), []byte(value), 0); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("tracefs: writing %q to %s: %w", value, name, err)
	}
	return nil
}

// teardown removes the instance (which disables its events and removes
// their triggers with it) and the mount, if the run made one.
func (t *tracefs) teardown() error {
	var errs []error
	if t.pipe >= 0 {
		unix.Close(t.pipe)
		t.pipe = -1
	}
	if t.dir != "" {
		// The instance is busy while a reader's descriptor closes; it
		// comes free at once.
		var err error
		for range 50 {
			if err = unix.Rmdir(t.dir); err != unix.EBUSY {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("removing tracefs instance %s: %w", t.dir, err))
		}
		t.dir = ""
	}
	if t.mounted {
		if err := unix.Unmount(t.root, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting tracefs at %s: %w", t.root, err))
		} else {
			os.Remove(t.root)
		}
		t.mounted = false
	}
	return errors.Join(errs...)
}

// margin is how far behind its last read the reader promises to have
// seen everything: an event is stamped a moment before it is in the
// buffer, and trace_pipe merges the CPUs' buffers. stackWait is how long
// an event waits for its stack before it is handed on without one: the
// stack comes after the event is committed, and the task writing it may
// be preempted in between (see parser); the timeline holds back only as
// long as an event waits, which is microseconds when its stack comes.
const (
	margin    = 5 * time.Millisecond
	stackWait = 250 * time.Millisecond
)

// read reads trace_pipe until stopped, hands what it parses to the
// timeline, and tells the timeline how far it has read.
func (t *tracefs) read() {
	defer close(t.done)
	buf := make([]byte, 64<<10)
	var partial []byte
	for {
		stopping := false
		select {
		case <-t.stop:
			stopping = true
		default:
		}
		fds := []unix.PollFd{{Fd: int32(t.pipe), Events: unix.POLLIN}}
		if !stopping {
			unix.Poll(fds, 10)
		}
		for {
			before := t.clock.mono()
			n, err := unix.Read(t.pipe, buf)
			if n > 0 {
				partial = append(partial, buf[:n]...)
				partial = t.lines(partial)
				continue
			}
			if err == unix.EAGAIN || err == unix.EINTR || n == 0 {
				t.parser.expire(before-int64(stackWait), t.record)
				t.advance(before - int64(margin))
			}
			break
		}
		if stopping {
			return
		}
	}
}

// lines parses the complete lines in b and returns what is left.
func (t *tracefs) lines(b []byte) []byte {
	for {
		i := strings.IndexByte(string(b), '\n')
		if i < 0 {
			return b
		}
		t.parser.line(string(b[:i]), t.record)
		b = b[i+1:]
	}
}

// advance tells the timeline the reader has seen everything up to mono,
// short of any event still waiting for its stack.
func (t *tracefs) advance(mono int64) {
	if p := t.parser.oldest(); p > 0 && p <= mono {
		mono = p - 1
	}
	t.src.Advance(t.clock.at(mono))
	t.mark.set(t.clock.at(mono))
}

// record turns a parsed event into the timeline's.
func (t *tracefs) record(r *record) {
	if r.lost > 0 {
		t.lost += r.lost
		t.src.Record(trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Time: t.clock.at(r.mono),
			Message: &trace.Message{Text: fmt.Sprintf("the kernel's trace buffer overflowed: %d events lost", r.lost)}})
		return
	}
	evs, changed := t.w.kernelEvents(r)
	for _, e := range evs {
		e.Time = t.clock.at(r.mono)
		t.src.Record(e)
	}
	// A change of state of a socket nsftp still holds: the kernel's
	// TCP_INFO for it, read as the change is told (a few milliseconds
	// after it happened, and stamped then).
	if s := changed; s != nil && s.n.cfg.Samples && s.n.cfg.Observer != nil {
		if b := s.sample(s.info()); b != nil {
			t.w.sampled(s.ref, b)
			t.src.Record(trace.Event{Layer: trace.LayerKernel, Host: s.n.cfg.Host, Kind: trace.KindTCB, TCB: b, Time: t.clock.at(t.clock.mono())})
		}
	}
}

// refilter has the filter goroutine look at the run's ports again.
func (t *tracefs) refilter() {
	select {
	case t.refilt <- struct{}{}:
	default: // a look is due already
	}
}

// filterLoop rewrites the per-segment tracepoints' filter whenever the
// run's ports change, until the reader stops: each rewrite makes the
// kernel wait for the old filter's readers, which no socket call should.
func (t *tracefs) filterLoop() {
	defer close(t.refDone)
	last := ""
	if len(t.filtered) > 0 {
		last = t.w.filter()
	}
	for {
		select {
		case <-t.stop:
			return
		case <-t.refilt:
		}
		if len(t.filtered) == 0 {
			continue
		}
		f := t.w.filter()
		if f == last {
			continue
		}
		for _, ev := range t.filtered {
			if err := t.write(filepath.Join(ev, "filter"), f); err != nil {
				t.src.Record(trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Time: t.clock.at(t.clock.mono()),
					Message: &trace.Message{Text: "the kernel's samples are no longer filtered to the run's ports: " + err.Error()}})
			}
		}
		if f == "0" && !t.noFilter {
			t.noFilter = true
			t.src.Record(trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Time: t.clock.at(t.clock.mono()),
				Message: &trace.Message{Text: fmt.Sprintf("more than %d ports: the kernel's samples are no longer filtered to the run's ports, and may overflow the trace buffer", maxFilterPorts)}})
		}
		last = f
	}
}

// close reads what is left, stops the reader and removes the instance.
func (t *tracefs) close() error {
	t.closeOne.Do(func() {
		t.mark.wait(t.clock.at(t.clock.mono()+int64(margin)), 200*time.Millisecond)
		close(t.stop)
		<-t.done
		<-t.refDone
		t.parser.expire(1<<62, t.record)
		t.src.Close()
		t.closeErr = t.teardown()
	})
	return t.closeErr
}

// clock maps the kernel's monotonic clock (trace_clock mono, and
// CLOCK_MONOTONIC) to the timeline's.
type clock struct {
	wall  time.Time
	mono0 int64
}

func newClock(rec *trace.Recorder) clock {
	c := clock{}
	c.mono0 = monoNow()
	c.wall = rec.Now()
	return c
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func (c clock) mono() int64 { return monoNow() }

func (c clock) at(mono int64) time.Time { return c.wall.Add(time.Duration(mono - c.mono0)) }
