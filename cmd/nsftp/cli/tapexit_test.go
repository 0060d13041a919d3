package cli

// A user's TAP device must be as it was after every way nsftp can end,
// and nsftp must work on a device whatever an earlier program left on it.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// leaveDirty does to the namespace's device what a virtual machine's
// emulator that exited leaves behind: a virtio-net header on every frame
// (12 bytes, virtio 1.0's), and checksum and segmentation offload on.
// A program reading plain frames from it is handed TCP segments of up to
// 64 KiB with their checksums left for offload.
func (ns *labNS) leaveDirty(name string) {
	ns.tb.Helper()
	err := ns.inside(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, 12); err != nil {
			return fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
		}
		return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6|unix.TUN_F_TSO_ECN)
	})
	if err != nil {
		ns.tb.Fatalf("leaving %s as an emulator would: %v", name, err)
	}
}

// inside runs fn on a thread inside the namespace, which then goes back
// to the test's own. (A thread left in the namespace could be the
// process's first, whose namespace is the process's as `ip netns pids`
// sees it: the namespace's cleanup would kill the test.)
func (ns *labNS) inside(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(self)
		fd, err := unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if serr := unix.Setns(self, unix.CLONE_NEWNET); serr != nil {
			// Stuck in the namespace: the goroutine exits locked, and the
			// runtime retires the thread.
			errc <- errors.Join(err, serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// fullDeviceState is what `ip -d link`, `ip -4 addr` and `ethtool -k` say
// about the device.
func (ns *labNS) fullDeviceState(name string) string {
	ns.tb.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.name, "ethtool", "-k", name).CombinedOutput()
	if err != nil {
		ns.tb.Fatalf("ethtool -k %s: %v: %s", name, err, out)
	}
	return ns.deviceState(name) + string(out)
}

// exitWay is one way for nsftp to end in the middle of a download.
type exitWay struct {
	name string
	// dest is where the download goes: "-" for standard output, which
	// the test reads.
	dest string
	// act ends the process once a MiB has arrived on standard output
	// (nil: let it run to its end).
	act func(cmd *exec.Cmd, stdout *os.File)
	// check says what is wrong with how it ended.
	check func(state *os.ProcessState, stderr string) error
}

func signalWay(sig syscall.Signal) exitWay {
	return exitWay{
		name: unix.SignalName(sig),
		dest: "-",
		act:  func(cmd *exec.Cmd, _ *os.File) { cmd.Process.Signal(sig) },
		check: func(st *os.ProcessState, stderr string) error {
			want := 128 + int(sig)
			if st.ExitCode() != want || !strings.Contains(stderr, "stopped by "+unix.SignalName(sig)) {
				return fmt.Errorf("want exit %d and 'stopped by %s'", want, unix.SignalName(sig))
			}
			return nil
		},
	}
}

func killedBy(sig syscall.Signal) func(*os.ProcessState, string) error {
	return func(st *os.ProcessState, _ string) error {
		ws, ok := st.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != sig {
			return fmt.Errorf("want death by %s", unix.SignalName(sig))
		}
		return nil
	}
}

// TestTAPDeviceKeptOnEveryExit downloads from vsftpd through a device the
// user made, with the built command, and ends it every way it can end:
// at the end of the file, by an error (a full disk), by SIGINT, SIGTERM
// and SIGHUP, by SIGPIPE when the reader of its output goes away (nsftp
// get URL - | head -c 10), by a panic on a goroutine of its own, which runs
// no deferred call, and by SIGKILL, which runs nothing at all. After each,
// the device must be exactly as before (`ip -d link`, its addresses,
// `ethtool -k`), both on the offload path from a plain device and with
// --no-offload from a device an earlier program left with a virtio-net
// header and offloads on. Then a --no-offload get must work on it.
func TestTAPDeviceKeptOnEveryExit(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss", "ethtool")
	if testing.Short() {
		t.Skip("skipping in -short: builds the command and downloads 16 times")
	}
	bin := buildNsftp(t, "nsftp_panichook")
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd("0.0.0.0") // through the device's remaking
	const size = 64 << 20            // well past what the buffers on the way hold
	sum := writeRandomFile(t, filepath.Join(srv.root, "big"), size, 5)
	url := "ftp://" + kernelIP + "/big"

	ways := []exitWay{
		{name: "end", dest: "file", check: func(st *os.ProcessState, stderr string) error {
			if st.ExitCode() != 0 {
				return errors.New("want exit 0")
			}
			return nil
		}},
		{name: "error", dest: "/dev/full", check: func(st *os.ProcessState, stderr string) error {
			if st.ExitCode() != ExitLocal {
				return fmt.Errorf("want exit %d (a local file error)", ExitLocal)
			}
			return nil
		}},
		signalWay(syscall.SIGINT),
		signalWay(syscall.SIGTERM),
		signalWay(syscall.SIGHUP),
		{name: "SIGPIPE", dest: "-", act: func(_ *exec.Cmd, stdout *os.File) { stdout.Close() }, check: killedBy(syscall.SIGPIPE)},
		{name: "panic", dest: "-", act: func(cmd *exec.Cmd, _ *os.File) { cmd.Process.Signal(syscall.SIGUSR2) },
			check: func(st *os.ProcessState, stderr string) error {
				if st.ExitCode() != 2 || !strings.Contains(stderr, "panic: SIGUSR2 asked for a panic") {
					return errors.New("want the runtime's exit 2 and the panic")
				}
				return nil
			}},
		{name: "SIGKILL", dest: "-", act: func(cmd *exec.Cmd, _ *os.File) { cmd.Process.Kill() }, check: killedBy(syscall.SIGKILL)},
	}
	for _, path := range []struct {
		name  string
		dirty bool
		flags []string
	}{
		{"offload", false, nil},
		{"no-offload from a device left dirty", true, []string{"--no-offload"}},
	} {
		for _, way := range ways {
			t.Run(path.name+"/"+way.name, func(t *testing.T) {
				// A device made afresh each time: one an earlier run
				// left changed would hide the next run's changes.
				ns.ip("link", "del", "tap0")
				ns.tap("tap0", kernelCIDR, 0)
				if path.dirty {
					ns.leaveDirty("tap0")
				}
				before := ns.fullDeviceState("tap0")
				dest := way.dest
				if dest == "file" {
					dest = filepath.Join(t.TempDir(), "big")
				}
				args := slices.Concat([]string{"get", url, dest, "-q"}, ns.tapFlags(path.flags...))
				if dest == "/dev/full" {
					args = append(args, "--force")
				}
				st, stderr, got := runAndEnd(t, bin, args, way)
				if err := way.check(st, stderr); err != nil {
					t.Errorf("nsftp %s ended with %v: %v\nstderr:\n%s", strings.Join(args, " "), st, err, stderr)
				}
				switch {
				case way.name == "end" && fileSHA(t, dest) != sum:
					t.Errorf("the download is not the file served")
				case way.act != nil && got >= size:
					t.Errorf("the whole file arrived before nsftp was ended: not mid-transfer")
				}
				if after := ns.fullDeviceState("tap0"); after != before {
					t.Errorf("after nsftp ended (%s), tap0 is\n%s\nwas\n%s", way.name, after, before)
				}
			})
		}
	}

	// Whatever an earlier program left, a plain get works: the kernel
	// hands it whole MTU-sized frames.
	ns.leaveDirty("tap0")
	before := ns.fullDeviceState("tap0")
	dest := filepath.Join(t.TempDir(), "big")
	cmd := exec.Command(bin, slices.Concat([]string{"get", url, dest, "-q", "--connect-timeout", "10s", "--timeout", "20s"}, ns.tapFlags("--no-offload"))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("--no-offload get on a device left dirty: %v\n%s", err, out)
	}
	if fileSHA(t, dest) != sum {
		t.Errorf("--no-offload get: the download is not the file served")
	}
	if after := ns.fullDeviceState("tap0"); after != before {
		t.Errorf("after the --no-offload get, tap0 is\n%s\nwas\n%s", after, before)
	}
}

// runAndEnd runs the built command with args, waits until a MiB of the
// download has arrived (on standard output) and stops reading for a
// moment, so that the transfer stands still half done, then ends it as
// way says and reads what else comes until it exits. It returns how the
// process ended, its standard error, and how many bytes it wrote to
// standard output.
func runAndEnd(t *testing.T, bin string, args []string, way exitWay) (*os.ProcessState, string, int64) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	// The guard shares standard error: Wait returns once it has put the
	// device back and exited too.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	timer := time.AfterFunc(2*time.Minute, func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			t.Errorf("nsftp %s did not end within 2 minutes", strings.Join(args, " "))
		}
	})
	defer timer.Stop()
	var got int64
	if way.act != nil {
		n, err := io.CopyN(io.Discard, r, 1<<20)
		got += n
		if err != nil {
			cmd.Wait()
			t.Fatalf("nsftp %s: %d bytes before %v\n%s", strings.Join(args, " "), n, err, stderr.String())
		}
		time.Sleep(300 * time.Millisecond) // the pipe and the windows fill: nothing moves
		way.act(cmd, r)
	}
	if n, err := io.Copy(io.Discard, r); err == nil {
		got += n
	}
	r.Close()
	cmd.Wait()
	close(exited)
	return cmd.ProcessState, stderr.String(), got
}
