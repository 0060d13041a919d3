package tap

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// endpoint is the device as a gVisor link endpoint. One goroutine reads
// frames and delivers them to the stack; another writes the frames the
// stack sends, so that neither direction waits for the other's system
// calls and a stack goroutine never blocks in write(2).
type endpoint struct {
	dev  *Device
	rc   syscall.RawConn
	vnet bool // frames carry a virtio-net header: the offload path

	// checksums says that the reader checks checksums, not the stack: on
	// the offload path and with GRO.
	checksums bool

	// frameTap, if set, is shown every frame read, as it came (see
	// SetFrameTap).
	frameTap atomic.Pointer[frameTap]

	mu         sync.Mutex // guards the fields below
	dispatcher gstack.NetworkDispatcher
	mtu        uint32
	mac        tcpip.LinkAddress
	onClose    func()
	started    bool // reader and writer running
	stopped    bool // Attach(nil) or Close: no more reading or writing
	readErr    error

	tx txQueue
	wg sync.WaitGroup // reader and writer

	counters struct {
		rxFrames, rxBytes, rxDropped, txFrames, txBytes, txErrors atomic.Uint64
	}
}

var (
	_ gstack.LinkEndpoint = (*endpoint)(nil)
	_ gstack.GSOEndpoint  = (*endpoint)(nil)
)

// gsoMaxSize is the largest TCP segment the stack builds, headers
// included: what a TAP device advertises as gso_max_size.
const gsoMaxSize = 1 << 16

func newEndpoint(d *Device) (*endpoint, error) {
	rc, err := d.file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("device file: %w", err)
	}
	e := &endpoint{
		dev:       d,
		rc:        rc,
		vnet:      d.offload,
		checksums: d.offload || d.gro,
		mtu:       uint32(d.mtu),
		mac:       tcpip.LinkAddress(d.mac),
	}
	e.tx.init()
	return e, nil
}

// Attach implements stack.LinkEndpoint. The first attach starts the reader
// and the writer; Attach(nil), which the stack calls when it removes the
// NIC, stops them for good.
func (e *endpoint) Attach(d gstack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d == nil {
		e.dispatcher = nil
		e.stopLocked()
		return
	}
	if e.stopped {
		return
	}
	e.dispatcher = d
	if !e.started {
		e.started = true
		e.wg.Add(2)
		go e.readLoop()
		go e.writeLoop()
	}
}

// stopLocked tells the reader and the writer to exit without waiting.
func (e *endpoint) stopLocked() {
	if e.stopped {
		return
	}
	e.stopped = true
	// A deadline in the past wakes a reader parked in the poller and fails
	// its every later read, without closing the file under it.
	e.dev.file.SetReadDeadline(time.Unix(1, 0))
	// Likewise for a writer waiting for room in the kernel's queue.
	e.dev.file.SetWriteDeadline(time.Unix(1, 0))
	e.tx.close()
}

// shutdown stops the reader and writer and waits until both have exited.
func (e *endpoint) shutdown() {
	e.mu.Lock()
	e.dispatcher = nil
	e.stopLocked()
	e.mu.Unlock()
	e.wg.Wait()
	e.tx.drain()
}

// Flush waits, for at most d, until every frame the stack has handed the
// endpoint has been written to the device: closing the device drops what
// is still queued, and the last frames of a run (a DHCP release) must not
// be among them.
func (e *endpoint) Flush(d time.Duration) {
	for deadline := time.Now().Add(d); !e.tx.idle() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// frameTap is what a capture is shown of the frames read.
type frameTap struct {
	seen    func(pkt *gstack.PacketBuffer)
	dropped func(pkt *gstack.PacketBuffer, reason string)
}

// SetFrameTap implements stack.FrameTap: seen is called with every frame
// read from the device, whole, before anything looks into it, and so
// before GRO merges it with others; dropped follows for a frame the
// endpoint drops, with the reason (a bad checksum, another host's frame).
// A capture of the host then shows the frames that crossed the device,
// with the checksums they had. They run on the goroutine that delivers
// frames, which waits for them.
func (e *endpoint) SetFrameTap(seen func(pkt *gstack.PacketBuffer), dropped func(pkt *gstack.PacketBuffer, reason string)) {
	if seen == nil && dropped == nil {
		e.frameTap.Store(nil)
		return
	}
	e.frameTap.Store(&frameTap{seen: seen, dropped: dropped})
}

// IsAttached implements stack.LinkEndpoint.
func (e *endpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

func (e *endpoint) currentDispatcher() (gstack.NetworkDispatcher, tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher, e.mac
}

// MTU implements stack.LinkEndpoint.
func (e *endpoint) MTU() uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (e *endpoint) SetMTU(mtu uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mtu = mtu
}

// MaxHeaderLength implements stack.LinkEndpoint. The virtio-net header is
// not counted: the writer sends it from a buffer of its own.
func (*endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *endpoint) LinkAddress() tcpip.LinkAddress {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mac
}

// SetLinkAddress implements stack.LinkEndpoint.
func (e *endpoint) SetLinkAddress(mac tcpip.LinkAddress) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mac = mac
}

// Capabilities implements stack.LinkEndpoint. Neighbours are resolved with
// ARP and NDP. On the offload path and with GRO, the reader checks every
// checksum the kernel has not vouched for (see checkFrame) and the
// stack is told not to: the TCP checksum of a segment GRO merged, or of
// one the kernel leaves for offload, is not the checksum of what the stack
// receives, and it would drop the segment.
func (e *endpoint) Capabilities() gstack.LinkEndpointCapabilities {
	if e.checksums {
		return gstack.CapabilityResolutionRequired | gstack.CapabilityRXChecksumOffload
	}
	return gstack.CapabilityResolutionRequired
}

// GSOMaxSize implements stack.GSOEndpoint.
func (e *endpoint) GSOMaxSize() uint32 { return gsoMaxSize }

// SupportedGSO implements stack.GSOEndpoint. On the offload path the
// kernel cuts the stack's large TCP segments up ("host GSO"). On the plain
// path the stack does it itself ("gVisor GSO"): TCP builds a run of
// MSS-sized segments at once and hands them over in one WritePackets,
// which costs less than building each alone.
func (e *endpoint) SupportedGSO() gstack.SupportedGSO {
	if e.vnet {
		return gstack.HostGSOSupported
	}
	return gstack.GVisorGSOSupported
}

// ARPHardwareType implements stack.LinkEndpoint.
func (*endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: an Ethernet II header.
func (*endpoint) AddHeader(pkt *gstack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*endpoint) ParseHeader(pkt *gstack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// WritePackets implements stack.LinkEndpoint. It queues the packets for the
// writer and returns; when the queue is full it waits for room, which
// slows the sender as a full NIC ring does, instead of dropping.
func (e *endpoint) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	return e.tx.enqueue(pkts.AsSlice())
}

// Wait implements stack.LinkEndpoint. It does not wait for the reader: the
// stack calls Wait with its own lock held, and a frame the reader is
// delivering at that moment may need that lock (an ICMP echo request looks
// up a route). Close, which the stack calls after letting go, waits.
func (*endpoint) Wait() {}

// Close implements stack.LinkEndpoint: it closes the whole device.
func (e *endpoint) Close() {
	e.mu.Lock()
	onClose := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	e.dev.Close()
	if onClose != nil {
		onClose()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onClose = f
}

func (e *endpoint) stats() Stats {
	c := &e.counters
	return Stats{
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(), RxDropped: c.rxDropped.Load(),
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(), TxErrors: c.txErrors.Load(),
	}
}

func (e *endpoint) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readErr
}

// readFailed records why the reader stopped, unless it was told to.
func (e *endpoint) readFailed(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.readErr = fmt.Errorf("tap: reading from %s: %w", e.dev.name, err)
}
