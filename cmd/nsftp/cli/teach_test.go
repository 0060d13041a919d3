package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"nsftp/ftp"
	"nsftp/stack/stacktest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// runIn runs the command in-process with the given standard input.
func runIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = Run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

var (
	stampRE = regexp.MustCompile(`^\s*\d+\.\d+ms `)
	portRE  = regexp.MustCompile(`(192\.0\.2\.\d+):(\d+)`)
	pasvRE  = regexp.MustCompile(`192,0,2,1,\d+,\d+`)
	// A call line: host, socket, connection, the call, then the article's
	// call -> kernel function | netstack call.
	callRE = regexp.MustCompile(`^(client|server) +(fd\d+) +(\w+) +(\w+)\(.*?\s{2,}(\S.* -> \S+ \| \S+)`)
)

// normalizeTrace keeps the client's side of a text trace - its socket
// calls and its FTP dialogue, which run in a fixed order - as the call,
// the kernel and netstack functions, and the FTP lines. What varies from
// run to run goes: times, ephemeral ports and the byte counts they change
// (PORT's arguments), and whether a reply had already arrived when recv
// was called (which decides if segments are shown under it).
//
// The client reads the control connection while data flows (to see a 426
// or a closed connection at once), so control and data lines interleave
// differently from run to run: each connection's lines are kept in their
// own section, in which the order is fixed.
func normalizeTrace(out string) string {
	var control, data strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if !stampRE.MatchString(line) {
			continue
		}
		line = strings.TrimRight(stampRE.ReplaceAllString(line, ""), " ")
		if !strings.HasPrefix(line, "client ") || strings.Contains(line, "  = ") {
			continue
		}
		if m := callRE.FindStringSubmatch(line); m != nil {
			line = fmt.Sprintf("%s %s %-7s %-11s %s", m[1], m[2], m[3], m[4], m[5])
		}
		line = portRE.ReplaceAllStringFunc(line, func(s string) string {
			if strings.HasSuffix(s, ":21") {
				return s
			}
			return s[:strings.LastIndexByte(s, ':')] + ":PORT"
		})
		line = pasvRE.ReplaceAllString(line, "192,0,2,1,P1,P2")
		if strings.Contains(line, " data ") {
			data.WriteString(line + "\n")
		} else {
			control.WriteString(line + "\n")
		}
	}
	return "# control connection\n" + control.String() + "# data connections\n" + data.String()
}

// TestDemoTraceGolden compares the client's side of `nsftp demo --trace`
// with a golden file. The wire delays frames 2ms so that each step's
// effects settle before the next, making the order exact.
func TestDemoTraceGolden(t *testing.T) {
	stacktest.CheckGoroutines(t)
	out, errOut, err := runIn(t, "", "demo", "--trace", "--delay", "2ms")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	got := normalizeTrace(out)
	path := "testdata/demo-trace.golden"
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("trace differs from %s (-update to accept):\n%s", path, lineDiff(string(want), got))
	}
	// Segments are shown under the calls that caused them.
	for _, want := range []string{"  | > 192.0.2.1:", "SYN          seq=0", "SYN|ACK      seq=0 ack=1", "FIN|ACK"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}

// TestTraceJSON: every line of --trace=json parses, both layers appear,
// and the password is masked.
func TestTraceJSON(t *testing.T) {
	stacktest.CheckGoroutines(t)
	out, errOut, err := runIn(t, "", "demo", "--trace=json")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	layers := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Layer string `json:"layer"`
			Kind  string `json:"kind"`
			Text  string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		layers[ev.Layer+"/"+ev.Kind]++
		if strings.HasPrefix(ev.Text, "PASS ") && ev.Text != "PASS ****" {
			t.Errorf("PASS not masked: %q", ev.Text)
		}
	}
	for _, k := range []string{"stack/call", "stack/segment", "ftp/command", "ftp/reply", "ftp/data-open"} {
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
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var ev ftp.Event
		json.Unmarshal(sc.Bytes(), &ev)
		if ev.Side != "client" || (ev.Kind != ftp.EventCommand && ev.Kind != ftp.EventReply) {
			continue
		}
		n++
		want := ev.Text
		if ev.Kind == ftp.EventReply {
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
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: checked with our own reader only")
		return
	}
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
// then c runs to the end; Enter a few times then q stops cleanly, with
// QUIT sent.
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

	out, errOut, err = runIn(t, strings.Repeat("\n", 12)+"q\n", "demo", "--step")
	if ExitCode(err) != ExitOK || err == nil {
		t.Fatalf("step then q: err %v (exit %d), want a clean stop\n%s", err, ExitCode(err), errOut)
	}
	if !strings.Contains(errOut, "stopping") || !strings.Contains(out, "-> QUIT") {
		t.Errorf("q did not stop cleanly with QUIT:\n%s\n%s", out, errOut)
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
