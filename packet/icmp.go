package packet

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// ICMPv4 message types (RFC 792) and the destination-unreachable codes
// (RFC 792, RFC 1191).
const (
	ICMPv4EchoReply      = 0
	ICMPv4DstUnreachable = 3
	ICMPv4Redirect       = 5
	ICMPv4Echo           = 8
	ICMPv4TimeExceeded   = 11

	ICMPv4NetUnreachable   = 0
	ICMPv4HostUnreachable  = 1
	ICMPv4ProtoUnreachable = 2
	ICMPv4PortUnreachable  = 3
	ICMPv4FragNeeded       = 4
)

// ICMPv6 message types (RFC 4443), NDP's (RFC 4861) and MLD's (RFC 2710,
// RFC 3810).
const (
	ICMPv6DstUnreachable   = 1
	ICMPv6PacketTooBig     = 2
	ICMPv6TimeExceeded     = 3
	ICMPv6EchoRequest      = 128
	ICMPv6EchoReply        = 129
	ICMPv6MLDReport        = 131
	ICMPv6RouterSolicit    = 133
	ICMPv6RouterAdvert     = 134
	ICMPv6NeighborSolicit  = 135
	ICMPv6NeighborAdvert   = 136
	ICMPv6Redirect         = 137
	ICMPv6MLDv2Report      = 143
	icmpHeaderLen          = 4
	ndpOptSourceLinkAddr   = 1
	ndpOptTargetLinkAddr   = 2
	ndpOptPrefixInfo       = 3
	ndpNeighborSolicitLen  = 24 // header, reserved, target
	ndpRouterAdvertHeadLen = 16 // header, hop limit, flags, lifetimes, timers
)

// icmpv4Info names an ICMP message (RFC 792): a closed UDP port answers
// with "destination unreachable: port unreachable".
func icmpv4Info(b []byte) string {
	t, code := b[0], b[1]
	switch t {
	case ICMPv4EchoReply:
		return "echo reply"
	case ICMPv4Echo:
		return "echo request"
	case ICMPv4TimeExceeded:
		return "time exceeded"
	case ICMPv4Redirect:
		return "redirect"
	case ICMPv4DstUnreachable:
		var why string
		switch code {
		case ICMPv4NetUnreachable:
			why = "network unreachable"
		case ICMPv4HostUnreachable:
			why = "host unreachable"
		case ICMPv4ProtoUnreachable:
			why = "protocol unreachable"
		case ICMPv4PortUnreachable:
			why = "port unreachable"
		case ICMPv4FragNeeded:
			why = "fragmentation needed"
			if len(b) >= 8 {
				// RFC 1191 section 4: the next hop's MTU.
				why += fmt.Sprintf(", mtu %d", binary.BigEndian.Uint16(b[6:8]))
			}
		default:
			why = fmt.Sprintf("code %d", code)
		}
		return "destination unreachable: " + why
	}
	return fmt.Sprintf("type %d code %d", t, code)
}

// icmpv6Info names an ICMPv6 message, with what an NDP message is about:
// the address asked for and the link address it has, a router's prefixes.
func icmpv6Info(b []byte) string {
	switch b[0] {
	case ICMPv6NeighborSolicit:
		s := "neighbor solicitation"
		if len(b) >= ndpNeighborSolicitLen {
			s += " for " + netip.AddrFrom16([16]byte(b[8:24])).String()
		}
		return s
	case ICMPv6NeighborAdvert:
		s := "neighbor advertisement"
		if len(b) >= ndpNeighborSolicitLen {
			s += " " + netip.AddrFrom16([16]byte(b[8:24])).String()
			if mac, ok := ndpLinkAddr(b[ndpNeighborSolicitLen:], ndpOptTargetLinkAddr); ok {
				s += " is-at " + mac.String()
			}
		}
		return s
	case ICMPv6RouterSolicit:
		return "router solicitation"
	case ICMPv6RouterAdvert:
		s := "router advertisement"
		if len(b) >= ndpRouterAdvertHeadLen {
			if p := ndpPrefixes(b[ndpRouterAdvertHeadLen:]); p != "" {
				s += ": prefix " + p
			}
		}
		return s
	case ICMPv6Redirect:
		return "redirect"
	case ICMPv6DstUnreachable:
		return "destination unreachable"
	case ICMPv6PacketTooBig:
		if len(b) >= 8 {
			return fmt.Sprintf("packet too big, mtu %d", binary.BigEndian.Uint32(b[4:8]))
		}
		return "packet too big"
	case ICMPv6TimeExceeded:
		return "time exceeded"
	case ICMPv6EchoRequest:
		return "echo request"
	case ICMPv6EchoReply:
		return "echo reply"
	case ICMPv6MLDReport, ICMPv6MLDv2Report:
		return "multicast listener report"
	}
	return fmt.Sprintf("type %d", b[0])
}

// ndpOptions calls f for each NDP option (RFC 4861 section 4.6: type,
// length in units of 8 bytes, data) until f returns false or the
// options end or go wrong.
func ndpOptions(b []byte, f func(typ byte, body []byte) bool) {
	for len(b) >= 2 {
		n := 8 * int(b[1])
		if n == 0 || n > len(b) {
			return // RFC 4861 section 4.6: a zero length is invalid
		}
		if !f(b[0], b[2:n]) {
			return
		}
		b = b[n:]
	}
}

// ndpLinkAddr finds a link-layer address option of type typ.
func ndpLinkAddr(b []byte, typ byte) (mac MAC, ok bool) {
	ndpOptions(b, func(t byte, body []byte) bool {
		if t == typ && len(body) >= 6 {
			mac, ok = MAC(body[:6]), true
			return false
		}
		return true
	})
	return mac, ok
}

// ndpPrefixes lists a router advertisement's prefixes (RFC 4861 section
// 4.6.2), "2001:db8::/64", joined by commas.
func ndpPrefixes(b []byte) string {
	var ps []string
	ndpOptions(b, func(t byte, body []byte) bool {
		if t == ndpOptPrefixInfo && len(body) >= 30 {
			if p, err := netip.AddrFrom16([16]byte(body[14:30])).Prefix(int(body[0])); err == nil {
				ps = append(ps, p.String())
			}
		}
		return len(ps) < 4
	})
	return strings.Join(ps, ", ")
}

// AppendICMPv4 appends an ICMP message (RFC 792) of type typ and code,
// with body after the checksum (for an echo: identifier, sequence, data).
func AppendICMPv4(b []byte, typ, code uint8, body []byte) []byte {
	start := len(b)
	b = append(b, typ, code, 0, 0)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[start+2:], fold(sum16(b[start:], 0)))
	return b
}

// AppendICMPv6 appends an ICMPv6 message (RFC 4443) of type typ and code,
// with body after the checksum, for a packet from src to dst.
func AppendICMPv6(b []byte, typ, code uint8, body []byte, src, dst netip.Addr) []byte {
	start := len(b)
	b = append(b, typ, code, 0, 0)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[start+2:], transportChecksum(src, dst, ProtoICMPv6, b[start:]))
	return b
}
