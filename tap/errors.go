package tap

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Sentinel errors for the failures a caller can act on; test for them with
// errors.Is. Every error from this package is an *Error that wraps one of
// these, or the system error when no sentinel fits.
var (
	// ErrNoTun means the kernel offers no TUN/TAP devices: /dev/net/tun is
	// missing (module tun not loaded, or a container without the device).
	ErrNoTun = errors.New("/dev/net/tun is missing (no TUN/TAP support)")
	// ErrPermission means the caller may not create or attach the device,
	// or enter the network namespace.
	ErrPermission = errors.New("permission denied")
	// ErrBusy means another program has the device open.
	ErrBusy = errors.New("device busy")
	// ErrWrongType means the named interface exists but is not a TAP
	// device: a TUN device, or another kind of interface altogether.
	ErrWrongType = errors.New("not a TAP device")
	// ErrNameTooLong means the interface name is over IFNAMSIZ-1 (15) bytes.
	ErrNameTooLong = errors.New("interface name too long")
	// ErrInvalidName means the name is empty or one the kernel refuses.
	ErrInvalidName = errors.New("invalid interface name")
	// ErrMTU means the requested MTU is larger than the device's own, or
	// too small for IP.
	ErrMTU = errors.New("MTU out of range")
	// ErrNoDevice means the interface does not exist (CheckAddress only:
	// Open creates a missing device).
	ErrNoDevice = errors.New("no such device")
	// ErrAddressInUse means the kernel side of the device already has the
	// address nsftp was asked to use.
	ErrAddressInUse = errors.New("address already in use")
)

// Error describes a failed operation on a TAP device, like net.OpError
// does for a socket.
type Error struct {
	Op     string // "open", "check address", "close"
	Device string // interface name
	NetNS  string // network namespace path, "" for the caller's own
	Err    error  // a sentinel above, or the system error
	Detail string // what happened and what to do about it, if known
	Sys    error  // the underlying system error, if any and not Err
}

// Error implements error, in one line: "tap: open tap0: device busy:
// another program has it open".
func (e *Error) Error() string {
	s := "tap: " + e.Op + " " + e.Device
	if e.NetNS != "" {
		s += " (netns " + e.NetNS + ")"
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel and the system error, so that both
// errors.Is(err, tap.ErrBusy) and errors.Is(err, syscall.EBUSY) hold.
func (e *Error) Unwrap() []error {
	if e.Sys != nil {
		return []error{e.Err, e.Sys}
	}
	return []error{e.Err}
}

func (d *opener) fail(sentinel error, sys error, format string, args ...any) *Error {
	return &Error{Op: "open", Device: d.cfg.Name, NetNS: d.cfg.NetNS, Err: sentinel, Sys: sys, Detail: fmt.Sprintf(format, args...)}
}

// permissionHint explains how to run without root; it is the message users
// see most often.
func permissionHint(name string) string {
	return fmt.Sprintf("creating or attaching a TAP device needs CAP_NET_ADMIN; run nsftp as root, "+
		"or once, as root, make a device your user may open: ip tuntap add dev %s mode tap user $USER", name)
}

// tunModeHint explains a /dev/net/tun this user may not open.
func tunModeHint() string {
	mode := "is not open to this user"
	if fi, err := os.Stat("/dev/net/tun"); err == nil {
		mode = fmt.Sprintf("has mode %04o, not open to this user", fi.Mode().Perm())
	}
	return "/dev/net/tun " + mode + " (most systems make it 0666; a TAP device owned by you works once it is): " +
		"ask root to chmod 0666 /dev/net/tun, or run nsftp as root"
}

// classify maps a system error from opening /dev/net/tun or TUNSETIFF to
// one of the package's errors. existed says whether the interface was
// there before, which tells a type mismatch from other invalid requests.
func (d *opener) classify(step string, err error, existed bool) *Error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return d.fail(err, nil, "%s", step)
	}
	switch errno {
	case syscall.ENOENT, syscall.ENODEV, syscall.ENXIO:
		if step == "opening /dev/net/tun" {
			return d.fail(ErrNoTun, errno, "load the tun module (modprobe tun), or give the container /dev/net/tun")
		}
	case syscall.EPERM, syscall.EACCES:
		if step == "opening /dev/net/tun" {
			// The clone device itself is shut: no capability or device
			// owner helps until it is opened up.
			return d.fail(ErrPermission, errno, "%s", tunModeHint())
		}
		return d.fail(ErrPermission, errno, "%s", permissionHint(d.cfg.Name))
	case syscall.EBUSY:
		return d.fail(ErrBusy, errno, "another program has %s open", d.cfg.Name)
	case syscall.EINVAL:
		if existed {
			return d.fail(ErrWrongType, errno, "the kernel refused to attach to %s as a TAP device", d.cfg.Name)
		}
	}
	return d.fail(errno, nil, "%s", step)
}
