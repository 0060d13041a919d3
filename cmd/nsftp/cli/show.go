package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/trace"
)

func runShow(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("show", `nsftp show [flags] RUN.jsonl

Renders a run recorded with --trace=json or --record exactly as the live
run showed it: the text trace on standard output and, with --diagram, the
ladder diagram; with --graph, each data connection's time-sequence graph;
with --html, a lesson to step through in a browser. A recording of demo
--compare shows as --compare does: both runs side by side, with what
differs (--diagram draws both ladders, --graph both senders on the same
scales, --html puts both on one page). "-" reads the recording from
standard input; a recording compressed with gzip (RUN.jsonl.gz) reads as
it is. A recording cut short (a killed run) is shown up to where it
stops, and then show says where that is and exits with 7. A teacher
records a run once and shows it anywhere, with no network.`, e.stdout)
	var o showOptions
	fs.group("Showing")
	fs.stringVar(&o.diagram, "diagram", "", "also draw the run as a ladder diagram in `FILE.svg`")
	fs.stringVar(&o.graph, "graph", "", "also draw each data connection's time-sequence graph with the sender's cwnd in `FILE.svg` (from a recording with TCB samples: --graph, --stats, --trace=json or --record made it)")
	fs.stringVar(&o.html, "html", "", "also write the run as a lesson to open in a browser, `FILE.html` (one file: no network needed)")
	fs.boolVar(&o.explain, "explain", false, "show the netstack functions that produced each outgoing segment (when recorded)")
	fs.boolVar(&o.every, "every-segment", false, "show every segment of bulk data, not one line per run of them; with --html, keep every segment steppable however long the run")
	fs.boolVar(&o.verbose, "v", false, "show only the client's FTP commands and replies")
	fs.intVar(&o.width, "width", -1, "fit lines to `N` columns (default: the terminal's width, or full lines to a pipe or file)")
	pos, err := fs.parse(args, 1, 1, "show takes one recording (RUN.jsonl, RUN.jsonl.gz, or - for standard input)")
	if err != nil {
		return err
	}
	var r io.Reader = e.stdin
	name := "standard input"
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return &fileError{err}
		}
		defer f.Close()
		r, name = f, pos[0]
	}
	events, err := trace.ReadJSON(r)
	var cut *trace.CutError
	if err != nil && (!errors.As(err, &cut) || len(events) == 0) {
		return &fileError{fmt.Errorf("%s: %w", name, err)}
	}
	if len(events) == 0 {
		return &fileError{fmt.Errorf("%s: no events: not a recording of a run", name)}
	}
	if err := showEvents(e, events, o); err != nil {
		return err
	}
	// What was readable is shown; now say where it stops, and why.
	last := events[len(events)-1]
	at := fmt.Sprintf("event #%d (%s into the run)", last.Seq, trace.Duration(last.Time.Sub(events[0].Time)))
	switch {
	case cut != nil:
		return &fileError{fmt.Errorf("%s: %w; shown up to %s", name, cut, at)}
	case !trace.Whole(events):
		return &fileError{fmt.Errorf("%s stops at %s without the run's end: the run was cut short, or is still being recorded; shown up to there", name, at)}
	}
	return nil
}

// showOptions are show's flags.
type showOptions struct {
	diagram, graph, html    string
	explain, every, verbose bool
	width                   int
}

// showEvents renders a recording as the live run showed it, with the
// diagram, graph and page the flags ask for.
func showEvents(e *env, events []trace.Event, o showOptions) error {
	keep := lesson.KeepAuto
	if o.every {
		keep = lesson.KeepEvery
	}
	if left, right, ok := trace.CompareRuns(events); ok {
		if err := showCompare(e.stdout, left, right, compareOptions(e.stdout, o.width)); err != nil {
			return &fileError{fmt.Errorf("writing the comparison: %w", err)}
		}
		cols := compareColumns()
		l, r := runColumn(left, cols[0]), runColumn(right, cols[1])
		if o.diagram != "" {
			err := writeSVGFile(o.diagram, "--diagram", func(w io.Writer) error {
				return trace.WriteCompareLadder(w, left, right, trace.CompareLadderOptions{Left: l, Right: r})
			})
			if err != nil {
				return err
			}
		}
		if o.graph != "" {
			err := writeSVGFile(o.graph, "--graph", func(w io.Writer) error {
				return trace.WriteCompareGraph(w, left, right, trace.CompareGraphOptions{Left: l, Right: r})
			})
			if err != nil {
				return err
			}
		}
		if o.html != "" {
			return writeLessonFile(o.html, [][]trace.Event{left, right}, "--html", keep)
		}
		return nil
	}
	sf := &seeFlags{explain: o.explain, every: o.every}
	opt := textOptions(e.stdout, sf)
	if o.width >= 0 {
		opt.Width = o.width
	}
	if o.verbose {
		opt = trace.TextOptions{FTP: trace.Client}
	}
	text := trace.NewText(e.stdout, opt)
	for i := range events {
		text.Event(&events[i])
	}
	if err := text.Flush(); err != nil {
		return &fileError{fmt.Errorf("writing the trace: %w", err)}
	}
	if o.diagram != "" {
		if err := writeDiagramFile(o.diagram, events, ""); err != nil {
			return err
		}
	}
	if o.graph != "" {
		if err := writeGraphFile(o.graph, events, ""); err != nil {
			return err
		}
	}
	if o.html != "" {
		return writeLessonFile(o.html, [][]trace.Event{events}, "--html", keep)
	}
	return nil
}

// runColumn is the stack a run of --compare was on, as its run event
// names it, or dflt.
func runColumn(evs []trace.Event, dflt string) string {
	for _, e := range evs {
		if e.Kind == trace.KindRun && e.Run != nil && e.Run.Compare != "" {
			return e.Run.Compare
		}
	}
	return dflt
}
