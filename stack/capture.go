package stack

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// CaptureConfig turns on capture of a host's link.
type CaptureConfig struct {
	// PCAP, if set, receives every frame both ways in pcap format
	// (nanosecond timestamps), which tshark and Wireshark read. Wrap a
	// file in a bufio.Writer and flush it after Host.Close.
	PCAP io.Writer
	// SnapLen caps the bytes saved per frame; 0 saves whole frames.
	SnapLen int
	// Segments, if set, sends one Event of kind KindSegment per frame to
	// the host's observer.
	Segments bool
	// Chains, if set with Segments, records with each outgoing segment the
	// chain of netstack functions that produced it, read from the call
	// stack at the link layer (see Segment.Chain). It costs a stack walk
	// per frame, so it is only paid for when asked.
	Chains bool
}

// captureEndpoint sits between the stack and the host's link and sees
// every frame both ways, link header included.
//
// It writes pcap itself rather than through gVisor's sniffer: the sniffer
// strips the link header (so ARP and NDP frames become unreadable as
// LINKTYPE_RAW) and panics when its writer fails, and a full disk must not
// take the transfer down with it.
type captureEndpoint struct {
	nested.Endpoint
	h       *Host
	pcap    io.Writer
	snapLen int
	seg     bool
	chains  *chainCache // nil unless chains are wanted

	mu  sync.Mutex // serialises pcap records; guards err and buf
	err error      // first pcap write error; later records are dropped
	buf []byte
}

var (
	_ gstack.LinkEndpoint      = (*captureEndpoint)(nil)
	_ gstack.NetworkDispatcher = (*captureEndpoint)(nil)
)

// pcap link types.
const (
	linkTypeEthernet = 1
	linkTypeRaw      = 101
)

func newCaptureEndpoint(lower LinkEndpoint, h *Host, cfg CaptureConfig) (*captureEndpoint, error) {
	c := &captureEndpoint{h: h, pcap: cfg.PCAP, snapLen: cfg.SnapLen, seg: cfg.Segments}
	if cfg.Chains && cfg.Segments {
		c.chains = newChainCache()
	}
	if c.snapLen <= 0 {
		c.snapLen = MaxMTU + 128
	}
	c.Endpoint.Init(lower, c)
	if c.pcap != nil {
		linkType := uint32(linkTypeRaw)
		if lower.ARPHardwareType() == header.ARPHardwareEther {
			linkType = linkTypeEthernet
		}
		var hdr [24]byte
		binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d) // nanosecond-resolution pcap
		binary.LittleEndian.PutUint16(hdr[4:], 2)
		binary.LittleEndian.PutUint16(hdr[6:], 4)
		binary.LittleEndian.PutUint32(hdr[16:], uint32(c.snapLen))
		binary.LittleEndian.PutUint32(hdr[20:], linkType)
		if _, err := c.pcap.Write(hdr[:]); err != nil {
			return nil, fmt.Errorf("stack: writing pcap header: %w", err)
		}
	}
	return c, nil
}

// closeErr returns the first error writing the pcap, if any.
func (c *captureEndpoint) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("stack: writing pcap: %w", c.err)
	}
	return nil
}

// WritePackets implements stack.LinkEndpoint.
func (c *captureEndpoint) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	var chain []string
	if c.chains != nil && c.h.obs != nil {
		chain = c.chains.here(2)
	}
	for _, pkt := range pkts.AsSlice() {
		c.record("out", pkt, chain)
	}
	return c.Endpoint.WritePackets(pkts)
}

// DeliverNetworkPacket implements stack.NetworkDispatcher.
func (c *captureEndpoint) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	c.record("in", pkt, nil)
	c.Endpoint.DeliverNetworkPacket(proto, pkt)
}

// record writes one frame to the pcap and emits its segment event.
func (c *captureEndpoint) record(dir string, pkt *gstack.PacketBuffer, chain []string) {
	now := time.Now()
	slices := pkt.AsSlices()
	size := 0
	for _, s := range slices {
		size += len(s)
	}
	if c.pcap != nil {
		c.writeRecord(now, slices, size)
	}
	if c.seg && c.h.obs != nil {
		var head [160]byte
		n := 0
		for _, s := range slices {
			n += copy(head[n:], s)
			if n == len(head) {
				break
			}
		}
		seg := decodeFrame(head[:n], size, c.ARPHardwareType() == header.ARPHardwareEther)
		seg.Dir = dir
		seg.Chain = chain
		c.h.obs(Event{Time: now, Host: c.h.name, Kind: KindSegment, Segment: seg})
	}
}

func (c *captureEndpoint) writeRecord(now time.Time, slices [][]byte, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	capLen := min(size, c.snapLen)
	c.buf = c.buf[:0]
	var rec [16]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(now.Nanosecond()))
	binary.LittleEndian.PutUint32(rec[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(rec[12:], uint32(size))
	c.buf = append(c.buf, rec[:]...)
	left := capLen
	for _, s := range slices {
		if left == 0 {
			break
		}
		s = s[:min(len(s), left)]
		c.buf = append(c.buf, s...)
		left -= len(s)
	}
	// One Write per record, so a reader of a live pipe never sees half of one.
	if _, err := c.pcap.Write(c.buf); err != nil {
		c.err = err
	}
}

// decodeFrame summarises a frame from its first bytes; size is its full
// length.
func decodeFrame(b []byte, size int, ethernet bool) *Segment {
	seg := &Segment{Frame: size, Len: size}
	var etype tcpip.NetworkProtocolNumber
	if ethernet {
		if len(b) < header.EthernetMinimumSize {
			seg.Proto = "ethernet"
			seg.Info = "truncated frame"
			return seg
		}
		eth := header.Ethernet(b)
		etype = eth.Type()
		seg.Src = eth.SourceAddress().String()
		seg.Dst = eth.DestinationAddress().String()
		b = b[header.EthernetMinimumSize:]
	} else if len(b) > 0 {
		switch b[0] >> 4 {
		case 4:
			etype = header.IPv4ProtocolNumber
		case 6:
			etype = header.IPv6ProtocolNumber
		}
	}
	switch etype {
	case header.ARPProtocolNumber:
		seg.Proto = "arp"
		if len(b) >= header.ARPSize {
			a := header.ARP(b)
			sender := tcpip.AddrFromSlice(a.ProtocolAddressSender())
			target := tcpip.AddrFromSlice(a.ProtocolAddressTarget())
			seg.Src, seg.Dst = sender.String(), target.String()
			switch a.Op() {
			case header.ARPRequest:
				seg.Info = fmt.Sprintf("who-has %s tell %s", target, sender)
			case header.ARPReply:
				seg.Info = fmt.Sprintf("%s is-at %s", sender, tcpip.LinkAddress(a.HardwareAddressSender()))
			}
		}
		return seg
	case header.IPv4ProtocolNumber:
		if len(b) < header.IPv4MinimumSize {
			seg.Proto = "ipv4"
			return seg
		}
		ip := header.IPv4(b)
		hl := int(ip.HeaderLength())
		if hl < header.IPv4MinimumSize || hl > len(b) {
			seg.Proto = "ipv4"
			seg.Info = "bad header length"
			return seg
		}
		src, dst := ip.SourceAddress().String(), ip.DestinationAddress().String()
		payload := int(ip.TotalLength()) - hl
		if ip.FragmentOffset() != 0 {
			seg.Proto, seg.Src, seg.Dst, seg.Info = "ipv4", src, dst, "fragment"
			return seg
		}
		decodeTransport(seg, ip.Protocol(), b[hl:], payload, src, dst)
	case header.IPv6ProtocolNumber:
		if len(b) < header.IPv6MinimumSize {
			seg.Proto = "ipv6"
			return seg
		}
		ip := header.IPv6(b)
		src, dst := ip.SourceAddress().String(), ip.DestinationAddress().String()
		switch next := tcpip.TransportProtocolNumber(ip.NextHeader()); next {
		case header.TCPProtocolNumber, header.ICMPv6ProtocolNumber, header.UDPProtocolNumber:
			decodeTransport(seg, uint8(next), b[header.IPv6MinimumSize:], int(ip.PayloadLength()), src, dst)
		default:
			// Extension headers: the transport header is further on; the
			// summary names the first header only.
			seg.Proto, seg.Src, seg.Dst = "ipv6", src, dst
			seg.Info = fmt.Sprintf("next header %d", next)
		}
	default:
		seg.Proto = fmt.Sprintf("ethertype-%#04x", uint16(etype))
	}
	return seg
}

func decodeTransport(seg *Segment, proto uint8, b []byte, payload int, src, dst string) {
	seg.Src, seg.Dst = src, dst
	switch tcpip.TransportProtocolNumber(proto) {
	case header.TCPProtocolNumber:
		seg.Proto = "tcp"
		if len(b) < header.TCPMinimumSize {
			seg.Info = "truncated TCP header"
			return
		}
		t := header.TCP(b)
		seg.Src = net.JoinHostPort(src, strconv.Itoa(int(t.SourcePort())))
		seg.Dst = net.JoinHostPort(dst, strconv.Itoa(int(t.DestinationPort())))
		seg.Flags = tcpFlags(t.Flags())
		if t.Flags()&header.TCPFlagSyn != 0 {
			// The options of a SYN set up the connection: worth showing.
			off := int(t.DataOffset())
			if off >= header.TCPMinimumSize && off <= len(b) {
				o := header.ParseSynOptions(b[header.TCPMinimumSize:off], t.Flags()&header.TCPFlagAck != 0)
				seg.Options = synOptions(o)
				seg.WindowScale = o.WS
			}
		}
		seg.Seq = t.SequenceNumber()
		seg.Ack = t.AckNumber()
		seg.Window = t.WindowSize()
		seg.Len = max(payload-int(t.DataOffset()), 0)
	case header.ICMPv4ProtocolNumber:
		seg.Proto = "icmp"
		seg.Len = payload
		if len(b) >= header.ICMPv4MinimumSize {
			seg.Info = fmt.Sprintf("type %d code %d", header.ICMPv4(b).Type(), header.ICMPv4(b).Code())
		}
	case header.ICMPv6ProtocolNumber:
		seg.Proto = "icmpv6"
		seg.Len = payload
		if len(b) >= header.ICMPv6MinimumSize {
			seg.Info = icmpv6Name(header.ICMPv6(b).Type())
		}
	default:
		seg.Proto = fmt.Sprintf("ip-proto-%d", proto)
		seg.Len = payload
	}
}

func synOptions(o header.TCPSynOptions) string {
	s := fmt.Sprintf("mss=%d", o.MSS)
	if o.SACKPermitted {
		s += ",sackOK"
	}
	if o.TS {
		s += ",ts"
	}
	if o.WS >= 0 {
		s += fmt.Sprintf(",wscale=%d", o.WS)
	}
	return s
}

// tcpFlags names the flags set, in the order a handshake shows them.
func tcpFlags(f header.TCPFlags) string {
	names := []struct {
		f    header.TCPFlags
		name string
	}{
		{header.TCPFlagSyn, "SYN"},
		{header.TCPFlagFin, "FIN"},
		{header.TCPFlagRst, "RST"},
		{header.TCPFlagPsh, "PSH"},
		{header.TCPFlagAck, "ACK"},
		{header.TCPFlagUrg, "URG"},
		{header.TCPFlagEce, "ECE"},
		{header.TCPFlagCwr, "CWR"},
	}
	out := ""
	for _, n := range names {
		if f&n.f != 0 {
			if out != "" {
				out += "|"
			}
			out += n.name
		}
	}
	return out
}

func icmpv6Name(t header.ICMPv6Type) string {
	switch t {
	case header.ICMPv6NeighborSolicit:
		return "neighbor solicitation"
	case header.ICMPv6NeighborAdvert:
		return "neighbor advertisement"
	case header.ICMPv6RouterSolicit:
		return "router solicitation"
	case header.ICMPv6RouterAdvert:
		return "router advertisement"
	case header.ICMPv6DstUnreachable:
		return "destination unreachable"
	case header.ICMPv6PacketTooBig:
		return "packet too big"
	case header.ICMPv6EchoRequest:
		return "echo request"
	case header.ICMPv6EchoReply:
		return "echo reply"
	case header.ICMPv6MulticastListenerReport, header.ICMPv6MulticastListenerV2Report:
		return "multicast listener report"
	default:
		return fmt.Sprintf("type %d", t)
	}
}
