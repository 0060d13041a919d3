package stack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/nsftp/nsftp/trace"
)

// LinkEndpoint is the link a host sends and receives frames on: a port of a
// Wire, or a TAP device from package tap. It is gVisor's link endpoint
// interface; callers outside stack/ and tap/ only pass values of it along.
type LinkEndpoint = gstack.LinkEndpoint

// BufferRange is a TCP socket buffer size range in bytes, like Linux's
// net.ipv4.tcp_rmem and tcp_wmem: a socket starts at Default and the stack
// may auto-tune it between Min and Max.
type BufferRange struct {
	Min, Default, Max int
}

// The default buffer ranges (HostConfig.SendBuffer, ReceiveBuffer).
// gVisor's own defaults (1 MiB default, 4 MiB max) cap a single
// connection well below what the virtual wire can carry at a 65,000-byte
// MTU. Receive buffers are not auto-tuned (see configure), so their
// default is what a connection gets: 8 MiB, a 4 MiB window, what Linux
// lets a sending socket keep queued below TCP
// (net.ipv4.tcp_limit_output_bytes): a kernel sending to nsftp through a
// TAP device can have that much waiting in the device's queue, unread,
// and a smaller window leaves it waiting for the window to open.
var (
	defaultSendBuffer    = BufferRange{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	defaultReceiveBuffer = BufferRange{Min: 4 << 10, Default: 8 << 20, Max: 16 << 20}
)

// DefaultListenBacklog is the listen queue a Listen gets unless its
// context or HostConfig.ListenBacklog says otherwise: Linux's
// net.core.somaxconn, which is what Go's net.Listen asks for.
const DefaultListenBacklog = 4096

// HostConfig describes one host: its link, addresses, routes and what to
// tell an observer.
type HostConfig struct {
	// Name labels the host in events ("client", "server").
	Name string
	// Role is the host's part in the run, for views that draw a client
	// and a server.
	Role trace.Role
	// Link is the host's only network interface. The host owns it from
	// NewHost on and closes it on Close.
	Link LinkEndpoint
	// Addrs are the interface's addresses with their prefixes; each prefix
	// becomes an on-link route. A host may start with none and be given
	// them later (Configure), as a DHCP client is.
	Addrs []netip.Prefix
	// Gateway, if valid, is the default route's next hop for its family.
	Gateway netip.Addr
	// Autoconf takes the host's IPv6 configuration from the link, as RFC
	// 4862 has it: a link-local address, router solicitations as the
	// interface comes up, addresses formed from the prefixes routers
	// advertise (SLAAC), and the default routers and name servers (RFC
	// 8106) their advertisements name. Each change is a config event.
	Autoconf bool
	// ProbeWait is how long ProbeAddress listens for an answer to its ARP
	// probes (RFC 5227); 0 means DefaultProbeWait.
	ProbeWait time.Duration
	// SendBuffer and ReceiveBuffer are the TCP buffer ranges. The zero
	// values mean 4 KiB-1 MiB-8 MiB to send and 4 KiB-8 MiB-16 MiB to
	// receive: a 4 MiB window without auto-tuning, enough for the
	// virtual wire at its largest MTU and for a kernel sending through a
	// TAP device.
	SendBuffer, ReceiveBuffer BufferRange
	// ListenBacklog is how many connections a listening socket queues
	// for accept when the Listen call's context does not say
	// (trace.WithBacklog); 0 means DefaultListenBacklog.
	ListenBacklog int
	// SocketMemory, if set, bounds what the host's TCP connections
	// together may hold in their buffers (data written and not yet
	// acknowledged, and data received and not yet read), as Linux's
	// net.ipv4.tcp_mem does: with more connections than the default
	// buffers fit in it, each buffer gets an equal share (at least 4 KiB),
	// and the data waits in the program instead. A server it protects from
	// a crowd is slower, not out of memory.
	SocketMemory int
	// FloodGuard drops the TCP SYNs that come from an address on the link
	// that does not answer ARP or NDP, before the stack works on them: a
	// SYN flood from spoofed addresses of the link's own subnet would
	// otherwise have the host queue a SYN|ACK for each behind an address
	// resolution that fails (see floodGuard). A real host answers.
	FloodGuard bool
	// MinRTO, if set, lowers TCP's minimum retransmission timeout from
	// netstack's 200ms (Linux's too). On an in-memory wire whose round
	// trip is microseconds, a few milliseconds lets loss tests finish
	// without changing what the stack does, only how long it waits.
	MinRTO time.Duration
	// MaxRTO, if set, caps TCP's retransmission timeout, which otherwise
	// backs off to netstack's (and Linux's) 120 s. A capped host gives up
	// on a connection after RetryBudget without an acknowledgement, as
	// Linux does, not after 15 capped timeouts.
	MaxRTO time.Duration
	// NoRACK turns off RACK loss detection (RFC 8985), which netstack and
	// Linux use by default, leaving SACK-based recovery (RFC 6675: fast
	// retransmit after three duplicate ACKs, and the RTO). netstack's
	// RACK walks every segment in flight on every ACK, a cost that grows
	// with the window: a path that cannot lose a frame has no use for it.
	NoRACK bool
	// TimeWait, if set, is how long a connection closed first on this
	// host stays in TIME-WAIT: RFC 793's 2 MSL, netstack's and Linux's
	// 60s. A lesson that wants to show a connection's end can shorten it.
	TimeWait time.Duration
	// Observer, if set, receives the host's timeline: its own description
	// first, then every socket call's beginning and end, every frame on
	// its link with the socket it belongs to, and every change of state
	// of every TCP connection, with its cause, as each happens.
	Observer trace.Observer
	// Samples, with Observer, records a sample of a sending connection's
	// TCB (cwnd, ssthresh, SND.UNA, SRTT, ...) each time netstack has
	// processed an ACK that changed it: what a time-sequence graph draws
	// the congestion window from. It, and a Gate, turn on netstack's TCP
	// probe, which copies the TCB after every segment; without either,
	// the timeline records the same changes of state without it.
	Samples bool
	// Explain, with Observer, records with each outgoing frame the
	// netstack functions that produced it (Segment.Chain). It costs a
	// stack walk per frame, so it is only paid for when asked.
	Explain bool
	// Gate, if set with Observer, runs before every socket call and every
	// frame (step mode).
	Gate Gate
	// Capture, if set, writes every frame of the link both ways as pcap.
	Capture *CaptureConfig
	// Clock, if set, is the host's time: its netstack's timers and
	// timestamps (RTT, RTO, delayed ACKs, TIME-WAIT, neighbour cache),
	// its sockets' deadlines and call durations, and its capture's
	// timestamps. The host holds it while Gate waits, so a prompt is no
	// time to TCP. Without, the host has a clock of its own at real
	// speed. A Pair gives its hosts and wire one clock.
	Clock *Clock
}

// RetryBudget is how long a host whose retransmission timeout is capped
// (HostConfig.MaxRTO) resends unacknowledged data before it gives up on
// the connection: Linux's default, net.ipv4.tcp_retries2 = 15, which Linux
// counts as time, not as resends (tcp_model_timeout: timeouts doubling
// from 200 ms to the 120 s maximum, 15 of them, 1023 x 200 ms + 6 x 120 s
// = 924.6 s), however often a lower cap (tcp_rto_max_ms) lets it resend
// in that time. On a wire whose RTO is capped at 1 s, a segment lost 16
// times in a row in a burst (the Bad state lasting, see GilbertElliott)
// ended a connection after netstack's 15 resends, 14 s after the first.
const RetryBudget = 924600 * time.Millisecond

// Host is a TCP/IP stack owned by this program: one gVisor netstack with
// IPv4, IPv6, ARP, NDP, TCP (SACK on) and UDP, one network interface, and
// traced BSD-style sockets (see Socket and UDPSocket). Its addresses,
// routers and name servers may change as it runs (Configure, and router
// advertisements with HostConfig.Autoconf).
type Host struct {
	name     string
	s        *gstack.Stack
	clock    *Clock
	ownClock bool // made by NewHost: closed with the host
	nic      tcpip.NICID
	tl       *timeline    // nil when nobody observes the host
	link     LinkEndpoint // as given, beneath any capture
	capture  *captureEndpoint

	nextID atomic.Int64 // socket numbers, like file descriptors, for traces

	// mem, if set, shares out HostConfig.SocketMemory.
	mem *sockMem
	// guard, if set, is HostConfig.FloodGuard's.
	guard *floodGuard

	// giveUp, if set, is every TCP socket's TCP_USER_TIMEOUT: how long
	// unacknowledged data is resent before the connection is given up
	// (RetryBudget, on a host whose RTO is capped).
	giveUp time.Duration

	conf      netState
	probeWait time.Duration
	backlog   int            // HostConfig.ListenBacklog
	bg        sync.WaitGroup // route updates under way (see netState.changed)

	closeOnce sync.Once
}

const nicID tcpip.NICID = 1

// NewHost builds a netstack on cfg.Link and configures its addresses and
// routes. The returned host must be closed.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Link == nil {
		return nil, errors.New("stack: host needs a link")
	}
	quietNetstack()
	h := &Host{name: cfg.Name, nic: nicID, link: cfg.Link, probeWait: cfg.ProbeWait, backlog: cfg.ListenBacklog, clock: cfg.Clock}
	if h.backlog <= 0 {
		h.backlog = DefaultListenBacklog
	}
	if h.clock == nil {
		h.clock, h.ownClock = newWallClock(), true
	}
	h.conf.init()
	if h.probeWait <= 0 {
		h.probeWait = DefaultProbeWait
	}
	tcpProto := tcp.NewProtocol
	if cfg.Observer != nil {
		h.tl = newTimeline(h, cfg.Observer, cfg.Gate, cfg.Explain)
		h.tl.samples = cfg.Samples
		// The probe tells of every segment a connection has processed,
		// with its TCB: what step mode's prompts and the samples show.
		// netstack copies the whole TCB to the heap for it, segment by
		// segment (about 5% of a traced bulk download's time over a
		// TAP), so a run that shows no TCB goes without, and has the
		// changes of state that only the probe would see watched for
		// instead (timeline.watchLocked).
		if cfg.Gate != nil || cfg.Samples {
			tcpProto = tcp.NewProtocolProbe(h.tl.probe)
			h.tl.probing = true
		}
	}
	// IPv6 DAD is off: addresses on the virtual wire and on a TAP the
	// user configured are known to be unique, a tentative address would
	// make the first connect of a run fail, and SLAAC's are formed from
	// the interface's own MAC. An IPv4 address from DHCP is probed
	// before use instead (ProbeAddress).
	v6 := ipv6.Options{}
	if cfg.Autoconf {
		v6 = ipv6.Options{
			AutoGenLinkLocal: true,
			NDPConfigs: ipv6.NDPConfigurations{
				MaxRtrSolicitations:     3,
				RtrSolicitationInterval: time.Second,
				// No random delay before the first solicitation (RFC
				// 4861 section 6.3.7 asks for up to 1s, to spread out
				// hosts booting together): one program starting.
				MaxRtrSolicitationDelay: 0,
				HandleRAs:               ipv6.HandlingRAsEnabledWhenForwardingDisabled,
				DiscoverDefaultRouters:  true,
				DiscoverOnLinkPrefixes:  true,
				AutoGenGlobalAddresses:  true,
			},
			NDPDisp: &ndpEvents{h: h},
		}
	}
	// netstack's goroutines (TCP's processors) are the network's: a
	// jumping clock waits for them to be idle.
	h.clock.Run(func() {
		h.s = gstack.New(gstack.Options{
			NetworkProtocols: []gstack.NetworkProtocolFactory{
				ipv4.NewProtocol,
				ipv6.NewProtocolWithOptions(v6),
				arp.NewProtocolWithOptions(arp.Options{DADConfigs: probeConfig(h.probeWait)}),
			},
			TransportProtocols: []gstack.TransportProtocolFactory{tcpProto, udp.NewProtocol},
			Clock:              h.clock,
		})
	})
	if h.tl != nil && h.tl.chains != nil {
		noteSenders(h.s, h.tl.chains)
	}
	if h.tl != nil {
		// Before the interface comes up: what it does then (its
		// link-local address, router solicitations) is the host's.
		timeWait := cfg.TimeWait
		if timeWait == 0 {
			timeWait = tcp.DefaultTCPTimeWaitTimeout
		}
		h.tl.emit(trace.Event{Kind: trace.KindHost, HostInfo: &trace.HostInfo{
			Role: cfg.Role, MAC: string(cfg.Link.LinkAddress().String()), Addrs: cfg.Addrs,
			MTU: int(cfg.Link.MTU()), TimeWait: timeWait,
		}})
	}
	if err := h.configure(cfg); err != nil {
		h.s.Destroy()
		cfg.Link.Close()
		if h.ownClock {
			h.clock.Close()
		}
		return nil, err
	}
	return h, nil
}

// newSocketID numbers a socket, as a file descriptor would be: 0, 1 and 2
// are stdin, stdout and stderr.
func (h *Host) newSocketID() int { return int(h.nextID.Add(1)) + 2 }

func (h *Host) configure(cfg HostConfig) error {
	send, recv := cfg.SendBuffer, cfg.ReceiveBuffer
	if send == (BufferRange{}) {
		send = defaultSendBuffer
	}
	if recv == (BufferRange{}) {
		recv = defaultReceiveBuffer
	}
	if cfg.SocketMemory > 0 {
		h.mem = newSockMem(cfg.SocketMemory, send.Default, recv.Default)
	}
	sack := tcpip.TCPSACKEnabled(true)
	// Receive-buffer auto-tuning off: netstack's tuner, when it grows the
	// buffer, can leave a window it closed unannounced once the reader has
	// drained it, and the transfer then waits for the sender's zero-window
	// probe (a 200 ms stall in 7 of 20 64 MiB transfers on the wire; 0 of
	// 20 without it, at the same or better throughput). The fixed default
	// is sized to need no tuning instead.
	moderate := tcpip.TCPModerateReceiveBufferOption(false)
	sendOpt := tcpip.TCPSendBufferSizeRangeOption{Min: send.Min, Default: send.Default, Max: send.Max}
	recvOpt := tcpip.TCPReceiveBufferSizeRangeOption{Min: recv.Min, Default: recv.Default, Max: recv.Max}
	opts := []tcpip.SettableTransportProtocolOption{&sack, &moderate, &sendOpt, &recvOpt}
	if cfg.MinRTO > 0 {
		minRTO := tcpip.TCPMinRTOOption(cfg.MinRTO)
		opts = append(opts, &minRTO)
	}
	if cfg.MaxRTO > 0 {
		maxRTO := tcpip.TCPMaxRTOOption(cfg.MaxRTO)
		// netstack gives up when one segment has been resent 15 times
		// (tcp_retries2's count): at a 1 s cap, 15 s after the first,
		// where Linux goes on for RetryBudget. The count is lifted and
		// each socket's user timeout set to the budget instead.
		retries := tcpip.TCPMaxRetriesOption(math.MaxUint32)
		opts = append(opts, &maxRTO, &retries)
		h.giveUp = RetryBudget
	}
	if cfg.NoRACK {
		recovery := tcpip.TCPRecovery(0)
		opts = append(opts, &recovery)
	}
	if cfg.TimeWait > 0 {
		tw := tcpip.TCPTimeWaitTimeoutOption(cfg.TimeWait)
		opts = append(opts, &tw)
	}
	for _, opt := range opts {
		if err := h.s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return fmt.Errorf("stack: setting TCP option %T: %s", opt, err)
		}
	}

	link := cfg.Link
	if cfg.Capture != nil || h.tl != nil {
		var cc CaptureConfig
		if cfg.Capture != nil {
			cc = *cfg.Capture
		}
		c, err := newCaptureEndpoint(link, h, cc)
		if err != nil {
			return err
		}
		h.capture = c
		link = c
	}
	if cfg.FloodGuard {
		h.guard = newFloodGuard(link, h)
		link = h.guard
	}
	if err := h.s.CreateNICWithOptions(h.nic, link, gstack.NICOptions{Name: cfg.Name}); err != nil {
		return fmt.Errorf("stack: creating interface: %s", err)
	}
	if h.guard != nil {
		h.guard.start()
	}

	for _, p := range cfg.Addrs {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("stack: invalid address %v", p)
		}
		if err := h.addAddress(p); err != nil {
			return err
		}
	}
	if cfg.Gateway.IsValid() {
		h.conf.setRouter(cfg.Gateway.Unmap(), trace.FromCommandLine)
	}
	h.applyRoutes()
	return nil
}

// Clock returns the clock the host runs on.
func (h *Host) Clock() *Clock { return h.clock }

// Name returns the name the host was configured with.
func (h *Host) Name() string { return h.name }

// Close aborts every connection, stops all of the host's goroutines and
// closes its link. It is safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		// Destroy aborts endpoints, stops the protocol goroutines and
		// removes the NIC, which closes the link endpoint and waits for it.
		h.conf.mu.Lock()
		h.conf.closed = true
		h.conf.mu.Unlock()
		// What the run sent last (a DHCP release) must leave before the
		// link closes; a TAP device drops what is still queued.
		if f, ok := h.link.(interface{ Flush(time.Duration) }); ok {
			f.Flush(time.Second)
		}
		h.s.Destroy()
		if h.mem != nil {
			h.mem.stop()
		}
		if h.guard != nil {
			h.guard.close()
		}
		h.bg.Wait()
		if h.tl != nil {
			h.tl.stopWatching()
		}
		// The link's own goroutines can finish only now that the stack
		// has released its locks (see Port.Wait).
		if cw, ok := h.link.(interface{ waitClosed() }); ok {
			cw.waitClosed()
		}
		if h.ownClock {
			h.clock.Close()
		}
	})
	if h.capture != nil {
		return h.capture.closeErr()
	}
	return nil
}

// Settle waits until every TCP connection of the host has reached
// CLOSED (TIME-WAIT over, last ACKs in), or ctx is done: so that a host
// closes as a real one stops, with nothing left to reset, and a lesson
// can show how its connections end. On a host with an observer these are
// the connections its timeline followed; on one without, netstack's own
// (listening sockets apart), looked at every millisecond.
func (h *Host) Settle(ctx context.Context) error {
	if h.tl != nil {
		return h.tl.settle(ctx)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for h.connections() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// connections counts netstack's TCP endpoints that are not yet CLOSED,
// listening sockets apart.
func (h *Host) connections() int {
	n := 0
	for _, ep := range h.s.RegisteredEndpoints() {
		if t, ok := ep.(*tcp.Endpoint); ok {
			switch t.EndpointState() {
			case tcp.StateListen, tcp.StateClose, tcp.StateError:
			default:
				n++
			}
		}
	}
	return n
}

// Stats returns a snapshot of the host's counters.
func (h *Host) Stats() Stats {
	return statsOf(h.s)
}
