package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// run runs the command in-process and returns its output and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := Run(ctx, args, strings.NewReader(""), &out, &errOut)
	if err != nil {
		errOut.WriteString(ErrorLine(err) + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

func TestDemo(t *testing.T) {
	stacktest.CheckGoroutines(t)
	// A zero-byte file is a lesson too: a data connection that carries
	// nothing but its opening and its close.
	if out, errOut, code := run(t, "demo", "-q", "--size", "0"); code != 0 || !strings.Contains(out, "data.bin: 0 bytes") {
		t.Errorf("demo --size 0: exit %d\n%s%s", code, out, errOut)
	}
	for _, mode := range []string{"--active", "--passive"} {
		args := []string{"demo"}
		if mode == "--passive" {
			args = append(args, mode)
		}
		out, errOut, code := run(t, args...)
		if code != 0 {
			t.Fatalf("demo %s: exit %d\n%s", mode, code, errOut)
		}
		for _, want := range []string{
			"connect(192.0.2.2:21)", "sock->ops->connect -> tcp_v4_connect",
			"-> USER anonymous", "-> PASS ****", "-> RETR hello.txt", "<- 226",
			"identical to the file served",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("demo %s output lacks %q", mode, want)
			}
		}
		if mode == "--active" && (!strings.Contains(out, "-> PORT 192,0,2,1,") || !strings.Contains(out, "listen(192.0.2.1:")) {
			t.Errorf("active demo shows no PORT/listen")
		}
		if mode == "--passive" && !strings.Contains(out, "-> EPSV") {
			t.Errorf("passive demo shows no EPSV")
		}
		// The file it prints says what it crossed and how it was asked for.
		how := map[string]string{"--active": "with PORT and RETR", "--passive": "with EPSV and RETR"}[mode]
		if !strings.Contains(out, "This file crossed a virtual Ethernet wire") || !strings.Contains(strings.ReplaceAll(out, "\n", " "), how) {
			t.Errorf("demo %s ends with the wrong story:\n%s", mode, out[strings.LastIndex(out, "Hello from"):])
		}
	}
}

// startServer serves dir on loopback for the CLI's --net os runs.
func startServer(t *testing.T, dir string, cfg ftp.ServerConfig) string {
	t.Helper()
	cfg.Root = dir
	cfg.Network = &ftp.OSNetwork{}
	if cfg.User == "" {
		cfg.Anonymous = true
	}
	srv, err := ftp.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

func TestGetPutLsOverOS(t *testing.T) {
	stacktest.CheckGoroutines(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o644)
	addr := startServer(t, root, ftp.ServerConfig{Write: true})
	local := t.TempDir()

	for _, mode := range []string{"--passive", "--active"} {
		dest := filepath.Join(local, "a"+mode)
		if _, errOut, code := run(t, "get", "ftp://"+addr+"/a.txt", dest, "--net", "os", mode); code != 0 {
			t.Fatalf("get %s: exit %d: %s", mode, code, errOut)
		}
		if b, _ := os.ReadFile(dest); string(b) != "alpha\n" {
			t.Errorf("get %s wrote %q", mode, b)
		}
	}
	up := filepath.Join(local, "up.txt")
	os.WriteFile(up, []byte("uploaded\n"), 0o644)
	if _, errOut, code := run(t, "put", up, "ftp://"+addr+"/", "--net", "os"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "up.txt")); string(b) != "uploaded\n" {
		t.Errorf("put stored %q", b)
	}
	out, errOut, code := run(t, "ls", "ftp://"+addr+"/", "--net", "os")
	if code != 0 || !strings.Contains(out, "a.txt") || !strings.Contains(out, "up.txt") {
		t.Errorf("ls: exit %d, out %q, err %q", code, out, errOut)
	}
	out, _, code = run(t, "get", "ftp://"+addr+"/a.txt", "-", "--net", "os", "-q")
	if code != 0 || out != "alpha\n" {
		t.Errorf("get to stdout: exit %d, %q", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	stacktest.CheckGoroutines(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o644)
	addr := startServer(t, root, ftp.ServerConfig{User: "bob", Password: "right"})
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"bogus"}, ExitUsage, "unknown command"},
		{[]string{"get"}, ExitUsage, "takes a URL"},
		{[]string{"get", "--nope", "ftp://h/f"}, ExitUsage, "not defined: --nope"},
		{[]string{"demo", "--mtu=abc"}, ExitUsage, "for flag --mtu"},
		{[]string{"demo", "--trace=xml"}, ExitUsage, `demo: --trace takes text or json, not "xml"`},
		{[]string{"demo", "--slow", "0.5"}, ExitUsage, "--slow 0.5: give a factor of 1 or more"},
		{[]string{"demo", "--net", "os", "--slow", "10"}, ExitUsage, "the peer is a real kernel"},
		{[]string{"get", "ftp://h/f", "--net", "os", "--slow", "10"}, ExitUsage, "the peer is a real kernel"},
		{[]string{"demo", "--compare", "--slow", "10"}, ExitUsage, "--compare runs the kernel's TCP too"},
		{[]string{"get", "ftp://h/f"}, ExitUsage, "choose a network"},
		{[]string{"get", "ftp://h/f", "--net", "os", "--active", "--passive"}, ExitUsage, "mutually exclusive"},
		{[]string{"get", "http://h/f", "--net", "os"}, ExitUsage, "scheme"},
		{[]string{"get", "ftp://h/a%0d%0aDELE%20x", "--net", "os"}, ExitUsage, "CR"},
		{[]string{"demo", "--offload=xyz"}, ExitUsage, `--offload takes gso (what --offload alone means), tso or none, not "xyz"`},
		{[]string{"get", "ftp://" + closed + "/f", filepath.Join(dir, "x"), "--net", "os"}, ExitNetwork, "refused"},
		{[]string{"get", "ftp://bob:wrong@" + addr + "/a.txt", filepath.Join(dir, "x"), "--net", "os"}, ExitLogin, "530"},
		{[]string{"get", "ftp://bob:right@" + addr + "/missing", filepath.Join(dir, "x"), "--net", "os"}, ExitServer, "550"},
		{[]string{"get", "ftp://bob:right@" + addr + "/a.txt", "/dev/zero", "--net", "os"}, ExitLocal, "character device"},
		{[]string{"get", "ftp://bob:right@" + addr + "/a.txt", filepath.Join(dir, "no", "such", "dir", "x"), "--net", "os"}, ExitLocal, "no such file"},
		{[]string{"put", filepath.Join(dir, "missing"), "ftp://" + addr + "/", "--net", "os"}, ExitLocal, "no such file"},
	} {
		_, errOut, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(strings.ToLower(errOut), strings.ToLower(tc.msg)) {
			t.Errorf("nsftp %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.msg)
		}
		if strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("nsftp %s: error is more than one line: %q", strings.Join(tc.args, " "), errOut)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed runs left files behind: %v", entries)
	}
	// The null device takes a download without --force, as with curl.
	if _, errOut, code := run(t, "get", "ftp://bob:right@"+addr+"/a.txt", "/dev/null", "--net", "os"); code != ExitOK {
		t.Errorf("get to /dev/null: exit %d: %s", code, errOut)
	}
}

func TestExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{context.DeadlineExceeded, ExitTimeout},
		{fmt.Errorf("x: %w", os.ErrDeadlineExceeded), ExitTimeout},
		{fmt.Errorf("x: %w", ftp.ErrIncomplete), ExitIncomplete},
		{&ftp.ProtocolError{Msg: "bad"}, ExitProtocol},
		{ftp.LocalFileError(errors.New("disk full")), ExitLocal},
		{errors.New("anything"), ExitFailure},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestHelp(t *testing.T) {
	out, _, code := run(t, "help")
	if code != 0 || !strings.Contains(out, "Exit codes") || !strings.Contains(out, "demo") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	// The help and the error agree on what --offload means.
	out, _, _ = run(t, "demo", "--help")
	if !strings.Contains(out, "(without the flag: none)") || strings.Contains(out, "(default none)") {
		t.Errorf("demo --help on --offload:\n%s", out)
	}
	for _, c := range commands() {
		out, _, code := run(t, c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
	}
}

// TestGetContinue resumes a partial download with -C: REST, then the rest
// of the file appended to what is there.
func TestGetContinue(t *testing.T) {
	stacktest.CheckGoroutines(t)
	root := t.TempDir()
	full := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	os.WriteFile(filepath.Join(root, "big"), full, 0o644)
	addr := startServer(t, root, ftp.ServerConfig{})
	dest := filepath.Join(t.TempDir(), "big")
	os.WriteFile(dest, full[:300000], 0o644)
	_, errOut, code := run(t, "get", "ftp://"+addr+"/big", dest, "--net", "os", "-C", "-v")
	if code != 0 {
		t.Fatalf("get -C: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "-> REST 300000") {
		t.Errorf("no REST 300000 in the dialogue:\n%s", errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, full) {
		t.Errorf("resumed file has %d bytes, differs from the original", len(got))
	}
	// Resuming a complete file moves nothing and changes nothing.
	if _, errOut, code := run(t, "get", "ftp://"+addr+"/big", dest, "--net", "os", "-C"); code != 0 {
		t.Fatalf("get -C of a complete file: exit %d\n%s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, full) {
		t.Errorf("complete file changed to %d bytes", len(got))
	}
}

// TestDemoBurst: an 8 MiB download across a wire with bursty loss both
// ways (Gilbert-Elliott p 2%, r 20%, per frame, as netem's gemodel), where
// a lost segment can be lost again and again as each resend, a second
// apart at the RTO's cap, moves the chain on by one frame only. TCP gives
// up there only after stack.RetryBudget, as Linux does, and the demo's
// FTP waits as long as vsftpd does: the file arrives identical. It ended
// with 426 after 25-65 s when netstack gave up after 15 resends.
//
// It takes minutes, waiting on timers, and runs in parallel with the
// package's other parallel tests.
func TestDemoBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short: takes 2-4 minutes")
	}
	t.Parallel()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	err := Run(ctx, []string{"demo", "--size", "8MiB", "--burst", "2,20", "-q", "--stats"}, strings.NewReader(""), &out, &errOut)
	t.Logf("in %v:\n%s", time.Since(start).Round(time.Second), lastLines(out.String()+errOut.String(), 4))
	if err != nil {
		t.Fatalf("demo --size 8MiB --burst 2,20: %s (exit %d)", ErrorLine(err), ExitCode(err))
	}
	if all := out.String() + errOut.String(); !strings.Contains(all, "8388608 bytes") || !strings.Contains(all, "identical to the file served") {
		t.Errorf("the demo does not say the file arrived identical:\n%s", all)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
