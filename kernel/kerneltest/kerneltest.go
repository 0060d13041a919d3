// Package kerneltest holds what the tests of nsftp on the kernel's TCP
// share: skipping without root, and a snapshot of the kernel's global
// tracing state, to check that a run leaves it exactly as it found it.
package kerneltest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NeedRoot skips tb unless it runs as root on a kernel with tracefs.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root for tracefs, a packet socket and a network namespace (CI runs as root)")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "tracefs") {
		tb.Skip("skipping: this kernel has no tracefs")
	}
}

// The global state a run must leave as it found it: what every tracer,
// event and option of the top-level instance is set to.
var globalFiles = []string{
	"tracing_on", "current_tracer", "set_event", "set_event_pid", "trace_options", "trace_clock",
	"buffer_size_kb", "tracing_cpumask", "events/enable",
	"events/sock/inet_sock_set_state/enable", "events/sock/inet_sock_set_state/trigger", "events/sock/inet_sock_set_state/filter",
	"events/tcp/tcp_retransmit_skb/enable", "events/tcp/tcp_retransmit_skb/trigger",
	"events/tcp/tcp_send_reset/enable", "events/tcp/tcp_send_reset/trigger",
	"events/tcp/tcp_receive_reset/enable",
}

var nsftpInstance = regexp.MustCompile(`^nsftp-([0-9]+)-`)

// TracingState describes the kernel's tracing state: the global files
// above, the tracing instances (those of nsftp runs only when made by
// this process or by one of pids: other programs' runs come and go), and
// where tracefs is mounted. It mounts tracefs to look, if it must, and
// unmounts it again.
func TracingState(tb testing.TB, pids ...int) string {
	tb.Helper()
	ours := append([]int{os.Getpid()}, pids...)
	mounts := tracefsMounts(ours)
	root := ""
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, "instances")); err == nil {
			root = m
			break
		}
	}
	if root == "" {
		dir, err := os.MkdirTemp("", "nsftp-inspect-")
		if err != nil {
			tb.Fatal(err)
		}
		if err := unix.Mount("nodev", dir, "tracefs", 0, ""); err != nil {
			os.Remove(dir)
			tb.Fatalf("mounting tracefs to look at it: %v", err)
		}
		defer func() {
			unix.Unmount(dir, unix.MNT_DETACH)
			os.Remove(dir)
		}()
		root = dir
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tracefs mounted at: %q\n", mounts)
	for _, f := range globalFiles {
		v, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", f, err)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", f, strings.TrimSpace(string(v)))
	}
	entries, _ := os.ReadDir(filepath.Join(root, "instances"))
	var names []string
	for _, e := range entries {
		if m := nsftpInstance.FindStringSubmatch(e.Name()); m != nil && !slices.ContainsFunc(ours, func(p int) bool { return fmt.Sprint(p) == m[1] }) {
			continue
		}
		names = append(names, e.Name())
	}
	fmt.Fprintf(&b, "instances: %q\n", names)
	return b.String()
}

// Instances lists the tracing instances of nsftp runs by process pid.
func Instances(tb testing.TB, pid int) []string {
	tb.Helper()
	var out []string
	for _, line := range strings.Split(TracingState(tb, pid), "\n") {
		if rest, ok := strings.CutPrefix(line, "instances: "); ok {
			for _, f := range strings.Fields(strings.Trim(rest, "[]")) {
				if name := strings.Trim(f, `"`); strings.HasPrefix(name, fmt.Sprintf("nsftp-%d-", pid)) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// nsftpMount is the mount an nsftp run makes for itself where tracefs is
// not mounted, named with its pid.
var nsftpMount = regexp.MustCompile(`/nsftp-tracefs-([0-9]+)-[0-9a-f]+$`)

// tracefsMounts lists where tracefs is mounted, leaving out the mounts
// this package makes to look and those other nsftp runs (other processes
// than ours: the tests of other packages, run at the same time) make for
// themselves and remove.
func tracefsMounts(ours []int) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "tracefs ") || strings.Contains(fields[4], "nsftp-inspect-") {
			continue
		}
		if m := nsftpMount.FindStringSubmatch(fields[4]); m != nil && !slices.ContainsFunc(ours, func(p int) bool { return fmt.Sprint(p) == m[1] }) {
			continue
		}
		out = append(out, fields[4])
	}
	return out
}
