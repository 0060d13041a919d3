package kernel

import (
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// WatchConfig says what to watch of the kernel.
type WatchConfig struct {
	// Recorder receives the kernel's events, through sources of its own
	// (they are read a few milliseconds late). Nil records none: a Watch
	// for a pcap only.
	Recorder *trace.Recorder
	// NetNS is the run's namespace: the packet socket captures its
	// loopback. Nil captures the process's namespace, every interface.
	NetNS *NetNS
	// Tracefs reads the kernel's changes of TCP state, with the stack of
	// kernel functions behind each, its retransmissions and resets, from
	// a tracefs instance made for the run. It needs root.
	Tracefs bool
	// Samples, with Tracefs, records the kernel's per-ACK samples of the
	// run's connections (tcp:tcp_probe) and their changes of congestion
	// state (tcp:tcp_cong_state_set) as TCB samples. The tracepoints are
	// filtered to the ports of the run's connections, so that the buffer
	// holds little else; a connection's first milliseconds may be missing
	// where its port was not known beforehand (the filter is rewritten
	// as ports appear, on a goroutine of its own: see filter.go).
	Samples bool
	// Segments records every frame of the run's connections as segment
	// events, from a packet socket. It needs CAP_NET_RAW.
	Segments bool
	// PCAP, if not nil, receives those frames in pcap format, as
	// nsftp's stack writes them (Ethernet, nanosecond timestamps). It
	// needs CAP_NET_RAW too: StartWatch fails without it.
	PCAP io.Writer
	// Peer, if set, watches the kernel at the far end of connections
	// another stack of the run makes (nsftp's netstack on a TAP device,
	// with the kernel on the other side): see Watch.PeerConnection. It
	// needs Tracefs.
	Peer *PeerConfig
}

// Watch is what the kernel tells of a run's sockets beyond their calls:
// each change of TCP state with the kernel functions that made it, each
// retransmission and reset (tracefs), and every frame of their
// connections (a packet socket). Networks tell it of their sockets; it
// finds the kernel's events for them among everyone's.
type Watch struct {
	cfg     WatchConfig
	tracefs *tracefs
	capture *capture
	missing []string
	peer    *Network // the kernel at the far end (Peer), as a host

	mu         sync.Mutex
	byTuple    map[tuple]*sockRef
	socks      []*sockRef
	peerListen []peerListener // the near stack's listening addresses
	portRanges [][2]uint16    // ports the run's connections use, known beforehand
}

// tuple names a connection from one end: its local and remote address.
type tuple struct{ local, remote netip.AddrPort }

// sockRef is what the Watch knows of one of the run's sockets, or of a
// connection born on one of its listening sockets and not yet accepted.
type sockRef struct {
	net       *Network
	id        int
	label     trace.Conn
	local     netip.AddrPort
	remote    netip.AddrPort
	connectTo netip.AddrPort // the address connect was asked for
	listening bool
	calls     []trace.Op // in flight
	born      bool       // made for a connection on a listener, before accept
	seen      bool       // the kernel has shown a change of its state
	ended     bool       // CLOSED, or handed to a timewait sock
	peer      bool       // the far end of another stack's connection (Peer)

	sock       *Socket    // the run's own socket, while nsftp holds it
	last       *trace.TCB // the latest sample, from any source
	probed     *trace.TCB // the latest tcp_probe sample recorded
	congestion string     // the latest congestion state the kernel told
}

// StartWatch starts watching what cfg asks for. What cannot be watched
// (no root, no tracefs) is not an error but a line of Missing; a pcap
// that cannot be written is.
func StartWatch(cfg WatchConfig) (*Watch, error) {
	w := &Watch{cfg: cfg, byTuple: map[tuple]*sockRef{}}
	if lo, hi := cfg.NetNS.localPorts(); lo != 0 {
		// The run's own namespace: every connection has an end in its
		// ephemeral range, or at a port a socket binds (added as bound).
		w.portRanges = append(w.portRanges, [2]uint16{lo, hi})
	}
	if cfg.Tracefs && cfg.Recorder != nil {
		t, err := startTracefs(w, cfg.Recorder)
		if err != nil {
			w.missing = append(w.missing, "no changes of TCP state: "+err.Error())
		}
		w.tracefs = t
	}
	if cfg.Peer != nil {
		w.startPeer(*cfg.Peer)
	}
	if cfg.Segments || cfg.PCAP != nil {
		c, err := startCapture(w, cfg)
		if err != nil {
			if cfg.PCAP != nil {
				return nil, err
			}
			w.missing = append(w.missing, "no segments: "+err.Error())
		}
		w.capture = c
	}
	return w, nil
}

// Missing says, a line each, what the Watch could not watch and why.
func (w *Watch) Missing() []string {
	if w == nil {
		return nil
	}
	return w.missing
}

// Drops is how many frames the packet socket dropped (its buffer full):
// they are missing from the segments and the pcap. Known once closed.
func (w *Watch) Drops() int {
	if w == nil || w.capture == nil {
		return 0
	}
	return w.capture.drops
}

// unseen is what a host's events leave out of the kernel's side, and why:
// the changes of state without tracefs, the segments without a packet
// socket (nothing watched: both).
func (w *Watch) unseen() []trace.Unseen {
	var out []trace.Unseen
	why := func(prefix, dflt string) string {
		if w != nil {
			for _, m := range w.missing {
				if s, ok := strings.CutPrefix(m, prefix); ok {
					return s
				}
			}
		}
		return dflt
	}
	if !w.Tracing() {
		out = append(out, trace.Unseen{What: trace.SeenStates, Why: why("no changes of TCP state: ", "tracefs is not read")})
	}
	if w == nil || w.capture == nil || w.capture.src == nil {
		out = append(out, trace.Unseen{What: trace.SeenSegments, Why: why("no segments: ", "no packet socket is read")})
	}
	return out
}

// Tracing reports whether the kernel's changes of state are watched.
func (w *Watch) Tracing() bool { return w != nil && w.tracefs != nil }

// Settle waits, for at most d, until every connection of the run's has
// ended as far as the kernel says: CLOSED, or in TIME-WAIT (which lasts
// 60s on Linux, longer than a run waits). Without tracefs it waits for
// nothing.
func (w *Watch) Settle(d time.Duration) {
	if !w.Tracing() {
		return
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		busy := slices.ContainsFunc(w.socks, func(r *sockRef) bool { return !r.ended && r.seen })
		w.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close stops watching: what the kernel has told so far is recorded, the
// tracefs instance is removed, the packet socket closed. It is safe to
// call more than once.
func (w *Watch) Close() error {
	if w == nil {
		return nil
	}
	var errs []error
	if w.tracefs != nil {
		errs = append(errs, w.tracefs.close())
	}
	if w.capture != nil {
		errs = append(errs, w.capture.close())
	}
	return errors.Join(errs...)
}

// add starts knowing of a new socket.
func (w *Watch) add(s *Socket) *sockRef {
	r := &sockRef{net: s.n, id: s.id, label: s.label, sock: s}
	w.mu.Lock()
	w.socks = append(w.socks, r)
	w.mu.Unlock()
	return r
}

// sampled notes a TCP_INFO sample of a socket: the tracepoints' samples
// take its segment size, a change of congestion state its figures.
func (w *Watch) sampled(r *sockRef, b *trace.TCB) {
	w.mu.Lock()
	c := *b
	r.last = &c
	r.congestion = b.Congestion
	w.mu.Unlock()
}

// closed notes that nsftp closed the socket: the kernel goes on with the
// connection, out of TCP_INFO's reach.
func (w *Watch) closed(r *sockRef) {
	w.mu.Lock()
	r.sock = nil
	w.mu.Unlock()
}

func (w *Watch) callBegin(r *sockRef, op trace.Op) {
	w.mu.Lock()
	r.calls = append(r.calls, op)
	w.mu.Unlock()
}

func (w *Watch) callEnd(r *sockRef, op trace.Op) {
	w.mu.Lock()
	if i := slices.Index(r.calls, op); i >= 0 {
		r.calls = slices.Delete(r.calls, i, i+1)
	}
	w.mu.Unlock()
}

func (w *Watch) listening(r *sockRef) {
	w.mu.Lock()
	r.listening = true
	w.mu.Unlock()
	w.portsChanged()
}

func (w *Watch) connecting(r *sockRef, to netip.AddrPort) {
	w.mu.Lock()
	r.connectTo = to
	w.mu.Unlock()
	w.portsChanged()
}

// addrs notes a socket's addresses as the kernel gave them.
func (w *Watch) addrs(r *sockRef, local, remote netip.AddrPort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if local.IsValid() {
		r.local = local
	}
	if remote.IsValid() {
		r.remote = remote
	}
	if r.local.IsValid() && r.remote.IsValid() {
		w.byTuple[tuple{r.local, r.remote}] = r
	}
	w.portsChanged()
}

// accepted is the connection accept returned: the one the kernel's
// events showed already, if they did, with the number it was given then.
func (w *Watch) accepted(l *sockRef, s *Socket, local, remote netip.AddrPort) *sockRef {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := w.byTuple[tuple{local, remote}]; r != nil && r.born {
		r.born, r.sock = false, s
		return r
	}
	r := &sockRef{net: s.n, id: s.n.newID(), label: s.label, local: local, remote: remote, sock: s}
	w.socks = append(w.socks, r)
	w.byTuple[tuple{local, remote}] = r
	return r
}

// findLocked is the run's socket at the local end of a connection, for
// a segment or an event the kernel reports: the socket with that
// connection; a socket connecting to remote that has no port of its own
// yet; or, for a connection to one of the run's listening sockets, the
// listening socket for a SYN and the connection born on it for anything
// else. Nil: not the run's.
func (w *Watch) findLocked(local, remote netip.AddrPort, syn bool) *sockRef {
	if r := w.byTuple[tuple{local, remote}]; r != nil {
		return r
	}
	if r := w.connectingLocked(local, remote); r != nil || local.Port() == 0 {
		return r
	}
	for _, l := range slices.Backward(w.socks) {
		if !l.listening || l.ended || l.local.Port() != local.Port() ||
			!(l.local.Addr() == local.Addr() || l.local.Addr().IsUnspecified()) {
			continue
		}
		if syn {
			return l
		}
		r := &sockRef{net: l.net, id: l.net.newID(), label: l.label, local: local, remote: remote, born: true}
		w.socks = append(w.socks, r)
		w.byTuple[tuple{local, remote}] = r
		return r
	}
	return nil
}

// connectingLocked is the run's socket connecting to remote that has no
// connection yet: a connect's first segment and first change of state
// come before it returns with its local port (which the change of state
// may not show yet: port 0).
//
// The kernel's account is read after the fact: the connect may have
// returned by then, so a change of state with no port is the latest
// connect to remote that the kernel has shown nothing of yet.
func (w *Watch) connectingLocked(local, remote netip.AddrPort) *sockRef {
	for _, r := range slices.Backward(w.socks) {
		if r.connectTo != remote || r.ended {
			continue
		}
		switch {
		case local.Port() == 0 && !r.seen:
			return r
		case local.Port() != 0 && !r.remote.IsValid() && (r.local.Port() == 0 || r.local.Port() == local.Port()):
			r.local, r.remote = local, remote
			w.byTuple[tuple{local, remote}] = r
			return r
		}
	}
	return nil
}

// event is a trace event of a socket's host.
func (r *sockRef) event(e trace.Event) trace.Event {
	e.Layer = trace.LayerKernel
	e.Host = r.net.cfg.Host
	return e
}
