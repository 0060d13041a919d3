package stack

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// WireConfig describes a virtual wire: its MTU and the impairments applied
// to every frame, each decided independently per frame and per receiver.
type WireConfig struct {
	// MTU is the largest IP packet the wire carries, 576 to 65000;
	// 0 means 1500. The Ethernet header comes on top, as on a real link.
	MTU int
	// Loss, Duplicate, Reorder and Corrupt are percentages (0-100) of
	// frames dropped, delivered twice, held back until the next frame has
	// passed them, and delivered with one bit flipped.
	Loss, Duplicate, Reorder, Corrupt float64
	// Delay holds every frame this long before delivery.
	Delay time.Duration
	// Seed makes the impairment decisions repeatable; 0 picks 1.
	Seed uint64
	// Checksums makes the stacks compute and verify every TCP checksum
	// even on a wire that cannot corrupt frames. Without it such a wire
	// tells the stacks that checksums are unnecessary, as Linux's loopback
	// and veth devices do, which saves a pass over every byte; captures
	// then show TCP checksums unfilled. With Corrupt > 0 checksums are
	// always on: they are what catches the corruption.
	Checksums bool
}

// checksumsSkipped reports whether the stacks may skip TCP checksums.
func (c WireConfig) checksumsSkipped() bool { return !c.Checksums && c.Corrupt == 0 }

// MaxMTU is the largest MTU a wire accepts: an IPv4 packet's length field
// stops at 65,535, and 65,000 leaves room for headers and options.
const MaxMTU = 65000

// WireStats counts what a wire did to the frames it carried.
type WireStats struct {
	Frames     uint64 // frames offered to the wire, per receiver
	Delivered  uint64 // frames handed to a receiver, duplicates included
	Lost       uint64
	Duplicated uint64
	Reordered  uint64
	Corrupted  uint64 // bit flipped and delivered: the stack's checksums must catch these
	FCSDropped uint64 // corrupted frames without a checksum of their own (ARP), dropped as a NIC drops a bad FCS
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

	ports atomic.Pointer[[]*Port] // copy-on-write; read on every frame

	rngMu sync.Mutex
	rng   *rand.Rand

	stats struct {
		frames, delivered, lost, duplicated, reordered, corrupted, fcs, queueDrops atomic.Uint64
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
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", cfg.Loss}, {"duplicate", cfg.Duplicate}, {"reorder", cfg.Reorder}, {"corrupt", cfg.Corrupt}} {
		if p.v < 0 || p.v > 100 || p.v != p.v {
			return nil, fmt.Errorf("stack: wire %s %v%% out of range 0-100", p.name, p.v)
		}
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("stack: wire delay %v is negative", cfg.Delay)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	w := &Wire{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6e7366747000))}
	w.ports.Store(&[]*Port{})
	return w, nil
}

// Config returns the wire's configuration with defaults filled in.
func (w *Wire) Config() WireConfig { return w.cfg }

// impaired reports whether any impairment is configured.
func (w *Wire) impaired() bool {
	c := w.cfg
	return c.Loss > 0 || c.Duplicate > 0 || c.Reorder > 0 || c.Corrupt > 0 || c.Delay > 0
}

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
		mtu:    uint32(w.cfg.MTU),
		mac:    tcpip.LinkAddress([]byte{0x02, 0x6e, 0x73, 0x66, 0x74, byte(w.nextID)}),
		signal: make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
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

// Close stops every port's goroutine and waits for them. Hosts on the
// wire should be closed first.
func (w *Wire) Close() error {
	w.mu.Lock()
	w.closed = true
	ports := *w.ports.Load()
	w.mu.Unlock()
	for _, p := range ports {
		p.Close()
	}
	w.wg.Wait()
	return nil
}

// Stats returns the wire's counters.
func (w *Wire) Stats() WireStats {
	return WireStats{
		Frames:     w.stats.frames.Load(),
		Delivered:  w.stats.delivered.Load(),
		Lost:       w.stats.lost.Load(),
		Duplicated: w.stats.duplicated.Load(),
		Reordered:  w.stats.reordered.Load(),
		Corrupted:  w.stats.corrupted.Load(),
		FCSDropped: w.stats.fcs.Load(),
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

func (w *Wire) intn(n int) int {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.IntN(n)
}

// transmit sends one frame from port from to its receivers.
func (w *Wire) transmit(from *Port, frame buffer.Buffer, dst tcpip.LinkAddress) {
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
		w.impair(p, frame.Clone())
	}
	// Each receiver got a reference of its own. Releasing ours returns the
	// buffer's chunks to gVisor's pools once the receivers are done with
	// them; leaking it would make every packet allocate afresh.
	frame.Release()
}

// impair applies the wire's impairments to a frame bound for p.
func (w *Wire) impair(p *Port, frame buffer.Buffer) {
	if !w.impaired() {
		// A clean wire hands the frame straight to the receiving stack,
		// as gVisor's own pipe link does: the stack queues TCP segments
		// to its processor goroutines, so the sender does not run the
		// receiver's TCP, and no goroutine handoff is paid per frame.
		p.deliver(frame)
		return
	}
	c := w.cfg
	if w.roll(c.Loss) {
		w.stats.lost.Add(1)
		frame.Release()
		return
	}
	if w.roll(c.Corrupt) {
		var ok bool
		if frame, ok = w.corrupt(frame); !ok {
			w.stats.fcs.Add(1)
			return
		}
		w.stats.corrupted.Add(1)
	}
	var due time.Time
	if c.Delay > 0 {
		due = time.Now().Add(c.Delay)
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
	w *Wire

	mu         sync.Mutex // guards the fields below and the queue
	dispatcher gstack.NetworkDispatcher
	mtu        uint32
	mac        tcpip.LinkAddress
	onClose    func()
	closed     bool

	queue  frameQueue
	held   *queuedFrame // a frame being reordered: it goes after the next one
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
		p.mu.Unlock()
		if !p.closed {
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
			p.deliver(batch[i].frame)
			batch[i] = queuedFrame{}
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
	eth := header.Ethernet(hdr)
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

// WritePackets implements stack.LinkEndpoint.
func (p *Port) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		dst := header.Ethernet(pkt.LinkHeader().Slice()).DestinationAddress()
		p.w.transmit(p, pkt.ToBuffer(), dst)
		n++
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
func (p *Port) Capabilities() gstack.LinkEndpointCapabilities {
	if p.w.cfg.checksumsSkipped() {
		return gstack.CapabilityResolutionRequired | gstack.CapabilityTXChecksumOffload | gstack.CapabilityRXChecksumOffload
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
