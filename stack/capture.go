package stack

import (
	"fmt"
	"io"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/trace"
)

// CaptureConfig turns on pcap capture of a host's link.
type CaptureConfig struct {
	// PCAP receives every frame both ways in pcap format (nanosecond
	// timestamps), which tshark and Wireshark read. Wrap a file in a
	// bufio.Writer and flush it after Host.Close.
	PCAP io.Writer
	// SnapLen caps the bytes saved per frame; 0 means packet.SnapLen
	// (262,144), which saves every frame whole.
	SnapLen int
}

// captureEndpoint sits between the stack and the host's link and sees
// every frame both ways, link header included: it writes them to the
// pcap, and hands them to the host's timeline.
//
// It writes pcap itself rather than through gVisor's sniffer: the sniffer
// strips the link header (so ARP and NDP frames become unreadable as
// LINKTYPE_RAW) and panics when its writer fails, and a full disk must not
// take the transfer down with it.
type captureEndpoint struct {
	nested.Endpoint
	h    *Host
	tl   *timeline          // nil when nobody observes the host
	pcap *packet.PCAPWriter // nil when no pcap is written
	link packet.LinkType
	// tapped: the link shows the frames it receives itself (FrameTap),
	// as they came and before it drops or merges any.
	tapped bool
}

// FrameTap is a link endpoint that shows a capture the frames it
// receives as they came off the device: each one whole, before it merges
// consecutive TCP segments (GRO) or drops any, and then, for one it
// drops, why. A host's capture and timeline of such a link show every
// frame that crossed the device, with the checksums it had, and the ones
// nsftp dropped among them. A TAP device's endpoint is one (package tap).
type FrameTap interface {
	SetFrameTap(seen func(pkt *gstack.PacketBuffer), dropped func(pkt *gstack.PacketBuffer, reason string))
}

var (
	_ gstack.LinkEndpoint      = (*captureEndpoint)(nil)
	_ gstack.NetworkDispatcher = (*captureEndpoint)(nil)
)

func newCaptureEndpoint(lower LinkEndpoint, h *Host, cfg CaptureConfig) (*captureEndpoint, error) {
	c := &captureEndpoint{h: h, tl: h.tl, link: packet.LinkRaw}
	if lower.ARPHardwareType() == header.ARPHardwareEther {
		c.link = packet.LinkEthernet
	}
	c.Endpoint.Init(lower, c)
	if ft, ok := lower.(FrameTap); ok {
		c.tapped = true
		ft.SetFrameTap(func(pkt *gstack.PacketBuffer) { c.record(trace.In, pkt, nil) }, c.dropped)
	}
	if cfg.PCAP != nil {
		var err error
		if c.pcap, err = packet.NewPCAPWriter(cfg.PCAP, c.link, cfg.SnapLen); err != nil {
			return nil, fmt.Errorf("stack: %w", err)
		}
	}
	return c, nil
}

// closeErr returns the first error writing the pcap, if any.
func (c *captureEndpoint) closeErr() error { return c.pcap.Err() }

// WritePackets implements stack.LinkEndpoint.
func (c *captureEndpoint) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	var chain []string
	cc := (*chainCache)(nil)
	if c.tl != nil {
		cc = c.tl.chains
	}
	if cc != nil {
		chain = cc.here(2)
	}
	for _, pkt := range pkts.AsSlice() {
		if cc != nil {
			c.record(trace.Out, pkt, cc.forPacket(pkt, chain))
			continue
		}
		c.record(trace.Out, pkt, chain)
	}
	return c.Endpoint.WritePackets(pkts)
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (c *captureEndpoint) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	if !c.tapped {
		c.record(trace.In, pkt, nil)
	}
	c.Endpoint.DeliverNetworkPacket(proto, pkt)
}

// dropped names, in the timeline, a frame the link recorded and then
// dropped (see FrameTap).
func (c *captureEndpoint) dropped(pkt *gstack.PacketBuffer, reason string) {
	if c.tl == nil {
		return
	}
	buf := headPool.Get().(*[packet.DatagramBytes]byte)
	defer headPool.Put(buf)
	n := copyHead(pkt, buf[:packet.HeaderBytes])
	c.tl.dropped(buf[:n], pkt.Size(), c.link, reason)
}

// record writes one frame to the pcap and hands it to the timeline.
func (c *captureEndpoint) record(dir trace.Direction, pkt *gstack.PacketBuffer, chain []string) {
	size := pkt.Size()
	if c.pcap != nil {
		c.pcap.WriteFrame(c.h.clock.Now(), size, pkt.AsSlices()...)
	}
	if c.tl == nil {
		return
	}
	// A TCP segment's headers are all the timeline needs; for a DHCP or
	// DNS datagram, its message too.
	buf := headPool.Get().(*[packet.DatagramBytes]byte)
	defer headPool.Put(buf)
	n := copyHead(pkt, buf[:packet.HeaderBytes])
	if packet.NeedsPayload(buf[:n], c.link) {
		n = copyHead(pkt, buf[:])
	}
	c.tl.frame(dir, buf[:n], size, c.link, chain)
}

// copyHead copies the packet's first bytes into dst, read from its views
// in place (AsSlices would allocate for every frame), and returns how many.
func copyHead(pkt *gstack.PacketBuffer, dst []byte) int {
	views, off := pkt.AsViewList()
	n := 0
	for v := views.Front(); v != nil && n < len(dst); v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(dst[n:], b[off:])
		off = 0
	}
	return n
}

// headPool holds the buffers record copies a frame's first bytes into: one
// on the stack would escape, a heap allocation per frame.
var headPool = sync.Pool{New: func() any { return new([packet.DatagramBytes]byte) }}
