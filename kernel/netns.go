package kernel

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace made for one run, with its loopback up:
// nobody else's traffic, ports 20 and 21 free to bind, and nothing left
// behind however the run ends. It has no name under /var/run/netns and
// lives only while this process holds it, so a killed run's namespace
// goes with the process, sockets and all.
type NetNS struct {
	f *os.File // the namespace, as /proc/thread-self/ns/net of the thread that made it
	// ports is the namespace's ephemeral range (ip_local_port_range),
	// set when it was made: every connection of a run in it has an end
	// there or at a port a socket binds, so the kernel's per-segment
	// tracepoints can be filtered to it before the run begins.
	ports [2]uint16
	// net is the namespace's own part of 127.0.0.0/8 (Loopback).
	net [2]byte
}

// Loopback is an address of the namespace's loopback for one of a run's
// hosts, 127.A.B.host, with A and B chosen when the namespace was made.
// The kernel's tracepoints see every namespace and name a connection by
// its addresses and ports alone: runs in namespaces of their own at the
// same time (other tests), each with a server at 127.0.0.2:21, took each
// other's connections and listeners for their own. A connection to this
// address comes from 127.0.0.1 (loopback's route names it as the source),
// so every connection of the run has this address at one end.
func (ns *NetNS) Loopback(host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{127, ns.net[0], ns.net[1], host})
}

// NewNetNS makes a network namespace and brings its loopback up with the
// given MTU (0 keeps loopback's 65536). It needs CAP_SYS_ADMIN.
func NewNetNS(mtu int) (*NetNS, error) {
	type result struct {
		f   *os.File
		err error
	}
	// 1024 ports from an even one: Linux picks connects' ports from even
	// offsets and bind(0)'s from odd ones, and says so when the range's
	// ends have the same parity.
	lo := uint16(10000 + 2*mrand.IntN(9500))
	ports := [2]uint16{lo, lo + 1023}
	ch := make(chan result, 1)
	go func() {
		// unshare moves only this thread: it stays locked to the
		// goroutine, and if it cannot go back to the process's namespace
		// the goroutine exits locked and the runtime retires the thread.
		runtime.LockOSThread()
		f, err, back := newNetNS(mtu, ports)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &NetNS{f: r.f, ports: ports, net: [2]byte{byte(1 + mrand.IntN(254)), byte(mrand.IntN(256))}}, nil
}

// localPorts is the namespace's ephemeral range; 0, 0 for none known.
func (ns *NetNS) localPorts() (lo, hi uint16) {
	if ns == nil {
		return 0, 0
	}
	return ns.ports[0], ns.ports[1]
}

// newNetNS runs on a locked thread; back reports the thread is in its
// original namespace again.
func newNetNS(mtu int, ports [2]uint16) (f *os.File, err error, back bool) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("kernel: network namespace: %w", err), true
	}
	defer self.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("kernel: making a network namespace: %w", os.NewSyscallError("unshare", err)), true
	}
	f, err = os.Open("/proc/thread-self/ns/net")
	if err == nil {
		err = loopbackUp(mtu)
	}
	if err == nil {
		// /proc/sys/net is the namespace of the thread that opens it.
		err = os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte(fmt.Sprintf("%d %d", ports[0], ports[1])), 0)
	}
	if serr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); serr != nil {
		if f != nil {
			f.Close()
		}
		return nil, errors.Join(err, fmt.Errorf("kernel: returning to the process's network namespace: %w", serr)), false
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("kernel: network namespace: %w", err), true
	}
	return f, nil, true
}

// loopbackUp brings up lo in the calling thread's namespace.
func loopbackUp(mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if mtu > 0 {
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		ifr.SetUint32(uint32(mtu))
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
			return fmt.Errorf("setting lo's MTU to %d: %w", mtu, err)
		}
	}
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// Do runs fn on a thread inside the namespace (a nil NetNS runs it where
// the caller is). File descriptors fn opens there - sockets - stay in the
// namespace after the thread leaves it, and may be used from any
// goroutine.
func (ns *NetNS) Do(fn func() error) error {
	if ns == nil {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, back := ns.do(fn)
		if back {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func (ns *NetNS) do(fn func() error) (err error, back bool) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("kernel: network namespace: %w", err), true
	}
	defer self.Close()
	if err := unix.Setns(int(ns.f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("kernel: entering the run's network namespace: %w", err), true
	}
	err = fn()
	if serr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); serr != nil {
		return errors.Join(err, fmt.Errorf("kernel: returning to the process's network namespace: %w", serr)), false
	}
	return err, true
}

// Close lets the namespace go: it ends once the sockets made in it are
// closed.
func (ns *NetNS) Close() error {
	if ns == nil {
		return nil
	}
	return ns.f.Close()
}
