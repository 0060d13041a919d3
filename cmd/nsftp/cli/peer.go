package cli

import (
	"fmt"
	"strings"

	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/trace"
)

// peerHost names the kernel at the far end of a TAP run's connections in
// the run's events.
const peerHost = "peer (Linux)"

// peerKernel is the kernel at the far end of a TAP run's connections
// (--peer-kernel): when the peer is this machine's own kernel (vsftpd,
// curl across the TAP device), its sockets of the very connections nsftp's
// stack makes are traced from the same tracepoints as a run on the
// kernel's TCP, and merged into the run's timeline as host "peer
// (Linux)": one connection with each end's internals.
type peerKernel struct {
	w *kernel.Watch
}

// startPeer starts watching the peer's kernel. The tracepoints see every
// network namespace: the peer's sockets are told apart by the addresses
// and ports of the run's connections, which the observer below learns
// from nsftp's stack as they open. Without root, one line says why the
// peer stays dark, and the run goes on.
func (s *seeing) startPeer(role trace.Role) error {
	if s.rec == nil || !s.stackEvs {
		return nil
	}
	w, err := kernel.StartWatch(kernel.WatchConfig{Recorder: s.rec, Tracefs: true, Samples: s.samples,
		Peer: &kernel.PeerConfig{Host: peerHost, Role: role}})
	if err != nil {
		return &setupError{fmt.Errorf("--peer-kernel: %w", err)}
	}
	s.watch = w
	s.peer = &peerKernel{w: w}
	if !w.Tracing() {
		fmt.Fprintf(s.e.stderr, "nsftp: --peer-kernel: the kernel's end of the connections stays dark: %s (run as root to see it)\n",
			strings.TrimPrefix(strings.Join(w.Missing(), "; "), "no changes of TCP state: "))
	}
	return nil
}

// observer passes nsftp's stack's events on to next, telling the Watch
// of each connection as its first segment shows it and of each listening
// socket: a connection's SYN, sent or received, names both ends; a
// listener's address is where the peer's kernel may connect to.
func (p *peerKernel) observer(next trace.Observer) trace.Observer {
	return func(e trace.Event) {
		switch {
		case e.Kind == trace.KindSegment && e.Segment != nil && e.Segment.Proto == "tcp" && e.Segment.Flags.Has(trace.SYN):
			seg := e.Segment
			if seg.Dir == trace.Out {
				p.w.PeerConnection(seg.Src, seg.Dst, seg.Label)
			} else {
				p.w.PeerConnection(seg.Dst, seg.Src, seg.Label)
			}
		case e.Kind == trace.KindCall && e.Call != nil && e.Phase == trace.End && e.Call.Op == trace.OpListen && e.Call.Err == "" && e.Call.Proto == "":
			p.w.PeerListening(e.Call.Local, e.Call.Label)
		}
		next(e)
	}
}
