package trace

import (
	"fmt"
	"strings"
)

// TCPFlags is the set of flags in a TCP header, bit for bit as the header
// carries them (RFC 793, RFC 3168).
type TCPFlags uint8

// The TCP flags.
const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// flagOrder is the order flags are named in, as a handshake shows them.
var flagOrder = []struct {
	f    TCPFlags
	name string
}{
	{SYN, "SYN"}, {FIN, "FIN"}, {RST, "RST"}, {PSH, "PSH"},
	{ACK, "ACK"}, {URG, "URG"}, {ECE, "ECE"}, {CWR, "CWR"},
}

// Has reports whether every flag in g is set in f.
func (f TCPFlags) Has(g TCPFlags) bool { return f&g == g }

// String names the flags set, joined by "|": "SYN|ACK".
func (f TCPFlags) String() string {
	var b strings.Builder
	for _, n := range flagOrder {
		if f&n.f != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
		}
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler: the String form.
func (f TCPFlags) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, reading the String
// form.
func (f *TCPFlags) UnmarshalText(b []byte) error {
	*f = 0
	if len(b) == 0 {
		return nil
	}
	for _, name := range strings.Split(string(b), "|") {
		found := false
		for _, n := range flagOrder {
			if n.name == name {
				*f |= n.f
				found = true
			}
		}
		if !found {
			return fmt.Errorf("trace: unknown TCP flag %q", name)
		}
	}
	return nil
}

// TCPState is a TCP connection's state, by RFC 793's name, or by
// netstack's for the states RFC 793 has no name for (INITIAL, BOUND).
type TCPState string

// The states. RFC 793's CLOSED is both where a connection ends and, before
// a socket has done anything, netstack's INITIAL.
const (
	StateInitial     TCPState = "INITIAL" // netstack: a new socket
	StateBound       TCPState = "BOUND"   // netstack: bound, not listening or connecting
	StateListen      TCPState = "LISTEN"
	StateSynSent     TCPState = "SYN-SENT"
	StateSynReceived TCPState = "SYN-RECEIVED"
	StateEstablished TCPState = "ESTABLISHED"
	StateFinWait1    TCPState = "FIN-WAIT-1"
	StateFinWait2    TCPState = "FIN-WAIT-2"
	StateCloseWait   TCPState = "CLOSE-WAIT"
	StateClosing     TCPState = "CLOSING"
	StateLastAck     TCPState = "LAST-ACK"
	StateTimeWait    TCPState = "TIME-WAIT"
	StateClosed      TCPState = "CLOSED"
)

// rfc793 holds the transitions of RFC 793's state diagram (page 23), with
// the additions a real stack makes and the RFC allows elsewhere: any
// state may be reset or aborted to CLOSED (section 3.4 and 3.9, "ABORT
// Call"), and netstack's INITIAL and BOUND stand for CLOSED before a
// connection is opened. Linux names a new socket CLOSED (TCP_CLOSE), as
// the diagram does, and opens it from there.
var rfc793 = map[TCPState][]TCPState{
	StateInitial:     {StateBound, StateListen, StateSynSent, StateClosed},
	StateBound:       {StateListen, StateSynSent, StateClosed},
	StateListen:      {StateSynReceived, StateSynSent, StateClosed},
	StateSynSent:     {StateSynReceived, StateEstablished, StateClosed},
	StateSynReceived: {StateEstablished, StateFinWait1, StateClosed},
	StateEstablished: {StateFinWait1, StateCloseWait, StateClosed},
	StateFinWait1:    {StateFinWait2, StateClosing, StateTimeWait, StateClosed},
	StateFinWait2:    {StateTimeWait, StateClosed},
	StateCloseWait:   {StateLastAck, StateClosed},
	StateClosing:     {StateTimeWait, StateClosed},
	StateLastAck:     {StateClosed},
	StateTimeWait:    {StateClosed},
	StateClosed:      {StateListen, StateSynSent},
}

// Allowed reports whether RFC 793's state diagram lets a connection move
// from one state to the other.
func Allowed(from, to TCPState) bool {
	for _, s := range rfc793[from] {
		if s == to {
			return true
		}
	}
	return false
}
