package kernel

import (
	"fmt"
	"slices"
	"strings"
)

// The per-segment tracepoints (tcp:tcp_probe fires for every segment an
// established connection receives, system-wide) are filtered in the
// kernel to the ports of the run's connections, so that the trace buffer
// holds the run's samples and little else: a busy machine's other
// connections would otherwise fill it, and the run's own samples would be
// lost with theirs. The filter is a help, not the test of what is the
// run's: every sample is still matched to one of the run's sockets by its
// addresses and ports.
//
// Rewriting a filter while its tracepoint is enabled may make the kernel
// wait for its readers to be done with the old one (an RCU grace period):
// a rewrite took 0.04-4 ms when nsftp made it here, 8-33 ms from a shell
// loop. So the rewrite runs on a goroutine of its own and never delays a
// socket call: a connection whose port was not known before it began may
// miss its first samples. Ports known beforehand (a namespace's ephemeral
// range, a listening port, the port a connect goes to) are in the filter
// before the first segment.

// maxFilterPorts bounds the filter: past it (a server with many clients)
// the tracepoints go unfiltered, and only the matching here picks the
// run's samples out.
const maxFilterPorts = 80

// filterText is the filter the per-segment tracepoints take for the
// run's ports and port ranges: "sport == 21 || dport == 21 || ...".
// "0" clears the filter; a filter that matches nothing stands for no
// port at all.
func filterText(ports []uint16, ranges [][2]uint16) string {
	if len(ports) > maxFilterPorts {
		return "0"
	}
	var terms []string
	for _, r := range ranges {
		terms = append(terms, fmt.Sprintf("(sport >= %d && sport <= %d) || (dport >= %d && dport <= %d)", r[0], r[1], r[0], r[1]))
	}
	for _, p := range ports {
		terms = append(terms, fmt.Sprintf("sport == %d || dport == %d", p, p))
	}
	if len(terms) == 0 {
		return "sport == 0 && dport == 0"
	}
	return strings.Join(terms, " || ")
}

// portsLocked is the ports the run's live connections, listeners and
// connects use, outside the ranges known beforehand, in order.
func (w *Watch) portsLocked() []uint16 {
	set := map[uint16]bool{}
	add := func(p uint16) {
		if p == 0 {
			return
		}
		for _, r := range w.portRanges {
			if p >= r[0] && p <= r[1] {
				return
			}
		}
		set[p] = true
	}
	for _, r := range w.socks {
		if r.ended {
			continue
		}
		if r.peer {
			// The far end's events name the near end's port as theirs.
			add(r.remote.Port())
			add(r.connectTo.Port())
			continue
		}
		add(r.local.Port())
		add(r.remote.Port())
		add(r.connectTo.Port())
	}
	for _, l := range w.peerListen {
		add(l.addr.Port())
	}
	ports := make([]uint16, 0, len(set))
	for p := range set {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// filter is the per-segment tracepoints' filter for the run as it is now.
func (w *Watch) filter() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return filterText(w.portsLocked(), w.portRanges)
}

// portsChanged has the filter rewritten, if it must be, on the tracefs
// reader's filter goroutine. It takes no lock: it may be called with w.mu
// held (the rewrite takes it later, on its own goroutine).
func (w *Watch) portsChanged() {
	if w.tracefs != nil {
		w.tracefs.refilter()
	}
}
