package cli

// The command on the kernel's TCP (--net os): what it shows as root and
// without privilege, side by side with nsftp's stack, and that every way
// a run can end leaves the kernel's tracing state as it found it.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/kernel/kerneltest"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// leftAsFound checks, when the test ends, that the kernel's tracing state
// is what it was when the test began (as root; without root nsftp cannot
// change it).
func leftAsFound(t *testing.T, pids func() []int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	before := kerneltest.TracingState(t)
	t.Cleanup(func() {
		var ps []int
		if pids != nil {
			ps = pids()
		}
		if after := kerneltest.TracingState(t, ps...); after != before {
			t.Errorf("the kernel's tracing state changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// TestDemoNetOS runs the demo on the kernel's TCP. As root, in a
// namespace of its own: the kernel's changes of state with their causes
// and (--explain) the kernel functions behind them, and every segment; a
// recording of it keeps a timeline's promises and shows as the live run
// did. Without root: one line says what is hidden and why, and the socket
// calls with the kernel's TCP states are shown.
func TestDemoNetOS(t *testing.T) {
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	rec := filepath.Join(t.TempDir(), "run.jsonl")
	live, errOut, err := runIn(t, "", "demo", "--net", "os", "--trace", "--explain", "--record", rec)
	if err != nil {
		t.Fatalf("demo --net os: %v\n%s", err, errOut)
	}
	want := []string{"sock->ops->connect -> tcp_v4_connect | connect(2)", "-> RETR hello.txt", "<- 226", "identical to the file served",
		"This file crossed the loopback interface of a Linux kernel"}
	root := os.Geteuid() == 0
	// The server's address: 127.0.0.2 on this system's loopback; in the
	// run's own namespace, the namespace's own 127.A.B.2.
	server := "127.0.0.2"
	if root {
		m := regexp.MustCompile(`connect\((127\.[0-9]+\.[0-9]+\.2):21\)`).FindStringSubmatch(live)
		if m == nil {
			t.Fatalf("demo --net os as root connects to no 127.A.B.2:21:\n%s", live)
		}
		server = m[1]
		want = append(want, "CLOSED -> SYN-SENT  connect()", "SYN-SENT -> ESTABLISHED  rcv SYN|ACK",
			"LISTEN -> SYN-RECEIVED  rcv ACK completing the handshake", "FIN-WAIT-2 -> TIME-WAIT  rcv FIN",
			"in the kernel: ", "tcp_v4_connect", "> SYN ", server+":20 > 127.0.0.1:", "TIME-WAIT lasts 60s on Linux")
		if errOut != "" {
			t.Errorf("as root, the demo says on stderr: %s", errOut)
		}
	} else {
		want = append(want, "= 0  ESTABLISHED")
		if n := strings.Count(errOut, "\n"); n != 1 || !strings.Contains(errOut, "partly hidden") {
			t.Errorf("without root, stderr should be one line on what is hidden:\n%s", errOut)
		}
	}
	want = append(want, "connect("+server+":")
	for _, w := range want {
		if !strings.Contains(live, w) {
			t.Errorf("demo --net os output lacks %q", w)
		}
	}
	evs := testkit.ReadRecording(t, rec)
	tracetest.Causal(t, evs)
	if root {
		seen := tracetest.RFC793(t, evs)
		for _, s := range tracetest.Lifecycle {
			if !seen[s] {
				t.Errorf("no socket of the kernel's demo passes through %s", s)
			}
		}
	}
	shown, errOut, err := runIn(t, "", "show", "--explain", rec)
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errOut)
	}
	traced, _, _ := strings.Cut(live, "\n\nhello.txt: ")
	if shown != traced+"\n" {
		t.Errorf("show renders the recording differently from the live run:\n%s", lineDiff(traced+"\n", shown))
	}
}

// TestDemoCompare runs the session on both stacks and shows them side by
// side, step by step of the dialogue, with what differs.
func TestDemoCompare(t *testing.T) {
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	out, errOut, err := runIn(t, "", "demo", "--compare")
	if err != nil {
		t.Fatalf("demo --compare: %v\n%s", err, errOut)
	}
	for _, w := range []string{"nsftp's netstack (gVisor)", "'s TCP", "── -> RETR hello.txt", "What differs",
		"the client control SYN's window and options", "TIME-WAIT on the server"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo --compare output lacks %q", w)
		}
	}
	if os.Geteuid() == 0 && !strings.Contains(out, "as the handshake's last ACK arrives, after its SYN|ACK") {
		t.Errorf("demo --compare does not find where Linux makes the socket of a connection on a listener")
	}
	// The functions behind the lines: netstack's own, and (as root, with
	// tracefs) the kernel's stacks captured live in this run.
	if !strings.Contains(out, "in netstack: ") || !strings.Contains(out, "tcp.(*Endpoint)") {
		t.Errorf("demo --compare shows no netstack functions")
	}
	if os.Geteuid() == 0 && (!strings.Contains(out, "in the kernel: __x64_sys_connect") || !strings.Contains(out, "tcp_v4_connect")) {
		t.Errorf("demo --compare shows no kernel stack of connect")
	}
	quiet, _, err := runIn(t, "", "demo", "--compare", "-q")
	if err != nil || strings.Contains(quiet, "── -> RETR") || !strings.Contains(quiet, "What differs") {
		t.Errorf("demo --compare -q: %v\n%s", err, quiet)
	}
	if _, _, err := runIn(t, "", "demo", "--compare", "--trace"); ExitCode(err) != ExitUsage {
		t.Errorf("demo --compare --trace: %v, want a usage error", err)
	}
}

// TestGetNetOSTraced: a client's run on the kernel's TCP traces its own
// socket calls, each the system call it is, with Go's TCP_NODELAY said.
func TestGetNetOSTraced(t *testing.T) {
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o644)
	addr := startServer(t, root, ftp.ServerConfig{})
	for _, mode := range []string{"--passive", "--active"} {
		out, errOut, err := runIn(t, "", "get", "ftp://"+addr+"/a.txt", "-", "--net", "os", "--trace", mode)
		if err != nil || out != "alpha\n" {
			t.Fatalf("get %s: %v, %q\n%s", mode, err, out, errOut)
		}
		for _, w := range []string{"socket() = fd3", "setsockopt(TCP_NODELAY), as Go's net package does", "connect(" + addr + ")", "recv() = 0 (EOF: the peer's FIN)"} {
			if !strings.Contains(errOut, w) {
				t.Errorf("get %s --trace lacks %q:\n%s", mode, w, errOut)
			}
		}
	}
	// A run that fails leaves nothing behind either.
	if _, _, err := runIn(t, "", "get", "ftp://127.0.0.1:1/a.txt", "-", "--net", "os", "--trace"); ExitCode(err) != ExitNetwork {
		t.Errorf("get from a closed port: %v, want exit %d", err, ExitNetwork)
	}
}

// TestPCAPNetOS: as root, the kernel's frames of the run from a packet
// socket, in the pcap nsftp's stack writes; tshark finds the dialogue
// and ftp-data from port 20.
func TestPCAPNetOS(t *testing.T) {
	kerneltest.NeedRoot(t)
	testkit.NeedPeer(t, "tshark")
	leftAsFound(t, nil)
	pcap := filepath.Join(t.TempDir(), "run.pcap")
	if _, errOut, err := runIn(t, "", "demo", "--net", "os", "-q", "--pcap", pcap, "--stats"); err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	} else if !strings.Contains(errOut, "kernel counters that changed in the run's network namespace") || !strings.Contains(errOut, "Tcp.ActiveOpens") {
		t.Errorf("--stats on the kernel's TCP:\n%s", errOut)
	}
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "ftp.request.command", "-e", "ftp-data.command").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	for _, w := range []string{"USER", "PORT", "RETR", "QUIT", "RETR hello.txt"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("tshark finds no %s in the kernel's pcap:\n%s", w, out)
		}
	}
}

// buildNsftp builds the command, with the build tags given, into a
// directory any user may read.
func buildNsftp(tb testing.TB, tags ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "nsftp")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if out, err := exec.Command("go", append(args, "github.com/nsftp/nsftp/cmd/nsftp")...).CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	os.Chmod(dir, 0o755)
	return bin
}

// needSetpriv skips tb unless it may run commands as nobody (root, and
// setpriv), and returns setpriv's path.
func needSetpriv(tb testing.TB) string {
	tb.Helper()
	testkit.NeedRoot(tb, "runs the command as another user")
	return testkit.NeedPeer(tb, "setpriv")
}

// asNobody is the command line that runs args as nobody (uid and gid
// 65534, no groups).
func asNobody(setpriv string, args ...string) []string {
	return append([]string{setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"}, args...)
}

// nobodyDir is a directory nobody may write to (t.TempDir's parent is
// root's alone), removed when the test ends.
func nobodyDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "nsftp-nobody-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	return dir
}

// TestNetOSUnprivileged runs the built command as nobody (setpriv): the
// kernel's side it may not see is said on one line, the rest shows, and a
// pcap it cannot capture is refused before the run starts.
func TestNetOSUnprivileged(t *testing.T) {
	setpriv := needSetpriv(t)
	leftAsFound(t, nil)
	bin := buildNsftp(t)
	as := func(args ...string) (string, string, int) {
		line := asNobody(setpriv, append([]string{bin}, args...)...)
		cmd := exec.Command(line[0], line[1:]...)
		cmd.Dir = "/"
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}
	out, errOut, code := as("demo", "--net", "os", "--explain", "--trace")
	if code != 0 {
		t.Fatalf("demo --net os as nobody: exit %d\n%s", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "tracefs is root's") || !strings.Contains(errOut, "CAP_NET_RAW") || !strings.Contains(errOut, "--explain has nothing to show") {
		t.Errorf("stderr should be one line on what is hidden and why:\n%s", errOut)
	}
	for _, w := range []string{"this system's loopback", "connect(127.0.0.2:", "= 0  ESTABLISHED", "listen(127.0.0.2:", "= 0  LISTEN", "identical to the file served"} {
		if !strings.Contains(out, w) {
			t.Errorf("demo --net os as nobody lacks %q", w)
		}
	}
	_, errOut, code = as("demo", "--net", "os", "-q", "--pcap", "/tmp/nsftp-unprivileged-"+fmt.Sprint(os.Getpid())+".pcap")
	os.Remove("/tmp/nsftp-unprivileged-" + fmt.Sprint(os.Getpid()) + ".pcap")
	if code != ExitNetwork || !strings.Contains(errOut, "--pcap with --net os: a packet socket needs CAP_NET_RAW") {
		t.Errorf("--pcap as nobody: exit %d\n%s", code, errOut)
	}
}

// TestNetOSSignals: a run stopped by Ctrl-C (SIGINT) or SIGTERM removes
// its tracing instance as it ends; one killed (SIGKILL) cannot, and the
// next run removes what it left. Either way the tracing state is as it
// was.
func TestNetOSSignals(t *testing.T) {
	kerneltest.NeedRoot(t)
	bin := buildNsftp(t)
	var pids []int
	leftAsFound(t, func() []int { return pids })
	dir := t.TempDir()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		cmd := exec.Command(bin, "serve", dir, "--net", "os", "--trace", "--listen", "127.0.0.1:0")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		pids = append(pids, pid)
		t.Cleanup(func() { cmd.Process.Kill() })
		serving := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			ok := false
			for sc.Scan() {
				if !ok && strings.Contains(sc.Text(), "serving") {
					ok = true
					serving <- true
				}
			}
			if !ok {
				serving <- false
			}
		}()
		select {
		case ok := <-serving:
			if !ok {
				t.Fatalf("serve exited before serving")
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("serve did not start")
		}
		if len(kerneltest.Instances(t, pid)) != 1 {
			t.Fatalf("the serving run has no tracing instance of its own: %q", kerneltest.Instances(t, pid))
		}
		cmd.Process.Signal(sig)
		err = cmd.Wait()
		left := kerneltest.Instances(t, pid)
		switch {
		case sig == syscall.SIGKILL && len(left) != 1:
			t.Errorf("a killed run left %q: the test of its cleanup tests nothing", left)
		case sig != syscall.SIGKILL && (err != nil || len(left) != 0):
			t.Errorf("after %v: exit %v, instances left %q", sig, err, left)
		}
	}
	// The next run cleans up after the killed one.
	if out, err := exec.Command(bin, "demo", "--net", "os", "-q", "--trace=json").CombinedOutput(); err != nil {
		t.Fatalf("demo after a killed run: %v\n%s", err, out[max(0, len(out)-500):])
	}
	if left := kerneltest.Instances(t, pids[len(pids)-1]); len(left) != 0 {
		t.Errorf("the next run left the killed run's instance %q", left)
	}
}

// TestStepNetOS steps through the demo on the kernel's TCP: each prompt
// names the system call about to be made; s cannot stop the kernel's
// segments and says so; q stops the session cleanly, with QUIT.
func TestStepNetOS(t *testing.T) {
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	out, errOut, err := runIn(t, "\n\n\n\ns\n\n\n\nq\n", "demo", "--net", "os", "--step")
	if ExitCode(err) != ExitOK || !strings.Contains(ErrorLine(err), "stopped at your request") {
		t.Fatalf("demo --net os --step, q: %v\n%s", err, errOut)
	}
	for _, w := range []string{
		"[step] server fd3 control: about to create a TCP socket: socket()",
		"the kernel's TCP, by bind(2)",
		"s: the kernel sends and takes segments on its own",
		"q\n",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("step mode on the kernel lacks %q:\n%s", w, errOut)
		}
	}
	if !strings.Contains(out, "control socket() = fd3") || !strings.Contains(out, "-> QUIT") {
		t.Errorf("the trace of a stepped run lacks its calls or its QUIT:\n%s", out)
	}
}
