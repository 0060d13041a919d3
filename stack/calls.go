package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/nsftp/nsftp/trace"
)

// netstackCalls are the netstack calls that do each socket call's work
// here; trace.Names has what the 2005 article called and the Linux
// function behind it today (a table written from Linux 6.18's sources).
var netstackCalls = map[trace.Op]string{
	trace.OpSocket:      "stack.Stack.NewEndpoint",
	trace.OpBind:        "tcp.endpoint.Bind",
	trace.OpListen:      "tcp.endpoint.Listen",
	trace.OpAccept:      "tcp.endpoint.Accept",
	trace.OpConnect:     "tcp.endpoint.Connect",
	trace.OpSend:        "tcp.endpoint.Write",
	trace.OpRecv:        "tcp.endpoint.Read",
	trace.OpShutdown:    "tcp.endpoint.Shutdown",
	trace.OpClose:       "tcp.endpoint.Close",
	trace.OpGetsockname: "tcp.endpoint.GetLocalAddress",
	trace.OpGetpeername: "tcp.endpoint.GetRemoteAddress",
}

// callState is an endpoint's state as a call event shows it: RFC 793's
// name (see rfcState), with netstack's CONNECTING shown as the SYN-SENT
// it is about to be.
func callState(ep tcpip.Endpoint) trace.TCPState {
	st := tcp.EndpointState(ep.State())
	if st == tcp.StateConnecting {
		return trace.StateSynSent
	}
	s, _ := rfcState(st)
	return s
}

// congestionName names netstack's congestion-control state.
func congestionName(s tcpip.CongestionControlState) string {
	switch s {
	case tcpip.RTORecovery:
		return "rto-recovery"
	case tcpip.FastRecovery:
		return "fast-recovery"
	case tcpip.SACKRecovery:
		return "sack-recovery"
	case tcpip.Disorder:
		return "disorder"
	}
	return "open"
}
