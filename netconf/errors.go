package netconf

import "errors"

// Error is a failure to configure a host from its network or to find a
// server on it. Its message is one sentence for a person; Err is the
// cause, one of the sentinels below or a *stack.DuplicateAddressError.
type Error struct {
	Err error
	msg string
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.Err }

// Causes of an Error that callers branch on.
var (
	// ErrNoLease: no DHCP server granted an address in time.
	ErrNoLease = errors.New("no DHCP lease")
	// ErrNoSuchHost: a name server said the name does not exist
	// (NXDOMAIN), or it has no address.
	ErrNoSuchHost = errors.New("no such host")
	// ErrNoNameServer: there is no name server to ask, or none answered.
	ErrNoNameServer = errors.New("no name server answered")
	// ErrNoRoute: the host has no route to the address.
	ErrNoRoute = errors.New("no route to host")
)
