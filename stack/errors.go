package stack

import (
	"context"
	"net"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ErrClosed is returned by calls on a socket that has been closed. It is
// net.ErrClosed, so callers can test for it the same way on either stack.
var ErrClosed = net.ErrClosed

// errno maps a netstack error to the errno the Linux kernel returns for the
// same condition, so that errors.Is(err, syscall.ECONNREFUSED) and friends
// work identically on nsftp's stack and on the operating system's.
func errno(err tcpip.Error) syscall.Errno {
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrNetworkUnreachable:
		return syscall.ENETUNREACH
	case *tcpip.ErrHostUnreachable, *tcpip.ErrNoNet:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrPortInUse, *tcpip.ErrDuplicateAddress:
		return syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrNotConnected, *tcpip.ErrClosedForReceive:
		return syscall.ENOTCONN
	case *tcpip.ErrAlreadyConnected:
		return syscall.EISCONN
	case *tcpip.ErrAlreadyConnecting, *tcpip.ErrConnectStarted:
		return syscall.EALREADY
	case *tcpip.ErrWouldBlock:
		return syscall.EAGAIN
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrNoBufferSpace:
		return syscall.ENOBUFS
	case *tcpip.ErrAddressFamilyNotSupported:
		return syscall.EAFNOSUPPORT
	case *tcpip.ErrNotPermitted:
		return syscall.EPERM
	default:
		return syscall.EINVAL
	}
}

// sysErr wraps a netstack error as *os.SyscallError naming the BSD call,
// the shape Go's net package gives for the same failure.
func sysErr(call string, err tcpip.Error) error {
	return os.NewSyscallError(call, errno(err))
}

// timeoutError is returned when a socket's deadline passes. It matches
// os.ErrDeadlineExceeded, as the net package's deadline errors do.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}

// ctxTimeoutError is returned when a call's context reaches its deadline:
// a net.Error whose Timeout is true that matches context.DeadlineExceeded
// (not os.ErrDeadlineExceeded, which is a socket deadline's), as Go's net
// package returns for a dial whose context ran out.
type ctxTimeoutError struct{}

func (ctxTimeoutError) Error() string   { return "i/o timeout" }
func (ctxTimeoutError) Timeout() bool   { return true }
func (ctxTimeoutError) Temporary() bool { return true }
func (ctxTimeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}

// ctxErr is why a call stopped for ctx: a deadline that passed is a
// timeout, a cancellation ctx's own error.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != context.DeadlineExceeded {
		return err
	}
	return ctxTimeoutError{}
}

var errTimeout error = timeoutError{}

var (
	_ net.Error = timeoutError{}
	_ net.Error = ctxTimeoutError{}
)
