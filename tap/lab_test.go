package tap_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
)

// The tests build their networks out of network namespaces they create and
// delete themselves, and send traffic only to addresses inside them
// (192.0.2.0/24 and 198.51.100.0/24, RFC 5737). Nothing is created in the
// namespace the tests run in.

// needRoot skips tb unless it can create network namespaces and TAP devices.
func needRoot(tb testing.TB) {
	tb.Helper()
	testkit.NeedNetns(tb)
}

// netns is a network namespace owned by one test.
type netns struct {
	tb   testing.TB
	name string
	path string
}

var nsSeq atomic.Int64

var nsName = regexp.MustCompile(`^nsftp-.*-([0-9]+)-[0-9]+$`)

// removeStaleNetNS deletes test namespaces left by test processes that
// died without cleaning up (a test timeout panics past t.Cleanup).
func removeStaleNetNS() {
	if os.Geteuid() != 0 {
		return
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		m := nsName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its test is still running
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// newNetNS creates a network namespace with its loopback up and deletes it
// when the test ends, pass or fail.
func newNetNS(tb testing.TB) *netns {
	tb.Helper()
	test := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(tb.Name(), "-")
	if len(test) > 40 {
		test = test[:40]
	}
	name := fmt.Sprintf("nsftp-%s-%d-%d", strings.ToLower(test), os.Getpid(), nsSeq.Add(1))
	ns := &netns{tb: tb, name: name, path: "/var/run/netns/" + name}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.ip("link", "set", "lo", "up")
	return ns
}

// ip runs `ip -n NS args...` and returns its output.
func (ns *netns) ip(args ...string) string {
	ns.tb.Helper()
	out, err := ns.tryIP(args...)
	if err != nil {
		ns.tb.Fatalf("ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (ns *netns) tryIP(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	return string(out), err
}

// tap makes a TAP device as a user would before running nsftp, with the
// kernel's address on it, and brings it up.
func (ns *netns) tap(name, cidr string, mtu int, extra ...string) {
	ns.tb.Helper()
	ns.ip(append([]string{"tuntap", "add", "dev", name, "mode", "tap"}, extra...)...)
	if cidr != "" {
		ns.ip("addr", "add", cidr, "dev", name)
	}
	if mtu != 0 {
		ns.ip("link", "set", name, "mtu", fmt.Sprint(mtu))
	}
	ns.ip("link", "set", name, "up")
}

// exists reports whether the namespace has an interface called name.
func (ns *netns) exists(name string) bool {
	_, err := ns.tryIP("link", "show", "dev", name)
	return err == nil
}

// linkDetails returns `ip -d link show` for name: flags, MTU, MAC, and
// the TUN/TAP flags (pi, vnet_hdr, multi_queue, persist, owner).
func (ns *netns) linkDetails(name string) string {
	ns.tb.Helper()
	return ns.ip("-d", "link", "show", "dev", name)
}

// offloads returns `ethtool -k` for name, or "" without ethtool.
func (ns *netns) offloads(name string) string {
	ns.tb.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		return ""
	}
	out, err := exec.Command("ip", "netns", "exec", ns.name, "ethtool", "-k", name).CombinedOutput()
	if err != nil {
		ns.tb.Fatalf("ethtool -k %s: %v: %s", name, err, out)
	}
	return string(out)
}

// helper is a copy of the test binary running in a namespace as one of the
// roles in helper_test.go.
type helper struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr bytes.Buffer
	done   chan error
}

// exe returns the path of the running test binary: inside `ip netns exec`,
// /proc/self/exe would name ip itself.
func exe(tb testing.TB) string {
	tb.Helper()
	p, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// startHelper runs the test binary in ns with the given role and
// environment, and stops it when the test ends.
func (ns *netns) startHelper(role string, env ...string) *helper {
	ns.tb.Helper()
	return startHelperCmd(ns.tb, exec.Command("ip", "netns", "exec", ns.name, exe(ns.tb)), role, env...)
}

func startHelperCmd(tb testing.TB, cmd *exec.Cmd, role string, env ...string) *helper {
	tb.Helper()
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	h := &helper{cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = &h.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	h.stdout = bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting helper %s: %v", role, err)
	}
	go func() { h.done <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-h.done
		h.done <- nil
	})
	return h
}

// line reads the helper's next line of output.
func (h *helper) line(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	type result struct {
		s   string
		err error
	}
	c := make(chan result, 1)
	go func() {
		s, err := h.stdout.ReadString('\n')
		c <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-c:
		if r.err != nil && r.s == "" {
			tb.Fatalf("helper %v: %v; stderr: %s", h.cmd.Args, r.err, h.stderr.String())
		}
		return r.s
	case <-time.After(timeout):
		tb.Fatalf("helper %v: no output after %v; stderr: %s", h.cmd.Args, timeout, h.stderr.String())
		return ""
	}
}

// wait waits for the helper to exit and returns all it printed.
func (h *helper) wait(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	var out strings.Builder
	copied := make(chan struct{})
	go func() { io.Copy(&out, h.stdout); close(copied) }()
	select {
	case err := <-h.done:
		<-copied
		h.done <- err
		if err != nil {
			tb.Fatalf("helper %v: %v; stderr: %s", h.cmd.Args, err, h.stderr.String())
		}
	case <-time.After(timeout):
		tb.Fatalf("helper %v still running after %v; stderr: %s", h.cmd.Args, timeout, h.stderr.String())
	}
	return out.String()
}

// runHelper runs a helper to completion in ns and returns its output.
func (ns *netns) runHelper(timeout time.Duration, role string, env ...string) string {
	ns.tb.Helper()
	return ns.startHelper(role, env...).wait(ns.tb, timeout)
}

// copyExe copies the test binary where an unprivileged user can run it.
func copyExe(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	src, err := os.ReadFile(exe(tb))
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, "tap.test")
	if err := os.WriteFile(p, src, 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

func testContext(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
