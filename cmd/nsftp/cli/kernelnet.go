package cli

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/kernel"
	"github.com/nsftp/nsftp/trace"
)

// openOS is the operating system's sockets: Go's net package when
// nothing watches the network, else nsftp's own socket calls on the
// kernel's TCP (package kernel), watched as the flags ask.
func openOS(see *seeing, role trace.Role) (*network, error) {
	if !see.watchesKernel() {
		return &network{Network: &ftp.OSNetwork{Dialer: net.Dialer{KeepAlive: 30 * time.Second}}}, nil
	}
	if err := see.startKernel(nil); err != nil {
		return nil, err
	}
	kn := see.kernelNetwork(string(role), role, nil, nil, true)
	return &network{Network: kn}, nil
}

// watchesKernel reports whether the flags ask to see what the kernel's
// TCP does: a trace, a recording, a diagram, step mode, a pcap, counters.
func (s *seeing) watchesKernel() bool {
	return s.stackEvs || s.pcapBuf != nil || s.sf.stats
}

// startKernel starts watching the kernel for a run whose sockets are in
// ns (nil: the process's namespace): tracefs and a packet socket for the
// views, the pcap, the counters. What cannot be watched is said on one
// line, and the rest goes on; a pcap that cannot be written is an error.
func (s *seeing) startKernel(ns *kernel.NetNS) error {
	if s.watch != nil {
		return nil
	}
	cfg := kernel.WatchConfig{NetNS: ns}
	if s.rec != nil && s.stackEvs {
		cfg.Recorder, cfg.Tracefs, cfg.Segments, cfg.Samples = s.rec, true, true, s.samples
	}
	if s.pcapBuf != nil {
		cfg.PCAP = s.pcapBuf
	}
	w, err := kernel.StartWatch(cfg)
	if err != nil {
		return &setupError{fmt.Errorf("--pcap with --net os: %w (run as root)", err)}
	}
	s.watch = w
	if m := w.Missing(); len(m) > 0 {
		shown := "the socket calls, with the kernel's TCP state before and after each (TCP_INFO)"
		if s.sf.explain && !w.Tracing() {
			shown += "; --explain has nothing to show"
		}
		fmt.Fprintf(s.e.stderr, "nsftp: the kernel's side is partly hidden (run as root to see it all): %s. Shown: %s.\n", strings.Join(m, "; "), shown)
	}
	if s.sf.stats {
		s.kernelNS = ns
		s.kernelBefore, err = kernel.ReadCounters(ns)
		if err != nil {
			return &setupError{fmt.Errorf("--stats: reading the kernel's counters: %w", err)}
		}
	}
	return nil
}

// kernelNetwork is a host on the kernel's TCP, in ns, recording into the
// run's timeline.
// noDelay sets TCP_NODELAY on its connections, as Go's net package does:
// a traced run then does what an untraced one does.
func (s *seeing) kernelNetwork(name string, role trace.Role, ns *kernel.NetNS, addrs []netip.Prefix, noDelay bool) *kernel.Network {
	cfg := kernel.Config{Host: name, Role: role, NetNS: ns, Watch: s.watch, Addrs: addrs, NoDelay: noDelay}
	if s.rec != nil && s.stackEvs {
		cfg.Observer = s.rec.Record
		cfg.Samples = s.samples
		if s.step != nil {
			cfg.Gate = s.step
			s.step.kernel = true
		}
	}
	return kernel.NewNetwork(cfg)
}

// printKernelStats prints the kernel's counters that changed during the
// run (read when the trace stopped).
func (s *seeing) printKernelStats() {
	after, err := s.kernelAfter, s.kernelErr
	if err != nil {
		fmt.Fprintf(s.e.stderr, "nsftp: --stats: reading the kernel's counters: %v\n", err)
		return
	}
	where := "in the run's network namespace"
	if s.kernelNS == nil {
		where = "in this network namespace (every program's traffic counts)"
	}
	d := after.Sub(s.kernelBefore)
	fmt.Fprintf(s.e.stderr, "kernel counters that changed %s (/proc/net/snmp, /proc/net/netstat):\n", where)
	for _, name := range d.Names() {
		fmt.Fprintf(s.e.stderr, "  %-48s %d\n", name, d[name])
	}
}
