package kernel

import (
	"net/netip"
	"slices"

	"github.com/nsftp/nsftp/trace"
)

// PeerConfig names the kernel at the far end of another stack's
// connections, as a host of the run's timeline.
type PeerConfig struct {
	// Host names the peer in events, e.g. "peer (Linux)".
	Host string
	// Role is the peer's part: the server of a client's download.
	Role trace.Role
}

// peerListener is a listening address of the near stack's, which the
// kernel may connect to (an active-mode data connection, a client of a
// server on the near stack).
type peerListener struct {
	addr  netip.AddrPort
	label trace.Conn
}

// startPeer records the peer's host event; its sockets are numbered as
// the run's own are, since the kernel's descriptors are its program's.
func (w *Watch) startPeer(cfg PeerConfig) {
	w.peer = &Network{cfg: Config{Host: cfg.Host, Role: cfg.Role}, release: Release()}
	info := &trace.HostInfo{Role: cfg.Role, TimeWait: TimeWait, Kernel: w.peer.release,
		Unseen: []trace.Unseen{
			{What: trace.SeenCalls, Why: "its socket calls are its own program's"},
			{What: trace.SeenSegments, Why: "the near host records the frames of its connections"},
		}}
	for _, u := range w.unseen() {
		if u.What == trace.SeenStates {
			info.Unseen = append(info.Unseen, u)
		}
	}
	if r := w.cfg.Recorder; r != nil {
		r.Record(trace.Event{Layer: trace.LayerKernel, Host: cfg.Host, Kind: trace.KindHost, HostInfo: info})
	}
}

// PeerConnection tells the Watch of one of the run's connections from
// near, an end on another stack (nsftp's netstack), to far, an end on
// this kernel: the kernel's socket at far is traced as the peer's,
// labelled as the near end is. It is safe to call more than once for a
// connection, and for any connection (one whose far end is not this
// kernel's is never seen).
func (w *Watch) PeerConnection(near, far netip.AddrPort, label trace.Conn) {
	if w == nil || w.peer == nil || !near.IsValid() || !far.IsValid() {
		return
	}
	w.mu.Lock()
	k := tuple{far, near}
	if r := w.byTuple[k]; r != nil {
		if r.label == "" {
			r.label = label
		}
		w.mu.Unlock()
		return
	}
	r := &sockRef{net: w.peer, id: w.peer.newID(), label: label, local: far, remote: near, peer: true}
	w.socks = append(w.socks, r)
	w.byTuple[k] = r
	w.mu.Unlock()
	w.portsChanged()
}

// PeerListening tells the Watch of a listening address of the near
// stack's: a socket of this kernel's connecting to it is the peer's,
// labelled as the listener is.
func (w *Watch) PeerListening(near netip.AddrPort, label trace.Conn) {
	if w == nil || w.peer == nil || !near.IsValid() {
		return
	}
	w.mu.Lock()
	if !slices.ContainsFunc(w.peerListen, func(l peerListener) bool { return l.addr == near }) {
		w.peerListen = append(w.peerListen, peerListener{near, label})
	}
	w.mu.Unlock()
	w.portsChanged()
}

// peerConnectLocked is the peer's socket for a change of state of a
// kernel socket connecting to one of the near stack's listeners: a new
// one at connect()'s first change (its port may not be chosen yet: it is
// found again as connectingLocked finds the run's own).
func (w *Watch) peerConnectLocked(local, remote netip.AddrPort, from, to trace.TCPState) *sockRef {
	if w.peer == nil || from != trace.StateClosed || to != trace.StateSynSent {
		return nil
	}
	i := slices.IndexFunc(w.peerListen, func(l peerListener) bool {
		return l.addr.Port() == remote.Port() && (l.addr.Addr() == remote.Addr() || l.addr.Addr().IsUnspecified())
	})
	if i < 0 {
		return nil
	}
	// The near stack may have told of the connection already, as its SYN
	// arrived.
	for _, r := range w.socks {
		if r.peer && !r.seen && !r.ended && r.remote == remote && (local.Port() == 0 || r.local == local) {
			return r
		}
	}
	r := &sockRef{net: w.peer, id: w.peer.newID(), label: w.peerListen[i].label, connectTo: remote, peer: true}
	if local.Port() != 0 {
		r.local, r.remote = local, remote
		w.byTuple[tuple{local, remote}] = r
	}
	w.socks = append(w.socks, r)
	return r
}
