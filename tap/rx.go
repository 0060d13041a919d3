package tap

import (
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// rxChunks are the sizes of the buffers one read(2) scatters a frame into.
// A frame of a 1500-byte MTU fills the first alone; a 64 KiB segment from
// the offload path or a 65,000-byte MTU goes on into the second. Only the
// buffers a frame used are replaced, from gVisor's buffer pools, so a small
// frame costs one small buffer and no copy: the buffers become the packet.
// They add up to more than the largest frame a TAP device hands out: an IP
// packet of 65,535 bytes, an Ethernet header and a VLAN tag. More, smaller
// buffers cost a 64 KiB frame a pool round trip and a view each
// (docs/notes.md).
var rxChunks = [...]int{2048, 65536}

// For MTU-sized frames the receive path is two goroutines: the reader
// makes the read(2) calls and hands frames over in batches; the deliverer
// runs GRO and the stack's IP and TCP input on them. Each runs on its own
// core while the other works, as a NIC's DMA and its driver's interrupt
// handler do: on one goroutine, the system call's copy and the stack's
// per-frame work add up (about half of it each). With offload, where each
// read brings up to 64 KiB, the reader delivers what it reads itself.
//
// rxBatch bounds a batch: the reader sends one when it holds that many
// frames or the device has no more for now, which also tells the
// deliverer to flush GRO, as Linux flushes it at the end of a NAPI poll.
// rxBatches bounds the batches in flight, the reader waiting for the
// deliverer beyond them, as a full receive ring does.
const (
	rxBatch   = 64
	rxBatches = 4
)

// rxFrame is one frame read from the device.
type rxFrame struct {
	payload buffer.Buffer
	n       int  // bytes read, the virtio-net header included
	flags   byte // the virtio-net header's flags
}

// batch is frames the reader hands to the deliverer.
type batch struct {
	frames []rxFrame
	idle   bool // the device had no more frames after these: flush GRO
}

// reader is the state of the goroutine that reads frames.
type reader struct {
	e     *endpoint
	vnet  [vnetHdrLen]byte
	views [len(rxChunks)]*buffer.View
	iov   [1 + len(rxChunks)]unix.Iovec // iov[0] is the virtio-net header

	// Results of the last read, set by readFn.
	n      int
	errno  unix.Errno
	readFn func(fd uintptr) bool // r.read, bound once so reads do not allocate

	cur    *batch
	out    chan *batch // to the deliverer
	spare  chan *batch // back from it
	inline *deliverer  // delivers on the reader's goroutine instead; see readLoop
}

func newReader(e *endpoint) *reader {
	r := &reader{e: e, out: make(chan *batch, rxBatches), spare: make(chan *batch, rxBatches+1)}
	r.iov[0] = unix.Iovec{Base: &r.vnet[0]}
	r.iov[0].SetLen(vnetHdrLen)
	r.readFn = r.read
	for range rxBatches + 1 {
		r.spare <- &batch{frames: make([]rxFrame, 0, rxBatch)}
	}
	r.cur = <-r.spare
	return r
}

// fill replaces the buffers the last frame took.
func (r *reader) fill() {
	for i, v := range r.views {
		if v != nil {
			continue
		}
		v = buffer.NewViewSize(rxChunks[i])
		r.views[i] = v
		r.iov[1+i] = unix.Iovec{Base: v.BasePtr()}
		r.iov[1+i].SetLen(rxChunks[i])
	}
}

// read reads one frame; it reports false, to be called again when the
// device is readable, if there is none.
func (r *reader) read(fd uintptr) bool {
	iov := r.iov[:]
	if !r.e.vnet {
		iov = iov[1:]
	}
	n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno == unix.EAGAIN {
		// Nothing more for now: hand over what was read before waiting.
		r.send(true)
		return false
	}
	r.n, r.errno = int(n), errno
	return true
}

// take moves the frame just read into the current batch, its buffers
// becoming the frame's, and sends the batch once it is full.
func (r *reader) take() {
	n := r.n
	if r.e.vnet {
		n -= vnetHdrLen
	}
	if n < header.EthernetMinimumSize || n > maxFrame {
		r.e.counters.rxDropped.Add(1)
		return
	}
	var payload buffer.Buffer
	left := n
	for i, v := range r.views {
		if left == 0 {
			break
		}
		if left < v.Size() {
			v.CapLength(left)
		}
		left -= v.Size()
		payload.Append(v) // takes ownership; fill replaces it
		r.views[i] = nil
	}
	r.cur.frames = append(r.cur.frames, rxFrame{payload: payload, n: n, flags: r.vnet[0]})
	if len(r.cur.frames) == rxBatch {
		r.send(false)
	}
}

// send hands the current batch to the deliverer, if it holds frames.
func (r *reader) send(idle bool) {
	if len(r.cur.frames) == 0 {
		return
	}
	r.cur.idle = idle
	if r.inline != nil {
		r.inline.run(r.cur)
		return
	}
	r.out <- r.cur
	r.cur = <-r.spare
}

// release returns the read buffers.
func (r *reader) release() {
	for i, v := range r.views {
		if v != nil {
			v.Release()
			r.views[i] = nil
		}
	}
	for _, f := range r.cur.frames {
		f.payload.Release()
	}
	r.cur.frames = r.cur.frames[:0]
}

// readLoop reads frames and hands them to the deliverer until the
// endpoint stops or the device fails.
func (e *endpoint) readLoop() {
	defer e.wg.Done()
	r := newReader(e)
	if e.dev.gro {
		// MTU-sized frames: a read and GRO's work for each, worth a
		// goroutine each.
		e.wg.Add(1)
		go e.deliverLoop(r.out, r.spare)
		defer close(r.out)
	} else {
		// Whole 64 KiB segments (or frames as they came, for a user who
		// asked to see them so): few enough that handing each over would
		// cost more than it saves.
		r.inline = newDeliverer(e)
		defer r.inline.stop()
	}
	defer r.release()
	for {
		r.fill()
		if err := e.rc.Read(r.readFn); err != nil {
			// A deadline error is the stop signal (see stopLocked).
			e.readFailed(err)
			return
		}
		switch r.errno {
		case 0:
		case unix.EINTR:
			continue
		default:
			// EBADFD: the interface was deleted under us.
			e.readFailed(r.errno)
			return
		}
		r.take()
	}
}

// deliverer is the state of the goroutine that hands frames to the stack.
type deliverer struct {
	e *endpoint
	// gro merges consecutive segments of a TCP stream into one before the
	// stack sees them, as Linux's GRO does, so that the stack's per-packet
	// work is done once per up to 64 KiB instead of once per frame. It
	// holds segments only until the device has no more frames to read.
	gro     gro.GRO
	holding bool // gro may hold segments
}

func newDeliverer(e *endpoint) *deliverer {
	dl := &deliverer{e: e}
	// GRO is off on the offload path, where the kernel sends segments
	// unsegmented already, and when the user wants frames as they came.
	dl.gro.Init(e.dev.gro)
	return dl
}

// deliverLoop delivers the reader's batches until it closes in, then
// drops what GRO holds with the stack that would have taken it.
func (e *endpoint) deliverLoop(in <-chan *batch, spare chan<- *batch) {
	defer e.wg.Done()
	dl := newDeliverer(e)
	defer dl.stop()
	for b := range in {
		dl.run(b)
		spare <- b
	}
}

// run delivers a batch's frames and empties it.
func (dl *deliverer) run(b *batch) {
	for i := range b.frames {
		dl.deliver(&b.frames[i])
		b.frames[i] = rxFrame{}
	}
	if b.idle {
		dl.flush()
	}
	b.frames = b.frames[:0]
}

// stop drops what GRO holds.
func (dl *deliverer) stop() {
	dl.gro.Dispatcher = discard{}
	dl.flush()
}

func (dl *deliverer) flush() {
	if dl.holding {
		dl.holding = false
		dl.gro.Flush()
	}
}

// deliver hands one frame to the stack.
func (dl *deliverer) deliver(f *rxFrame) {
	e := dl.e
	e.counters.rxFrames.Add(1)
	e.counters.rxBytes.Add(uint64(f.n))
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: f.payload})
	defer pkt.DecRef()

	tap := e.frameTap.Load()
	if tap != nil && tap.seen != nil {
		tap.seen(pkt)
	}
	drop := func(reason string) {
		e.counters.rxDropped.Add(1)
		if tap != nil && tap.dropped != nil {
			tap.dropped(pkt, reason)
		}
	}
	d, mac := e.currentDispatcher()
	if d == nil {
		drop("no stack attached")
		return
	}
	if d != dl.gro.Dispatcher {
		dl.flush()
	}
	hdr, _ := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	eth := header.Ethernet(hdr)
	switch dst := eth.DestinationAddress(); {
	case dst == mac:
		pkt.PktType = tcpip.PacketHost
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	default:
		// Another host's frame: a TAP device in a bridge floods them.
		drop("not for this host")
		return
	}
	proto := eth.Type()
	pkt.NetworkProtocolNumber = proto
	if e.checksums {
		// The stack is told not to check checksums (see
		// endpoint.Capabilities), so they are checked here, before GRO
		// merges segments, unless the kernel vouches for them.
		if !(e.vnet && vnetChecksumOK(f.flags)) {
			if reason := checkFrame(pkt, proto); reason != "" {
				drop(reason)
				return
			}
		}
		pkt.RXChecksumValidated = true
	}
	dl.gro.Dispatcher = d
	dl.gro.Enqueue(pkt)
	dl.holding = true
}

// maxFrame is the sum of rxChunks: a longer frame was cut short.
var maxFrame = func() int {
	n := 0
	for _, c := range rxChunks {
		n += c
	}
	return n
}()

// discard is a dispatcher that drops every packet: where GRO's held
// segments go when the reader stops.
type discard struct{}

func (discard) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}
func (discard) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer)    {}
