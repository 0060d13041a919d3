package cli

import (
	"context"
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
ladder diagram; with --html, a lesson to step through in a browser. A
recording of demo --compare shows as --compare does: both runs side by
side, with what differs (--diagram draws both ladders, --html puts both
on one page). "-" reads the recording from standard input; a recording
compressed with gzip (RUN.jsonl.gz) reads as it is. A teacher records a
run once and shows it anywhere, with no network.`, e.stdout)
	var (
		diagram string
		html    string
		explain bool
		every   bool
		verbose bool
		width   int
	)
	fs.group("Showing")
	fs.stringVar(&diagram, "diagram", "", "also draw the run as a ladder diagram in `FILE.svg`")
	fs.stringVar(&html, "html", "", "also write the run as a lesson to open in a browser, `FILE.html` (one file: no network needed)")
	fs.boolVar(&explain, "explain", false, "show the netstack functions that produced each outgoing segment (when recorded)")
	fs.boolVar(&every, "every-segment", false, "show every segment of bulk data, not one line per run of them; with --html, keep every segment steppable however long the run")
	fs.boolVar(&verbose, "v", false, "show only the client's FTP commands and replies")
	fs.intVar(&width, "width", -1, "fit lines to `N` columns (default: the terminal's width, or full lines to a pipe or file)")
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
	if err != nil {
		return &fileError{fmt.Errorf("%s: %w", name, err)}
	}
	if len(events) == 0 {
		return &fileError{fmt.Errorf("%s: no events: not a recording of a run", name)}
	}
	keep := lesson.KeepAuto
	if every {
		keep = lesson.KeepEvery
	}
	if left, right, ok := trace.CompareRuns(events); ok {
		if err := showCompare(e.stdout, left, right, compareOptions(e.stdout, width)); err != nil {
			return &fileError{fmt.Errorf("writing the comparison: %w", err)}
		}
		if diagram != "" {
			cols := compareColumns()
			err := writeSVGFile(diagram, "--diagram", func(w io.Writer) error {
				return trace.WriteCompareLadder(w, left, right, trace.CompareLadderOptions{Left: runColumn(left, cols[0]), Right: runColumn(right, cols[1])})
			})
			if err != nil {
				return err
			}
		}
		if html != "" {
			return writeLessonFile(html, [][]trace.Event{left, right}, "--html", keep)
		}
		return nil
	}
	sf := &seeFlags{explain: explain, every: every}
	opt := textOptions(e.stdout, sf)
	if width >= 0 {
		opt.Width = width
	}
	if verbose {
		opt = trace.TextOptions{FTP: trace.Client}
	}
	text := trace.NewText(e.stdout, opt)
	for i := range events {
		text.Event(&events[i])
	}
	if err := text.Flush(); err != nil {
		return &fileError{fmt.Errorf("writing the trace: %w", err)}
	}
	if diagram != "" {
		if err := writeDiagramFile(diagram, events, ""); err != nil {
			return err
		}
	}
	if html != "" {
		return writeLessonFile(html, [][]trace.Event{events}, "--html", keep)
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
