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
	c.record(trace.In, pkt, nil)
	c.Endpoint.DeliverNetworkPacket(proto, pkt)
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
	// The packet's first bytes, read from its views in place (AsSlices
	// would allocate for every frame): a TCP segment's headers are all the
	// timeline needs; for a DHCP or DNS datagram, its message too.
	views, skip := pkt.AsViewList()
	copyHead := func(dst []byte) int {
		n, off := 0, skip
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
	buf := headPool.Get().(*[packet.DatagramBytes]byte)
	defer headPool.Put(buf)
	n := copyHead(buf[:packet.HeaderBytes])
	if packet.NeedsPayload(buf[:n], c.link) {
		n = copyHead(buf[:])
	}
	c.tl.frame(dir, buf[:n], size, c.link, chain)
}

// headPool holds the buffers record copies a frame's first bytes into: one
// on the stack would escape, a heap allocation per frame.
var headPool = sync.Pool{New: func() any { return new([packet.DatagramBytes]byte) }}
