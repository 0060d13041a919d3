package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/trace"
)

// compareColumns title the two runs of --compare: nsftp's stack, then the
// kernel's.
func compareColumns() [2]string {
	return [2]string{"nsftp's netstack (gVisor)", kernel.Release() + "'s TCP"}
}

// runCompare runs the demo's session on nsftp's stack and then on the
// kernel's, keeping both runs' events, and shows them side by side with
// what differs between the two stacks. --trace=json and --record write
// both runs' events, one run after the other, each from its run event
// (which names its stack); --diagram draws their ladders side by side,
// --graph their data connections' time-sequence graphs on the same
// scales; --html writes a lesson's page of the two, side by side.
func runCompare(ctx context.Context, e *env, d *demoRun, sf *seeFlags, quiet bool) error {
	if d.up.Rate > 0 && os.Geteuid() != 0 {
		return &setupError{fmt.Errorf("--rate with --compare shapes the kernel's loopback too, in a network namespace made for the run: that needs root (without --compare, the bottleneck is nsftp's virtual wire's alone)")}
	}
	var recFile *os.File
	if sf.record != "" {
		f, err := os.Create(sf.record)
		if err != nil {
			return &fileError{fmt.Errorf("--record: %w", err)}
		}
		recFile = f
		defer f.Close()
	}
	mode, _ := d.mode()
	what := d.file
	if d.size > 0 {
		what += " (" + trace.Bytes(d.size) + ")"
	}
	title := fmt.Sprintf("nsftp demo --compare: the same %s-mode download of %s on two TCP/IP stacks", mode, what)
	cols := compareColumns()
	var runs [2][]trace.Event
	for i, onKernel := range []bool{false, true} {
		sg := keepingSeeing(e)
		sg.compareTitle, sg.compareColumn = title, cols[i]
		var res demoResult
		var trErr, err error
		if onKernel {
			res, trErr, err = d.onKernel(ctx, e, sg)
		} else {
			res, trErr, err = d.onNetstack(ctx, sg)
		}
		sg.finish("")
		if err == nil {
			err = trErr
		}
		if err == nil {
			err = d.check(res)
		}
		if err != nil {
			return fmt.Errorf("the session on %s: %w", map[bool]string{false: "nsftp's stack", true: "the kernel's"}[onKernel], err)
		}
		runs[i] = sg.keep.Events
	}
	// Both runs as one timeline: the kernel's run follows netstack's, so
	// its events are numbered on from there, and no time goes back.
	all := make([]trace.Event, 0, len(runs[0])+len(runs[1]))
	all = append(all, runs[0]...)
	for _, ev := range runs[1] {
		ev.Seq += uint64(len(runs[0]))
		all = append(all, ev)
	}
	if recFile != nil {
		if err := writeJSONFile(recFile, all); err != nil {
			return &fileError{fmt.Errorf("writing %s: %w", sf.record, err)}
		}
	}
	if sf.diagram != "" {
		err := writeSVGFile(sf.diagram, "--diagram", func(w io.Writer) error {
			return trace.WriteCompareLadder(w, runs[0], runs[1], trace.CompareLadderOptions{Title: title, Left: cols[0], Right: cols[1]})
		})
		if err != nil {
			return err
		}
	}
	if sf.graph != "" {
		err := writeSVGFile(sf.graph, "--graph", func(w io.Writer) error {
			return trace.WriteCompareGraph(w, runs[0], runs[1], trace.CompareGraphOptions{Title: title + ": time-sequence graphs", Left: cols[0], Right: cols[1]})
		})
		if err != nil {
			return err
		}
	}
	if sf.html != "" {
		if err := writeLessonFile(sf.html, runs[:], "--html", lesson.KeepAuto); err != nil {
			return err
		}
	}
	if sf.trace.format == "json" {
		w := trace.NewJSONWriter(e.stdout)
		for i := range all {
			w.Event(&all[i])
		}
		return w.Flush()
	}
	opt := compareOptions(e.stdout, -1)
	opt.DifferencesOnly = quiet
	if err := showCompare(e.stdout, runs[0], runs[1], opt); err != nil {
		return &fileError{fmt.Errorf("writing the comparison: %w", err)}
	}
	return nil
}

// compareOptions fit the side-by-side view to where it goes: a
// terminal's width, else 160 columns (width, if not negative, says).
// Each line is explained: the kernel's stacks from tracefs (as root),
// netstack's from its own call stack.
func compareOptions(out io.Writer, width int) trace.CompareOptions {
	cols := compareColumns()
	opt := trace.CompareOptions{Width: 160, Left: cols[0], Right: cols[1], Explain: true}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 40 {
			opt.Width = w
		}
	}
	if width > 0 {
		opt.Width = width
	}
	return opt
}

// showCompare writes the side-by-side view of two runs of --compare,
// under the title their run events carry (their columns' titles from
// there too, when recorded), as the live run and `nsftp show` both show
// it.
func showCompare(w io.Writer, left, right []trace.Event, opt trace.CompareOptions) error {
	title := ""
	for i, evs := range [][]trace.Event{left, right} {
		for _, e := range evs {
			if e.Kind == trace.KindRun && e.Run != nil {
				if title == "" {
					title = e.Run.Title
				}
				if e.Run.Compare != "" && i == 0 {
					opt.Left = e.Run.Compare
				} else if e.Run.Compare != "" {
					opt.Right = e.Run.Compare
				}
				break
			}
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s\n\n", trace.Clean(title))
	if err := trace.WriteCompare(bw, left, right, opt); err != nil {
		return err
	}
	return bw.Flush()
}

// writeJSONFile writes events as JSON lines to f.
func writeJSONFile(f *os.File, events []trace.Event) error {
	w := trace.NewJSONWriter(f)
	for i := range events {
		w.Event(&events[i])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// keepingSeeing sees a run the way --compare needs it: every event of
// every layer kept, with the senders' TCB samples, nothing shown.
func keepingSeeing(e *env) *seeing {
	s := &seeing{sf: &seeFlags{explain: true}, e: e, keep: &trace.Keep{}, stackEvs: true, samples: true}
	s.rec = trace.NewRecorder(s.keep)
	return s
}
