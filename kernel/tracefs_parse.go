package kernel

import (
	"regexp"
	"strconv"
	"strings"
)

// record is one event read from trace_pipe, with the stack trace its
// trigger recorded after it.
type record struct {
	task   string
	pid    int
	cpu    int
	mono   int64 // ns, trace_clock mono
	event  string
	fields map[string]string
	stack  []string // innermost first, as the kernel prints it
	lost   int      // a "[LOST n EVENTS]" line
	wants  bool     // a stack trace follows it
}

// parser reads trace_pipe's text, line by line. An event whose tracepoint
// takes a stack trace waits for it: the trigger writes the stack as an
// entry of its own after the event, by the same task. Not always at once,
// nor on the same CPU: the trigger runs after the event is committed,
// where a task in a system call may be preempted, and move, before it
// writes the stack (paired by CPU and given 5 ms, such a stack would be
// lost; a connect()'s chain went missing once on a loaded machine, though
// that this was the cause is not shown).
type parser struct {
	pending map[int]*record // per task (see taskKey): an event waiting for its stack
	inStack *record         // the event whose stack's lines are being read
}

// taskKey names the task that wrote an entry: its pid, or, for the idle
// tasks (pid 0 on every CPU, which never move), its CPU.
func taskKey(pid, cpu int) int {
	if pid != 0 {
		return pid
	}
	return -1 - cpu
}

// header matches "task-pid [cpu] flags seconds.fraction: event: fields";
// a task's name may itself hold spaces and dashes.
var header = regexp.MustCompile(`^\s*(.*)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+)\.(\d+):\s+(<stack trace>|[\w]+):?\s?(.*)$`)

var lostLine = regexp.MustCompile(`CPU:\s*(\d+)\s*\[LOST (\d+) EVENTS\]`)

// line parses one line, handing complete events to emit.
func (p *parser) line(s string, emit func(*record)) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "=>") {
		if r := p.inStack; r != nil {
			fn := strings.TrimSpace(strings.TrimPrefix(t, "=>"))
			if i := strings.IndexAny(fn, "+ "); i > 0 {
				fn = fn[:i] // "tcp_close+0x1f/0x60": symbol offsets, when shown
			}
			r.stack = append(r.stack, fn)
		}
		return
	}
	if r := p.inStack; r != nil {
		// The stack is complete.
		p.inStack = nil
		delete(p.pending, taskKey(r.pid, r.cpu))
		emit(r)
	}
	if m := lostLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		emit(&record{lost: n})
		return
	}
	m := header.FindStringSubmatch(s)
	if m == nil {
		return
	}
	pid, _ := strconv.Atoi(m[2])
	cpu, _ := strconv.Atoi(m[3])
	r := &record{task: m[1], pid: pid, cpu: cpu, mono: nanos(m[4], m[5]), event: m[6]}
	key := taskKey(pid, cpu)
	if r.event == "<stack trace>" {
		if w := p.pending[key]; w != nil {
			p.inStack = w
		}
		return
	}
	if w := p.pending[key]; w != nil {
		// The task went on without writing its stack (the trigger
		// failed): the event is complete.
		delete(p.pending, key)
		emit(w)
	}
	r.fields = fields(m[7])
	r.wants = wantsStack(r.event)
	if !r.wants {
		emit(r)
		return
	}
	if p.pending == nil {
		p.pending = map[int]*record{}
	}
	p.pending[key] = r
}

// expire hands on the events still waiting that happened before mono:
// called when trace_pipe has nothing more to read, so a stack being read
// is complete, and a stack not begun is not coming.
func (p *parser) expire(mono int64, emit func(*record)) {
	for key, r := range p.pending {
		if r.mono < mono {
			if r == p.inStack {
				p.inStack = nil
			}
			delete(p.pending, key)
			emit(r)
		}
	}
}

// oldest is the time of the oldest event still waiting, 0 if none.
func (p *parser) oldest() int64 {
	var o int64
	for _, r := range p.pending {
		if o == 0 || r.mono < o {
			o = r.mono
		}
	}
	return o
}

func wantsStack(event string) bool {
	for _, tp := range tracepoints {
		if tp.stack && strings.HasSuffix(tp.event, "/"+event) {
			return true
		}
	}
	return false
}

// nanos reads "seconds" and "fraction" as nanoseconds.
func nanos(sec, frac string) int64 {
	s, _ := strconv.ParseInt(sec, 10, 64)
	if len(frac) > 9 {
		frac = frac[:9]
	}
	f, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	return s*1e9 + f
}

// fields reads "key=value key=value ...".
func fields(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
