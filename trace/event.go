package trace

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Layer says which part of the program recorded an event.
type Layer string

// The layers that record events.
const (
	LayerStack Layer = "stack" // nsftp's embedded netstack: calls, segments, states
	LayerFTP   Layer = "ftp"   // the FTP client or server: commands, replies, data connections
	LayerRun   Layer = "nsftp" // the command itself: what the run is
	LayerWire  Layer = "wire"  // the virtual wire: frames it lost
	// LayerKernel is the operating system's TCP (--net os): the socket
	// calls nsftp made to it, and what the kernel itself reported of
	// them (tracefs, a packet socket).
	LayerKernel Layer = "kernel"
)

// Kind says what an event records.
type Kind string

// The kinds of event.
const (
	KindRun     Kind = "run"     // the run begins: its title (LayerRun)
	KindEnd     Kind = "end"     // the run is over and its recording whole (LayerRun)
	KindHost    Kind = "host"    // a host's stack came up: its role, addresses, settings
	KindCall    Kind = "call"    // a socket call began or ended (see Phase)
	KindSegment Kind = "segment" // a frame crossed a host's link
	KindState   Kind = "state"   // a TCP connection changed state
	KindTCB     Kind = "tcb"     // a sample of a connection's transmission control block
	KindConfig  Kind = "config"  // a host gained or gave up an address, a router or name servers
	KindDrop    Kind = "drop"    // the wire lost a frame (LayerWire), or a host dropped one it received (LayerStack)
	// KindTCPEvent is something a kernel's TCP did on its own that is
	// neither a segment nor a change of state: a retransmission, a reset
	// sent or received (LayerKernel).
	KindTCPEvent Kind = "tcp-event"

	KindCommand   Kind = "command"    // an FTP command sent (client) or received (server)
	KindReply     Kind = "reply"      // an FTP reply received (client) or sent (server)
	KindDataOpen  Kind = "data-open"  // an FTP data connection established
	KindDataClose Kind = "data-close" // an FTP data connection closed, with its byte count
	KindTLS       Kind = "tls"        // a TLS handshake completed on a connection
	KindNote      Kind = "note"       // anything else worth showing
)

// Phase says whether a call event marks the call's beginning or its end.
type Phase string

// The phases of a call.
const (
	Begin Phase = "begin" // the call starts: its arguments
	End   Phase = "end"   // the call returns: its results
)

// Role is a host's or an FTP endpoint's part in a run.
type Role string

// The roles.
const (
	Client Role = "client"
	Server Role = "server"
)

// Conn is what a socket is for: the FTP connection it or a message
// belongs to, or the network service a UDP socket speaks.
type Conn string

// The labels. A socket with no label carries none of these.
const (
	Control Conn = "control" // FTP's control connection
	Data    Conn = "data"    // an FTP data connection
	DHCP    Conn = "dhcp"    // a DHCP client's socket (RFC 2131)
	DNS     Conn = "dns"     // a name lookup's socket (RFC 1035)
)

// DataMode is how an FTP data connection was opened.
type DataMode string

// The data connection modes.
const (
	Active  DataMode = "active"  // PORT/EPRT: the server connects to the client
	Passive DataMode = "passive" // PASV/EPSV: the client connects to the server
)

// Event is one thing that happened in a run, as plain data: it holds no
// references into the stack and may be kept, copied and encoded freely.
// Exactly one of the payload fields is set, as Kind says; FTP messages are
// the Message fields, inline.
type Event struct {
	// Seq is the event's place in the timeline, from 1: events are
	// recorded in the order they happened, one at a time.
	Seq   uint64    `json:"seq,omitempty"`
	Time  time.Time `json:"time"`
	Layer Layer     `json:"layer"`
	// Host is the stack host that recorded a stack event ("client",
	// "server", or a TAP host's name).
	Host  string `json:"host,omitempty"`
	Kind  Kind   `json:"kind"`
	Phase Phase  `json:"phase,omitempty"` // call events only

	Run      *Run      `json:"run,omitempty"`
	HostInfo *HostInfo `json:"host_info,omitempty"`
	Call     *Call     `json:"call,omitempty"`
	Segment  *Segment  `json:"segment,omitempty"`
	State    *State    `json:"state,omitempty"`
	TCB      *TCB      `json:"tcb,omitempty"`
	Config   *Config   `json:"config,omitempty"`
	Drop     *Drop     `json:"drop,omitempty"`
	TCPEvent *TCPEvent `json:"tcp_event,omitempty"`
	*Message
}

// Run describes a run, as its first event.
type Run struct {
	// Title names the run, e.g. "nsftp demo: active-mode download of
	// hello.txt"; views use it as their heading.
	Title string `json:"title"`
	// About is a sentence on the run's setup, shown under the title.
	About string `json:"about,omitempty"`
	// Compare is, for each of the two runs of `demo --compare`, the
	// stack the run is on, as its column is titled ("nsftp's netstack
	// (gVisor)", "Linux 6.18.44's TCP"). A recording of --compare holds
	// both runs, one after the other, each from its run event on.
	Compare string `json:"compare,omitempty"`
}

// HostInfo describes a host whose stack records events.
type HostInfo struct {
	Role  Role           `json:"role,omitempty"`
	MAC   string         `json:"mac,omitempty"`
	Addrs []netip.Prefix `json:"addrs,omitempty"`
	MTU   int            `json:"mtu,omitempty"`
	// TimeWait is how long a connection stays in TIME-WAIT on this host
	// (RFC 793's 2 MSL; netstack's default is 60s, as Linux's).
	TimeWait time.Duration `json:"time_wait_ns,omitempty"`
	// Kernel is, for a host on the operating system's TCP (LayerKernel),
	// the release of the Linux kernel (uname -r); empty for netstack.
	Kernel string `json:"kernel,omitempty"`
	// Unseen lists what this host's events leave out, and why: a kernel
	// host run without privilege shows no changes of state (tracefs is
	// root's) and no segments (a packet socket needs CAP_NET_RAW). Views
	// that measure a run (WriteCompare) count nothing a host did not see
	// as a difference.
	Unseen []Unseen `json:"unseen,omitempty"`
}

// Unseen is a kind of event a host could not record, and why.
type Unseen struct {
	What Seen   `json:"what"`
	Why  string `json:"why"`
}

// Seen names a kind of thing a host records, for HostInfo.Unseen.
type Seen string

// The things a host may not see.
const (
	// SeenStates is the changes of TCP state, with the kernel's
	// retransmissions, resets, per-ACK samples and congestion states
	// (tracefs).
	SeenStates Seen = "states"
	// SeenSegments is the frames of the host's connections.
	SeenSegments Seen = "segments"
	// SeenCalls is the socket calls: a peer's are its own program's.
	SeenCalls Seen = "calls"
)

// Call describes one BSD socket call: what a program asked for, what the
// 2005 article's in-kernel client called to do it, the Linux kernel
// function behind that call today, and the netstack call that does it
// here. A begin event carries the arguments; the end event repeats them
// with the results.
type Call struct {
	Socket int  `json:"socket"`          // the socket's number on its host, like a file descriptor
	Label  Conn `json:"label,omitempty"` // what the socket is for: its FTP connection, dhcp, dns
	// Proto is the socket's transport, "udp" for a datagram socket; empty
	// means TCP (recordings from before UDP was traced have only TCP).
	Proto string `json:"proto,omitempty"`
	Op    Op     `json:"op"`

	Article  string `json:"article"`  // e.g. "sock->ops->bind"
	Kernel   string `json:"kernel"`   // e.g. "inet_bind"
	Netstack string `json:"netstack"` // e.g. "tcp.endpoint.Bind"; empty for the kernel's calls
	// Syscall is, for the kernel's calls (LayerKernel), the system calls
	// nsftp made for this one, when there is more to say than the op:
	// a connect on a non-blocking socket is connect(2), EINPROGRESS, then
	// a wait in epoll and getsockopt(SO_ERROR).
	Syscall string `json:"syscall,omitempty"`
	// FD is, for the kernel's calls, the socket's file descriptor. Socket
	// numbers are the run's own: the kernel hands a closed descriptor's
	// number to the next socket, while the closed connection goes on
	// (FIN-WAIT, TIME-WAIT).
	FD int `json:"fd,omitempty"`

	Local netip.AddrPort `json:"local,omitzero"`
	// Remote is the peer: a TCP connection's, a sendto's destination, the
	// sender of the datagram a recvfrom returned.
	Remote netip.AddrPort `json:"remote,omitzero"`
	// Bytes is, at the beginning of a send or sendto, what it was given;
	// at the end of a send, recv, sendto or recvfrom, what it moved.
	Bytes int `json:"bytes,omitempty"`

	StateBefore TCPState `json:"state_before,omitempty"`
	StateAfter  TCPState `json:"state_after,omitempty"` // end only

	// NewSocket is the accepted connection's socket number (accept only).
	NewSocket int `json:"new_socket,omitempty"`

	Duration time.Duration `json:"duration_ns,omitempty"` // end only
	// Err is the call's error, "EOF" for a recv that read the peer's FIN.
	Err string `json:"err,omitempty"`
	// Closed marks a call that ended because this program closed the
	// socket while the call waited (another goroutine's close()).
	Closed bool `json:"closed,omitempty"`
}

// Op is a BSD socket call.
type Op string

// The socket calls the stack traces.
const (
	OpSocket      Op = "socket"
	OpBind        Op = "bind"
	OpListen      Op = "listen"
	OpAccept      Op = "accept"
	OpConnect     Op = "connect"
	OpSend        Op = "send"
	OpRecv        Op = "recv"
	OpShutdown    Op = "shutdown"
	OpClose       Op = "close"
	OpGetsockname Op = "getsockname"
	OpGetpeername Op = "getpeername"
	OpSendto      Op = "sendto"   // a datagram to an address (UDP)
	OpRecvfrom    Op = "recvfrom" // a datagram and who sent it (UDP)
)

// Direction is which way a frame crossed a host's link.
type Direction string

// The directions.
const (
	Out Direction = "out" // sent by the host that recorded it
	In  Direction = "in"  // received by it
)

// Segment describes one frame on a host's link. For TCP it is one
// segment, with the host's socket it belongs to; other frames (ARP, ICMP,
// NDP) carry their protocol and a summary in Info.
type Segment struct {
	Dir   Direction
	Proto string // "tcp", "udp", "arp", "icmp", "icmpv6", ...
	// Src and Dst are the frame's addresses: with ports for TCP and UDP,
	// without for ARP and ICMP (port 0).
	Src, Dst netip.AddrPort
	// Socket is, for TCP and UDP, the number of the recording host's
	// socket the segment belongs to (0 when none: a segment for a port
	// nobody listens on). A SYN to a listening socket belongs to it; the
	// SYN|ACK answering it belongs to the new connection. A datagram
	// belongs to the socket bound to its port on this host.
	Socket int
	Label  Conn
	Flags  TCPFlags
	Seq    uint32
	Ack    uint32
	Window uint16 // the window field as sent, before scaling
	// Options summarises a SYN's options ("mss=1460,sackOK,ts,wscale=7");
	// WindowScale is the shift it announces, -1 when absent. Both are
	// set on SYNs only.
	Options     string
	WindowScale int
	// SACK lists the blocks a segment's SACK option acknowledges (RFC
	// 2018), absolute sequence numbers.
	SACK []SACKBlock
	// Retransmit marks a TCP segment that resends sequence space its
	// sender had sent before (a timeout's, a fast retransmit's, a tail
	// loss probe's or SACK recovery's resend): set by the recording host
	// from its own record of what it sent, where the frame is recorded.
	// On a segment received it is what the receiving host can tell: the
	// segment starts below the highest sequence number it had received
	// that way (a resend, or a segment the path reordered). Views read
	// it; none works it out again.
	Retransmit bool
	Len        int // TCP or UDP payload bytes; IP payload for others
	Frame      int // frame length on the wire, link header included
	// Info says what a frame other than TCP says: an ARP question, an
	// ICMP type, a DHCP message or a DNS question and answer.
	Info string
	// Chain is, for outgoing frames when asked for, the netstack
	// functions that produced the frame, outermost first: the 2005
	// article's Figure 3, for netstack, read off the real call stack.
	Chain []string

	// The link and network headers, for a view of the frame layer by
	// layer. EtherType is the Ethernet header's (0x0800 IPv4, 0x86dd
	// IPv6, 0x0806 ARP), 0 for a link without one (a TUN); EthSrc and
	// EthDst are its addresses.
	EtherType      uint16
	EthSrc, EthDst MAC
	// TTL is IPv4's time to live or IPv6's hop limit; IPID and DF are
	// IPv4's identification and don't-fragment bit. All 0 for a frame
	// without an IP header (ARP).
	TTL  uint8
	IPID uint16
	DF   bool
}

// MAC is an Ethernet address.
type MAC [6]byte

// String writes the address as 02:6e:73:66:74:01.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// ParseMAC reads the String form.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != len(m) {
		return m, fmt.Errorf("trace: not an Ethernet address: %q", s)
	}
	copy(m[:], hw)
	return m, nil
}

// SACKBlock is one block of a SACK option: Start up to, not including,
// End.
type SACKBlock struct {
	Start, End uint32
}

// Drop is a frame the virtual wire lost (LayerWire), with the frame
// (Segment, as its sender sent it) and why; or a frame a host received
// and dropped (LayerStack, Host the host), which the host's segment event
// just before it showed arriving.
type Drop struct {
	// Reason is, on the wire, "queue full" (the bottleneck's queue
	// overflowed), "loss" (random or bursty loss), "link down" (an
	// outage), "bad FCS" (a corrupted frame without a checksum of its
	// own) or "receiver overrun" (the receiving port's ring was full).
	// On a host: "no socket" (nothing listens or is connected there:
	// netstack answers a TCP segment with a reset), or what its link
	// found wrong: "bad TCP checksum" (likewise UDP, ICMP, ICMPv6, "bad
	// IPv4 header checksum"), a bad or truncated header or length, "not
	// for this host" (another host's frame, as a bridge floods them).
	Reason string `json:"reason"`
	// From and To are the sending and receiving hosts' ports on the wire
	// (0 for a host's drop).
	From int `json:"from,omitempty"`
	To   int `json:"to,omitempty"`
}

// State is a TCP connection's change of state, with what caused it.
type State struct {
	Socket int      `json:"socket"`
	Label  Conn     `json:"label,omitempty"`
	From   TCPState `json:"from"`
	To     TCPState `json:"to"`
	// Cause says what moved the connection, in the words of RFC 793's
	// state diagram: "connect()", "rcv SYN|ACK", "close()", "2MSL timer".
	Cause string `json:"cause"`
	// By is the kind of cause: a segment received, a call, or a timer.
	By CauseKind `json:"by"`
	// Listener is, for a connection born on a listening socket (LISTEN ->
	// SYN-RECEIVED), the listening socket's number.
	Listener int `json:"listener,omitempty"`
	// Stack is, for the kernel's changes (LayerKernel, with tracefs), the
	// kernel functions that made the change, outermost first, read off
	// the kernel's own stack at the moment (tracefs' stacktrace trigger).
	Stack []string `json:"stack,omitempty"`
}

// CauseKind is what kind of thing moved a connection to a new state.
type CauseKind string

// The kinds of cause.
const (
	BySegment CauseKind = "segment" // a segment received (or, for a SYN, sent)
	ByCall    CauseKind = "call"    // a socket call of this program's
	ByTimer   CauseKind = "timer"   // a timer: 2MSL, retransmission, FIN-WAIT-2
)

// TCB is a sample of a connection's transmission control block as netstack
// holds it, in RFC 793's names. Sequence numbers are absolute; ISS and IRS
// let a view show them relative to the connection's start.
//
// The kernel's samples (layer kernel) are in the same names, from where
// the kernel tells them (Source): TCP_INFO, which keeps sequence numbers
// to itself (ISS, IRS, SndUna, SndNxt, RcvNxt are 0) and says more
// (RTTVar to BytesReceived); the tcp:tcp_probe tracepoint, with SndUna
// and SndNxt; tcp:tcp_cong_state_set, a change of Congestion.
type TCB struct {
	Socket int      `json:"socket"`
	State  TCPState `json:"state"`
	ISS    uint32   `json:"iss"`
	IRS    uint32   `json:"irs"`
	SndUna uint32   `json:"snd_una"`
	SndNxt uint32   `json:"snd_nxt"`
	SndWnd uint32   `json:"snd_wnd"`
	RcvNxt uint32   `json:"rcv_nxt"`
	RcvWnd uint32   `json:"rcv_wnd"`
	// Cwnd and Ssthresh are in segments, as netstack counts them;
	// Ssthresh 0 means not yet set (slow start until the first loss).
	Cwnd     int           `json:"cwnd"`
	Ssthresh int           `json:"ssthresh,omitempty"`
	MSS      int           `json:"mss,omitempty"`
	SRTT     time.Duration `json:"srtt_ns,omitempty"`
	RTO      time.Duration `json:"rto_ns,omitempty"`
	// Congestion is the sender's congestion-control state: "open",
	// "disorder", "fast-recovery", "sack-recovery" or "rto-recovery".
	Congestion string `json:"congestion,omitempty"`
	// Outstanding is how many segments are in flight: sent and not
	// acknowledged.
	Outstanding int `json:"outstanding,omitempty"`
	// Synced says the TCB was read from netstack (after a segment it
	// received); a TCB seen only on the wire so far has just the
	// handshake's numbers.
	Synced bool `json:"synced,omitempty"`

	// Source is where a kernel sample comes from; empty for netstack's.
	Source TCBSource `json:"source,omitempty"`
	// Local and Remote are the connection's ends as the sampled socket
	// has them (the kernel's samples): a view finds a sender's samples by
	// its connection, whichever host recorded them.
	Local  netip.AddrPort `json:"local,omitzero"`
	Remote netip.AddrPort `json:"remote,omitzero"`
	// What TCP_INFO adds: the RTT's variation; the segments SACKed,
	// deemed lost and retransmitted among those in flight (Outstanding
	// is its unacked); the retransmissions over the connection's life;
	// the receiver's buffer estimate (rcv_space); the rate the last
	// round trip delivered, in bytes per second; the bytes acknowledged
	// and received.
	RTTVar        time.Duration `json:"rttvar_ns,omitempty"`
	Sacked        int           `json:"sacked,omitempty"`
	Lost          int           `json:"lost,omitempty"`
	Retrans       int           `json:"retrans,omitempty"`
	TotalRetrans  int           `json:"total_retrans,omitempty"`
	RcvSpace      uint32        `json:"rcv_space,omitempty"`
	DeliveryRate  uint64        `json:"delivery_rate,omitempty"`
	BytesAcked    uint64        `json:"bytes_acked,omitempty"`
	BytesReceived uint64        `json:"bytes_received,omitempty"`
}

// TCBSource says where the kernel told a TCB sample.
type TCBSource string

// The kernel's sources of TCB samples.
const (
	// FromTCPInfo is getsockopt(TCP_INFO) on nsftp's own socket: after
	// each call, and as the kernel reports a change of its state. It
	// needs no privilege.
	FromTCPInfo TCBSource = "tcp_info"
	// FromTCPProbe is the tcp:tcp_probe tracepoint: a segment arrived on
	// an established connection, and this is the sender's state as the
	// kernel began to process it (root).
	FromTCPProbe TCBSource = "tcp_probe"
	// FromCongState is the tcp:tcp_cong_state_set tracepoint: the
	// congestion-control state changed (root); the other figures are the
	// connection's last sample.
	FromCongState TCBSource = "tcp_cong_state_set"
)

// Config is a change in a host's network configuration: an address, a
// default router or name servers gained or given up, and where they came
// from. The stack records one when it applies the change, before any
// frame that uses it.
type Config struct {
	Source ConfigSource `json:"source"`
	// Removed marks what was given up: a lease released, an address
	// whose lifetime ended, a router that stopped advertising.
	Removed bool         `json:"removed,omitempty"`
	Addr    netip.Prefix `json:"addr,omitzero"`   // an address with its on-link prefix
	Router  netip.Addr   `json:"router,omitzero"` // a default router (gateway)
	DNS     []netip.Addr `json:"dns,omitempty"`   // name servers
	// Server is the DHCP server that granted a lease.
	Server netip.Addr `json:"server,omitzero"`
	// Lease is how long a DHCP lease lasts.
	Lease time.Duration `json:"lease_ns,omitempty"`
}

// ConfigSource is where a piece of a host's configuration came from.
type ConfigSource string

// The sources.
const (
	FromCommandLine ConfigSource = "static"     // given by the user (--addr, --gateway, --dns)
	FromDHCP        ConfigSource = "dhcp"       // a DHCP lease (RFC 2131)
	FromRA          ConfigSource = "ra"         // a router advertisement: a default router, name servers (RFC 4861, RFC 8106)
	FromSLAAC       ConfigSource = "slaac"      // an address formed from an advertised prefix (RFC 4862)
	FromLinkLocal   ConfigSource = "link-local" // the IPv6 link-local address every interface has (RFC 4862)
	FromResolvConf  ConfigSource = "resolv.conf"
)

// TCPEvent is something the kernel's TCP did on its own, as its
// tracepoints report it (tcp:tcp_retransmit_skb, tcp:tcp_send_reset,
// tcp:tcp_receive_reset).
type TCPEvent struct {
	Socket int   `json:"socket"`
	Label  Conn  `json:"label,omitempty"`
	What   TCPDo `json:"what"`
	// Src and Dst are the connection's ends as the event gives them:
	// ours first for a retransmission or a reset sent.
	Src netip.AddrPort `json:"src,omitzero"`
	Dst netip.AddrPort `json:"dst,omitzero"`
	// State is the connection's state when it happened.
	State TCPState `json:"state,omitempty"`
	// Reason is the kernel's reason for a reset it sent
	// (TCP_ABORT_ON_CLOSE, NO_SOCKET, ...).
	Reason string `json:"reason,omitempty"`
	// Stack is the kernel functions that did it, outermost first.
	Stack []string `json:"stack,omitempty"`
}

// TCPDo names what a TCPEvent reports.
type TCPDo string

// The things a kernel's TCP does on its own.
const (
	Retransmit    TCPDo = "retransmit"     // a segment sent again
	ResetSent     TCPDo = "reset-sent"     // a RST sent
	ResetReceived TCPDo = "reset-received" // a RST received and acted on
)

// Message is one step of an FTP dialogue (layer "ftp"). Secrets never
// appear in a Message: a PASS or ACCT command's argument is "****"
// (RedactCommand), and the views and the JSON writer mask one again if
// whoever recorded it forgot to.
type Message struct {
	Side   Role           `json:"side"`
	Conn   Conn           `json:"conn"`
	Text   string         `json:"text,omitempty"` // command line or reply text, without CRLF
	Code   int            `json:"code,omitempty"` // reply code
	Local  netip.AddrPort `json:"local,omitzero"`
	Remote netip.AddrPort `json:"remote,omitzero"`
	Mode   DataMode       `json:"mode,omitempty"`
	Bytes  int64          `json:"bytes,omitempty"`
	Err    string         `json:"err,omitempty"`
}

// Observer receives events. It is called synchronously by the goroutine
// that did the work, so it must be quick and must not call back into
// whatever produced the event.
type Observer func(Event)
