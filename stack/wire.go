package stack

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/trace"
)

// WireConfig describes a virtual wire: its MTU and the path every frame
// takes, each decision made per frame and per receiver.
type WireConfig struct {
	// MTU is the largest IP packet the wire carries, 576 to 65000;
	// 0 means 1500. The Ethernet header comes on top, as on a real link.
	MTU int
	// Path is what every frame goes through, both ways, unless Out gives
	// its sender a path of its own.
	Path Path
	// Out gives a port its own path for the frames it sends, by the
	// port's number: 1 for the first NewPort, 2 for the next (a Pair's
	// client and server, ClientPort and ServerPort). The two directions
	// of a link can so differ: a slow uplink, a lossy downlink.
	Out map[int]Path
	// Offload lets the hosts' TCP hand the wire segments larger than the
	// MTU: whole (OffloadGSO) or cut up at the wire and merged again at
	// the receiver (OffloadTSO). See Offload.
	Offload Offload
	// Seed makes the path's random decisions repeatable; 0 picks 1.
	Seed uint64
	// Checksums makes the stacks compute and verify every TCP checksum
	// even on a wire that cannot corrupt frames. Without it such a wire
	// tells the stacks that checksums are unnecessary, as Linux's loopback
	// and veth devices do, which saves a pass over every byte; captures
	// then show TCP checksums unfilled. A wire that corrupts frames always
	// has them on: they are what catches the corruption.
	Checksums bool
	// Observer, if set, receives an event for every frame the wire loses
	// (trace.KindDrop), with the frame and why: what a capture cannot
	// show.
	Observer trace.Observer
	// PCAP, if set, receives every frame put on the wire, once, as its
	// sender sent it (before the path loses, delays or corrupts it): what
	// a sniffer beside the sender would see, stamped with the wire's
	// clock. Wrap a file in a bufio.Writer and flush it after Close.
	PCAP io.Writer
	// Clock, if set, is the time every decision of the wire is made on
	// (delays, jitter, rates, the bottleneck's queue, a reordered frame's
	// hold, outages counted from the wire's start): the clock of the
	// hosts on the wire, so that a held or slowed clock holds or slows
	// the wire with them. Without, the wire has a clock of its own at
	// real speed. A Pair gives its wire and hosts one clock.
	Clock *Clock
}

// The port numbers of a Pair's hosts, for WireConfig.Out.
const (
	ClientPort = 1
	ServerPort = 2
)

// pathOf is the path of port n's outgoing frames.
func (c WireConfig) pathOf(n int) Path {
	if p, ok := c.Out[n]; ok {
		return p
	}
	return c.Path
}

// corrupts reports whether any path corrupts frames.
func (c WireConfig) corrupts() bool {
	if c.Path.Corrupt > 0 {
		return true
	}
	for _, p := range c.Out {
		if p.Corrupt > 0 {
			return true
		}
	}
	return false
}

// impaired reports whether any path of the wire does anything to frames.
func (c WireConfig) impaired() bool {
	if c.Path.impaired() {
		return true
	}
	for _, p := range c.Out {
		if p.impaired() {
			return true
		}
	}
	return false
}

// checksumsSkipped reports whether the stacks may skip TCP checksums.
func (c WireConfig) checksumsSkipped() bool { return !c.Checksums && !c.corrupts() }

// MaxMTU is the largest MTU a wire accepts: an IPv4 packet's length field
// stops at 65,535, and 65,000 leaves room for headers and options.
const MaxMTU = 65000

// WireStats counts what a wire did to the frames it carried.
type WireStats struct {
	Frames     uint64 // frames offered to the wire, per receiver
	Delivered  uint64 // frames handed to a receiver, duplicates included
	Lost       uint64 // frames lost at random (Path.Loss, Path.Burst)
	LossRuns   uint64 // runs of consecutive frames lost at random: Lost/LossRuns is the mean burst
	Duplicated uint64
	Reordered  uint64
	Corrupted  uint64 // bit flipped and delivered: the stack's checksums must catch these
	FCSDropped uint64 // corrupted frames without a checksum of their own (ARP), dropped as a NIC drops a bad FCS
	Bottleneck uint64 // frames dropped because the bottleneck's queue was full (Path.Queue)
	Down       uint64 // frames lost while the link was down (Path.Down)
	QueueDrops uint64 // frames dropped because a receiver's queue was full
}

// Wire is an in-memory Ethernet segment joining two or more hosts in one
// process. Frames go to the port whose MAC address they name, or to every
// other port when broadcast, multicast or unknown, as on a switch. Each
// port delivers from its own goroutine, so a sender never runs the
// receiver's stack on its own call stack (which would invite lock-order
// deadlocks between the two stacks) and delay and reordering can be
// modelled.
type Wire struct {
	cfg WireConfig
	// Worked out from cfg once, since frames ask for them.
	corrupting bool                            // cfg.corrupts()
	skipCsum   bool                            // cfg.checksumsSkipped()
	caps       gstack.LinkEndpointCapabilities // Capabilities()

	ports atomic.Pointer[[]*Port] // copy-on-write; read on every frame

	rngMu sync.Mutex
	rng   *rand.Rand

	clock    *Clock
	ownClock bool               // made by NewWire: closed with the wire
	start    time.Time          // outages count from it, on the clock
	pcap     *packet.PCAPWriter // nil unless capturing

	stats struct {
		frames, delivered, lost, lossRuns, duplicated, reordered, corrupted, fcs, bottleneck, down, queueDrops atomic.Uint64
	}

	mu     sync.Mutex // guards nextID, closed and appends to ports
	nextID int
	closed bool
	wg     sync.WaitGroup // port goroutines
}

// NewWire checks cfg and returns a wire with no ports.
func NewWire(cfg WireConfig) (*Wire, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 576 || cfg.MTU > MaxMTU {
		return nil, fmt.Errorf("stack: wire MTU %d out of range 576-%d", cfg.MTU, MaxMTU)
	}
	if err := cfg.Path.check(); err != nil {
		return nil, fmt.Errorf("stack: wire: %w", err)
	}
	for n, p := range cfg.Out {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("stack: wire, port %d's path: %w", n, err)
		}
	}
	if cfg.Offload == OffloadGSO && cfg.corrupts() {
		return nil, errors.New("stack: a wire that corrupts frames needs checksums, and with OffloadGSO nobody computes them: use OffloadTSO")
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	w := &Wire{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6e7366747000)),
		corrupting: cfg.corrupts(), skipCsum: cfg.checksumsSkipped(), clock: cfg.Clock}
	if w.clock == nil {
		w.clock, w.ownClock = newWallClock(), true
	}
	w.start = w.clock.Now()
	w.caps = w.capabilities()
	if cfg.PCAP != nil {
		var err error
		if w.pcap, err = packet.NewPCAPWriter(cfg.PCAP, packet.LinkEthernet, 0); err != nil {
			return nil, fmt.Errorf("stack: wire: %w", err)
		}
	}
	w.ports.Store(&[]*Port{})
	return w, nil
}

// Config returns the wire's configuration with defaults filled in.
func (w *Wire) Config() WireConfig { return w.cfg }

// NewPort adds a port to the wire, with a locally administered MAC address
// (02:6e:73:66:74:NN, "nsft"), and returns it as the link for one host.
func (w *Wire) NewPort() (*Port, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("stack: wire is closed")
	}
	if w.nextID >= 255 {
		return nil, errors.New("stack: wire has no free port")
	}
	w.nextID++
	p := &Port{
		w:      w,
		id:     w.nextID,
		mtu:    uint32(w.cfg.MTU),
		mac:    tcpip.LinkAddress([]byte{0x02, 0x6e, 0x73, 0x66, 0x74, byte(w.nextID)}),
		signal: make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	if path := w.cfg.pathOf(p.id); path.impaired() {
		p.path = &pathState{cfg: path, start: w.start}
	}
	p.gro.Init(w.cfg.Offload == OffloadTSO)
	ports := append(append([]*Port(nil), *w.ports.Load()...), p)
	w.ports.Store(&ports)
	w.wg.Add(1)
	// The port's goroutine is one of the network's: a jumping clock
	// waits for it to be idle.
	w.clock.Run(func() {
		go func() {
			defer w.wg.Done()
			defer close(p.exited)
			p.run()
		}()
	})
	return p, nil
}

// Close stops every port's goroutine and waits for them, and reports the
// first error writing the capture, if any. Hosts on the wire should be
// closed first.
func (w *Wire) Close() error {
	w.mu.Lock()
	w.closed = true
	ports := *w.ports.Load()
	w.mu.Unlock()
	for _, p := range ports {
		p.Close()
	}
	w.wg.Wait()
	if w.ownClock {
		w.clock.Close()
	}
	return w.pcap.Err()
}

// Clock returns the clock the wire runs on.
func (w *Wire) Clock() *Clock { return w.clock }

// Stats returns the wire's counters.
func (w *Wire) Stats() WireStats {
	return WireStats{
		Frames:     w.stats.frames.Load(),
		Delivered:  w.stats.delivered.Load(),
		Lost:       w.stats.lost.Load(),
		LossRuns:   w.stats.lossRuns.Load(),
		Duplicated: w.stats.duplicated.Load(),
		Reordered:  w.stats.reordered.Load(),
		Corrupted:  w.stats.corrupted.Load(),
		FCSDropped: w.stats.fcs.Load(),
		Bottleneck: w.stats.bottleneck.Load(),
		Down:       w.stats.down.Load(),
		QueueDrops: w.stats.queueDrops.Load(),
	}
}

// roll returns true with probability pct percent.
func (w *Wire) roll(pct float64) bool {
	if pct <= 0 {
		return false
	}
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.Float64()*100 < pct
}

func (w *Wire) float() float64 {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.Float64()
}

func (w *Wire) intn(n int) int {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.IntN(n)
}

// transmit sends one frame from port from to its receivers.
func (w *Wire) transmit(from *Port, frame buffer.Buffer, dst tcpip.LinkAddress) {
	if w.pcap != nil {
		var slices [][]byte
		frame.Apply(func(v *buffer.View) { slices = append(slices, v.AsSlice()) })
		w.pcap.WriteFrame(w.clock.Now(), int(frame.Size()), slices...)
	}
	unicast := len(dst) == header.EthernetAddressSize && dst[0]&1 == 0
	ports := *w.ports.Load()
	var to *Port
	if unicast {
		for _, p := range ports {
			if p != from && p.LinkAddress() == dst {
				to = p
				break
			}
		}
	}
	for _, p := range ports {
		if p == from || (to != nil && p != to) {
			continue
		}
		w.stats.frames.Add(1)
		w.impair(from, p, frame.Clone())
	}
	// Each receiver got a reference of its own. Releasing ours returns the
	// buffer's chunks to gVisor's pools once the receivers are done with
	// them; leaking it would make every packet allocate afresh.
	frame.Release()
}

// impair sends a frame from one port to another along the sender's path.
func (w *Wire) impair(from, p *Port, frame buffer.Buffer) {
	ps := from.path
	if ps == nil {
		if w.cfg.Offload == OffloadTSO {
			// The receiver merges the frames (GRO) on its own goroutine,
			// a batch at a time.
			p.enqueue(frame, time.Time{}, false)
			return
		}
		// A clean wire hands the frame straight to the receiving stack,
		// as gVisor's own pipe link does: the stack queues TCP segments
		// to its processor goroutines, so the sender does not run the
		// receiver's TCP, and no goroutine handoff is paid per frame.
		p.deliver(frame, false)
		return
	}
	c := &ps.cfg
	f, due, newRun := ps.send(w.clock.Now(), int(frame.Size()), w.float)
	switch f {
	case lostRandom:
		w.stats.lost.Add(1)
		if newRun {
			w.stats.lossRuns.Add(1)
		}
		w.dropped(from, p, frame, "loss")
	case lostQueue:
		w.stats.bottleneck.Add(1)
		w.dropped(from, p, frame, "queue full")
	case lostDown:
		w.stats.down.Add(1)
		w.dropped(from, p, frame, "link down")
	}
	if f != passes {
		frame.Release()
		return
	}
	if w.roll(c.Corrupt) {
		orig := frame.Clone()
		var ok bool
		if frame, ok = w.corrupt(frame); !ok {
			w.stats.fcs.Add(1)
			w.dropped(from, p, orig, "bad FCS")
			orig.Release()
			return
		}
		orig.Release()
		w.stats.corrupted.Add(1)
	}
	if w.roll(c.Duplicate) {
		w.stats.duplicated.Add(1)
		p.enqueue(frame.Clone(), due, false)
	}
	reorder := w.roll(c.Reorder)
	if reorder {
		w.stats.reordered.Add(1)
	}
	p.enqueue(frame, due, reorder)
}

// dropped tells the wire's observer of a frame it lost.
func (w *Wire) dropped(from, to *Port, frame buffer.Buffer, reason string) {
	if w.cfg.Observer == nil {
		return
	}
	var head [packet.HeaderBytes]byte
	n := 0
	frame.Apply(func(v *buffer.View) { n += copy(head[n:], v.AsSlice()) })
	seg := packet.Decode(head[:n], int(frame.Size()), packet.LinkEthernet)
	seg.Dir = trace.Out
	w.cfg.Observer(trace.Event{Layer: trace.LayerWire, Kind: trace.KindDrop, Segment: &seg,
		Drop: &trace.Drop{Reason: reason, From: from.id, To: to.id}})
}

// corrupt flips one bit of a frame's IP packet, copying the frame first
// (the sender keeps the original for retransmission). One flipped bit is
// always caught by the IPv4 header checksum or the TCP/ICMP checksum, so
// a corrupted frame can never be taken as good data. Frames that carry no
// checksum of their own (ARP) are reported as not ok: a real NIC would
// drop them on a bad Ethernet FCS.
func (w *Wire) corrupt(frame buffer.Buffer) (buffer.Buffer, bool) {
	b := frame.Flatten()
	frame.Release()
	if len(b) <= header.EthernetMinimumSize {
		return buffer.Buffer{}, false
	}
	switch header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber, header.IPv6ProtocolNumber:
	default:
		return buffer.Buffer{}, false
	}
	bit := w.intn((len(b) - header.EthernetMinimumSize) * 8)
	b[header.EthernetMinimumSize+bit/8] ^= 1 << (bit % 8)
	return buffer.MakeWithData(b), true
}

// capabilities works out what Capabilities reports, once: the stack asks
// for every packet.
func (w *Wire) capabilities() gstack.LinkEndpointCapabilities {
	c := w.cfg
	switch {
	case c.checksumsSkipped():
		return gstack.CapabilityResolutionRequired | gstack.CapabilityTXChecksumOffload | gstack.CapabilityRXChecksumOffload
	case c.Offload != OffloadNone && !c.corrupts():
		// The wire is the NIC that fills checksums in, and nothing on it
		// can spoil them.
		return gstack.CapabilityResolutionRequired | gstack.CapabilityTXChecksumOffload | gstack.CapabilityRXChecksumOffload
	case c.Offload == OffloadTSO:
		// The wire fills checksums in; the receiver (GRO, or its stack)
		// checks every frame, since the path may have corrupted it.
		return gstack.CapabilityResolutionRequired | gstack.CapabilityTXChecksumOffload
	}
	return gstack.CapabilityResolutionRequired
}
