package trace

// KernelNames are, for a socket call, what the 2005 article's in-kernel
// FTP client called to make it, and the Linux function that does its work
// today, for IPv4 and, where v6 has its own, IPv6.
type KernelNames struct {
	Article string // e.g. "sock->ops->connect"
	Kernel  string // e.g. "tcp_v4_connect"
	Kernel6 string // e.g. "tcp_v6_connect"; empty when the same as Kernel
}

// Names returns the names of op's kernel call, IPv6's when v6.
//
// The table is a fallback, written from Linux 6.18's sources
// (net/socket.c, net/ipv4/af_inet.c, tcp.c, tcp_ipv4.c, net/ipv6/):
// the functions have kept these names since Linux 4.x. Where nsftp runs
// on the kernel's TCP with tracing, the kernel's own stack traces name
// what really ran (State.Stack).
func Names(op Op, v6 bool) (article, kernel string) {
	n := kernelNames[op]
	article, kernel = n.Article, n.Kernel
	if v6 {
		if n.Kernel6 != "" {
			kernel = n.Kernel6
		}
		if op == OpSocket {
			article = "sock_create(PF_INET6, SOCK_STREAM, IPPROTO_TCP)"
		}
	}
	return article, kernel
}

var kernelNames = map[Op]KernelNames{
	OpSocket:      {"sock_create(PF_INET, SOCK_STREAM, IPPROTO_TCP)", "inet_create", "inet6_create"},
	OpBind:        {"sock->ops->bind", "inet_bind", "inet6_bind"},
	OpListen:      {"sock->ops->listen", "inet_listen", ""},
	OpAccept:      {"sock->ops->accept", "inet_csk_accept", ""},
	OpConnect:     {"sock->ops->connect", "tcp_v4_connect", "tcp_v6_connect"},
	OpSend:        {"sock_sendmsg", "tcp_sendmsg", ""},
	OpRecv:        {"sock_recvmsg", "tcp_recvmsg", ""},
	OpShutdown:    {"sock->ops->shutdown", "tcp_shutdown", ""},
	OpClose:       {"sock_release", "tcp_close", ""},
	OpGetsockname: {"sock->ops->getname", "inet_getname", "inet6_getname"},
	OpGetpeername: {"sock->ops->getname", "inet_getname", "inet6_getname"},
}

// UDPNames is Names for a UDP socket's calls. The article's client had no
// UDP, but every socket's calls go through the same socket layer
// (sock_create, sock_sendmsg, sock_recvmsg, sock_release); the functions
// are Linux 6.18's (net/ipv4/udp.c, datagram.c, net/ipv6/udp.c).
func UDPNames(op Op, v6 bool) (article, kernel string) {
	n := udpKernelNames[op]
	article, kernel = n.Article, n.Kernel
	if v6 {
		if n.Kernel6 != "" {
			kernel = n.Kernel6
		}
		if op == OpSocket {
			article = "sock_create(PF_INET6, SOCK_DGRAM, IPPROTO_UDP)"
		}
	}
	return article, kernel
}

var udpKernelNames = map[Op]KernelNames{
	OpSocket:   {"sock_create(PF_INET, SOCK_DGRAM, IPPROTO_UDP)", "inet_create", "inet6_create"},
	OpBind:     {"sock->ops->bind", "inet_bind", "inet6_bind"},
	OpConnect:  {"sock->ops->connect", "ip4_datagram_connect", "ip6_datagram_connect"},
	OpSendto:   {"sock_sendmsg", "udp_sendmsg", "udpv6_sendmsg"},
	OpRecvfrom: {"sock_recvmsg", "udp_recvmsg", "udpv6_recvmsg"},
	OpClose:    {"sock_release", "udp_lib_close", ""},
}
