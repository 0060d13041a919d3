package cli

// Networks for the TAP tests, built out of network namespaces each test
// creates and deletes itself (the approach of tap/lab_test.go, copied:
// test files are not shared across packages). nsftp stays in the
// namespace the tests run in and opens tap0 inside the test's namespace
// with --tap-netns; the peers (vsftpd, curl, lftp) run inside it with
// `ip netns exec`. Traffic goes only to addresses inside those namespaces
// (192.0.2.0/24 and 198.51.100.0/24, RFC 5737), and nothing is created in
// the tests' own namespace.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
)

// The addresses on every test's TAP link: the kernel's side of tap0
// (where vsftpd listens and curl and lftp connect from) and nsftp's.
const (
	kernelCIDR = "192.0.2.1/24"
	kernelIP   = "192.0.2.1"
	nsftpCIDR  = "192.0.2.2/24"
	nsftpIP    = "192.0.2.2"
)

// needTAPRoot skips tb unless it can create network namespaces and TAP
// devices and run the given peers.
func needTAPRoot(tb testing.TB, peers ...string) {
	tb.Helper()
	testkit.NeedNetns(tb)
	for _, p := range peers {
		testkit.NeedPeer(tb, p)
	}
}

// labNS is a network namespace owned by one test.
type labNS struct {
	tb   testing.TB
	name string
	path string // for --tap-netns
}

var (
	labSeq       atomic.Int64
	labNameRE    = regexp.MustCompile(`^nsftp-.*-([0-9]+)-[0-9]+$`)
	removeStales sync.Once
)

// removeStaleLabs deletes test namespaces left behind by test processes
// that died without cleaning up (a test timeout panics past t.Cleanup).
// The name carries the pid of the process that made it.
func removeStaleLabs() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		m := labNameRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its test is still running
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// newLabNS creates a network namespace named for the test, with its
// loopback up. When the test ends, pass or fail, it ends the processes
// the test left running in it and deletes it.
func newLabNS(tb testing.TB) *labNS {
	tb.Helper()
	removeStales.Do(removeStaleLabs)
	test := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(tb.Name(), "-"))
	if len(test) > 32 {
		test = test[:32]
	}
	name := fmt.Sprintf("nsftp-cli-%s-%d-%d", test, os.Getpid(), labSeq.Add(1))
	ns := &labNS{tb: tb, name: name, path: "/var/run/netns/" + name}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		ns.killAll()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.ip("link", "set", "lo", "up")
	return ns
}

// killAll kills, by pid, the processes the test started in the namespace
// that are still running there (vsftpd's session processes, a peer a
// failed test left behind), so that the namespace really goes away.
func (ns *labNS) killAll() {
	out, _ := exec.Command("ip", "netns", "pids", ns.name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// ip runs `ip -n NS args...` and returns its output.
func (ns *labNS) ip(args ...string) string {
	ns.tb.Helper()
	out, err := ns.tryIP(args...)
	if err != nil {
		ns.tb.Fatalf("ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (ns *labNS) tryIP(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	return string(out), err
}

// command returns a command that runs name inside the namespace.
func (ns *labNS) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// tap makes a TAP device as a user would before running nsftp, with the
// kernel's address on it, and brings it up.
func (ns *labNS) tap(name, cidr string, mtu int) {
	ns.tb.Helper()
	ns.ip("tuntap", "add", "dev", name, "mode", "tap")
	if cidr != "" {
		ns.ip("addr", "add", cidr, "dev", name)
	}
	if mtu != 0 {
		ns.ip("link", "set", name, "mtu", strconv.Itoa(mtu))
	}
	ns.ip("link", "set", name, "up")
}

// exists reports whether the namespace has an interface called name.
func (ns *labNS) exists(name string) bool {
	_, err := ns.tryIP("link", "show", "dev", name)
	return err == nil
}

// tapFlags are the nsftp flags that put it on tap0 in ns at 192.0.2.2.
func (ns *labNS) tapFlags(extra ...string) []string {
	return append([]string{"--tap", "tap0", "--tap-netns", ns.path, "--addr", nsftpCIDR}, extra...)
}

// waitListening waits until something in the namespace listens on TCP
// port; the test may not connect from outside to find out.
func (ns *labNS) waitListening(port int, what string, logs func() string) {
	ns.tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := ns.command("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return
		}
		if time.Now().After(deadline) {
			ns.tb.Fatalf("%s is not listening on port %d after 10s: %v %s\n%s", what, port, err, out, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vsftpdTree is the anonymous FTP tree of a vsftpd the test started.
type vsftpdTree struct {
	root     string // world-readable; the chroot of anonymous sessions
	incoming string // root/incoming, writable by the ftp user
}

// startVsftpd runs vsftpd inside ns with testdata/vsftpd.conf, listening
// on address:21 (0.0.0.0 for every address in the namespace), over a fresh
// tree, and stops it when the test ends. Extra lines are added to the
// configuration.
func (ns *labNS) startVsftpd(address string, extra ...string) *vsftpdTree {
	tb := ns.tb
	tb.Helper()
	needTAPRoot(tb, "vsftpd")
	ftpUser, err := user.Lookup("ftp")
	if err != nil {
		tb.Skip("skipping: vsftpd needs the 'ftp' user, which its Debian package creates")
	}
	if _, err := os.Stat("/var/run/vsftpd/empty"); err != nil {
		tb.Skip("skipping: vsftpd's secure_chroot_dir /var/run/vsftpd/empty is missing (its Debian package makes it)")
	}
	uid, _ := strconv.Atoi(ftpUser.Uid)
	gid, _ := strconv.Atoi(ftpUser.Gid)

	dir := tb.TempDir()
	t := &vsftpdTree{root: filepath.Join(dir, "root")}
	t.incoming = filepath.Join(t.root, "incoming")
	for _, err := range []error{
		os.MkdirAll(t.incoming, 0o755),
		os.Chmod(dir, 0o755),
		os.Chmod(t.root, 0o755),
		os.Chown(t.incoming, uid, gid),
	} {
		if err != nil {
			tb.Fatal(err)
		}
	}
	tmpl, err := os.ReadFile("../../../testdata/vsftpd.conf")
	if err != nil {
		tb.Fatal(err)
	}
	log := filepath.Join(dir, "vsftpd.log")
	conf := strings.NewReplacer(
		"{{ADDRESS}}", address, "{{PORT}}", "21",
		"{{ROOT}}", t.root, "{{LOG}}", log,
	).Replace(string(tmpl))
	conf += strings.Join(extra, "\n") + "\n"
	confPath := filepath.Join(dir, "vsftpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}

	cmd := ns.command("vsftpd", confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	ns.waitListening(21, "vsftpd", func() string {
		b, _ := os.ReadFile(log)
		return out.String() + string(b)
	})
	return t
}

// writeRandomFile writes size pseudo-random bytes (seeded, so reruns are
// alike) to path, world-readable, and returns their SHA-256.
func writeRandomFile(tb testing.TB, path string, size int64, seed byte) string {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{'n', 's', 'f', 't', 'p', seed})
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(src, size), make([]byte, 1<<20)); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileSHA returns the SHA-256 of the file at path.
func fileSHA(tb testing.TB, path string) string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// syncBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
