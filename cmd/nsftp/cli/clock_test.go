package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// pausingKeys is a person at step mode's prompts who thinks for pause
// before every key: each read is one prompt's key, and before it the
// network's clock is told that pause of real time has passed
// (Clock.Elapse). A clock the prompt holds does not move; a prompt that
// failed to hold it would let two seconds pass for TCP, its timers fire
// and its retransmissions show.
type pausingKeys struct {
	mu    sync.Mutex
	clock *stack.Clock
	key   string
	pause time.Duration
	reads int
}

func (k *pausingKeys) Read(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reads++
	if k.clock != nil {
		k.clock.Elapse(k.pause)
	}
	return copy(b, k.key+"\n"), nil
}

func (k *pausingKeys) setClock(c *stack.Clock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.clock = c
}

// runEnv runs the command in-process with e's streams and hooks.
func runEnv(t *testing.T, e *env, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	return runCommand(ctx, e, args)
}

// lessonStreams is what a run did, per socket, in the order each socket
// saw it, and its FTP dialogue: its calls by kind (a socket's send and recv may run at once, on
// two goroutines, and begin in either order), its segments each way, its
// changes of state. Two runs of the same session must agree on all of it;
// how one socket's events fall among another's is the scheduler's. Bare
// ACKs are left out: a receiver may answer two segments that arrive
// together with one ACK (RFC 1122 section 4.2.3.2), as netstack does when
// a reply and the FIN after it arrive at once, and step mode lets one
// frame go at a time. Byte counts are left out too: the client's PORT
// names a port the stack chose, in four digits or five.
func lessonStreams(evs []trace.Event) map[string][]string {
	out := map[string][]string{}
	add := func(key, s string) { out[key] = append(out[key], s) }
	for _, e := range evs {
		switch {
		case e.Call != nil:
			c := e.Call
			s := string(e.Phase)
			if e.Phase == trace.End {
				switch {
				case c.Closed:
					s += " (closed)"
				case c.Err != "":
					s += " (failed)"
				}
			}
			add(fmt.Sprintf("%s fd%d %s calls", e.Host, c.Socket, c.Op), s)
		case e.Segment != nil && e.Kind == trace.KindSegment:
			s := e.Segment
			what := s.Proto
			if s.Proto == "tcp" {
				if s.Flags == trace.ACK && s.Len == 0 {
					continue
				}
				what = s.Flags.String()
				if s.Len > 0 {
					what += " with data"
				}
			}
			add(fmt.Sprintf("%s fd%d %s segments", e.Host, s.Socket, s.Dir), what)
		case e.State != nil:
			add(fmt.Sprintf("%s fd%d states", e.Host, e.State.Socket), fmt.Sprintf("%s->%s", e.State.From, e.State.To))
		case e.Kind == trace.KindCommand && e.Side == trace.Client:
			verb, _, _ := strings.Cut(e.Text, " ")
			add("FTP commands", verb)
		case e.Kind == trace.KindReply && e.Side == trace.Client:
			add("FTP replies", fmt.Sprint(e.Code))
		}
	}
	return out
}

// retransmissions counts the TCP segments a host sent twice: a SYN,
// SYN|ACK or FIN again, or data whose sequence numbers it had sent.
func retransmissions(evs []trace.Event) (n int, what []string) {
	type key struct {
		host       string
		src, dst   string
		seq        uint32
		flags, len int
	}
	seen := map[key]bool{}
	for _, e := range evs {
		s := e.Segment
		if s == nil || e.Kind != trace.KindSegment || s.Proto != "tcp" || s.Dir != trace.Out {
			continue
		}
		if s.Len == 0 && !s.Flags.Has(trace.SYN) && !s.Flags.Has(trace.FIN) {
			continue // a bare ACK may repeat
		}
		k := key{e.Host, s.Src.String(), s.Dst.String(), s.Seq, int(s.Flags), s.Len}
		if seen[k] {
			n++
			what = append(what, fmt.Sprintf("%s %s seq=%d len=%d %s > %s", e.Host, s.Flags, s.Seq, s.Len, s.Src, s.Dst))
		}
		seen[k] = true
	}
	return n, what
}

// TestStepPausedTellsNoLies steps through the whole demo, call by call
// and segment by segment, with two seconds of thought before every key,
// and finds what an unpaused run does: no retransmission, no timer run
// out, SRTT under 10ms everywhere, the same calls, segments and changes
// of state on every socket; and times in the trace as short as an
// unpaused run's, as if nobody had paused.
//
// The two seconds pass through the network's clock (Clock.Elapse), not
// the test's: each is real time to a clock that is not held. A real run
// with real pauses shows the same (see the README's step mode).
func TestStepPausedTellsNoLies(t *testing.T) {
	stacktest.CheckGoroutines(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.jsonl")
	var out, errOut bytes.Buffer
	if err := runEnv(t, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, "demo", "-q", "--record", plain); err != nil {
		t.Fatalf("unpaused demo: %v\n%s", err, errOut.String())
	}

	for _, key := range []string{"", "s"} {
		name := map[string]string{"": "per call", "s": "per segment"}[key]
		t.Run(name, func(t *testing.T) {
			stepped := filepath.Join(dir, "stepped"+key+".jsonl")
			keys := &pausingKeys{key: key, pause: 2 * time.Second}
			var out, errOut bytes.Buffer
			e := &env{stdin: keys, stdout: &out, stderr: &errOut, clockReady: keys.setClock}
			if err := runEnv(t, e, "demo", "--step", "--record", stepped); err != nil {
				t.Fatalf("stepped demo: %v\n%s", err, errOut.String())
			}
			prompts := strings.Count(errOut.String(), "[step]")
			t.Logf("%d prompts, %d keys read, each after 2s passed", prompts, keys.reads)
			if prompts < 40 || keys.reads < prompts {
				t.Fatalf("%d prompts and %d keys: the run was not stepped through", prompts, keys.reads)
			}
			evs := readRecording(t, stepped)
			if n, what := retransmissions(evs); n > 0 {
				t.Errorf("%d segments sent again while the reader paused:\n%s", n, strings.Join(what, "\n"))
			}
			for _, e := range evs {
				if e.TCB != nil && e.TCB.SRTT >= 10*time.Millisecond {
					t.Errorf("%s fd%d: SRTT %v in a TCB sample", e.Host, e.TCB.Socket, e.TCB.SRTT)
				}
			}
			for _, m := range regexp.MustCompile(`SRTT=(\S+)`).FindAllStringSubmatch(errOut.String(), -1) {
				if d, err := time.ParseDuration(m[1]); err != nil || d >= 10*time.Millisecond {
					t.Errorf("a prompt shows SRTT=%s", m[1])
				}
			}
			want, got := lessonStreams(readRecording(t, plain)), lessonStreams(evs)
			for _, k := range slices.Sorted(mapsKeys(want, got)) {
				if !slices.Equal(want[k], got[k]) {
					t.Errorf("%s:\n  unpaused %q\n  stepped  %q", k, want[k], got[k])
				}
			}
			// Every prompt waited 2s of real time, none of the network's:
			// the trace spans what an unpaused run's does, not minutes.
			span := evs[len(evs)-1].Time.Sub(evs[0].Time)
			t.Logf("the stepped run spans %v of the network's time", span)
			if span > time.Duration(prompts)*time.Second {
				t.Errorf("the trace spans %v: the pauses reached the network's clock", span)
			}
		})
	}
}

func mapsKeys(ms ...map[string][]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] && !yield(k) {
					return
				}
				seen[k] = true
			}
		}
	}
}

var _ io.Reader = (*pausingKeys)(nil)

// TestStepSaysWhatCannotPause: on the kernel's TCP, step mode says in one
// line, as it starts, that the kernel cannot be paused; on the virtual
// wire it says nothing of the kind.
func TestStepSaysWhatCannotPause(t *testing.T) {
	stacktest.CheckGoroutines(t)
	_, errOut, err := runIn(t, "c\n", "demo", "--net", "os", "--step")
	if err != nil {
		t.Fatalf("demo --net os --step: %v\n%s", err, errOut)
	}
	if first, _, _ := strings.Cut(errOut, "\n"); !strings.Contains(first, "the kernel's TCP cannot be paused") {
		t.Errorf("the first line of a stepped run on the kernel's TCP is %q", first)
	}
	_, errOut, err = runIn(t, "c\n", "demo", "--step")
	if err != nil || strings.Contains(errOut, "cannot be paused") {
		t.Errorf("demo --step: %v\n%s", err, errOut)
	}
}

// TestSlowTakesTenTimesAsLong: --slow 10 runs the demo at a tenth of real
// speed: every wait of the network (the wire's delay, TIME-WAIT) takes ten
// times as long in real time, and the trace, on the network's clock, is
// an unslowed run's: the same calls, segments and states, the same round
// trips and TIME-WAIT, no retransmission.
func TestSlowTakesTenTimesAsLong(t *testing.T) {
	stacktest.CheckGoroutines(t)
	dir := t.TempDir()
	type result struct {
		evs        []trace.Event
		wall, span time.Duration
	}
	demo := func(name string, extra ...string) result {
		path := filepath.Join(dir, name+".jsonl")
		var out, errOut bytes.Buffer
		args := append([]string{"demo", "-q", "--delay", "2ms", "--record", path}, extra...)
		start := time.Now()
		if err := runEnv(t, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, args...); err != nil {
			t.Fatalf("nsftp %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		r := result{evs: readRecording(t, path), wall: time.Since(start)}
		r.span = r.evs[len(r.evs)-1].Time.Sub(r.evs[0].Time)
		return r
	}
	plain, slow := demo("plain"), demo("slow", "--slow", "10")
	t.Logf("unslowed: %v of the network's time in %v; --slow 10: %v in %v (%.1fx the wall time)",
		plain.span.Round(time.Millisecond), plain.wall.Round(time.Millisecond),
		slow.span.Round(time.Millisecond), slow.wall.Round(time.Millisecond), slow.wall.Seconds()/plain.wall.Seconds())
	if slow.wall < 10*slow.span*19/20 {
		t.Errorf("--slow 10: %v of the network's time passed in %v of real time, not ten times as long", slow.span, slow.wall)
	}
	want, got := lessonStreams(plain.evs), lessonStreams(slow.evs)
	for _, k := range slices.Sorted(mapsKeys(want, got)) {
		if !slices.Equal(want[k], got[k]) {
			t.Errorf("%s:\n  unslowed %q\n  slowed   %q", k, want[k], got[k])
		}
	}
	for name, r := range map[string]result{"unslowed": plain, "slowed": slow} {
		if n, what := retransmissions(r.evs); n > 0 {
			t.Errorf("%s: %d segments sent again:\n%s", name, n, strings.Join(what, "\n"))
		}
		syn, synAck, timeWait := waits(r.evs)
		// 2ms each way, on the network's clock: 40ms of real time slowed.
		if synAck-syn < 4*time.Millisecond || synAck-syn > 40*time.Millisecond {
			t.Errorf("%s: the SYN's round trip took %v on the network's clock, want 4ms and a little", name, synAck-syn)
		}
		if timeWait < demoTimeWait || timeWait > demoTimeWait*3/2 {
			t.Errorf("%s: TIME-WAIT lasted %v on the network's clock, want %v", name, timeWait, demoTimeWait)
		}
	}
}

// waits returns when the client sent its first SYN and received the
// SYN|ACK, and how long the server's control connection was in TIME-WAIT.
func waits(evs []trace.Event) (syn, synAck, timeWait time.Duration) {
	t0 := evs[0].Time
	var entered time.Time
	for _, e := range evs {
		if s := e.Segment; s != nil && e.Host == "client" && s.Proto == "tcp" {
			switch {
			case s.Dir == trace.Out && s.Flags == trace.SYN && syn == 0:
				syn = e.Time.Sub(t0)
			case s.Dir == trace.In && s.Flags == trace.SYN|trace.ACK && synAck == 0:
				synAck = e.Time.Sub(t0)
			}
		}
		if st := e.State; st != nil && e.Host == "server" && st.Label == trace.Control {
			switch {
			case st.To == trace.StateTimeWait:
				entered = e.Time
			case st.From == trace.StateTimeWait:
				timeWait = e.Time.Sub(entered)
			}
		}
	}
	return syn, synAck, timeWait
}
