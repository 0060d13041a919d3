package cli

import (
	"bufio"
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/lesson"
	"github.com/nsftp/nsftp/trace"
)

// The lessons, their pages and the recordings the pages are made from.
var (
	lessonsDir   = filepath.Join("..", "..", "..", "docs", "lessons")
	recordingDir = filepath.Join("..", "..", "..", "testdata", "lessons")
)

// lessonPages are the lessons' pages, each made by nsftp show --html from
// the recording of the same name in testdata/lessons.
var lessonPages = []string{"handshake", "passive", "loss", "bottleneck", "compare"}

func readLessonRecording(t *testing.T, name string) []trace.Event {
	t.Helper()
	return readRecording(t, filepath.Join(recordingDir, name+".jsonl.gz"))
}

// TestLessonPagesCurrent: each page in docs/lessons is what nsftp show
// --html makes today from its committed recording (go test -update
// writes them again after a change to the page).
func TestLessonPagesCurrent(t *testing.T) {
	for _, name := range lessonPages {
		rec := filepath.Join(recordingDir, name+".jsonl.gz")
		page := filepath.Join(lessonsDir, name+".html")
		out := filepath.Join(t.TempDir(), name+".html")
		if testkit.Updating() {
			out = page
		}
		if _, errOut, err := runIn(t, "", "show", rec, "--html", out); err != nil {
			t.Fatalf("show %s --html: %v\n%s", rec, err, errOut)
		}
		if testkit.Updating() {
			continue
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(page)
		if err != nil {
			t.Fatalf("%v (go test ./cmd/nsftp/cli -run TestLessonPagesCurrent -update writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what show --html makes from %s today (go test ./cmd/nsftp/cli -run TestLessonPagesCurrent -update)", page, rec)
		}
	}
}

// TestLessons keeps the lessons true: each has its commands, which run
// as they are written (their files written elsewhere), three questions
// with answers, links to files that exist, and links to moments of its
// pages that land on the row they describe (a link's title is "host:
// what the row says").
func TestLessons(t *testing.T) {
	mds, err := filepath.Glob(filepath.Join(lessonsDir, "*.md"))
	if err != nil || len(mds) < 6 {
		t.Fatalf("docs/lessons holds %d lessons: %v", len(mds), err)
	}
	moments := map[string][][]lesson.Moment{}
	momentsOf := func(name string) [][]lesson.Moment {
		if m, ok := moments[name]; ok {
			return m
		}
		var runs [][]lesson.Moment
		for _, r := range lesson.Runs(readLessonRecording(t, name)) {
			runs = append(runs, lesson.Moments(r, lesson.KeepAuto))
		}
		moments[name] = runs
		return runs
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"([^"]*)")?\)`)
	lessons := 0
	for _, md := range mds {
		t.Run(filepath.Base(md), func(t *testing.T) {
			raw, err := os.ReadFile(md)
			if err != nil {
				t.Fatal(err)
			}
			text := string(raw)
			isLesson := regexp.MustCompile(`^\d-`).MatchString(filepath.Base(md))
			if isLesson {
				lessons++
				if n := strings.Count(text, "<details><summary>Answer</summary>"); n != 3 {
					t.Errorf("%d questions with answers, want 3", n)
				}
				if !strings.Contains(text, "## What to look at, and when") {
					t.Error("no \"What to look at, and when\"")
				}
			}
			commands := 0
			sc := bufio.NewScanner(bytes.NewReader(raw))
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "    nsftp ") {
					continue
				}
				commands++
				args := strings.Fields(strings.TrimPrefix(line, "    nsftp "))
				if slices.Contains(args, "--web") {
					continue // it waits for a browser: TestLessonLive drives it
				}
				runLessonCommand(t, args)
			}
			if isLesson && commands < 2 {
				t.Errorf("%d commands, want the run's and the page's", commands)
			}
			for _, m := range link.FindAllStringSubmatch(text, -1) {
				target, title := m[1], m[2]
				if strings.Contains(target, "://") {
					t.Errorf("a link off the repository: %s", target)
					continue
				}
				u, err := url.Parse(target)
				if err != nil {
					t.Errorf("link %s: %v", target, err)
					continue
				}
				if _, err := os.Stat(filepath.Join(lessonsDir, filepath.FromSlash(u.Path))); err != nil {
					t.Errorf("link to %s: %v", u.Path, err)
					continue
				}
				if u.Fragment == "" {
					continue
				}
				q, _ := url.ParseQuery(u.Fragment)
				seq, err := strconv.ParseInt(q.Get("e"), 10, 64)
				if err != nil {
					t.Errorf("link %s: no event number", target)
					continue
				}
				run, _ := strconv.Atoi(q.Get("run"))
				name := strings.TrimSuffix(u.Path, ".html")
				runs := momentsOf(name)
				if run >= len(runs) {
					t.Errorf("link %s: the recording has %d runs", target, len(runs))
					continue
				}
				host, what, ok := strings.Cut(title, ": ")
				if !ok {
					t.Errorf("link %s: its title %q does not say \"host: what the row says\"", target, title)
					continue
				}
				var at *lesson.Moment
				for i := range runs[run] {
					if runs[run][i].Seq >= seq {
						at = &runs[run][i]
						break
					}
				}
				switch {
				case at == nil:
					t.Errorf("link %s: past the run's end", target)
				case at.Host != host || !strings.Contains(at.Text, strings.TrimSpace(what)):
					t.Errorf("link %s lands on %s %q (event %d), the lesson says %q", target, at.Host, at.Text, at.Seq, title)
				}
			}
		})
	}
	if lessons != 5 {
		t.Errorf("%d lessons, want 5", lessons)
	}
}

// runLessonCommand runs one of a lesson's commands as it is written,
// with the recordings it reads from testdata/lessons and the files it
// writes in a directory of the test's.
func runLessonCommand(t *testing.T, args []string) {
	t.Helper()
	dir := t.TempDir()
	for i := range args {
		switch {
		case strings.HasPrefix(args[i], "testdata/"):
			args[i] = filepath.Join("..", "..", "..", filepath.FromSlash(args[i]))
		case i > 0 && slices.Contains([]string{"--record", "--html", "--diagram", "--graph", "--pcap"}, args[i-1]):
			args[i] = filepath.Join(dir, filepath.Base(args[i]))
		}
	}
	if _, errOut, err := runIn(t, "", args...); err != nil {
		t.Errorf("nsftp %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
}
