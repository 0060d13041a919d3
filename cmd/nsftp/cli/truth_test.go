package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestExplainNamesTheCaller: --explain credits each frame to the calls
// that made it. The control connection's first SYN waited for ARP, and
// left from the goroutine that took the ARP reply; its chain is still the
// connect() that made it, with the wait shown. The server's ARP reply has
// its own chain (it answers a request), not the client's request's, which
// was on the same goroutine's stack. On a terminal the chains wrap to its
// width as every other line does.
func TestExplainNamesTheCaller(t *testing.T) {
	stacktest.CheckGoroutines(t)
	rec := filepath.Join(t.TempDir(), "run.jsonl")
	if _, errOut, err := runIn(t, "", "demo", "-q", "--trace=json", "--explain", "--record", rec); err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	evs := readRecording(t, rec)
	var syn, reply *trace.Segment
	for _, e := range evs {
		s := e.Segment
		if s == nil || e.Kind != trace.KindSegment || s.Dir != trace.Out {
			continue
		}
		switch {
		case syn == nil && e.Host == "client" && s.Proto == "tcp" && s.Flags == trace.SYN:
			syn = s
		case reply == nil && e.Host == "server" && s.Proto == "arp" && strings.Contains(s.Info, "is-at"):
			reply = s
		}
	}
	if syn == nil || reply == nil {
		t.Fatalf("no first SYN (%v) or ARP reply (%v) in the recording", syn, reply)
	}
	chain := strings.Join(syn.Chain, " -> ")
	t.Logf("the first SYN: %s", chain)
	for _, want := range []string{"nsftp (*Socket).Connect -> tcp.(*Endpoint).Connect", "(waited for ARP)"} {
		if !strings.Contains(chain, want) {
			t.Errorf("the first SYN's chain lacks %q: %s", want, chain)
		}
	}
	if strings.HasPrefix(chain, "stack.(*packetsPendingLinkResolution)") {
		t.Errorf("the first SYN is credited to the ARP queue: %s", chain)
	}
	chain = strings.Join(reply.Chain, " -> ")
	t.Logf("the ARP reply: %s", chain)
	if !strings.Contains(chain, "arp.(*endpoint).HandlePacket") || strings.Contains(chain, "LinkAddressRequest") || strings.Contains(chain, "sendARPRequest") {
		t.Errorf("the server's ARP reply is not credited to its own handling of the request: %s", chain)
	}

	out, _, err := runIn(t, "", "show", rec, "--explain", "--width", "100")
	if err != nil {
		t.Fatal(err)
	}
	chains := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "made by: ") {
			chains++
		}
		if len([]rune(line)) > 100 && (strings.Contains(line, " -> ") || strings.Contains(line, "made by")) {
			t.Errorf("a chain line of %d columns at width 100: %s", len([]rune(line)), line)
		}
	}
	if chains < 10 {
		t.Errorf("%d chains shown", chains)
	}
}

// TestDemoEndsWithoutReset: the demo's hosts stop as real hosts do, once
// every connection has run to CLOSED (TIME-WAIT to its end, last ACKs
// in), so tshark's expert information finds no reset and no warning in
// its capture: with -q (nothing traced), with offload, in passive mode.
func TestDemoEndsWithoutReset(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tshark := testkit.NeedPeer(t, "tshark")
	for _, flags := range [][]string{{"-q"}, {"-q", "--offload"}, {"-q", "--offload=tso"}, {"-q", "--passive"}, {"--trace"}} {
		pcap := filepath.Join(t.TempDir(), "run.pcap")
		args := append([]string{"demo", "--pcap", pcap}, flags...)
		if _, errOut, err := runIn(t, "", args...); err != nil {
			t.Fatalf("nsftp %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		out, err := exec.Command(tshark, "-r", pcap, "-q", "-z", "expert").CombinedOutput()
		if err != nil {
			t.Fatalf("tshark -z expert: %v\n%s", err, out)
		}
		expert := string(out)
		if strings.Contains(expert, "Connection reset") || strings.Contains(expert, "RST") || strings.Contains(expert, "Warns (") || strings.Contains(expert, "Errors (") {
			t.Errorf("nsftp %s: tshark's expert information:\n%s", strings.Join(args, " "), expert)
		}
	}
}

// TestDiagramOpensDataFirst: in live demo runs, active and passive, the
// ladder opens the data connection above the first data arrow, whenever
// the FTP layer came to record it.
func TestDiagramOpensDataFirst(t *testing.T) {
	stacktest.CheckGoroutines(t)
	for _, mode := range []string{"--active", "--passive"} {
		for range 3 {
			svg := filepath.Join(t.TempDir(), "run.svg")
			args := []string{"demo", "-q", "--diagram", svg}
			if mode == "--passive" {
				args = append(args, mode)
			}
			if _, errOut, err := runIn(t, "", args...); err != nil {
				t.Fatalf("demo %s: %v\n%s", mode, err, errOut)
			}
			b, err := os.ReadFile(svg)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			label := strings.Index(s, ">data connection open (")
			data := regexp.MustCompile(`len=[1-9]\d*</title><line x1="(620|380)"`).FindStringIndex(s)
			if label < 0 || data == nil || label > data[0] {
				t.Errorf("demo %s: the data connection opens at %d, its first data arrow is at %v", mode, label, data)
			}
		}
	}
}
