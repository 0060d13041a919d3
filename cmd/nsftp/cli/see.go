package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"nsftp/ftp"
	"nsftp/stack"
)

// seeFlags are the teaching options: everything that shows what the stack
// and the protocol do. They are the same for every command.
type seeFlags struct {
	trace   traceFlag
	step    bool
	pcap    string
	diagram string
	explain bool
	stats   bool
	verbose bool
}

func (sf *seeFlags) register(fs *flagSet) {
	fs.group("Seeing inside")
	fs.varFlag(&sf.trace, "trace", "print every socket call, the segments it caused and the FTP steps, as they happen; --trace=json writes JSON lines")
	fs.boolVar(&sf.step, "step", false, "pause before each socket call: Enter steps, c runs to the end, q stops cleanly")
	fs.stringVar(&sf.pcap, "pcap", "", "write every frame of the run to `FILE` (pcap, for tshark and Wireshark)")
	fs.stringVar(&sf.diagram, "diagram", "", "draw the run as a ladder diagram in `FILE.svg`")
	fs.boolVar(&sf.explain, "explain", false, "with --trace: show the netstack functions that produced each outgoing segment")
	fs.boolVar(&sf.stats, "stats", false, "end with the netstack counters that changed, per host")
	fs.boolVar(&sf.verbose, "v", false, "print the FTP commands and replies")
}

// validate checks the teaching options against the network: the stack's
// views need nsftp's own stack.
func (sf *seeFlags) validate(ownStack bool) error {
	if !ownStack {
		for _, f := range []struct {
			set  bool
			name string
		}{{sf.step, "--step"}, {sf.pcap != "", "--pcap"}, {sf.explain, "--explain"}, {sf.stats, "--stats"}} {
			if f.set {
				return usagef("%s needs nsftp's own stack (--tap, or 'nsftp demo'); with --net os the kernel does the networking out of sight", f.name)
			}
		}
	}
	if sf.explain && sf.trace.format == "" {
		return usagef("--explain goes with --trace")
	}
	return nil
}

// seeing is the teaching machinery of one run.
type seeing struct {
	sf       *seeFlags
	e        *env
	tr       *tracer // nil when nothing is traced or drawn
	step     *stepper
	pcapFile *os.File
	pcapBuf  *bufio.Writer
	hosts    []*stack.Host
	before   []stack.Stats
	finished bool
}

// start sets up what the flags ask for; the trace goes to out. In step
// mode, q cancels the run through cancel.
func (sf *seeFlags) start(e *env, out io.Writer, cancel context.CancelCauseFunc) (*seeing, error) {
	s := &seeing{sf: sf, e: e}
	format := sf.trace.format
	if format == "" && sf.verbose {
		format = "ftp"
	}
	if format != "" || sf.diagram != "" {
		s.tr = newTracer(out, format, sf.trace.format != "" || sf.diagram != "")
		s.tr.keep = sf.diagram != ""
		s.tr.explain = sf.explain
	}
	if sf.step {
		s.step = newStepper(e.stdin, e.stderr, cancel)
	}
	if sf.pcap != "" {
		f, err := os.Create(sf.pcap)
		if err != nil {
			return nil, ftp.LocalFileError(err)
		}
		s.pcapFile = f
		s.pcapBuf = bufio.NewWriterSize(f, 256<<10)
	}
	return s, nil
}

// hostConfig is a host's config with the observers the flags ask for.
// Only the host named capture records frames (on a virtual wire one host's
// link already sees every frame).
func (s *seeing) hostConfig(name string, capture bool) stack.HostConfig {
	cfg := stack.HostConfig{Name: name}
	if s.step != nil {
		cfg.Gate = s.step.gate(name)
	}
	if s.tr != nil {
		cfg.Observer = s.tr.stackEvent
		cfg.Gate = s.tr.gate(name, cfg.Gate)
	}
	if capture && (s.pcapBuf != nil || (s.tr != nil && s.tr.segments)) {
		cfg.Capture = &stack.CaptureConfig{Segments: s.tr != nil && s.tr.segments, Chains: s.sf.explain}
		if s.pcapBuf != nil {
			cfg.Capture.PCAP = s.pcapBuf
		}
	}
	return cfg
}

// hostStarted notes a host whose counters --stats reports.
func (s *seeing) hostStarted(h *stack.Host) {
	s.hosts = append(s.hosts, h)
	s.before = append(s.before, h.Stats())
}

// ftpObserver is the observer for the FTP client or server, or nil.
func (s *seeing) ftpObserver() ftp.Observer {
	if s.tr == nil {
		return nil
	}
	return s.tr.ftpEvent
}

// stopTrace ends the trace: what follows is teardown, not the lesson.
func (s *seeing) stopTrace() error {
	if s.tr == nil {
		return nil
	}
	return s.tr.close()
}

// finish writes what is written at the end: the diagram, the pcap, the
// counters. Call it after the hosts are closed, so the pcap is complete.
func (s *seeing) finish(title string) error {
	if s.finished {
		return nil
	}
	s.finished = true
	var errs []error
	if s.tr != nil {
		errs = append(errs, s.tr.close())
		if s.sf.diagram != "" {
			errs = append(errs, writeDiagramFile(s.sf.diagram, s.tr.records, title))
		}
	}
	if s.pcapFile != nil {
		if err := s.pcapBuf.Flush(); err != nil {
			errs = append(errs, ftp.LocalFileError(fmt.Errorf("writing %s: %w", s.sf.pcap, err)))
		}
		if err := s.pcapFile.Close(); err != nil {
			errs = append(errs, ftp.LocalFileError(err))
		}
	}
	if s.sf.stats {
		for i, h := range s.hosts {
			printStats(s.e.stderr, h.Name(), h.Stats().Sub(s.before[i]))
		}
	}
	return errors.Join(errs...)
}

func writeDiagramFile(path string, recs []record, title string) error {
	f, err := os.Create(path)
	if err != nil {
		return ftp.LocalFileError(err)
	}
	w := bufio.NewWriter(f)
	err = writeDiagram(w, recs, diagramOptions{Title: title})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ftp.LocalFileError(fmt.Errorf("writing %s: %w", path, err))
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
