package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"nsftp/trace"
)

// callNames says, for each socket call, what the 2005 article's in-kernel
// FTP client called, the function that does the work in a current Linux
// kernel, and the netstack call that does it here. The kernel column names
// the IPv4 path; IPv6 differs only where v6 has its own function.
type callNames struct {
	article, kernel, kernel6, netstack string
}

var calls = map[trace.Op]callNames{
	trace.OpSocket: {
		article:  "sock_create(PF_INET, SOCK_STREAM, IPPROTO_TCP)",
		kernel:   "inet_create",
		kernel6:  "inet6_create",
		netstack: "stack.Stack.NewEndpoint",
	},
	trace.OpBind: {
		article:  "sock->ops->bind",
		kernel:   "inet_bind",
		kernel6:  "inet6_bind",
		netstack: "tcp.endpoint.Bind",
	},
	trace.OpListen: {
		article:  "sock->ops->listen",
		kernel:   "inet_listen",
		netstack: "tcp.endpoint.Listen",
	},
	trace.OpAccept: {
		article:  "sock->ops->accept",
		kernel:   "inet_csk_accept",
		netstack: "tcp.endpoint.Accept",
	},
	trace.OpConnect: {
		article:  "sock->ops->connect",
		kernel:   "tcp_v4_connect",
		kernel6:  "tcp_v6_connect",
		netstack: "tcp.endpoint.Connect",
	},
	trace.OpSend: {
		article:  "sock_sendmsg",
		kernel:   "tcp_sendmsg",
		netstack: "tcp.endpoint.Write",
	},
	trace.OpRecv: {
		article:  "sock_recvmsg",
		kernel:   "tcp_recvmsg",
		netstack: "tcp.endpoint.Read",
	},
	trace.OpShutdown: {
		article:  "sock->ops->shutdown",
		kernel:   "tcp_shutdown",
		netstack: "tcp.endpoint.Shutdown",
	},
	trace.OpClose: {
		article:  "sock_release",
		kernel:   "tcp_close",
		netstack: "tcp.endpoint.Close",
	},
	trace.OpGetsockname: {
		article:  "sock->ops->getname",
		kernel:   "inet_getname",
		kernel6:  "inet6_getname",
		netstack: "tcp.endpoint.GetLocalAddress",
	},
	trace.OpGetpeername: {
		article:  "sock->ops->getname",
		kernel:   "inet_getname",
		kernel6:  "inet6_getname",
		netstack: "tcp.endpoint.GetRemoteAddress",
	},
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
