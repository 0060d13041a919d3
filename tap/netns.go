package tap

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that is inside the network namespace at
// path ("" runs fn where the caller is). File descriptors fn opens there -
// /dev/net/tun, sockets, netlink sockets - stay bound to that namespace
// after the thread leaves it, so the caller may use them from any goroutine.
//
// fn runs on a goroutine of its own, locked to its thread: the Go runtime
// then never schedules other goroutines onto the thread while it is in the
// namespace, and never clones new threads from it. If switching back
// fails, the goroutine exits still locked, and the runtime retires the
// thread rather than reuse it in the wrong namespace.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := enterAndRun(path, fn)
		var stuck *stuckError
		if !errors.As(err, &stuck) {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// stuckError means the thread could not return to its own namespace.
type stuckError struct{ err error }

func (e *stuckError) Error() string {
	return fmt.Sprintf("returning to the original network namespace: %v", e.err)
}

func (e *stuckError) Unwrap() error { return e.err }

// nsError reports a failure to enter the namespace.
type nsError struct {
	path string
	err  error
}

func (e *nsError) Error() string {
	return fmt.Sprintf("entering network namespace %s: %v", e.path, e.err)
}

func (e *nsError) Unwrap() error { return e.err }

func enterAndRun(path string, fn func() error) (err error) {
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &nsError{path, err}
	}
	defer unix.Close(self)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &nsError{path, err}
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return &nsError{path, err}
	}
	defer func() {
		if serr := unix.Setns(self, unix.CLONE_NEWNET); serr != nil {
			err = errors.Join(err, &stuckError{serr})
		}
	}()
	return fn()
}
