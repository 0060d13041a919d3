package stacktest_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/cmd/nsftp/cli"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// deliberateEnv, set to "fail" or "pass", makes TestArtifacts the test
// whose recording it checks, run in a subprocess.
const deliberateEnv = "NSFTP_STACKTEST_DELIBERATE"

// exchange moves a greeting over a Pair, so the recording has a
// connection in it.
func exchange(t *testing.T) {
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()
	l, err := p.Server.Listen(ctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "2121"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("220 hello\r\n"))
		c.Close()
	}()
	c, err := p.Client.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(c)
	c.Close()
}

// runDeliberate runs TestArtifacts again in a subprocess, as a test that
// makes a connection over a Pair and then fails ("fail") or passes
// ("pass"), with NSFTP_ARTIFACTS set to dir, and returns its output.
func runDeliberate(t *testing.T, how, dir string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestArtifacts$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), deliberateEnv+"="+how, stacktest.ArtifactsEnv+"="+dir)
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestArtifacts: a failing test leaves its run's pcap, which tshark reads,
// and its JSON lines, which `nsftp show` renders, where NSFTP_ARTIFACTS
// says, and logs both paths and the command; a passing test leaves
// nothing.
func TestArtifacts(t *testing.T) {
	switch os.Getenv(deliberateEnv) {
	case "fail":
		exchange(t)
		t.Error("failing on purpose, to leave the run's recording")
		return
	case "pass":
		exchange(t)
		return
	}
	dir := t.TempDir()
	out := runDeliberate(t, "fail", dir)
	if !strings.Contains(out, "--- FAIL: TestArtifacts") {
		t.Fatalf("the deliberate failure did not fail:\n%s", out)
	}
	pcap := filepath.Join(dir, "TestArtifacts", "run.pcap")
	jsonl := filepath.Join(dir, "TestArtifacts", "run.jsonl")
	for _, want := range []string{pcap, jsonl, "go run github.com/nsftp/nsftp/cmd/nsftp show " + jsonl} {
		if !strings.Contains(out, want) {
			t.Errorf("the failed test's log does not say %q:\n%s", want, out)
		}
	}

	if tshark, err := exec.LookPath("tshark"); err != nil {
		t.Errorf("tshark is not installed: cannot check that the pcap reads (CI installs it)")
	} else {
		got, err := exec.Command(tshark, "-r", pcap, "-Y", "tcp.flags.syn==1", "-T", "fields", "-e", "tcp.dstport").CombinedOutput()
		if err != nil || !strings.Contains(string(got), "2121") {
			t.Errorf("tshark -r %s finds no SYN to port 2121: %v\n%s", pcap, err, got)
		}
	}

	var shown, errOut bytes.Buffer
	if err := cli.Run(context.Background(), []string{"show", jsonl}, strings.NewReader(""), &shown, &errOut); err != nil {
		t.Fatalf("nsftp show %s: %v\n%s", jsonl, err, errOut.String())
	}
	for _, want := range []string{"TestArtifacts", "connect(", "SYN-SENT -> ESTABLISHED", "send(11 bytes)"} {
		if !strings.Contains(shown.String(), want) {
			t.Errorf("nsftp show does not show %q:\n%s", want, shown.String())
		}
	}

	passDir := t.TempDir()
	out = runDeliberate(t, "pass", passDir)
	if !strings.Contains(out, "--- PASS: TestArtifacts") {
		t.Fatalf("the deliberate pass did not pass:\n%s", out)
	}
	if left, _ := os.ReadDir(passDir); len(left) != 0 {
		t.Errorf("a passing test left %d files in %s", len(left), passDir)
	}
}
