package cli

// The nsftp command on its own stack over a real TAP device, against FTP
// peers nobody here wrote: nsftp get/put/ls against vsftpd, and nsftp
// serve to curl and lftp. Each test builds its network in a namespace of
// its own (see tapnet_test.go); they need root and skip otherwise.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack/stacktest"
)

// runTAP runs the command in-process, as run does, with time enough for
// a 256 MiB transfer on a slow machine.
func runTAP(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := Run(ctx, args, strings.NewReader(""), &out, &errOut)
	if err != nil {
		errOut.WriteString(ErrorLine(err) + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

// nsftp runs the command with args on ns's tap0, as runTAP does.
func (ns *labNS) nsftp(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runTAP(t, slices.Concat(args, ns.tapFlags())...)
}

// TestTAPClientAgainstVsftpd downloads files of 0 bytes, a few bytes and
// 256 MiB from vsftpd, uploads one and lists directories, in passive and
// active mode, with nsftp's stack on tap0 and vsftpd on the kernel's side.
func TestTAPClientAgainstVsftpd(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP)

	files := []struct {
		name string
		size int64
	}{{"empty", 0}, {"small.txt", 5}, {"big.bin", 256 << 20}}
	sums := map[string]string{}
	for i, f := range files {
		sums[f.name] = writeRandomFile(t, filepath.Join(srv.root, f.name), f.size, byte(i))
	}
	upload := filepath.Join(t.TempDir(), "up.bin")
	upSum := writeRandomFile(t, upload, 3<<20+17, 9)

	for _, mode := range []string{"passive", "active"} {
		t.Run(mode, func(t *testing.T) {
			local := t.TempDir()
			for _, f := range files {
				dest := filepath.Join(local, f.name)
				start := time.Now()
				_, errOut, code := ns.nsftp(t, "get", "ftp://"+kernelIP+"/"+f.name, dest, "--"+mode, "-q")
				if code != 0 {
					t.Fatalf("get %s: exit %d: %s", f.name, code, errOut)
				}
				if fi, err := os.Stat(dest); err != nil || fi.Size() != f.size {
					t.Fatalf("get %s: want %d bytes, have %v (%v)", f.name, f.size, fi, err)
				}
				if got := fileSHA(t, dest); got != sums[f.name] {
					t.Fatalf("get %s: sha256 %s, served %s", f.name, got, sums[f.name])
				}
				t.Logf("get %s (%d bytes) in %v", f.name, f.size, time.Since(start).Round(time.Millisecond))
				os.Remove(dest)
			}

			name := "up-" + mode + ".bin"
			if _, errOut, code := ns.nsftp(t, "put", upload, "ftp://"+kernelIP+"/incoming/"+name, "--"+mode, "-q"); code != 0 {
				t.Fatalf("put: exit %d: %s", code, errOut)
			}
			if got := fileSHA(t, filepath.Join(srv.incoming, name)); got != upSum {
				t.Fatalf("put: vsftpd stored sha256 %s, sent %s", got, upSum)
			}

			out, errOut, code := ns.nsftp(t, "ls", "ftp://"+kernelIP+"/", "--"+mode)
			if code != 0 {
				t.Fatalf("ls: exit %d: %s", code, errOut)
			}
			for _, want := range []string{`(?m) 268435456 .* big\.bin\r?$`, `(?m) 5 .* small\.txt\r?$`, `(?m) 0 .* empty\r?$`, `(?m)^d.* incoming\r?$`} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("ls / has no line matching %s:\n%s", want, out)
				}
			}
			out, errOut, code = ns.nsftp(t, "ls", "ftp://"+kernelIP+"/incoming/", "--"+mode)
			if code != 0 || !strings.Contains(out, fmt.Sprintf(" %d ", 3<<20+17)) || !strings.Contains(out, name) {
				t.Errorf("ls /incoming/: exit %d, %s\n%s", code, errOut, out)
			}
		})
	}
}

// servingTAP is an nsftp serve running in-process on tap0.
type servingTAP struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServeTAP runs `nsftp serve DIR` on tap0 in ns at 192.0.2.2:21,
// returns once it serves, and stops it when the test ends.
func startServeTAP(t *testing.T, ns *labNS, dir string, extra ...string) *servingTAP {
	t.Helper()
	return startServeArgs(t, append([]string{"serve", dir, "--listen", nsftpIP + ":21"}, ns.tapFlags(extra...)...))
}

// startServeArgs runs nsftp serve with args, returns once it serves, and stops
// it when the test ends.
func startServeArgs(t *testing.T, args []string) *servingTAP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &servingTAP{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- Run(ctx, args, strings.NewReader(""), &bytes.Buffer{}, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.stderr.String(), "nsftp: serving "); {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("nsftp serve ended early: %v\n%s", err, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nsftp serve is not serving after 10s:\n%s", s.stderr.String())
		}
	}
	return s
}

// stop cancels the server and waits for Run to return, which it should
// do without an error.
func (s *servingTAP) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- nil
		if err != nil {
			t.Errorf("nsftp serve: %s (exit %d)\n%s", ErrorLine(err), ExitCode(err), s.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("nsftp serve did not stop within 10s of being cancelled:\n%s", s.stderr.String())
	}
}

// TestTAPServeToCurlAndLftp serves a directory with nsftp on tap0 and has
// curl and lftp, on the kernel's side of it, download, upload and list,
// in passive and active mode.
func TestTAPServeToCurlAndLftp(t *testing.T) {
	needTAPRoot(t, "curl", "lftp", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	root := t.TempDir()
	const size = 8<<20 + 3
	sum := writeRandomFile(t, filepath.Join(root, "file.bin"), size, 1)
	local := t.TempDir()
	src := filepath.Join(local, "src.bin")
	srcSum := writeRandomFile(t, src, size, 2)
	srv := startServeTAP(t, ns, root, "--write")
	url := "ftp://" + nsftpIP + "/"

	check := func(t *testing.T, what, path, want string) {
		t.Helper()
		if got := fileSHA(t, path); got != want {
			t.Errorf("%s: sha256 %s, want %s", what, got, want)
		}
	}
	for _, mode := range []struct {
		name string
		curl []string // curl's active mode needs the address to listen on: the kernel's side of tap0
		lftp string
	}{
		{"passive", nil, "on"},
		{"active", []string{"--ftp-port", kernelIP}, "off"},
	} {
		t.Run("curl/"+mode.name, func(t *testing.T) {
			curl := func(args ...string) string {
				t.Helper()
				out, err := ns.command("curl", slices.Concat([]string{"-sS", "--max-time", "60"}, args, mode.curl)...).CombinedOutput()
				if err != nil {
					t.Fatalf("curl %s: %v\n%s\nnsftp serve:\n%s", strings.Join(args, " "), err, out, srv.stderr.String())
				}
				return string(out)
			}
			got := filepath.Join(local, "curl-"+mode.name)
			curl("-o", got, url+"file.bin")
			check(t, "curl's download", got, sum)
			up := "up-curl-" + mode.name
			curl("-T", src, url+up)
			check(t, "curl's upload", filepath.Join(root, up), srcSum)
			if out := curl(url); !strings.Contains(out, "file.bin") || !strings.Contains(out, up) {
				t.Errorf("curl's listing lacks file.bin or %s:\n%s", up, out)
			}
		})
		t.Run("lftp/"+mode.name, func(t *testing.T) {
			got := filepath.Join(local, "lftp-"+mode.name)
			up := "up-lftp-" + mode.name
			script := fmt.Sprintf("set ftp:passive-mode %s; set net:max-retries 1; set net:timeout 20; set xfer:clobber on; "+
				"get file.bin -o %s; put %s -o %s; cls -1; bye", mode.lftp, got, src, up)
			cmd := ns.command("lftp", "-u", "anonymous,nsftp@", "-e", script, nsftpIP)
			cmd.Env = append(os.Environ(), "HOME="+local)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("lftp: %v\n%s\nnsftp serve:\n%s", err, out, srv.stderr.String())
			}
			check(t, "lftp's download", got, sum)
			check(t, "lftp's upload", filepath.Join(root, up), srcSum)
			if !strings.Contains(string(out), "file.bin") || !strings.Contains(string(out), up) {
				t.Errorf("lftp's listing lacks file.bin or %s:\n%s", up, out)
			}
		})
	}
	srv.stop(t)
}

// deviceState is what `ip` says about a device the user made: its link
// with the TUN/TAP details (flags, MTU, MAC, pi, vnet_hdr, persist) and
// its IPv4 addresses. IPv6 is left out: the kernel gives the device a
// link-local address of its own once a reader brings the carrier up.
func (ns *labNS) deviceState(name string) string {
	ns.tb.Helper()
	return ns.ip("-d", "link", "show", "dev", name) + ns.ip("-4", "addr", "show", "dev", name)
}

// TestTAPUserDeviceKept checks that a TAP device the user made before
// running nsftp is still there afterwards, exactly as it was, after runs
// on the offload path, the plain path and in active mode.
func TestTAPUserDeviceKept(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP)
	sum := writeRandomFile(t, filepath.Join(srv.root, "f"), 100<<10, 3)
	before := ns.deviceState("tap0")
	for _, extra := range [][]string{nil, {"--no-offload"}, {"--active"}, {"--no-offload", "--active"}} {
		dest := filepath.Join(t.TempDir(), "f")
		args := append([]string{"get", "ftp://" + kernelIP + "/f", dest, "-q"}, ns.tapFlags(extra...)...)
		if _, errOut, code := runTAP(t, args...); code != 0 {
			t.Fatalf("nsftp %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		if got := fileSHA(t, dest); got != sum {
			t.Errorf("nsftp %s: sha256 %s, want %s", strings.Join(args, " "), got, sum)
		}
		if after := ns.deviceState("tap0"); after != before {
			t.Errorf("after nsftp %s, tap0 is\n%s\nwas\n%s", strings.Join(args, " "), after, before)
		}
	}
}

// TestTAPCreatedDeviceRemoved runs nsftp serve where there is no tap0:
// nsftp creates it, the test gives the kernel's side an address, curl
// downloads through it, and once serve ends the device is gone.
func TestTAPCreatedDeviceRemoved(t *testing.T) {
	needTAPRoot(t, "curl", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	root := t.TempDir()
	sum := writeRandomFile(t, filepath.Join(root, "f"), 1<<20, 4)
	srv := startServeTAP(t, ns, root)
	if !ns.exists("tap0") {
		t.Fatalf("nsftp serve is serving, but there is no tap0 in the namespace:\n%s", srv.stderr.String())
	}
	ns.ip("addr", "add", kernelCIDR, "dev", "tap0")
	ns.ip("link", "set", "tap0", "up")
	got := filepath.Join(t.TempDir(), "f")
	if out, err := ns.command("curl", "-sS", "--max-time", "60", "-o", got, "ftp://"+nsftpIP+"/f").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s\nnsftp serve:\n%s", err, out, srv.stderr.String())
	}
	if s := fileSHA(t, got); s != sum {
		t.Errorf("curl's download: sha256 %s, want %s", s, sum)
	}
	srv.stop(t)
	if ns.exists("tap0") {
		t.Errorf("tap0, which nsftp created, is still there after it ended:\n%s", ns.ip("-d", "link", "show", "dev", "tap0"))
	}
}

// TestTAPSetupErrors checks the exit code and the one-line error for
// mistakes in the TAP setup, and that the user's device survives them.
func TestTAPSetupErrors(t *testing.T) {
	needTAPRoot(t)
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	before := ns.deviceState("tap0")
	missing := fmt.Sprintf("/var/run/netns/nsftp-cli-missing-%d", os.Getpid())
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s should not exist: %v", missing, err)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "f")
	url := "ftp://" + kernelIP + "/f"
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"kernel's address", []string{"get", url, dest, "--tap", "tap0", "--tap-netns", ns.path, "--addr", kernelCIDR},
			"192.0.2.1 is the kernel's own address on tap0"},
		{"kernel's address, serve", []string{"serve", dir, "--tap", "tap0", "--tap-netns", ns.path, "--addr", kernelCIDR},
			"192.0.2.1 is the kernel's own address on tap0"},
		{"missing namespace", []string{"get", url, dest, "--tap", "tap0", "--tap-netns", missing, "--addr", nsftpCIDR},
			"--tap-netns " + missing + ": no such file or directory"},
		{"MTU above the device's", append([]string{"get", url, dest, "--mtu", "9000"}, ns.tapFlags()...),
			"MTU 9000 exceeds the device's MTU 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := runTAP(t, tc.args...)
			if code != ExitNetwork || !strings.Contains(errOut, tc.msg) {
				t.Errorf("nsftp %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, errOut, ExitNetwork, tc.msg)
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "nsftp: ") {
				t.Errorf("nsftp %s: want one line starting nsftp:, have %q", strings.Join(tc.args, " "), errOut)
			}
		})
	}
	if after := ns.deviceState("tap0"); after != before {
		t.Errorf("after the failed runs, tap0 is\n%s\nwas\n%s", after, before)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed runs left files behind: %v", entries)
	}
	if links := ns.ip("-o", "link", "show"); strings.Count(links, "\n") != 2 {
		t.Errorf("the namespace should hold lo and tap0 only:\n%s", links)
	}
}
