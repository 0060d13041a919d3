package stack

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/trace"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
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
	// a sniffer beside the sender would see. Wrap a file in a
	// bufio.Writer and flush it after Close.
	PCAP io.Writer
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

	start time.Time          // outages count from it
	pcap  *packet.PCAPWriter // nil unless capturing

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
	w := &Wire{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6e7366747000)), start: time.Now(),
		corrupting: cfg.corrupts(), skipCsum: cfg.checksumsSkipped()}
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
	go func() {
		defer w.wg.Done()
		defer close(p.exited)
		p.run()
	}()
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
	return w.pcap.Err()
}

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
		w.pcap.WriteFrame(time.Now(), int(frame.Size()), slices...)
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
		p.deliver(frame)
		return
	}
	c := &ps.cfg
	f, due, newRun := ps.send(time.Now(), int(frame.Size()), w.float)
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

// Port is one host's attachment to a Wire: an Ethernet link endpoint.
type Port struct {
	w    *Wire
	id   int        // its number on the wire, from 1
	path *pathState // its outgoing frames' path; nil when clean

	mu         sync.Mutex // guards the fields below and the queue
	dispatcher gstack.NetworkDispatcher
	mtu        uint32
	mac        tcpip.LinkAddress
	onClose    func()
	closed     bool

	queue  frameQueue
	held   *queuedFrame // a frame being reordered: it goes after the next one
	gro    gro.GRO      // with OffloadTSO: merges frames for the stack; run's goroutine only
	signal chan struct{}
	done   chan struct{}
	exited chan struct{}
}

var _ gstack.LinkEndpoint = (*Port)(nil)

// queueLimit bounds the bytes waiting at one receiver; beyond it frames
// are dropped, as a NIC's ring overflows.
const queueLimit = 64 << 20

// reorderHold is how long a held-back frame waits for a successor before
// it is delivered anyway.
const reorderHold = time.Millisecond

type queuedFrame struct {
	frame buffer.Buffer
	due   time.Time // zero: now
	seq   uint64
}

// frameQueue holds frames waiting for delivery: those due now in arrival
// order, and delayed ones in a heap by due time.
type frameQueue struct {
	now     []queuedFrame
	later   frameHeap
	bytes   int
	nextSeq uint64
}

type frameHeap []queuedFrame

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(queuedFrame)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = queuedFrame{}
	*h = old[:len(old)-1]
	return x
}

// enqueue queues a frame for delivery by p's goroutine. A reordered frame
// is held until the next frame for p has been queued ahead of it.
func (p *Port) enqueue(frame buffer.Buffer, due time.Time, reorder bool) {
	size := int(frame.Size())
	p.mu.Lock()
	if p.closed || p.queue.bytes+size > queueLimit {
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			p.w.stats.queueDrops.Add(1)
		}
		frame.Release()
		return
	}
	p.queue.bytes += size
	f := queuedFrame{frame: frame, due: due, seq: p.queue.nextSeq}
	p.queue.nextSeq++
	switch {
	case p.held != nil:
		// f overtakes the held frame.
		held := *p.held
		p.held = nil
		p.queue.push(f)
		held.due = due
		held.seq = p.queue.nextSeq
		p.queue.nextSeq++
		p.queue.push(held)
	case reorder:
		held := f
		held.due = time.Now().Add(reorderHold)
		p.held = &held
	default:
		p.queue.push(f)
	}
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (q *frameQueue) push(f queuedFrame) {
	if f.due.IsZero() && q.later.Len() == 0 {
		q.now = append(q.now, f)
		return
	}
	if f.due.IsZero() {
		f.due = time.Now()
	}
	heap.Push(&q.later, f)
}

// take moves the frames due by now into batch and returns when the next
// delayed frame falls due (zero if none).
func (p *Port) take(batch []queuedFrame, now time.Time) ([]queuedFrame, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	batch = append(batch, p.queue.now...)
	clear(p.queue.now)
	p.queue.now = p.queue.now[:0]
	for p.queue.later.Len() > 0 && !p.queue.later[0].due.After(now) {
		batch = append(batch, heap.Pop(&p.queue.later).(queuedFrame))
	}
	if p.held != nil && !p.held.due.After(now) {
		batch = append(batch, *p.held)
		p.held = nil
	}
	for _, f := range batch {
		p.queue.bytes -= int(f.frame.Size())
	}
	var next time.Time
	if p.queue.later.Len() > 0 {
		next = p.queue.later[0].due
	}
	if p.held != nil && (next.IsZero() || p.held.due.Before(next)) {
		next = p.held.due
	}
	return batch, next
}

// run delivers queued frames until the port is closed.
func (p *Port) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []queuedFrame
	for {
		var next time.Time
		batch, next = p.take(batch[:0], time.Now())
		for i := range batch {
			if p.w.cfg.Offload == OffloadTSO {
				p.merge(batch[i].frame)
			} else {
				p.deliver(batch[i].frame)
			}
			batch[i] = queuedFrame{}
		}
		if len(batch) > 0 && p.w.cfg.Offload == OffloadTSO {
			p.gro.Flush()
		}
		if len(batch) > 0 {
			continue
		}
		var timerC <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			timerC = timer.C
		}
		select {
		case <-p.signal:
		case <-timerC:
		case <-p.done:
			timer.Stop()
			p.drop()
			return
		}
		timer.Stop()
	}
}

// drop releases every frame still queued after Close.
func (p *Port) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.queue.now {
		f.frame.Release()
	}
	for _, f := range p.queue.later {
		f.frame.Release()
	}
	if p.held != nil {
		p.held.frame.Release()
		p.held = nil
	}
	p.queue = frameQueue{}
}

// deliver hands one frame to the attached stack.
func (p *Port) deliver(frame buffer.Buffer) {
	p.mu.Lock()
	d := p.dispatcher
	mac := p.mac
	p.mu.Unlock()
	if d == nil {
		frame.Release()
		return
	}
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: frame})
	defer pkt.DecRef()
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return
	}
	p.deliverPacket(d, mac, header.Ethernet(hdr), pkt)
}

// deliverPacket hands a frame, its Ethernet header consumed, to d.
func (p *Port) deliverPacket(d gstack.NetworkDispatcher, mac tcpip.LinkAddress, eth header.Ethernet, pkt *gstack.PacketBuffer) {
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	case dst == mac:
		pkt.PktType = tcpip.PacketHost
	default:
		pkt.PktType = tcpip.PacketOtherHost
	}
	p.w.stats.delivered.Add(1)
	d.DeliverNetworkPacket(eth.Type(), pkt)
}

// merge hands one frame to the stack through GRO, which merges a TCP
// stream's consecutive frames into one segment before the stack sees it,
// as Linux's GRO does.
func (p *Port) merge(frame buffer.Buffer) {
	p.mu.Lock()
	d := p.dispatcher
	mac := p.mac
	p.mu.Unlock()
	if d == nil {
		frame.Release()
		return
	}
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: frame})
	defer pkt.DecRef()
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return
	}
	eth := header.Ethernet(hdr)
	if eth.DestinationAddress() != mac {
		p.deliverPacket(d, mac, eth, pkt) // not a unicast TCP frame for us: as it is
		return
	}
	pkt.PktType = tcpip.PacketHost
	pkt.NetworkProtocolNumber = eth.Type()
	// The wire computed the checksums (or, on a wire that skips them,
	// nobody did): GRO checks them only where frames can be corrupted.
	pkt.RXChecksumValidated = !p.w.corrupting
	p.w.stats.delivered.Add(1)
	if d != p.gro.Dispatcher {
		p.gro.Flush()
		p.gro.Dispatcher = d
	}
	p.gro.Enqueue(pkt)
}

// WritePackets implements stack.LinkEndpoint.
func (p *Port) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	off := p.w.cfg.Offload
	for _, pkt := range pkts.AsSlice() {
		dst := header.Ethernet(pkt.LinkHeader().Slice()).DestinationAddress()
		n++
		switch {
		case off == OffloadTSO && pkt.GSOOptions.Type != gstack.GSONone && pkt.Data().Size() > int(pkt.GSOOptions.MSS):
			frames, err := segment(pkt, !p.w.skipCsum)
			if err != nil {
				continue // a packet the wire cannot read is lost, as on a NIC
			}
			for _, f := range frames {
				p.w.transmit(p, f, dst)
			}
		case off == OffloadTSO && !p.w.skipCsum:
			// The stack left checksums to the NIC, and this wire's
			// frames should carry them.
			b := pkt.ToBuffer()
			flat := b.Flatten()
			b.Release()
			fillChecksum(flat)
			p.w.transmit(p, buffer.MakeWithData(flat), dst)
		default:
			p.w.transmit(p, pkt.ToBuffer(), dst)
		}
	}
	return n, nil
}

// Attach implements stack.LinkEndpoint.
func (p *Port) Attach(d gstack.NetworkDispatcher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatcher = d
}

// IsAttached implements stack.LinkEndpoint.
func (p *Port) IsAttached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dispatcher != nil
}

// MTU implements stack.LinkEndpoint.
func (p *Port) MTU() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (p *Port) SetMTU(mtu uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mtu = mtu
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (*Port) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (p *Port) LinkAddress() tcpip.LinkAddress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mac
}

// SetLinkAddress implements stack.LinkEndpoint.
func (p *Port) SetLinkAddress(mac tcpip.LinkAddress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mac = mac
}

// Capabilities implements stack.LinkEndpoint. Neighbours are resolved
// with ARP and NDP. Checksums are left out only on a wire that cannot
// corrupt frames, unless WireConfig.Checksums asks for them.
func (p *Port) Capabilities() gstack.LinkEndpointCapabilities { return p.w.caps }

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

// ARPHardwareType implements stack.LinkEndpoint.
func (*Port) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: an Ethernet II header.
func (*Port) AddHeader(pkt *gstack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*Port) ParseHeader(pkt *gstack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Wait implements stack.LinkEndpoint. It does not wait for the delivery
// goroutine: the stack calls Wait with its own lock held, and a delivery
// in progress may need that lock. Host.Close waits after the stack lets go.
func (*Port) Wait() {}

// waitClosed waits until the delivery goroutine has exited after Close.
func (p *Port) waitClosed() { <-p.exited }

// Close implements stack.LinkEndpoint: the port stops delivering and its
// goroutine exits.
func (p *Port) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.dispatcher = nil
	onClose := p.onClose
	p.mu.Unlock()
	close(p.done)
	if onClose != nil {
		onClose()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (p *Port) SetOnCloseAction(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onClose = f
}
