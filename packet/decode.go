package packet

import (
	"fmt"
	"net/netip"

	"github.com/nsftp/nsftp/trace"
)

// How much of a frame Decode reads. A caller that copies a frame's
// beginning out of a scattered buffer (the stack does, for every frame)
// copies HeaderBytes, and DatagramBytes when NeedsPayload says so.
const (
	// HeaderBytes holds every header of a frame nsftp reads: Ethernet
	// (14), IPv6 (40) with 46 bytes of extension headers, TCP with the
	// most options (60).
	HeaderBytes = 160
	// DatagramBytes holds the headers and the message of a DHCP or DNS
	// datagram as far as its summary needs (a DHCP message is at least
	// 300 bytes, RFC 2131 section 2; a longer DNS answer is cut short,
	// and Decode says so).
	DatagramBytes = 640
)

// Decode summarises a frame as a trace.Segment: for TCP its ports, flags,
// numbers, window, a SYN's options and any SACK blocks; for UDP its
// ports and, for DHCP and DNS, what the message says; for ARP, ICMP and
// NDP what they ask or answer, in Info. b is the frame's beginning (all
// of it or HeaderBytes at least), size its whole length on the link;
// link says what it starts with. Lengths come from the IP header, so a
// frame cut short still has its payload's length, and padding to
// Ethernet's minimum is not counted. Decode never fails: what it cannot
// read it names in Proto and Info.
//
// The segment's direction, socket, label and retransmit mark are the
// recording host's to set.
func Decode(b []byte, size int, link LinkType) trace.Segment {
	seg := trace.Segment{Frame: size, Len: size, WindowScale: -1}
	linkLen := 0
	var et EtherType
	switch link {
	case LinkEthernet:
		if len(b) < EthernetHeaderLen {
			seg.Proto, seg.Info = "ethernet", "truncated frame"
			return seg
		}
		e := Ethernet(b)
		et, linkLen = e.Type(), EthernetHeaderLen
		seg.EtherType = uint16(et)
		seg.EthSrc, seg.EthDst = trace.MAC(e.Src()), trace.MAC(e.Dst())
		switch et {
		case EtherTypeARP, EtherTypeIPv4, EtherTypeIPv6:
		default:
			// A frame nsftp cannot read: its addresses are all there is
			// to say.
			seg.Proto = fmt.Sprintf("ethertype-%#04x", uint16(et))
			seg.Info = e.Src().String() + " > " + e.Dst().String()
			return seg
		}
		b = b[EthernetHeaderLen:]
	case LinkRaw:
		if len(b) == 0 {
			seg.Proto, seg.Info = "ip", "empty packet"
			return seg
		}
		switch b[0] >> 4 {
		case 4:
			et = EtherTypeIPv4
		case 6:
			et = EtherTypeIPv6
		default:
			seg.Proto, seg.Info = "ip", fmt.Sprintf("version %d", b[0]>>4)
			return seg
		}
	default:
		seg.Proto = fmt.Sprintf("linktype-%d", link)
		return seg
	}
	switch et {
	case EtherTypeARP:
		decodeARP(&seg, ARP(b))
	case EtherTypeIPv4:
		decodeIPv4(&seg, IPv4(b), size-linkLen)
	case EtherTypeIPv6:
		decodeIPv6(&seg, IPv6(b), size-linkLen)
	}
	return seg
}

func decodeARP(seg *trace.Segment, a ARP) {
	seg.Proto = "arp"
	if len(a) < ARPLen {
		seg.Info = "truncated"
		return
	}
	if !a.Valid() {
		seg.Info = "not IPv4 over Ethernet"
		return
	}
	sender, target := a.SenderIP(), a.TargetIP()
	seg.Src, seg.Dst = netip.AddrPortFrom(sender, 0), netip.AddrPortFrom(target, 0)
	switch a.Op() {
	case ARPRequest:
		seg.Info = "who-has " + target.String() + " tell " + sender.String()
	case ARPReply:
		seg.Info = sender.String() + " is-at " + a.SenderMAC().String()
	default:
		seg.Info = fmt.Sprintf("operation %d", a.Op())
	}
}

// decodeIPv4 reads an IPv4 packet of packetLen bytes on the link.
func decodeIPv4(seg *trace.Segment, ip IPv4, packetLen int) {
	seg.Proto = "ipv4"
	if len(ip) < IPv4HeaderLen {
		seg.Info = "truncated header"
		return
	}
	hl := ip.HeaderLen()
	switch {
	case ip.Version() != 4:
		seg.Info = fmt.Sprintf("version %d", ip.Version())
		return
	case hl < IPv4HeaderLen || hl > len(ip):
		seg.Info = "bad header length"
		return
	}
	src, dst := ip.Src(), ip.Dst()
	seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	seg.TTL, seg.IPID, seg.DF = ip.TTL(), ip.ID(), ip.DontFragment()
	if ip.FragmentOffset() != 0 {
		seg.Info = "fragment"
		seg.Len = max(ip.TotalLen()-hl, 0)
		return
	}
	total := ip.TotalLen()
	if total == 0 {
		total = packetLen // BIG TCP: the length is the frame's
	}
	decodeTransport(seg, ip.Protocol(), ip[hl:], total-hl, src, dst)
}

// decodeIPv6 reads an IPv6 packet of packetLen bytes on the link.
func decodeIPv6(seg *trace.Segment, ip IPv6, packetLen int) {
	seg.Proto = "ipv6"
	if len(ip) < IPv6HeaderLen {
		seg.Info = "truncated header"
		return
	}
	if ip.Version() != 6 {
		seg.Info = fmt.Sprintf("version %d", ip.Version())
		return
	}
	src, dst := ip.Src(), ip.Dst()
	seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	seg.TTL = ip.HopLimit()
	payload := ip.PayloadLen()
	if payload == 0 {
		payload = packetLen - IPv6HeaderLen // BIG TCP, or nothing at all
	}
	next, off, fragment, ok := ip.UpperLayer()
	payload -= off - IPv6HeaderLen
	switch {
	case !ok:
		seg.Info = fmt.Sprintf("extension header %d longer than the bytes kept", next)
	case fragment:
		seg.Info = "fragment"
		seg.Len = max(payload, 0)
	case next == ProtoTCP || next == ProtoUDP || next == ProtoICMPv6:
		decodeTransport(seg, next, ip[off:], payload, src, dst)
	default:
		// ESP, no next header, or what the trace cannot read: the
		// header is named.
		seg.Info = fmt.Sprintf("next header %d", next)
		seg.Len = max(payload, 0)
	}
}

// decodeTransport reads the transport header b of an IP payload of
// payload bytes (header included).
func decodeTransport(seg *trace.Segment, proto uint8, b []byte, payload int, src, dst netip.Addr) {
	payload = max(payload, 0)
	seg.Len = payload
	switch proto {
	case ProtoTCP:
		seg.Proto = "tcp"
		if len(b) < TCPHeaderLen {
			seg.Info = "truncated TCP header"
			return
		}
		t := TCP(b)
		seg.Src = netip.AddrPortFrom(src, t.SrcPort())
		seg.Dst = netip.AddrPortFrom(dst, t.DstPort())
		seg.Flags = t.Flags()
		seg.Seq, seg.Ack, seg.Window = t.Seq(), t.Ack(), t.Window()
		off := t.DataOffset()
		if off < TCPHeaderLen {
			seg.Info = "bad data offset"
			return
		}
		seg.Len = max(payload-off, 0)
		if off == TCPHeaderLen || off > len(t) {
			return
		}
		opts := t.Options()
		switch {
		case seg.Flags.Has(trace.SYN):
			// The options of a SYN set up the connection: worth showing.
			o := ParseTCPOptions(opts)
			seg.Options, seg.WindowScale = o.SynSummary(), o.WindowScale
		case onlyTimestamps(opts):
			// Nearly every segment of a connection: nothing to show.
		default:
			// SACK blocks tell of data received out of order (RFC
			// 2018): what a time-sequence graph draws.
			if o := ParseTCPOptions(opts); o.NSACK > 0 {
				seg.SACK = append([]trace.SACKBlock(nil), o.SACK[:o.NSACK]...)
			}
		}
	case ProtoUDP:
		seg.Proto = "udp"
		if len(b) < UDPHeaderLen {
			seg.Info = "truncated UDP header"
			return
		}
		u := UDP(b)
		seg.Src = netip.AddrPortFrom(src, u.SrcPort())
		seg.Dst = netip.AddrPortFrom(dst, u.DstPort())
		seg.Len = max(payload-UDPHeaderLen, 0)
		data := u.Payload()
		whole := len(data) >= seg.Len
		seg.Info = datagramInfo(u.SrcPort(), u.DstPort(), data[:min(len(data), seg.Len)], whole)
	case ProtoICMPv4:
		seg.Proto = "icmp"
		if msg := b[:min(len(b), payload)]; len(msg) >= icmpHeaderLen {
			seg.Info = icmpv4Info(msg)
		}
	case ProtoICMPv6:
		seg.Proto = "icmpv6"
		if msg := b[:min(len(b), payload)]; len(msg) >= icmpHeaderLen {
			seg.Info = icmpv6Info(msg)
		}
	default:
		seg.Proto = fmt.Sprintf("ip-proto-%d", proto)
	}
}

// NeedsPayload reports whether Decode reads more of a frame than its
// headers, judged from its first bytes head: a DHCP or DNS datagram,
// whose message it summarises. A caller that hands Decode HeaderBytes
// then hands it DatagramBytes.
func NeedsPayload(head []byte, link LinkType) bool {
	if link == LinkEthernet {
		if len(head) < EthernetHeaderLen {
			return false
		}
		switch Ethernet(head).Type() {
		case EtherTypeIPv4, EtherTypeIPv6:
		default:
			return false
		}
		head = head[EthernetHeaderLen:]
	}
	var l4 []byte
	switch {
	case len(head) >= IPv4HeaderLen && head[0]>>4 == 4:
		ip := IPv4(head)
		if ip.Protocol() != ProtoUDP || ip.FragmentOffset() != 0 || ip.HeaderLen() > len(ip) {
			return false
		}
		l4 = ip[ip.HeaderLen():]
	case len(head) >= IPv6HeaderLen && head[0]>>4 == 6:
		next, off, fragment, ok := IPv6(head).UpperLayer()
		if !ok || fragment || next != ProtoUDP {
			return false
		}
		l4 = head[off:]
	default:
		return false // ARP and the like
	}
	if len(l4) < UDPHeaderLen {
		return false
	}
	u := UDP(l4)
	return appPort(u.SrcPort()) || appPort(u.DstPort())
}
