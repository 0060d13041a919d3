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
// the offload path or a 65,000-byte MTU spreads over all of them. Only the
// buffers a frame used are replaced, from gVisor's buffer pools, so a small
// frame costs one small buffer and no copy: the buffers become the packet.
// They add up to the largest frame a TAP device hands out: an IP packet
// of 65,535 bytes, an Ethernet header and a VLAN tag.
var rxChunks = [...]int{2048, 2048, 4096, 8192, 16384, 32768, 256}

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

	// gro merges consecutive segments of a TCP stream into one before the
	// stack sees them, as Linux's GRO does, so that the stack's per-packet
	// work is done once per up to 64 KiB instead of once per frame. It
	// holds segments only until the device has no more frames to read.
	gro     gro.GRO
	holding bool // gro may hold segments
}

func newReader(e *endpoint) *reader {
	r := &reader{e: e}
	r.iov[0] = unix.Iovec{Base: &r.vnet[0]}
	r.iov[0].SetLen(vnetHdrLen)
	r.readFn = r.read
	// GRO is off on the offload path, where the kernel sends segments
	// unsegmented already, and when the user wants frames as they came.
	r.gro.Init(e.dev.gro)
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
		// Nothing more for now: hand over what GRO holds before waiting.
		r.flush()
		return false
	}
	r.n, r.errno = int(n), errno
	return true
}

func (r *reader) flush() {
	if r.holding {
		r.holding = false
		r.gro.Flush()
	}
}

// release drops what GRO holds and returns the read buffers.
func (r *reader) release() {
	r.gro.Dispatcher = discard{}
	r.flush()
	for i, v := range r.views {
		if v != nil {
			v.Release()
			r.views[i] = nil
		}
	}
}

// readLoop reads and delivers frames until the endpoint stops or the
// device fails.
func (e *endpoint) readLoop() {
	defer e.wg.Done()
	r := newReader(e)
	defer r.release()
	for {
		r.fill()
		if err := e.rc.Read(r.readFn); err != nil {
			// A deadline error is the stop signal (see stopLocked). What GRO
			// holds is dropped with the stack that would have taken it.
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
		r.deliver()
	}
}

// deliver hands the frame just read to the stack.
func (r *reader) deliver() {
	e := r.e
	n := r.n
	if e.vnet {
		n -= vnetHdrLen
	}
	if n < header.EthernetMinimumSize || n > maxFrame {
		e.counters.rxDropped.Add(1)
		return
	}
	e.counters.rxFrames.Add(1)
	e.counters.rxBytes.Add(uint64(n))

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
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: payload})
	defer pkt.DecRef()

	d, mac := e.currentDispatcher()
	if d == nil {
		e.counters.rxDropped.Add(1)
		return
	}
	if d != r.gro.Dispatcher {
		r.flush()
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
		e.counters.rxDropped.Add(1)
		return
	}
	proto := eth.Type()
	pkt.NetworkProtocolNumber = proto
	if e.checksums {
		// The stack is told not to check checksums (see
		// endpoint.Capabilities), so they are checked here, before GRO
		// merges segments, unless the kernel vouches for them.
		if !(e.vnet && vnetChecksumOK(r.vnet[0])) && !verifyChecksums(pkt, proto) {
			e.counters.rxDropped.Add(1)
			return
		}
		pkt.RXChecksumValidated = true
	}
	r.gro.Dispatcher = d
	r.gro.Enqueue(pkt)
	r.holding = true
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
