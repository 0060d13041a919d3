package cli

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/trace"
)

// runCompare runs the demo's session on nsftp's stack and then on the
// kernel's, keeping both runs' events, and shows them side by side with
// what differs between the two stacks.
func runCompare(ctx context.Context, e *env, d *demoRun, quiet bool, see *seeFlags) error {
	var runs [2][]trace.Event
	for i, onKernel := range []bool{false, true} {
		sg := keepingSeeing(e)
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
	opt := trace.CompareOptions{
		Width:           160,
		Left:            "nsftp's netstack (gVisor)",
		Right:           kernel.Release() + "'s TCP",
		DifferencesOnly: quiet,
		// The functions behind each step: the kernel's stacks from
		// tracefs (as root), netstack's from its own call stack.
		Explain: true,
	}
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 40 {
			opt.Width = w
		}
	}
	if see.record != "" {
		// Both runs, one after the other, each from its run event: show
		// and the lesson page split them there.
		if err := writeRecording(see.record, runs[:]); err != nil {
			return err
		}
	}
	if see.html != "" {
		if err := writeLessonFile(see.html, runs[:], "--html", lesson.KeepAuto); err != nil {
			return err
		}
	}
	mode, _ := d.mode()
	fmt.Fprintf(e.stdout, "nsftp demo --compare: the same %s-mode download of %s on two TCP/IP stacks\n\n", mode, d.file)
	if err := trace.WriteCompare(e.stdout, runs[0], runs[1], opt); err != nil {
		return &fileError{fmt.Errorf("writing the comparison: %w", err)}
	}
	return nil
}

// writeRecording writes runs to path as JSON lines, one after the other.
func writeRecording(path string, runs [][]trace.Event) error {
	f, err := os.Create(path)
	if err != nil {
		return &fileError{fmt.Errorf("--record: %w", err)}
	}
	w := trace.NewJSONWriter(f)
	for _, r := range runs {
		for i := range r {
			w.Event(&r[i])
		}
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &fileError{fmt.Errorf("writing %s: %w", path, err)}
	}
	return nil
}

// keepingSeeing sees a run the way --compare needs it: every event of
// every layer kept, nothing shown.
func keepingSeeing(e *env) *seeing {
	s := &seeing{sf: &seeFlags{explain: true}, e: e, keep: &trace.Keep{}, stackEvs: true}
	s.rec = trace.NewRecorder(s.keep)
	return s
}
