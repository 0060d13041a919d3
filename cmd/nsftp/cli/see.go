package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// seeFlags are the teaching options: everything that shows what the stack
// and the protocol do. They are the same for every command.
type seeFlags struct {
	trace   traceFlag
	record  string
	every   bool
	step    bool
	pcap    string
	diagram string
	graph   string
	explain bool
	stats   bool
	verbose bool
	html    string
	web     webFlag
	slow    float64
	// net is the kind of network the run is on, as the command chose
	// it (forNetwork): what the run's clock can hold and slow.
	net runNet
}

// runNet is the kind of network a run is on.
type runNet int

const (
	netWire runNet = iota // nsftp's virtual wire: every host on it is nsftp's
	netTAP                // nsftp's stack on a TAP device, a real kernel on the other side
	netOS                 // the kernel's TCP (--net os)
	netBoth               // the demo's --compare: the wire, then the kernel's TCP
)

func (sf *seeFlags) register(fs *flagSet) {
	fs.group("Seeing inside")
	fs.varFlag(&sf.trace, "trace", "print every socket call, TCP state change, segment and FTP step as it happens; --trace=json writes JSON lines (see docs/trace-json.md)")
	fs.stringVar(&sf.record, "record", "", "also write the run's events to `FILE` as JSON lines, for 'nsftp show' to render anywhere")
	fs.boolVar(&sf.every, "every-segment", false, "with --trace: show every segment of bulk data, not one line per run of them")
	fs.boolVar(&sf.step, "step", false, "pause before each socket call (Enter) or each segment (s); c runs to the end, q stops cleanly. The network's clock stands still while you read: no timer runs out")
	fs.floatVar(&sf.slow, "slow", 0, "run the virtual wire and its hosts `N` times slower than real time, every delay and timer with them, to watch (10: a tenth of real speed)")
	fs.stringVar(&sf.pcap, "pcap", "", "write every frame of the run to `FILE` (pcap, for tshark and Wireshark; with --net os, from a packet socket: root)")
	fs.stringVar(&sf.diagram, "diagram", "", "draw the run as a ladder diagram in `FILE.svg`")
	fs.stringVar(&sf.graph, "graph", "", "draw each data connection's time-sequence graph, with the sender's congestion window, in `FILE.svg`")
	fs.boolVar(&sf.explain, "explain", false, "with --trace: show the netstack functions that produced each outgoing segment; with --net os, the kernel functions behind each change of state (root)")
	fs.boolVar(&sf.stats, "stats", false, "end with the netstack counters that changed, per host, and what TCP did under pressure: retransmissions, timeouts, recoveries, largest cwnd, SRTT, goodput; with --net os, the kernel's counters")
	fs.boolVar(&sf.verbose, "v", false, "print the FTP commands and replies")
	fs.stringVar(&sf.html, "html", "", "write the run as a lesson to open in a browser, `FILE.html`: step through it forward and back, every layer, the TCB, the state diagram (one file, no network needed)")
	fs.varFlag(&sf.web, "web", "a live lesson in a browser: the run pauses as with --step and the page drives it (Next call, Next segment, Continue, Stop); on 127.0.0.1 and a free port, or --web=ADDR (another address lets others watch)")
}

// stepping reports whether the run is driven step by step, from the
// terminal or from a browser: the protocol timeouts then wait for people.
func (sf *seeFlags) stepping() bool { return sf.step || sf.web.set }

// validatePeer checks that a run tracing the kernel at its peer
// (--peer-kernel) has somewhere to show it.
func (sf *seeFlags) validatePeer(peerKernel bool) error {
	if peerKernel && sf.trace.format == "" && sf.record == "" && sf.diagram == "" && sf.graph == "" && !sf.step && !sf.stats &&
		sf.html == "" && !sf.web.set {
		return usagef("--peer-kernel shows the peer's side in the run's trace: add --trace, --record, --diagram, --graph, --html or --web")
	}
	return nil
}

// validate checks the teaching options. Every one works on either stack:
// on the kernel's (--net os) what needs privilege says so when the run
// starts.
func (sf *seeFlags) validate() error {
	if sf.slow != 0 && !(sf.slow >= 1 && sf.slow <= 1e6) {
		return usagef("--slow %v: give a factor of 1 or more (--slow 10 runs the network at a tenth of real speed)", sf.slow)
	}
	if sf.explain && sf.trace.format == "" {
		return usagef("--explain goes with --trace")
	}
	if sf.every && sf.trace.format != "text" {
		return usagef("--every-segment goes with --trace")
	}
	if sf.step && sf.web.set {
		return usagef("--step and --web both drive the run: choose one")
	}
	return nil
}

// forNetwork notes the kind of network the run is on, and refuses what
// cannot be done there: only nsftp's virtual wire, where every host is
// nsftp's, can be slowed.
func (sf *seeFlags) forNetwork(kind runNet) error {
	sf.net = kind
	if sf.slow > 1 && kind != netWire {
		return usagef("--slow slows nsftp's virtual wire (nsftp demo); on a TAP device or --net os the peer is a real kernel that runs at its own speed")
	}
	return nil
}

// seeing is the teaching machinery of one run: the timeline every layer
// records into, the views rendered from it, step mode, the pcap.
type seeing struct {
	sf       *seeFlags
	e        *env
	rec      *trace.Recorder // nil when nothing is traced, drawn or stepped
	clock    *stack.Clock    // the network's time, on nsftp's stack; nil on the kernel's
	stackEvs bool            // the stack records its events (not only the FTP dialogue)
	samples  bool            // and TCB samples
	keep     *trace.Keep     // every event, for the diagram
	course   *course         // --stats' figures from the events
	step     *stepper
	web      *webLesson // --web's live lesson
	recFile  *os.File   // --record's file
	pcapFile *os.File
	pcapBuf  *bufio.Writer
	hosts    []*stack.Host
	before   []stack.Stats
	finished bool
	// For a run of --compare: the comparison's title, and the column (the
	// stack) this run is, for its run event.
	compareTitle, compareColumn string

	// The kernel's side, for runs on its TCP (--net os).
	watch        *kernel.Watch
	kernelNS     *kernel.NetNS
	kernelBefore kernel.Counters
	kernelAfter  kernel.Counters
	kernelErr    error
	dropsSaid    bool
	// peer is the kernel at the far end of a TAP run's connections
	// (--peer-kernel), watched through s.watch.
	peer *peerKernel
}

// start sets up what the flags ask for; the trace goes to out. side is
// the FTP side whose dialogue -v shows. In step mode, q stops the run
// through cancel.
func (sf *seeFlags) start(e *env, out io.Writer, side trace.Role, cancel context.CancelCauseFunc) (*seeing, error) {
	s := &seeing{sf: sf, e: e}
	var sinks []trace.Sink
	switch sf.trace.format {
	case "text":
		sinks = append(sinks, trace.NewText(out, textOptions(out, sf)))
	case "json":
		sinks = append(sinks, trace.NewJSONWriter(out))
	default:
		if sf.verbose {
			sinks = append(sinks, trace.NewText(out, trace.TextOptions{FTP: side}))
		}
	}
	if sf.diagram != "" || sf.graph != "" || sf.html != "" || sf.web.set {
		s.keep = &trace.Keep{}
		sinks = append(sinks, s.keep)
	}
	if sf.web.set {
		w, err := startWeb(sf.web.addr, "nsftp: a live lesson", cancel)
		if err != nil {
			return nil, err
		}
		s.web = w
		sinks = append(sinks, w.sink())
	}
	if sf.stats {
		s.course = newCourse()
		sinks = append(sinks, s.course)
	}
	if sf.record != "" {
		f, err := os.Create(sf.record)
		if err != nil {
			return nil, &fileError{fmt.Errorf("--record: %w", err)}
		}
		s.recFile = f
		sinks = append(sinks, trace.NewJSONWriter(f))
	}
	s.stackEvs = sf.trace.format != "" || sf.diagram != "" || sf.graph != "" || sf.step || sf.record != "" || sf.stats ||
		sf.html != "" || sf.web.set
	// The congestion window's samples are for the graph, --stats, the
	// lessons in a browser and programs.
	s.samples = sf.graph != "" || sf.trace.format == "json" || sf.record != "" || sf.stats || sf.html != "" || sf.web.set
	// On nsftp's stack the run has a clock of its own: slowed by
	// --slow, held while step mode waits for a key, and the time of
	// every event, so that a paused run reads as if nobody paused it.
	// The kernel's TCP (--net os) runs on the kernel's time.
	if sf.net != netOS {
		c, err := stack.NewClock(stack.ClockConfig{Slow: sf.slow})
		if err != nil {
			return nil, usagef("--slow: %v", err)
		}
		s.clock = c
		if e.clockReady != nil {
			e.clockReady(c)
		}
	}
	if len(sinks) > 0 || sf.step {
		if s.clock != nil {
			s.rec = trace.NewRecorderOn(s.clock, sinks...)
		} else {
			s.rec = trace.NewRecorder(sinks...)
		}
	}
	if sf.step {
		s.step = newStepper(e.stdin, e.stderr, s.rec, cancel)
	}
	if s.web != nil {
		// The browser is step mode's keyboard.
		s.step = &stepper{keys: s.web, out: io.Discard, rec: s.rec, cancel: cancel, announce: s.web.announce}
		fmt.Fprintf(e.stderr, "nsftp: the lesson is at %s\n  (%s); the run waits for the page's Next call, Next segment or Continue\n", s.web.url, s.web.reach())
	}
	if s.step != nil {
		switch sf.net {
		case netTAP:
			fmt.Fprintln(e.stderr, "nsftp: step mode stops nsftp's stack and its clock at every prompt, but the kernel across the TAP device cannot be paused: its timers run on while you read")
		case netOS:
			fmt.Fprintln(e.stderr, "nsftp: step mode stops at nsftp's socket calls, but the kernel's TCP cannot be paused: its timers run on while you read")
		}
	}
	if sf.pcap != "" {
		f, err := os.Create(sf.pcap)
		if err != nil {
			return nil, &fileError{fmt.Errorf("--pcap: %w", err)}
		}
		s.pcapFile = f
		s.pcapBuf = bufio.NewWriterSize(f, 256<<10)
	}
	return s, nil
}

// textOptions fit the text view to where it goes: a terminal's width and
// colours, or full lines for a pipe or a file.
func textOptions(out io.Writer, sf *seeFlags) trace.TextOptions {
	opt := trace.TextOptions{Explain: sf.explain, Every: sf.every}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			opt.Width = w
		}
		opt.Color = os.Getenv("NO_COLOR") == ""
	}
	return opt
}

// begin records what the run is: its title and setup, the first event.
func (s *seeing) begin(title, about string) {
	if s.compareTitle != "" {
		title = s.compareTitle
	}
	if s.rec != nil {
		s.rec.Record(trace.Event{Layer: trace.LayerRun, Kind: trace.KindRun, Run: &trace.Run{Title: title, About: about, Compare: s.compareColumn}})
	}
}

// hostConfig is a host's config with the observers the flags ask for.
// Only the host named capture writes the pcap (on a virtual wire one
// host's link already sees every frame).
func (s *seeing) hostConfig(name string, role trace.Role, capture bool) stack.HostConfig {
	cfg := stack.HostConfig{Name: name, Role: role, Clock: s.clock}
	if s.rec != nil && s.stackEvs {
		cfg.Observer = s.rec.Record
		if s.peer != nil {
			cfg.Observer = s.peer.observer(s.rec.Record)
		}
		cfg.Explain = s.sf.explain
		cfg.Samples = s.samples
		if s.step != nil {
			cfg.Gate = s.step
		}
	}
	if capture && s.pcapBuf != nil {
		cfg.Capture = &stack.CaptureConfig{PCAP: s.pcapBuf}
	}
	return cfg
}

// wireObserver receives a virtual wire's lost frames, or is nil.
func (s *seeing) wireObserver() trace.Observer {
	if s.rec == nil || !s.stackEvs {
		return nil
	}
	return s.rec.Record
}

// wireCapture is the pcap a virtual wire writes every frame to, or nil.
func (s *seeing) wireCapture() io.Writer {
	if s.pcapBuf == nil {
		return nil
	}
	return s.pcapBuf
}

// hostStarted notes a host whose counters --stats reports.
func (s *seeing) hostStarted(h *stack.Host) {
	s.hosts = append(s.hosts, h)
	s.before = append(s.before, h.Stats())
}

// ftpObserver is the observer for the FTP client or server, or nil.
func (s *seeing) ftpObserver() trace.Observer {
	if s.rec == nil {
		return nil
	}
	return s.rec.Record
}

// settle waits, for at most d of the network's time, until the hosts'
// connections have all reached CLOSED: so the trace shows how they end,
// and the hosts stop as real ones do, with nothing left to reset.
func (s *seeing) settle(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	if s.clock != nil {
		t := s.clock.AfterFunc(d, cancel)
		defer t.Stop()
	} else {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, d)
		defer stop()
	}
	for _, h := range s.hosts {
		h.Settle(ctx)
	}
}

// stopTrace ends the trace: what follows is teardown, not the lesson.
// On the kernel's TCP, the connections get a moment to end first, and
// what the kernel told of them is read to the end.
func (s *seeing) stopTrace() error {
	var errs []error
	if s.watch != nil {
		s.watch.Settle(time.Second)
		if err := s.watch.Close(); err != nil {
			errs = append(errs, &fileError{err})
		}
		if s.kernelBefore != nil && s.kernelAfter == nil {
			// Now, while the run's namespace is there to read them in.
			s.kernelAfter, s.kernelErr = kernel.ReadCounters(s.kernelNS)
		}
		if n := s.watch.Drops(); n > 0 && !s.dropsSaid {
			s.dropsSaid = true
			fmt.Fprintf(s.e.stderr, "nsftp: the packet socket dropped %d frames: the trace and the pcap miss them\n", n)
		}
	}
	if s.rec == nil {
		return errors.Join(errs...)
	}
	// The recording is whole: nsftp show says so of one that lacks this.
	s.rec.Record(trace.Event{Layer: trace.LayerRun, Kind: trace.KindEnd})
	if err := s.rec.Stop(); err != nil {
		errs = append(errs, &fileError{fmt.Errorf("writing the trace: %w", err)})
	}
	return errors.Join(errs...)
}

// finish writes what is written at the end: the diagram, the pcap, the
// counters. Call it after the hosts are closed, so the pcap is complete.
func (s *seeing) finish(title string) error {
	if s.finished {
		return nil
	}
	s.finished = true
	errs := []error{s.stopTrace()}
	if s.recFile != nil {
		if err := s.recFile.Close(); err != nil {
			errs = append(errs, &fileError{fmt.Errorf("writing %s: %w", s.sf.record, err)})
		}
	}
	if s.keep != nil && s.sf.diagram != "" {
		errs = append(errs, writeDiagramFile(s.sf.diagram, s.keep.Events, title))
	}
	if s.keep != nil && s.sf.graph != "" {
		errs = append(errs, writeGraphFile(s.sf.graph, s.keep.Events, ""))
	}
	if s.keep != nil && s.sf.html != "" {
		errs = append(errs, writeLessonFile(s.sf.html, [][]trace.Event{s.keep.Events}, "--html", lesson.KeepAuto))
	}
	if s.web != nil {
		s.web.finish(s.keep.Events, nil)
	}
	if s.pcapFile != nil {
		if err := s.pcapBuf.Flush(); err != nil {
			errs = append(errs, &fileError{fmt.Errorf("writing %s: %w", s.sf.pcap, err)})
		}
		if err := s.pcapFile.Close(); err != nil {
			errs = append(errs, &fileError{err})
		}
	}
	if s.clock != nil {
		s.clock.Close()
	}
	if s.sf.stats {
		for i, h := range s.hosts {
			printStats(s.e.stderr, h.Name(), h.Stats().Sub(s.before[i]))
		}
		s.course.print(s.e.stderr, s.hosts, s.before)
		if s.kernelBefore != nil {
			s.printKernelStats()
		}
	}
	return errors.Join(errs...)
}

func writeDiagramFile(path string, events []trace.Event, title string) error {
	return writeSVGFile(path, "--diagram", func(w io.Writer) error {
		return trace.WriteLadder(w, events, trace.LadderOptions{Title: title})
	})
}

// writeLessonFile writes runs as a lesson's page, to open in a browser.
func writeLessonFile(path string, runs [][]trace.Event, flag string, keep lesson.Keep) error {
	var names []string
	if len(runs) > 1 {
		for _, r := range runs {
			names = append(names, runColumn(r, runName(r)))
		}
	}
	return writeSVGFile(path, flag, func(w io.Writer) error {
		return lesson.Write(w, runs, lesson.PageOptions{Keep: keep, Names: names})
	})
}

// runName names the stack a run was on, from its hosts: the kernel's
// release for the kernel's TCP.
func runName(evs []trace.Event) string {
	for _, e := range evs {
		if e.Kind == trace.KindHost && e.HostInfo != nil && e.HostInfo.Kernel != "" {
			return e.HostInfo.Kernel + "'s TCP"
		}
	}
	return "nsftp's netstack (gVisor)"
}

func writeGraphFile(path string, events []trace.Event, title string) error {
	return writeSVGFile(path, "--graph", func(w io.Writer) error {
		return trace.WriteGraph(w, events, trace.GraphOptions{Title: title})
	})
}

// writeSVGFile creates path and has draw write into it; errors are local
// file errors, the creation's named after the flag that asked for it.
func writeSVGFile(path, flag string, draw func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return &fileError{fmt.Errorf("%s: %w", flag, err)}
	}
	w := bufio.NewWriter(f)
	err = draw(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &fileError{fmt.Errorf("writing %s: %w", path, err)}
	}
	return nil
}

// printStats prints the counters that changed, by name.
func printStats(w io.Writer, host string, d stack.Stats) {
	fmt.Fprintf(w, "netstack counters that changed on %s:\n", host)
	for _, name := range d.Names() {
		fmt.Fprintf(w, "  %-48s %d\n", name, d[name])
	}
}

// stepTimeout replaces the protocol timeouts in step mode: the person at
// the prompt takes as long as they need.
const stepTimeout = 24 * time.Hour
