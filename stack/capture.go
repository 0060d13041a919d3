package stack

import (
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/trace"
)

// CaptureConfig turns on pcap capture of a host's link.
type CaptureConfig struct {
	// PCAP receives every frame both ways in pcap format (nanosecond
	// timestamps), which tshark and Wireshark read. Wrap a file in a
	// bufio.Writer and flush it after Host.Close.
	PCAP io.Writer
	// SnapLen caps the bytes saved per frame; 0 saves whole frames.
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
	h     *Host
	tl    *timeline   // nil when nobody observes the host
	pcap  *pcapWriter // nil when no pcap is written
	ether bool
}

var (
	_ gstack.LinkEndpoint      = (*captureEndpoint)(nil)
	_ gstack.NetworkDispatcher = (*captureEndpoint)(nil)
)

func newCaptureEndpoint(lower LinkEndpoint, h *Host, cfg CaptureConfig) (*captureEndpoint, error) {
	c := &captureEndpoint{h: h, tl: h.tl, ether: lower.ARPHardwareType() == header.ARPHardwareEther}
	c.Endpoint.Init(lower, c)
	if cfg.PCAP != nil {
		linkType := uint32(linkTypeRaw)
		if c.ether {
			linkType = linkTypeEthernet
		}
		var err error
		if c.pcap, err = newPCAPWriter(cfg.PCAP, cfg.SnapLen, linkType); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// closeErr returns the first error writing the pcap, if any.
func (c *captureEndpoint) closeErr() error { return c.pcap.closeErr() }

// WritePackets implements stack.LinkEndpoint.
func (c *captureEndpoint) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	var chain []string
	if c.tl != nil && c.tl.chains != nil {
		chain = c.tl.chains.here(2)
	}
	for _, pkt := range pkts.AsSlice() {
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
		c.pcap.record(time.Now(), pkt.AsSlices())
	}
	if c.tl == nil {
		return
	}
	// The packet's first bytes, read from its views in place (AsSlices
	// would allocate for every frame): a TCP segment's headers are all the
	// timeline needs; for a datagram, enough for the DHCP and DNS messages
	// it reads (a DHCP message is at least 300 bytes).
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
	buf := headPool.Get().(*[headBytes]byte)
	defer headPool.Put(buf)
	n := copyHead(buf[:headerBytes])
	if c.maybeUDP(buf[:n]) {
		n = copyHead(buf[:])
	}
	head := buf[:n]
	c.tl.frame(dir, head, size, c.ether, chain)
}

// onlyTimestamps reports whether a segment's options are the timestamps
// alone, as RFC 7323's appendix A lays them out (NOP, NOP, TS).
func onlyTimestamps(opts []byte) bool {
	return len(opts) == 12 && opts[0] == header.TCPOptionNOP && opts[1] == header.TCPOptionNOP &&
		opts[2] == header.TCPOptionTS && opts[3] == header.TCPOptionTSLength
}

// maybeUDP reports whether a frame, from its first bytes, may be a UDP
// datagram: an IPv4 or IPv6 packet whose protocol field says UDP.
func (c *captureEndpoint) maybeUDP(b []byte) bool {
	if c.ether {
		if len(b) < header.EthernetMinimumSize {
			return false
		}
		b = b[header.EthernetMinimumSize:]
	}
	switch {
	case len(b) >= header.IPv4MinimumSize && b[0]>>4 == 4:
		return tcpip.TransportProtocolNumber(b[9]) == header.UDPProtocolNumber
	case len(b) >= header.IPv6MinimumSize && b[0]>>4 == 6:
		return tcpip.TransportProtocolNumber(b[6]) == header.UDPProtocolNumber
	}
	return false // ARP and the like
}

// headPool holds the buffers record copies a frame's first bytes into: one
// on the stack would escape, a heap allocation per frame.
var headPool = sync.Pool{New: func() any { return new([headBytes]byte) }}

// headBytes is how much of a datagram the timeline is given, and
// headerBytes how much of any other frame: all its headers.
const (
	headBytes   = 640
	headerBytes = 160
)

// decodeFrame summarises a frame from its first bytes; size is its full
// length.
func decodeFrame(b []byte, size int, ethernet bool) trace.Segment {
	seg := trace.Segment{Frame: size, Len: size, WindowScale: -1}
	var etype tcpip.NetworkProtocolNumber
	if ethernet {
		if len(b) < header.EthernetMinimumSize {
			seg.Proto = "ethernet"
			seg.Info = "truncated frame"
			return seg
		}
		eth := header.Ethernet(b)
		etype = eth.Type()
		seg.EtherType = uint16(etype)
		copy(seg.EthSrc[:], eth.SourceAddress())
		copy(seg.EthDst[:], eth.DestinationAddress())
		switch etype {
		case header.ARPProtocolNumber, header.IPv4ProtocolNumber, header.IPv6ProtocolNumber:
		default:
			// A frame nsftp cannot read: its Ethernet addresses are all
			// there is to say.
			seg.Info = fmt.Sprintf("%s > %s", eth.SourceAddress(), eth.DestinationAddress())
		}
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
			seg.Src, seg.Dst = netip.AddrPortFrom(fromTCPIP(sender), 0), netip.AddrPortFrom(fromTCPIP(target), 0)
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
		src, dst := fromTCPIP(ip.SourceAddress()), fromTCPIP(ip.DestinationAddress())
		payload := int(ip.TotalLength()) - hl
		seg.TTL, seg.IPID, seg.DF = ip.TTL(), ip.ID(), ip.Flags()&header.IPv4FlagDontFragment != 0
		if ip.FragmentOffset() != 0 {
			seg.Proto, seg.Info = "ipv4", "fragment"
			seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
			return seg
		}
		decodeTransport(&seg, ip.Protocol(), b[hl:], payload, src, dst)
	case header.IPv6ProtocolNumber:
		if len(b) < header.IPv6MinimumSize {
			seg.Proto = "ipv6"
			return seg
		}
		ip := header.IPv6(b)
		src, dst := fromTCPIP(ip.SourceAddress()), fromTCPIP(ip.DestinationAddress())
		seg.TTL = ip.HopLimit()
		next, rest, payload := ip.NextHeader(), b[header.IPv6MinimumSize:], int(ip.PayloadLength())
		// Hop-by-hop and destination options (an MLD report carries a
		// router alert in one) come before the transport header: skip
		// them, as each says its own length (RFC 8200 section 4.3).
		for (next == 0 || next == 60) && len(rest) >= 8 {
			n := 8 + 8*int(rest[1])
			if n > len(rest) {
				break
			}
			next, rest, payload = rest[0], rest[n:], payload-n
		}
		switch tcpip.TransportProtocolNumber(next) {
		case header.TCPProtocolNumber, header.ICMPv6ProtocolNumber, header.UDPProtocolNumber:
			decodeTransport(&seg, next, rest, payload, src, dst)
		default:
			// A fragment, a routing header, or what the trace cannot
			// read: the header is named.
			seg.Proto = "ipv6"
			seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
			seg.Info = fmt.Sprintf("next header %d", next)
		}
	default:
		seg.Proto = fmt.Sprintf("ethertype-%#04x", uint16(etype))
	}
	return seg
}

func decodeTransport(seg *trace.Segment, proto uint8, b []byte, payload int, src, dst netip.Addr) {
	seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	switch tcpip.TransportProtocolNumber(proto) {
	case header.TCPProtocolNumber:
		seg.Proto = "tcp"
		if len(b) < header.TCPMinimumSize {
			seg.Info = "truncated TCP header"
			return
		}
		t := header.TCP(b)
		seg.Src = netip.AddrPortFrom(src, t.SourcePort())
		seg.Dst = netip.AddrPortFrom(dst, t.DestinationPort())
		seg.Flags = trace.TCPFlags(t.Flags())
		off := int(t.DataOffset())
		switch {
		case off <= header.TCPMinimumSize || off > len(b):
		case t.Flags()&header.TCPFlagSyn != 0:
			// The options of a SYN set up the connection: worth showing.
			o := header.ParseSynOptions(b[header.TCPMinimumSize:off], t.Flags()&header.TCPFlagAck != 0)
			seg.Options = synOptions(o)
			seg.WindowScale = o.WS
		case onlyTimestamps(b[header.TCPMinimumSize:off]):
			// Nearly every segment of a connection: nothing to read.
		default:
			// SACK blocks tell of data received out of order (RFC 2018):
			// what a time-sequence graph draws.
			for _, sb := range header.ParseTCPOptions(b[header.TCPMinimumSize:off]).SACKBlocks {
				seg.SACK = append(seg.SACK, trace.SACKBlock{Start: uint32(sb.Start), End: uint32(sb.End)})
			}
		}
		seg.Seq = t.SequenceNumber()
		seg.Ack = t.AckNumber()
		seg.Window = t.WindowSize()
		seg.Len = max(payload-int(t.DataOffset()), 0)
	case header.UDPProtocolNumber:
		seg.Proto = "udp"
		seg.Len = payload
		if len(b) >= header.UDPMinimumSize {
			u := header.UDP(b)
			seg.Src = netip.AddrPortFrom(src, u.SourcePort())
			seg.Dst = netip.AddrPortFrom(dst, u.DestinationPort())
			seg.Len = max(payload-header.UDPMinimumSize, 0)
			data := b[header.UDPMinimumSize:]
			whole := len(data) >= seg.Len
			data = data[:min(len(data), seg.Len)]
			seg.Info = datagramInfo(u.SourcePort(), u.DestinationPort(), data, whole)
		}
	case header.ICMPv4ProtocolNumber:
		seg.Proto = "icmp"
		seg.Len = payload
		if len(b) >= header.ICMPv4MinimumSize {
			seg.Info = icmpv4Name(header.ICMPv4(b).Type(), header.ICMPv4(b).Code())
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

// icmpv4Name names an ICMP message (RFC 792): a closed UDP port answers
// with "destination unreachable: port unreachable".
func icmpv4Name(t header.ICMPv4Type, code header.ICMPv4Code) string {
	switch t {
	case header.ICMPv4EchoReply:
		return "echo reply"
	case header.ICMPv4Echo:
		return "echo request"
	case header.ICMPv4TimeExceeded:
		return "time exceeded"
	case header.ICMPv4Redirect:
		return "redirect"
	case header.ICMPv4DstUnreachable:
		why := map[header.ICMPv4Code]string{
			header.ICMPv4NetUnreachable: "network unreachable", header.ICMPv4HostUnreachable: "host unreachable",
			header.ICMPv4ProtoUnreachable: "protocol unreachable", header.ICMPv4PortUnreachable: "port unreachable",
			header.ICMPv4FragmentationNeeded: "fragmentation needed",
		}[code]
		if why == "" {
			why = fmt.Sprintf("code %d", code)
		}
		return "destination unreachable: " + why
	}
	return fmt.Sprintf("type %d code %d", t, code)
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
