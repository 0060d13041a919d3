package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// runIn runs the command in-process with the given standard input.
func runIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = Run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestDemoRecordingShowsTheSame runs the demo with a live text trace and a
// recording of the same run, and renders the recording with show: the
// same text, line for line. The recording keeps what a timeline promises.
func TestDemoRecordingShowsTheSame(t *testing.T) {
	stacktest.CheckGoroutines(t)
	for _, mode := range []string{"active", "passive"} {
		t.Run(mode, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "run.jsonl")
			args := []string{"demo", "--trace", "--record", rec}
			if mode == "passive" {
				args = append(args, "--passive")
			}
			live, errOut, err := runIn(t, "", args...)
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, errOut)
			}
			shown, errOut, err := runIn(t, "", "show", rec)
			if err != nil {
				t.Fatalf("show: %v\n%s", err, errOut)
			}
			// The live run goes on after its trace: the file and what it says of it.
			traced, _, ok := strings.Cut(live, "\n\nhello.txt: ")
			if !ok {
				t.Fatalf("demo output has no result line:\n%s", live)
			}
			if want := traced + "\n"; shown != want {
				t.Errorf("show renders the recording differently from the live run:\n%s", lineDiff(want, shown))
			}
			evs := testkit.ReadRecording(t, rec)
			tracetest.Causal(t, evs)
			seen := tracetest.RFC793(t, evs)
			for _, s := range tracetest.Lifecycle {
				if !seen[s] {
					t.Errorf("no socket of the %s demo passes through %s", mode, s)
				}
			}
		})
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl && shown < 20 {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// TestTraceJSON: every line of --trace=json parses, in time order, with
// the fields the format documents (docs/trace-json.md), and the password
// is masked.
func TestTraceJSON(t *testing.T) {
	stacktest.CheckGoroutines(t)
	out, errOut, err := runIn(t, "", "demo", "--trace=json")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	layers := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var prev time.Time
	for n := 1; sc.Scan(); n++ {
		var ev struct {
			Seq   int       `json:"seq"`
			Time  time.Time `json:"time"`
			Layer string    `json:"layer"`
			Kind  string    `json:"kind"`
			Phase string    `json:"phase"`
			Text  string    `json:"text"`
			Call  *struct {
				Socket int    `json:"socket"`
				Op     string `json:"op"`
			} `json:"call"`
			Segment *struct {
				Proto  string `json:"proto"`
				Socket int    `json:"socket"`
				Flags  string `json:"flags"`
			} `json:"segment"`
			State *struct {
				Socket int    `json:"socket"`
				From   string `json:"from"`
				To     string `json:"to"`
				Cause  string `json:"cause"`
			} `json:"state"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		if ev.Seq != n || ev.Time.Before(prev) {
			t.Errorf("line %d: seq %d at %v after %v", n, ev.Seq, ev.Time, prev)
		}
		prev = ev.Time
		key := ev.Layer + "/" + ev.Kind
		if ev.Phase != "" {
			key += "/" + ev.Phase
		}
		layers[key]++
		if strings.HasPrefix(ev.Text, "PASS ") && ev.Text != "PASS ****" {
			t.Errorf("PASS not masked: %q", ev.Text)
		}
		switch {
		case ev.Kind == "call" && (ev.Call == nil || ev.Call.Op == "" || ev.Phase == ""):
			t.Errorf("line %d: a call without op or phase: %s", n, sc.Text())
		case ev.Kind == "segment" && ev.Segment.Proto == "tcp" && (ev.Segment.Socket == 0 || ev.Segment.Flags == ""):
			t.Errorf("line %d: a TCP segment without its socket or flags: %s", n, sc.Text())
		case ev.Kind == "state" && (ev.State == nil || ev.State.From == "" || ev.State.To == "" || ev.State.Cause == ""):
			t.Errorf("line %d: a state change without from, to or cause: %s", n, sc.Text())
		}
	}
	for _, k := range []string{"nsftp/run", "stack/host", "stack/call/begin", "stack/call/end", "stack/segment", "stack/state",
		"ftp/command", "ftp/reply", "ftp/data-open"} {
		if layers[k] == 0 {
			t.Errorf("no %s events in %v", k, layers)
		}
	}
	if strings.Contains(out, "nsftp@") {
		t.Error("the anonymous password appears in the JSON trace")
	}
}

// TestDiagramHasTheDialogue: the SVG parses as XML and shows every FTP
// command and reply of the same run.
func TestDiagramHasTheDialogue(t *testing.T) {
	stacktest.CheckGoroutines(t)
	svgPath := filepath.Join(t.TempDir(), "run.svg")
	out, errOut, err := runIn(t, "", "demo", "--trace=json", "--diagram", svgPath)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("diagram is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	all := text.String()
	evs, err := trace.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Message == nil || ev.Side != "client" || (ev.Kind != "command" && ev.Kind != "reply") {
			continue
		}
		n++
		want := ev.Text
		if ev.Kind == "reply" {
			want = strings.SplitN(ev.Text, "\n", 2)[0]
		}
		if len(want) > 20 {
			want = want[:20]
		}
		if !strings.Contains(all, want) {
			t.Errorf("diagram lacks %s %q", ev.Kind, want)
		}
	}
	if n < 10 {
		t.Errorf("only %d commands and replies in the run", n)
	}
	if bytes.Contains(svg, []byte("nsftp@")) {
		t.Error("the password appears in the diagram")
	}
}

// TestPCAPOpenings: the pcap of a demo holds two connection openings (the
// control and the data connection), read back by our reader and by tshark
// when it is installed.
func TestPCAPOpenings(t *testing.T) {
	stacktest.CheckGoroutines(t)
	pcapPath := filepath.Join(t.TempDir(), "run.pcap")
	if _, errOut, err := runIn(t, "", "demo", "-q", "--pcap", pcapPath); err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	b, err := os.ReadFile(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := countSYNs(t, b); got != 2 {
		t.Errorf("pcap holds %d connection openings (SYN without ACK), want 2", got)
	}
	tshark := testkit.NeedPeer(t, "tshark")
	out, err := exec.Command(tshark, "-r", pcapPath, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "[SYN]"); got != 2 {
		t.Errorf("tshark sees %d openings:\n%s", got, out)
	}
	out, err = exec.Command(tshark, "-r", pcapPath, "-Y", "ftp.request.command == \"RETR\"").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RETR hello.txt") {
		t.Errorf("tshark finds no RETR: %v\n%s", err, out)
	}
	// The data connection comes from port 20, as RFC 959 has it: tshark
	// knows it for ftp-data with no hints.
	out, err = exec.Command(tshark, "-r", pcapPath, "-Y", "ftp-data", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.len").Output()
	if want := fmt.Sprintf("20\t%d", len((&demoRun{}).hello())); err != nil || !strings.Contains(string(out), want) {
		t.Errorf("tshark finds no ftp-data from port 20 carrying the file: %v\n%s", err, out)
	}
}

// countSYNs walks an Ethernet pcap and counts TCP SYNs without ACK.
func countSYNs(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 24 {
		t.Fatal("pcap too short")
	}
	b = b[24:]
	n := 0
	for len(b) >= 16 {
		capLen := int(binary.LittleEndian.Uint32(b[8:]))
		frame := b[16 : 16+capLen]
		b = b[16+capLen:]
		if len(frame) < 14+20+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || frame[14+9] != 6 {
			continue
		}
		ihl := int(frame[14]&0x0f) * 4
		flags := frame[14+ihl+13]
		if flags&0x02 != 0 && flags&0x10 == 0 {
			n++
		}
	}
	return n
}

// TestStepScripted drives --step from standard input: Enter a few times
// then c runs to the end; s stops at segments and shows the TCB; Enter a
// few times then q stops cleanly, with QUIT sent, in one line.
func TestStepScripted(t *testing.T) {
	stacktest.CheckGoroutines(t)
	out, errOut, err := runIn(t, "\n\n\n\nc\n", "demo", "--step")
	if err != nil {
		t.Fatalf("step then c: %v\n%s", err, errOut)
	}
	// Four Enters step four calls; the fifth prompt reads c.
	if strings.Count(errOut, "[step]") != 5 || !strings.Contains(out, "identical to the file served") {
		t.Errorf("step then c: %d prompts; output:\n%s\n%s", strings.Count(errOut, "[step]"), out, errOut)
	}
	for _, want := range []string{"about to create a TCP socket", "Enter: next call   s: next segment", "next call\n", "c: running to the end"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("step prompts lack %q:\n%s", want, errOut)
		}
	}

	// Through the client's connect(), then segment by segment: the SYN
	// leaves with the connection in SYN-SENT.
	_, errOut, err = runIn(t, strings.Repeat("\n", 4)+strings.Repeat("s\n", 8)+"\nc\n", "demo", "--step")
	if err != nil {
		t.Fatalf("step by segment: %v\n%s", err, errOut)
	}
	for _, want := range []string{"s: to the next segment", "about to send arp who-has 192.0.2.2",
		"client fd3 control: about to send SYN seq=0 window field=29184 len=0",
		"TCB SYN-SENT  SND.UNA=0 SND.NXT=1 SND.WND=0  RCV.NXT=0 RCV.WND=29184",
		"server fd4 control: about to send SYN|ACK seq=0 ack=1",
		"TCB SYN-RECEIVED  SND.UNA=0 SND.NXT=1 SND.WND=29184  RCV.NXT=1",
		"cwnd=10 ssthresh=∞"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("segment steps lack %q:\n%s", want, errOut)
		}
	}

	out, errOut, err = runIn(t, strings.Repeat("\n", 12)+"q\n", "demo", "--step")
	var stopped *stoppedError
	if !errors.As(err, &stopped) || ExitCode(err) != ExitOK {
		t.Fatalf("step then q: err %v (exit %d), want a clean stop\n%s", err, ExitCode(err), errOut)
	}
	if line := ErrorLine(err); !strings.HasPrefix(line, "nsftp: stopped at your request") || strings.Contains(line, "context") || strings.Contains(line, "\n") {
		t.Errorf("q ends with %q", line)
	}
	if !strings.Contains(out, "-> QUIT") || !strings.Contains(out, "<- 221") {
		t.Errorf("q did not end the session with QUIT:\n%s\n%s", out, errOut)
	}
	if strings.Contains(out, "identical to the file served") {
		t.Error("q still completed the download")
	}
}

// TestStatsAndExplain: --stats reports counters that changed, --explain
// shows netstack call chains.
func TestStatsAndExplain(t *testing.T) {
	stacktest.CheckGoroutines(t)
	out, errOut, err := runIn(t, "", "demo", "--trace", "--explain", "--stats")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "netstack counters that changed on client") || !strings.Contains(errOut, "TCP.SegmentsSent") {
		t.Errorf("--stats printed:\n%s", errOut)
	}
	if !strings.Contains(out, "(*Socket).Send -> tcp.(*Endpoint).Write -> ") {
		t.Errorf("--explain shows no chain from Socket.Send")
	}
}

// TestPasswordNeverShown: a password given in the URL appears in no
// output, trace or diagram.
func TestPasswordNeverShown(t *testing.T) {
	stacktest.CheckGoroutines(t)
	const secret = "s3cr3t-Pa55"
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644)
	addr := startServer(t, root, ftp.ServerConfig{User: "alice", Password: secret})
	dir := t.TempDir()
	svg := filepath.Join(dir, "d.svg")
	for _, args := range [][]string{
		{"get", "ftp://alice:" + secret + "@" + addr + "/f", filepath.Join(dir, "f1"), "--net", "os", "-v"},
		{"get", "ftp://alice:" + secret + "@" + addr + "/f", filepath.Join(dir, "f2"), "--net", "os", "--trace=json", "--diagram", svg},
		{"get", "ftp://alice:wrong-" + secret + "@" + addr + "/f", filepath.Join(dir, "f3"), "--net", "os", "--trace"},
	} {
		out, errOut, _ := runIn(t, "", args...)
		if strings.Contains(out+errOut, secret) {
			t.Errorf("nsftp %s shows the password:\n%s\n%s", strings.Join(args, " "), out, errOut)
		}
	}
	if b, _ := os.ReadFile(svg); len(b) == 0 || bytes.Contains(b, []byte(secret)) {
		t.Errorf("diagram missing or shows the password")
	}
}

// TestBigTransferViews downloads 4 MiB over the virtual wire with every
// event kept, as --diagram and --trace do, and checks that bulk data is
// collapsed in both views: a readable diagram, a short text trace, with
// every data segment counted in a band.
func TestBigTransferViews(t *testing.T) {
	stacktest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("nsftp diagram band "), 4<<20/19+1)[:4<<20]
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	p := stacktest.Pair(t, stack.PairConfig{
		Client: stack.HostConfig{Role: trace.Client, Observer: rec.Record},
		Server: stack.HostConfig{Role: trace.Server, Observer: rec.Record},
	})
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: p.Server, Observer: rec.Record})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", "192.0.2.2:21")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	c, err := ftp.Dial(ctx, "192.0.2.2:21", ftp.ClientConfig{Network: p.Client, Active: true, Observer: rec.Record})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := c.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retrieve(ctx, "big.bin", 0, &got); err != nil {
		t.Fatal(err)
	}
	c.Quit(ctx)
	srv.Close()
	<-served
	rec.Stop()
	if !bytes.Equal(got.Bytes(), big) {
		t.Fatal("the file arrived changed")
	}
	var dataSegs int
	for _, e := range keep.Events {
		if e.Segment != nil && e.Segment.Dir == trace.Out && e.Segment.Label == trace.Data && e.Segment.Len > 0 {
			dataSegs++
		}
	}
	if dataSegs < 4<<20/1460 {
		t.Fatalf("only %d data segments recorded for a 4 MiB transfer", dataSegs)
	}

	var svg bytes.Buffer
	if err := trace.WriteLadder(&svg, keep.Events, trace.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	if svg.Len() > 200<<10 {
		t.Errorf("diagram of %d data segments is %d bytes, want under 200 KB", dataSegs, svg.Len())
	}
	banded := 0
	for _, m := range regexp.MustCompile(`>([0-9,]+) segments, [0-9.]+ (?:kB|MB), `).FindAllStringSubmatch(svg.String(), -1) {
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		banded += n
	}
	// The server's close() and its 226 can come while data is in flight,
	// so the transfer may be drawn as more than one band.
	if banded < dataSegs*9/10 {
		t.Errorf("the diagram's bands hold %d of %d data segments", banded, dataSegs)
	}
	for _, want := range []string{"server → client", "recv ×", "send ×", "RETR big.bin", "226 "} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("diagram lacks %q", want)
		}
	}

	var text bytes.Buffer
	tx := trace.NewText(&text, trace.TextOptions{})
	for i := range keep.Events {
		tx.Event(&keep.Events[i])
	}
	tx.Flush()
	lines := strings.Count(text.String(), "\n")
	banded = 0
	for _, m := range regexp.MustCompile(`═ ([0-9,]+) segments server -> client`).FindAllStringSubmatch(text.String(), -1) {
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		banded += n
	}
	if banded < dataSegs*9/10 || lines > 400 {
		t.Errorf("the text trace has %d lines, its bands hold %d of %d data segments", lines, banded, dataSegs)
	}
	t.Logf("%d events, %d data segments: a %d-byte diagram, a %d-line trace", len(keep.Events), dataSegs, svg.Len(), lines)
}

// TestGraph draws the time-sequence graph of a download through a
// bottleneck whose queue overflows, and checks it against the run's own
// records: one mark per data segment (or a pixel column's band of them),
// a red mark for exactly each retransmission the capture shows, and a
// congestion-window line through the sender's TCB samples.
func TestGraph(t *testing.T) {
	stacktest.CheckGoroutines(t)
	dir := t.TempDir()
	svgPath, pcapPath, recPath := filepath.Join(dir, "g.svg"), filepath.Join(dir, "p.pcap"), filepath.Join(dir, "r.jsonl")
	out, errOut, err := runIn(t, "", "demo", "-q", "--size", "3MiB", "--rate", "20mbit", "--delay", "5ms", "--queue", "12",
		"--graph", svgPath, "--pcap", pcapPath, "--record", recPath, "--stats")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	for _, want := range []string{"TCP under pressure:", "retransmissions", "goodput", "congestion window of at most"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--stats lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "Mbit/s") {
		t.Errorf("the result line has no rate: %s", out)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		Class    string `xml:"class,attr"`
		Segments int    `xml:"data-segments,attr"`
		Cwnd     string `xml:"data-cwnd,attr"`
	}
	var marks struct{ seg, band, rtx int }
	var cwnd string
	named := map[string]bool{} // the phases the graph names
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the graph is not XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var l line
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "class":
				l.Class = a.Value
			case "data-segments":
				l.Segments, _ = strconv.Atoi(a.Value)
			case "data-cwnd":
				l.Cwnd = a.Value
			case "data-phase":
				named[a.Value] = true
			}
		}
		switch {
		case se.Name.Local == "line" && l.Class == "seg":
			marks.seg++
		case se.Name.Local == "line" && l.Class == "band":
			marks.band += l.Segments
		case se.Name.Local == "line" && l.Class == "rtx":
			marks.rtx++
		case se.Name.Local == "polyline" && l.Class == "cwnd":
			cwnd = l.Cwnd
		}
	}

	// What the recording says: the data segments the server sent, which
	// of them it marked as resending sequence space, and the server's
	// window at each sample.
	evs := testkit.ReadRecording(t, recPath)
	var fresh, rtx, below int
	var top uint32
	var steps []string
	sampled := map[string]bool{} // the phases the server's TCB samples show
	var first []string           // the first samples' phases, for a failure's message
	firstPhase := ""
	for _, e := range evs {
		if s := e.Segment; s != nil && e.Host == "server" && s.Dir == trace.Out && s.Label == trace.Data && s.Len > 0 {
			if s.Retransmit {
				rtx++
			} else {
				fresh++
			}
			// The mark's meaning, worked out here on our own: the
			// segment starts below the highest sequence number sent.
			if fresh+rtx > 1 && int32(top-s.Seq) > 0 {
				below++
			}
			if end := s.Seq + uint32(s.Len); fresh+rtx == 1 || int32(end-top) > 0 {
				top = end
			}
		}
		if b := e.TCB; b != nil && e.Host == "server" && b.Socket == 5 {
			if v := strconv.Itoa(b.Cwnd); len(steps) == 0 || steps[len(steps)-1] != v {
				steps = append(steps, v)
			}
			// RFC 5681's phases, from the TCB as the sample has it.
			phase := "slow start"
			switch {
			case b.Congestion == "fast-recovery" || b.Congestion == "sack-recovery":
				phase = "fast recovery"
			case b.Congestion == "rto-recovery":
				phase = "RTO recovery"
			case b.Ssthresh > 0 && b.Cwnd >= b.Ssthresh:
				phase = "congestion avoidance"
			}
			sampled[phase] = true
			if firstPhase == "" {
				firstPhase = phase
			}
			if len(first) < 5 {
				first = append(first, fmt.Sprintf("%s (cwnd %d, ssthresh %d, %s)", phase, b.Cwnd, b.Ssthresh, b.Congestion))
			}
		}
	}
	if rtx == 0 {
		t.Fatal("no retransmission through the overflowing queue: the test shows nothing")
	}
	if marks.seg+marks.band != fresh {
		t.Errorf("the graph marks %d data segments (%d single, %d in bands), the run sent %d", marks.seg+marks.band, marks.seg, marks.band, fresh)
	}
	if marks.rtx != rtx {
		t.Errorf("the graph marks %d retransmissions, the run sent %d", marks.rtx, rtx)
	}
	// --stats counts them as the graph does: from the marks.
	if m := regexp.MustCompile(`data connection \S+ > \S+: goodput .*, (\d+) data segments retransmitted`).FindStringSubmatch(errOut); m == nil || m[1] != strconv.Itoa(rtx) {
		t.Errorf("--stats says %q, the run marked %d retransmissions:\n%s", m, rtx, errOut)
	}
	if below != rtx {
		t.Errorf("the server marked %d segments as retransmissions, %d start below the highest sequence number sent", rtx, below)
	}
	if pcapRtx := pcapRetransmissions(t, pcapPath, 20); pcapRtx != rtx {
		t.Errorf("the capture shows %d retransmissions from port 20, the graph %d", pcapRtx, marks.rtx)
	}
	if tshark, err := exec.LookPath("tshark"); err == nil {
		// tshark tells a retransmission from a fast, a spurious or an
		// out-of-order one; together they are the segments that start
		// below the highest sequence number sent, as the stack's mark.
		// Its rules count a resent SYN or FIN too, which carry no data
		// and are not counted here: on a loaded machine tshark once found
		// 132 where the graph marked 129, and runs with 8% loss show the
		// difference is the data connection's resent FIN.
		out, err := exec.Command(tshark, "-r", pcapPath, "-Y", "tcp.srcport==20 && tcp.len > 0 && (tcp.analysis.retransmission || "+
			"tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission || tcp.analysis.out_of_order)").Output()
		n := strings.Count(string(out), "\n")
		if err != nil || n != marks.rtx {
			t.Errorf("tshark finds %d data segments retransmitted from port 20, the graph %d (%v)", n, marks.rtx, err)
		}
		t.Logf("tshark finds %d retransmissions", n)
	}
	if got := strings.Fields(cwnd); strings.Join(got, " ") != strings.Join(steps, " ") {
		t.Errorf("the cwnd line goes through %d values, the TCB samples through %d:\n%v\n%v", len(got), len(steps), got, steps)
	}
	// The queue overflows, so the sender must recover from loss and then
	// avoid congestion; before that it starts slowly. Once, in a CI run
	// with every package's tests at once, the graph named no slow start;
	// that did not happen again in 40 runs beside a loaded machine, so the
	// cause is not known. Whatever the run did, the graph must name
	// exactly the phases its samples show. A connection begins in slow
	// start, so its samples can lack slow start only if the first of them
	// already shows recovery from a loss (a timeout on a machine too busy
	// to run the stacks, say).
	for _, phase := range []string{"fast recovery", "congestion avoidance"} {
		if !sampled[phase] {
			t.Errorf("the server's TCB samples show no %s: the run does not show what the graph is for", phase)
		}
	}
	if !sampled["slow start"] && firstPhase != "fast recovery" && firstPhase != "RTO recovery" {
		t.Errorf("the server's TCB samples show no slow start, and begin with %v", first)
	}
	if !sampled["slow start"] {
		t.Logf("no slow start sampled; the first samples: %v", first)
	}
	if !maps.Equal(named, sampled) {
		t.Errorf("the graph names the phases %v, the TCB samples show %v", slices.Sorted(maps.Keys(named)), slices.Sorted(maps.Keys(sampled)))
	}
	t.Logf("%d data segments, %d retransmitted; %d cwnd steps; %d-byte graph", fresh, rtx, len(steps), len(svg))
}

// pcapRetransmissions counts the TCP data segments from port that start
// below the highest sequence number sent before, in an Ethernet pcap:
// what the stack marks as retransmissions, read off the capture instead.
func pcapRetransmissions(t *testing.T, path string, port uint16) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := packet.NewPCAPReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n, seen := 0, false
	var top uint32
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		s := packet.Decode(rec.Data, rec.Size, r.LinkType())
		if s.Proto != "tcp" || s.Src.Port() != port || s.Len == 0 || s.Flags.Has(trace.SYN) {
			continue
		}
		if seen && int32(top-s.Seq) > 0 {
			n++
		}
		if end := s.Seq + uint32(s.Len); !seen || int32(end-top) > 0 {
			top, seen = end, true
		}
	}
}
