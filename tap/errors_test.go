package tap_test

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/tap"
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
// for itself it fails with ErrPermission, on one made for that user it
// succeeds, as the error message promises. (A device made with no owner
// at all is open to anyone who may open /dev/net/tun: that is Linux's
// rule, tun_not_capable.)
func TestPermission(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	ns.tap("tap0", kernelAddr.String(), 0, "user", "0")
	ns.tap("tap1", "", 0, "user", "65534")
	bin := copyExe(t)
	run := func(dev string) string {
		// A /dev/net/tun of the usual mode, 0666, whatever this
		// machine's is (TestTunNotOpen tries 0600).
		cmd := exec.Command("ip", "netns", "exec", ns.name, bin)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		return startHelperCmd(t, cmd, "open", "DEV="+dev, "AS_NOBODY=1", "TUN_MODE=0666").wait(t, 10*time.Second)
	}
	out := run("tap0")
	if !strings.Contains(out, "ErrPermission") || !strings.Contains(out, "ip tuntap add dev tap0 mode tap user $USER") {
		t.Errorf("unprivileged Open of root's device: %s", out)
	} else {
		t.Log(strings.SplitN(out, "\n", 2)[0])
	}
	if out := run("tap1"); strings.TrimSpace(out) != "ok" {
		t.Errorf("unprivileged Open of a device made for the user: %s", out)
	}
}

// TestTunNotOpen gives an unprivileged helper a /dev/net/tun of mode 0600:
// the error says so, not that a capability or the device's owner is
// wrong.
func TestTunNotOpen(t *testing.T) {
	needRoot(t)
	ns := newNetNS(t)
	ns.tap("tap1", "", 0, "user", "65534")
	cmd := exec.Command("ip", "netns", "exec", ns.name, copyExe(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out := startHelperCmd(t, cmd, "open", "DEV=tap1", "TUN_MODE=0600", "AS_NOBODY=1").wait(t, 10*time.Second)
	if !strings.Contains(out, "ErrPermission") || !strings.Contains(out, "/dev/net/tun has mode 0600") ||
		strings.Contains(out, "CAP_NET_ADMIN") {
		t.Errorf("Open with a 0600 /dev/net/tun: %s", out)
	} else {
		t.Log(strings.SplitN(out, "\n", 2)[0])
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
