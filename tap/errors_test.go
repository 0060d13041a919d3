package tap_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"nsftp/stack/stacktest"
	"nsftp/tap"
)

func isErr(err, target error) bool { return errors.Is(err, target) }

// runCmd runs a command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestNameChecks needs no privileges: names are checked before any system
// call.
func TestNameChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", tap.ErrInvalidName},
		{"abcdefghijklmnop", tap.ErrNameTooLong}, // 16 bytes, one over IFNAMSIZ-1
		{"tap/0", tap.ErrInvalidName},
		{"tap 0", tap.ErrInvalidName},
		{"tap%d", tap.ErrInvalidName},
		{"..", tap.ErrInvalidName},
	} {
		_, err := tap.Open(tap.Config{Name: tc.name, NetNS: "/nonexistent"})
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%q) = %v, want %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%q): error spans lines: %q", tc.name, err)
		}
		if err := tap.CheckAddress(tc.name, nsftpAddr, "/nonexistent"); !errors.Is(err, tc.want) {
			t.Errorf("CheckAddress(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	_, err := tap.Open(tap.Config{Name: "abcdefghijklmnop"})
	if want := "tap: open abcdefghijklmnop: interface name too long: \"abcdefghijklmnop\" is 16 bytes; Linux allows at most 15"; err == nil || err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
}

func TestWrongType(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	ns := newNetNS(t)
	ns.ip("tuntap", "add", "dev", "tun0", "mode", "tun")
	ns.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	for _, name := range []string{"tun0", "veth0", "lo"} {
		for _, offload := range []bool{false, true} {
			_, err := tap.Open(tap.Config{Name: name, NetNS: ns.path, Offload: offload})
			if !errors.Is(err, tap.ErrWrongType) {
				t.Errorf("Open(%s, offload=%v) = %v, want ErrWrongType", name, offload, err)
			} else {
				t.Log(err)
			}
		}
	}
	if !ns.exists("tun0") {
		t.Error("TUN device gone after a failed Open")
	}
}

func TestBusy(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), 0)
	first, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path})
	if err != nil {
		t.Fatal(err)
	}
	for _, offload := range []bool{false, true} {
		_, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path, Offload: offload})
		if !errors.Is(err, tap.ErrBusy) || !errors.Is(err, syscall.EBUSY) {
			t.Errorf("second Open(offload=%v) = %v, want ErrBusy and EBUSY", offload, err)
		} else {
			t.Log(err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Free again: the failures left nothing attached.
	again, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	again.Close()
}

func TestMTU(t *testing.T) {
	needRoot(t)
	stacktest.CheckGoroutines(t)
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), 0)
	_, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path, MTU: 9000})
	if !errors.Is(err, tap.ErrMTU) || !strings.Contains(err.Error(), "9000") || !strings.Contains(err.Error(), "1500") {
		t.Errorf("Open(MTU 9000) on a 1500 device = %v, want ErrMTU naming both", err)
	} else {
		t.Log(err)
	}
	dev, err := tap.Open(tap.Config{Name: "tap0", NetNS: ns.path, MTU: 1280})
	if err != nil {
		t.Fatalf("Open(MTU 1280) = %v", err)
	}
	if dev.MTU() != 1280 || dev.Endpoint().MTU() != 1280 {
		t.Errorf("MTU %d, endpoint %d, want 1280", dev.MTU(), dev.Endpoint().MTU())
	}
	dev.Close()
	// A device nsftp creates has the kernel's default MTU.
	_, err = tap.Open(tap.Config{Name: "nsftp0", NetNS: ns.path, MTU: 9000})
	if !errors.Is(err, tap.ErrMTU) {
		t.Errorf("Open(MTU 9000) on a new device = %v, want ErrMTU", err)
	}
	if ns.exists("nsftp0") {
		t.Error("device created for a failed Open still exists")
	}
}

// TestPermission runs Open as an unprivileged user: on a device root made
// it fails with ErrPermission, on one made for that user it succeeds, as
// the error message promises.
func TestPermission(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), 0)
	ns.tap("tap1", "", 0, "user", "65534")
	bin := copyExe(t)
	run := func(dev string) string {
		cmd := exec.Command("ip", "netns", "exec", ns.name, bin)
		return startHelperCmd(t, cmd, "open", "DEV="+dev, "AS_NOBODY=1").wait(t, 10*time.Second)
	}
	out := run("tap0")
	if !strings.Contains(out, "ErrPermission") || !strings.Contains(out, "ip tuntap add dev tap0 mode tap user $USER") {
		t.Errorf("unprivileged Open of root's device: %s", out)
	} else {
		t.Log(strings.SplitN(out, "\n", 2)[0])
	}
	if fi, err := os.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		t.Logf("/dev/net/tun is %v here, not world read-write: skipping the user-owned device", fi.Mode().Perm())
		return
	}
	if out := run("tap1"); strings.TrimSpace(out) != "ok" {
		t.Errorf("unprivileged Open of a device made for the user: %s", out)
	}
}

// TestNoTun hides /dev/net/tun from a helper, in a mount namespace of its
// own inside a test network namespace.
func TestNoTun(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	cmd := exec.Command("ip", "netns", "exec", ns.name, exe(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out := startHelperCmd(t, cmd, "open", "DEV=tap0", "HIDE_TUN=1").wait(t, 10*time.Second)
	if !strings.Contains(out, "ErrNoTun") {
		t.Errorf("Open without /dev/net/tun: %s", out)
	} else {
		t.Log(strings.SplitN(out, "\n", 2)[0])
	}
	if ns.exists("tap0") {
		t.Error("device created although /dev/net/tun was hidden")
	}
}
