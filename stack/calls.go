package stack

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// callNames says, for each socket call, what the 2005 article's in-kernel
// FTP client called, the function that does the work in a current Linux
// kernel, and the netstack call that does it here. The kernel column names
// the IPv4 path; IPv6 differs only where v6 has its own function.
type callNames struct {
	article, kernel, kernel6, netstack string
}

var calls = map[Op]callNames{
	OpSocket: {
		article:  "sock_create(PF_INET, SOCK_STREAM, IPPROTO_TCP)",
		kernel:   "inet_create",
		kernel6:  "inet6_create",
		netstack: "stack.Stack.NewEndpoint",
	},
	OpBind: {
		article:  "sock->ops->bind",
		kernel:   "inet_bind",
		kernel6:  "inet6_bind",
		netstack: "tcp.endpoint.Bind",
	},
	OpListen: {
		article:  "sock->ops->listen",
		kernel:   "inet_listen",
		netstack: "tcp.endpoint.Listen",
	},
	OpAccept: {
		article:  "sock->ops->accept",
		kernel:   "inet_csk_accept",
		netstack: "tcp.endpoint.Accept",
	},
	OpConnect: {
		article:  "sock->ops->connect",
		kernel:   "tcp_v4_connect",
		kernel6:  "tcp_v6_connect",
		netstack: "tcp.endpoint.Connect",
	},
	OpSend: {
		article:  "sock_sendmsg",
		kernel:   "tcp_sendmsg",
		netstack: "tcp.endpoint.Write",
	},
	OpRecv: {
		article:  "sock_recvmsg",
		kernel:   "tcp_recvmsg",
		netstack: "tcp.endpoint.Read",
	},
	OpShutdown: {
		article:  "sock->ops->shutdown",
		kernel:   "tcp_shutdown",
		netstack: "tcp.endpoint.Shutdown",
	},
	OpClose: {
		article:  "sock_release",
		kernel:   "tcp_close",
		netstack: "tcp.endpoint.Close",
	},
	OpGetsockname: {
		article:  "sock->ops->getname",
		kernel:   "inet_getname",
		kernel6:  "inet6_getname",
		netstack: "tcp.endpoint.GetLocalAddress",
	},
	OpGetpeername: {
		article:  "sock->ops->getname",
		kernel:   "inet_getname",
		kernel6:  "inet6_getname",
		netstack: "tcp.endpoint.GetRemoteAddress",
	},
}

// stateName names a netstack TCP state the way RFC 793 does, keeping
// netstack's own names for the states RFC 793 lacks (INITIAL, BOUND,
// CONNECTING, ERROR).
func stateName(state uint32) string {
	switch s := tcp.EndpointState(state); s {
	case tcp.StateSynRecv:
		return "SYN-RECEIVED"
	case tcp.StateFinWait1:
		return "FIN-WAIT-1"
	case tcp.StateFinWait2:
		return "FIN-WAIT-2"
	case tcp.StateInitial, tcp.StateBound, tcp.StateConnecting, tcp.StateError,
		tcp.StateEstablished, tcp.StateSynSent, tcp.StateTimeWait, tcp.StateClose,
		tcp.StateCloseWait, tcp.StateLastAck, tcp.StateListen, tcp.StateClosing:
		return s.String()
	default:
		// EndpointState.String panics on values it does not know.
		return fmt.Sprintf("STATE(%d)", state)
	}
}
