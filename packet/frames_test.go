package packet

import (
	"net/netip"

	"github.com/nsftp/nsftp/trace"
)

// Addresses from the documentation ranges (RFC 5737, RFC 3849) and
// locally administered MACs.
var (
	macA = MAC{0x02, 0x6e, 0x73, 0x66, 0x74, 0x01}
	macB = MAC{0x02, 0x6e, 0x73, 0x66, 0x74, 0x02}
	ip4A = netip.MustParseAddr("192.0.2.1")
	ip4B = netip.MustParseAddr("192.0.2.2")
	ip6A = netip.MustParseAddr("2001:db8::1")
	ip6B = netip.MustParseAddr("2001:db8::2")
)

// tcpFrame is an Ethernet frame holding a TCP segment from src to dst,
// with the IPv6 extension headers ext (already encoded, the first one's
// type in extNext; TCP must be the last one's next header).
func tcpFrame(src, dst netip.AddrPort, f TCPFields, payload []byte, extNext uint8, ext []byte) []byte {
	f.SrcPort, f.DstPort = src.Port(), dst.Port()
	seg := AppendTCP(nil, f, src.Addr(), dst.Addr(), payload)
	return ipFrame(src.Addr(), dst.Addr(), ProtoTCP, seg, extNext, ext)
}

// udpFrame is an Ethernet frame holding a UDP datagram.
func udpFrame(src, dst netip.AddrPort, payload []byte) []byte {
	return ipFrame(src.Addr(), dst.Addr(), ProtoUDP, AppendUDP(nil, src, dst, payload), 0, nil)
}

// ipFrame wraps an upper-layer message in IPv4 or IPv6 (by src's kind)
// and Ethernet.
func ipFrame(src, dst netip.Addr, proto uint8, msg []byte, extNext uint8, ext []byte) []byte {
	if src.Is4() {
		b := AppendEthernet(nil, macB, macA, EtherTypeIPv4)
		b = AppendIPv4(b, IPv4Fields{Src: src, Dst: dst, Protocol: proto, DontFragment: true}, len(msg))
		return append(b, msg...)
	}
	next := proto
	if ext != nil {
		next = extNext
	}
	b := AppendEthernet(nil, macB, macA, EtherTypeIPv6)
	b = AppendIPv6(b, IPv6Fields{Src: src, Dst: dst, NextHeader: next}, len(ext)+len(msg))
	b = append(b, ext...)
	return append(b, msg...)
}

// synOpts are the options Linux sends on a SYN: MSS 1460, SACK
// permitted, timestamps, a NOP and window scale 7.
func synOpts() []byte {
	o := AppendTCPOptMSS(nil, 1460)
	o = AppendTCPOptSACKPermitted(o)
	o = AppendTCPOptTimestamps(o, 1, 0)
	o = AppendTCPOptNOP(o)
	return AppendTCPOptWindowScale(o, 7)
}

// tsOpts are the options of nearly every later segment (RFC 7323
// appendix A).
func tsOpts() []byte {
	return AppendTCPOptTimestamps(AppendTCPOptNOP(AppendTCPOptNOP(nil)), 100, 200)
}

// sackOpts are an ACK's options with blocks.
func sackOpts(blocks ...trace.SACKBlock) []byte {
	return AppendTCPOptSACK(AppendTCPOptNOP(AppendTCPOptNOP(tsOpts())), blocks...)
}
