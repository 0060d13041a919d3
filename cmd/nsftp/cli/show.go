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
ladder diagram; with --html, a lesson to step through in a browser. "-"
reads the recording from standard input; a recording compressed with gzip
(RUN.jsonl.gz) reads as it is. A recording of demo --compare holds two
runs, shown side by side. A teacher records a run once and shows it
anywhere, with no network.`, e.stdout)
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
	runs := trace.SplitRuns(events)
	if len(runs) > 2 {
		return &fileError{fmt.Errorf("%s: %d runs in one recording; show takes one, or two to compare", name, len(runs))}
	}
	sf := &seeFlags{explain: explain, every: every}
	opt := textOptions(e.stdout, sf)
	if width >= 0 {
		opt.Width = width
	}
	if verbose {
		opt = trace.TextOptions{FTP: trace.Client}
	}
	if len(runs) == 2 {
		copt := trace.CompareOptions{Width: opt.Width, Left: runName(runs[0]), Right: runName(runs[1]), Explain: explain}
		if err := trace.WriteCompare(e.stdout, runs[0], runs[1], copt); err != nil {
			return &fileError{fmt.Errorf("writing the comparison: %w", err)}
		}
	} else {
		text := trace.NewText(e.stdout, opt)
		for i := range events {
			text.Event(&events[i])
		}
		if err := text.Flush(); err != nil {
			return &fileError{fmt.Errorf("writing the trace: %w", err)}
		}
	}
	if diagram != "" {
		if err := writeDiagramFile(diagram, runs[0], ""); err != nil {
			return err
		}
	}
	if html != "" {
		keep := lesson.KeepAuto
		if every {
			keep = lesson.KeepEvery
		}
		return writeLessonFile(html, runs, "--html", keep)
	}
	return nil
}
