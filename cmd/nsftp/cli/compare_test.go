package cli

// demo --compare drawn, recorded and graphed; the same bottleneck on both
// stacks; and, without privilege, differences only in what both stacks
// measured.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// TestDemoCompareRecorded: --record and --trace=json write both runs'
// events in one file, netstack's then the kernel's, each from a run event
// naming its stack; nsftp show renders the file as --compare showed it
// live; --diagram draws both ladders in one SVG.
func TestDemoCompareRecorded(t *testing.T) {
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	dir := t.TempDir()
	rec, svg := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "run.svg")
	live, errOut, err := runIn(t, "", "demo", "--compare", "--record", rec, "--diagram", svg)
	if err != nil {
		t.Fatalf("demo --compare --record --diagram: %v\n%s", err, errOut)
	}
	evs := readRecording(t, rec)
	tracetest.Causal(t, evs)
	left, right, ok := trace.CompareRuns(evs)
	if !ok {
		t.Fatalf("the recording does not hold two runs of --compare")
	}
	layers := func(evs []trace.Event) []trace.Layer {
		var out []trace.Layer
		for _, e := range evs {
			if (e.Kind == trace.KindCall || e.Kind == trace.KindHost) && !slices.Contains(out, e.Layer) {
				out = append(out, e.Layer)
			}
		}
		return out
	}
	if l, r := layers(left), layers(right); !slices.Equal(l, []trace.Layer{trace.LayerStack}) || !slices.Equal(r, []trace.Layer{trace.LayerKernel}) {
		t.Errorf("the runs' hosts are on layers %v and %v, want netstack's then the kernel's", l, r)
	}
	shown, errOut, err := runIn(t, "", "show", rec)
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errOut)
	}
	if shown != live {
		t.Errorf("show renders the recording differently from the live --compare:\n%s", lineDiff(live, shown))
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	cols := compareColumns()
	if n := strings.Count(s, "<svg "); n != 3 || !strings.Contains(s, svgText(cols[0])) || !strings.Contains(s, svgText(cols[1])) {
		t.Errorf("the diagram should hold two ladders, under %q and %q: %d drawings", cols[0], cols[1], n)
	}
	if !strings.Contains(s, "CLOSED → SYN-SENT") && !strings.Contains(s, "INITIAL → SYN-SENT") {
		t.Errorf("the diagram shows no change of state")
	}
	js, _, err := runIn(t, "", "demo", "--compare", "--trace=json")
	if err != nil {
		t.Fatal(err)
	}
	jevs, err := trace.ReadJSON(strings.NewReader(js))
	if err != nil {
		t.Fatalf("--compare --trace=json is not JSON lines: %v", err)
	}
	if _, _, ok := trace.CompareRuns(jevs); !ok {
		t.Errorf("--compare --trace=json does not hold both runs")
	}
}

// svgText is s as the drawing escapes it.
func svgText(s string) string { return strings.ReplaceAll(s, "'", "&#39;") }

// TestDemoCompareBottleneck downloads 16 MiB on both stacks through the
// same bottleneck, 20 Mbit/s with a queue of 32 frames: nsftp's wire
// models it, the kernel's loopback is shaped by tbf. Both senders lose at
// the queue and recover (retransmissions, a recovery state in their own
// samples), both get about 20 Mbit/s through, and the graph draws both
// senders on the same scales, each with its own cwnd.
//
// What "about 20 Mbit/s" can be, and what a loaded machine changes:
//   - The rate counts frames, headers and all (tc's and the wire's way):
//     a full frame of 1514 bytes carries the MSS the samples name (1448 on
//     Linux, 1420 on netstack, which keeps room for SACK blocks), so the
//     most a download gets is 20 Mbit/s x MSS/1514. Goodput is checked
//     against that, within 10%.
//   - Loss and recovery cost the link's time: retransmissions, and a
//     retransmission timeout leaves it idle. On a busy machine RTTs vary
//     more, RTOs grow with them, and a process not scheduled sends
//     nothing; with ten runnable processes on two cores netstack's link
//     idled for up to 306 ms at a time, and its goodput over the whole
//     transfer was 14.7-17.9 Mbit/s in four runs, the kernel's 16.9-18.3.
//     None of that is the shaper's doing. So the goodput of each
//     half-second is taken and the median checked: a few stalled
//     half-seconds do not move it (18.3 and 18.4 Mbit/s in the run at
//     load 10), and a shaper too slow or too fast does.
//   - Nothing makes TCP beat the shaper: the goodput over the whole
//     transfer is checked not to exceed what 20 Mbit/s carries.
func TestDemoCompareBottleneck(t *testing.T) {
	testkit.NeedRoot(t, "shapes the kernel's loopback")
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	dir := t.TempDir()
	rec, graph := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "g.svg")
	out, errOut, err := runIn(t, "", "demo", "--compare", "--size", "16MiB", "--rate", "20mbit", "--queue", "32", "--graph", graph, "--record", rec, "-q")
	if err != nil {
		t.Fatalf("demo --compare through a bottleneck: %v\n%s", err, errOut)
	}
	for _, w := range []string{"the data connection's goodput", "the data sender's largest congestion window", "the data sender's retransmissions"} {
		if !strings.Contains(out, w) {
			t.Errorf("the summary lacks %q:\n%s", w, out)
		}
	}
	left, right, ok := trace.CompareRuns(readRecording(t, rec))
	if !ok {
		t.Fatal("the recording does not hold both runs")
	}
	const rate = 20e6
	for i, run := range [][]trace.Event{left, right} {
		name := []string{"netstack", "Linux"}[i]
		b := bottleneckRun(run)
		capacity := rate * float64(b.mss) / 1514
		recoveries := 0
		for _, s := range b.congestion {
			if strings.HasSuffix(s, "recovery") {
				recoveries++
			}
		}
		t.Logf("%s: %d retransmissions, %d drops at the queue, %d recoveries, largest cwnd %d, MSS %d; goodput %.2f Mbit/s over the transfer, median of half-seconds %.2f (%v); what 20 Mbit/s carries: %.2f",
			name, b.retrans, b.drops, recoveries, b.maxCwnd, b.mss, b.goodput/1e6, b.median/1e6, b.bins, capacity/1e6)
		if b.mss < 1000 || b.retrans == 0 || b.drops == 0 {
			t.Errorf("%s: MSS %d, %d retransmissions, %d drops at the queue: want a sender that lost at the queue", name, b.mss, b.retrans, b.drops)
		}
		if !slices.ContainsFunc(b.congestion, func(s string) bool { return strings.HasSuffix(s, "recovery") }) || b.congestion[len(b.congestion)-1] != "open" {
			t.Errorf("%s: the sender's congestion states %v: want a recovery, and open again at the end", name, b.congestion)
		}
		if b.median < 0.9*capacity || b.median > 1.1*capacity {
			t.Errorf("%s: the median half-second's goodput %.2f Mbit/s is not within 10%% of the %.2f Mbit/s that 20 Mbit/s carries in %d-byte segments", name, b.median/1e6, capacity/1e6, b.mss)
		}
		if b.goodput > 1.1*capacity {
			t.Errorf("%s: a goodput of %.2f Mbit/s beats the bottleneck", name, b.goodput/1e6)
		}
	}
	g, err := os.ReadFile(graph)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(g), `class="cwnd"`); n != 2 {
		t.Errorf("the graph has %d cwnd lines, want each sender's", n)
	}
	// The same scales: each panel's axes are labelled alike.
	axes := regexp.MustCompile(`class="axis[^"]*"[^>]*>([^<]+)<`).FindAllStringSubmatch(string(g), -1)
	var labels []string
	for _, m := range axes {
		labels = append(labels, m[1])
	}
	if len(labels) < 24 || len(labels)%2 != 0 || !slices.Equal(labels[:len(labels)/2], labels[len(labels)/2:]) {
		t.Errorf("the two panels' axes differ: %q", labels)
	}
}

// bottleneckOf is what a run through the bottleneck shows of its data
// sender and its goodput.
type bottleneckOf struct {
	mss, maxCwnd    int
	retrans, drops  int
	congestion      []string
	goodput, median float64 // bits per second
	bins            []string
}

// bottleneckRun measures one run of TestDemoCompareBottleneck: the data
// sender's own samples and retransmissions (its segments sent again, or
// the kernel's count), the drops at the queue (the wire's drop events, or
// what the kernel's run recorded of tbf's counters), and the goodput of
// the client's recv() calls, over the transfer and per half-second.
func bottleneckRun(evs []trace.Event) bottleneckOf {
	var b bottleneckOf
	sender := -1
	var recvs []trace.Event
	top := uint32(0)
	started := false
	for _, e := range evs {
		switch {
		case e.Kind == trace.KindCall && e.Host == "server" && e.Call.Label == trace.Data && e.Call.Op == trace.OpSend:
			sender = e.Call.Socket
		case e.Kind == trace.KindCall && e.Host == "client" && e.Call.Label == trace.Data && e.Call.Op == trace.OpRecv && e.Phase == trace.End && e.Call.Bytes > 0:
			recvs = append(recvs, e)
		case e.Kind == trace.KindTCB && e.Host == "server" && e.TCB.Socket == sender:
			s := e.TCB
			b.maxCwnd = max(b.maxCwnd, s.Cwnd)
			if s.MSS > 0 {
				b.mss = s.MSS
			}
			if len(b.congestion) == 0 || b.congestion[len(b.congestion)-1] != s.Congestion {
				b.congestion = append(b.congestion, s.Congestion)
			}
			if s.Source == trace.FromTCPInfo {
				b.retrans = max(b.retrans, s.TotalRetrans)
			}
		case e.Kind == trace.KindSegment && e.Layer == trace.LayerStack && e.Host == "server" && e.Segment.Dir == trace.Out && e.Segment.Socket == sender && e.Segment.Len > 0:
			end := e.Segment.Seq + uint32(e.Segment.Len)
			if started && int32(end-top) <= 0 {
				b.retrans++
			} else {
				top, started = end, true
			}
		case e.Kind == trace.KindDrop && e.Drop.Reason == "queue full":
			b.drops++
		case e.Kind == trace.KindNote && e.Layer == trace.LayerKernel && strings.HasPrefix(e.Text, "the bottleneck's queue"):
			if m := regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(e.Text); m != nil {
				b.drops, _ = strconv.Atoi(m[1])
			}
		}
	}
	if len(recvs) < 2 {
		return b
	}
	t0 := recvs[0].Time
	var total int64
	bins := map[int]int64{}
	for _, e := range recvs[1:] {
		total += int64(e.Call.Bytes)
		bins[int(e.Time.Sub(t0)/(500*time.Millisecond))] += int64(e.Call.Bytes)
	}
	b.goodput = float64(total) * 8 / recvs[len(recvs)-1].Time.Sub(t0).Seconds()
	// Only whole half-seconds: the last is cut short.
	var rates []float64
	for i := range int(recvs[len(recvs)-1].Time.Sub(t0) / (500 * time.Millisecond)) {
		r := float64(bins[i]) * 8 / 0.5
		rates = append(rates, r)
		b.bins = append(b.bins, fmt.Sprintf("%.1f", r/1e6))
	}
	sort.Float64s(rates)
	if n := len(rates); n > 0 {
		b.median = rates[n/2]
		if n%2 == 0 {
			b.median = (rates[n/2-1] + rates[n/2]) / 2
		}
	}
	return b
}

// TestDemoCompareUnprivileged runs demo --compare as nobody (setpriv):
// the kernel's side shows its socket calls and TCP_INFO, no changes of
// state and no segments. What differs names only things measured on both
// stacks; what needs root is listed on one line, apart.
func TestDemoCompareUnprivileged(t *testing.T) {
	setpriv := needSetpriv(t)
	leftAsFound(t, nil)
	bin := buildNsftp(t)
	for _, extra := range [][]string{nil, {"--size", "4MiB"}} {
		line := asNobody(setpriv, append([]string{bin, "demo", "--compare", "-q"}, extra...)...)
		cmd := exec.Command(line[0], line[1:]...)
		cmd.Dir = "/"
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("demo --compare %v as nobody: %v\n%s", extra, err, stderr.String())
		}
		out := stdout.String()
		_, rest, ok := strings.Cut(out, "What differs (")
		if !ok {
			t.Fatalf("no differences:\n%s", out)
		}
		block, notMeasured, ok := strings.Cut(rest, "\nNot measured on ")
		if !ok {
			t.Fatalf("demo --compare as nobody does not say what it could not measure:\n%s", out)
		}
		if strings.Count(notMeasured, "\n") != 1 || !strings.Contains(notMeasured, "run as root") ||
			!strings.Contains(notMeasured, "tracefs is root's") || !strings.Contains(notMeasured, "CAP_NET_RAW") {
			t.Errorf("what needs root should be one line, with why:\nNot measured on %s", notMeasured)
		}
		// Things measured from segments or changes of state, which the
		// kernel's side did not see, and signs of a value not measured.
		for _, bad := range []string{"(not seen)", "SYN", "the states of the", "TIME-WAIT", "TCP segments sent", "the largest segment",
			"the longest wait", "becomes a socket", " 0 bytes", "0 µs ()", "by the )"} {
			if strings.Contains(block, bad) {
				t.Errorf("demo --compare %v as nobody counts %q among the differences:\n%s", extra, bad, block)
			}
		}
		for _, want := range []string{"the states the calls on the client control connection saw", "from the run's start to the server's last reply"} {
			if !strings.Contains(block, want) {
				t.Errorf("demo --compare %v as nobody does not compare %q:\n%s", extra, want, block)
			}
		}
		if len(extra) > 0 {
			for _, want := range []string{"goodput", "the data sender's largest congestion window", "the data sender's retransmissions"} {
				if !strings.Contains(block, want) {
					t.Errorf("demo --compare --size as nobody does not compare %q (TCP_INFO and the calls have it):\n%s", want, block)
				}
			}
		}
	}
}

// TestKernelPathUsage: what the kernel's loopback cannot do is refused in
// one line that says why, and --peer-kernel goes with --tap and a view.
func TestKernelPathUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"demo", "--compare", "--delay", "20ms"}, "this kernel has no netem qdisc"},
		{[]string{"demo", "--net", "os", "--loss", "1%"}, "only --rate and --queue (a tbf qdisc)"},
		{[]string{"demo", "--compare", "--rate", "20mbit/1mbit"}, "give --rate and --queue one value for both"},
		{[]string{"demo", "--compare", "--queue", "32"}, "give its --rate"},
		{[]string{"demo", "--compare", "--offload"}, "--offload"},
		{[]string{"demo", "--compare", "--trace"}, "--compare shows its own view"},
		{[]string{"demo", "--compare", "--graph", "g.svg"}, "give a --size"},
		{[]string{"get", "ftp://192.0.2.1/f", "--net", "os", "--peer-kernel"}, "apply only with --tap"},
		{[]string{"get", "ftp://192.0.2.1/f", "--tap", "tap0", "--peer-kernel"}, "--peer-kernel shows the peer's side"},
	} {
		_, _, err := runIn(t, "", tc.args...)
		if ExitCode(err) != ExitUsage || err == nil || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("nsftp %s: %v, want a one-line usage error saying %q", strings.Join(tc.args, " "), err, tc.msg)
		}
	}
}
