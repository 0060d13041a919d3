// Package testkit is what nsftp's tests share, written once: golden files
// that -update rewrites, checks for root and for the peers a test drives
// that skip with the reason (CI runs as root with every peer installed,
// so there nothing skips), and a certificate authority made for a test.
package testkit

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

var update = flag.Bool("update", false, "rewrite the golden files and other files the tests compare against from what the code makes today")

// Updating reports whether the tests run with -update: a test that keeps
// a file other than a golden one (a screenshot, a page) rewrites it then.
func Updating() bool { return *update }

// Golden compares got with the golden file at path, or, with -update,
// writes it there. A difference is reported line by line.
func Golden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs (go test -update if the change is meant):\n%s", path, LineDiff(string(want), string(got)))
	}
}

// LineDiff shows the first 20 lines where want and got differ.
func LineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; (i < len(w) || i < len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// NeedRoot skips tb unless it runs as root; why says what needs it.
func NeedRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skipf("skipping: needs root: %s (CI runs as root)", why)
	}
}

// debianPackage names the Debian package a peer comes in, where it is not
// the peer's own name.
var debianPackage = map[string]string{
	"ip":      "iproute2",
	"ss":      "iproute2",
	"tc":      "iproute2",
	"dnsmasq": "dnsmasq-base",
	"sysctl":  "procps",
	"setpriv": "util-linux",
	"ping":    "iputils-ping",
}

// NeedPeer returns the path of the program name (on PATH, or in /usr/sbin
// where Debian puts daemons), or skips tb saying which Debian package has
// it: .ci/run installs every one.
func NeedPeer(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
		return p
	}
	pkg := debianPackage[name]
	if pkg == "" {
		pkg = name
	}
	tb.Skipf("skipping: %s is not installed (apt-get install %s; CI installs it)", name, pkg)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// NeedNetns skips tb unless it can make network namespaces, veth pairs and
// TAP devices of its own: root, the ip command and /dev/net/tun.
func NeedNetns(tb testing.TB) {
	tb.Helper()
	NeedRoot(tb, "creates network namespaces and TAP devices")
	NeedPeer(tb, "ip")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		tb.Skip("skipping: no /dev/net/tun (modprobe tun)")
	}
}

// ReadRecording reads a run recorded as JSON lines (or the same in gzip),
// failing the test if it cannot be read whole.
func ReadRecording(tb testing.TB, path string) []trace.Event {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	evs, err := trace.ReadJSON(f)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return evs
}
