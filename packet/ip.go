package packet

import (
	"encoding/binary"
	"net/netip"
)

// Protocol numbers (IANA's registry), which IPv4's protocol field and
// IPv6's next-header field carry.
const (
	ProtoHopByHop = 0
	ProtoICMPv4   = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDestOpts = 60
	ProtoMobility = 135
	ProtoHIP      = 139
	ProtoShim6    = 140
)

// Header lengths without options or extension headers.
const (
	IPv4HeaderLen = 20
	IPv6HeaderLen = 40
)

// IPv4 is a view of an IPv4 packet (RFC 791). Its methods read fixed
// offsets: check len(ip) >= IPv4HeaderLen first, and HeaderLen against
// len(ip) before Payload.
type IPv4 []byte

// Version is the version field: 4 for IPv4.
func (ip IPv4) Version() uint8 { return ip[0] >> 4 }

// HeaderLen is the header's length in bytes, options included (IHL × 4).
func (ip IPv4) HeaderLen() int { return int(ip[0]&0x0f) * 4 }

// TotalLen is the total length field: header and payload. Linux sends 0
// for a BIG TCP segment larger than 64 KiB (its length is the frame's).
func (ip IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(ip[2:4])) }

// ID is the identification field.
func (ip IPv4) ID() uint16 { return binary.BigEndian.Uint16(ip[4:6]) }

// DontFragment reports the DF flag.
func (ip IPv4) DontFragment() bool { return ip[6]&0x40 != 0 }

// MoreFragments reports the MF flag.
func (ip IPv4) MoreFragments() bool { return ip[6]&0x20 != 0 }

// FragmentOffset is where the fragment's payload goes in the datagram, in
// bytes; non-zero for every fragment but the first.
func (ip IPv4) FragmentOffset() int { return int(binary.BigEndian.Uint16(ip[6:8])&0x1fff) * 8 }

// TTL is the time-to-live field.
func (ip IPv4) TTL() uint8 { return ip[8] }

// Protocol is the protocol of the payload.
func (ip IPv4) Protocol() uint8 { return ip[9] }

// Checksum is the header checksum field.
func (ip IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(ip[10:12]) }

// ChecksumValid reports whether the header checksum is right (RFC 1071:
// the header, checksum included, sums to all ones). Check HeaderLen
// against len(ip) first.
func (ip IPv4) ChecksumValid() bool { return fold(sum16(ip[:ip.HeaderLen()], 0)) == 0 }

// Src is the source address.
func (ip IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(ip[12:16])) }

// Dst is the destination address.
func (ip IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(ip[16:20])) }

// Payload is what follows the header, as far as ip goes.
func (ip IPv4) Payload() []byte { return ip[ip.HeaderLen():] }

// IPv4Fields are what AppendIPv4 writes.
type IPv4Fields struct {
	Src, Dst     netip.Addr
	Protocol     uint8
	TTL          uint8 // 0 means 64
	ID           uint16
	DontFragment bool
	// MoreFragments and FragmentOffset (bytes, a multiple of 8) make a
	// fragment.
	MoreFragments  bool
	FragmentOffset int
	// Options are the header's options, padded here to a multiple of 4
	// bytes with end-of-options.
	Options []byte
}

// AppendIPv4 appends an IPv4 header with its checksum for a payload of
// payloadLen bytes, which the caller appends.
func AppendIPv4(b []byte, f IPv4Fields, payloadLen int) []byte {
	optLen := (len(f.Options) + 3) &^ 3
	hl := IPv4HeaderLen + optLen
	start := len(b)
	ttl := f.TTL
	if ttl == 0 {
		ttl = 64
	}
	b = append(b, 0x40|byte(hl/4), 0)
	b = binary.BigEndian.AppendUint16(b, uint16(hl+payloadLen))
	b = binary.BigEndian.AppendUint16(b, f.ID)
	frag := uint16(f.FragmentOffset/8) & 0x1fff
	if f.DontFragment {
		frag |= 0x4000
	}
	if f.MoreFragments {
		frag |= 0x2000
	}
	b = binary.BigEndian.AppendUint16(b, frag)
	b = append(b, ttl, f.Protocol, 0, 0)
	s, d := f.Src.As4(), f.Dst.As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = append(b, f.Options...)
	for len(b)-start < hl {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint16(b[start+10:], fold(sum16(b[start:], 0)))
	return b
}

// IPv6 is a view of an IPv6 packet (RFC 8200). Its methods read fixed
// offsets: check len(ip) >= IPv6HeaderLen first.
type IPv6 []byte

// Version is the version field: 6 for IPv6.
func (ip IPv6) Version() uint8 { return ip[0] >> 4 }

// PayloadLen is the payload length field: what follows the fixed header,
// extension headers included. Linux sends 0 for a BIG TCP segment larger
// than 64 KiB (its length is the frame's).
func (ip IPv6) PayloadLen() int { return int(binary.BigEndian.Uint16(ip[4:6])) }

// NextHeader is the type of the header after the fixed one.
func (ip IPv6) NextHeader() uint8 { return ip[6] }

// HopLimit is the hop limit field.
func (ip IPv6) HopLimit() uint8 { return ip[7] }

// Src is the source address.
func (ip IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(ip[8:24])) }

// Dst is the destination address.
func (ip IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(ip[24:40])) }

// UpperLayer walks the extension headers (RFC 8200 section 4: hop-by-hop
// and destination options, routing, fragment, and the authentication,
// mobility, HIP and shim6 headers that RFC 6564's uniform format lets a
// reader skip) to the header after them: its type (next), and where it
// starts in ip (off). A fragment other than the first holds no
// upper-layer header: fragment reports one, and next is what the
// reassembled packet would hold. ok is false when an extension header
// runs past the bytes given; next and off are then that header's.
func (ip IPv6) UpperLayer() (next uint8, off int, fragment, ok bool) {
	next, off = ip.NextHeader(), IPv6HeaderLen
	for {
		var n int
		switch next {
		case ProtoHopByHop, ProtoRouting, ProtoDestOpts, ProtoMobility, ProtoHIP, ProtoShim6:
			if off+2 > len(ip) {
				return next, off, false, false
			}
			n = 8 + 8*int(ip[off+1])
		case ProtoAH:
			// RFC 4302 section 2.2: its length is in 4-octet units, minus 2.
			if off+2 > len(ip) {
				return next, off, false, false
			}
			n = 4 * (int(ip[off+1]) + 2)
		case ProtoFragment:
			if off+8 > len(ip) {
				return next, off, false, false
			}
			if binary.BigEndian.Uint16(ip[off+2:])&^7 != 0 {
				return ip[off], off + 8, true, true
			}
			n = 8
		default:
			return next, off, false, true
		}
		if off+n > len(ip) {
			return next, off, false, false
		}
		next, off = ip[off], off+n
	}
}

// IPv6Fields are what AppendIPv6 writes.
type IPv6Fields struct {
	Src, Dst     netip.Addr
	NextHeader   uint8
	HopLimit     uint8 // 0 means 64
	TrafficClass uint8
	FlowLabel    uint32
}

// AppendIPv6 appends an IPv6 header for a payload (extension headers
// included) of payloadLen bytes, which the caller appends.
func AppendIPv6(b []byte, f IPv6Fields, payloadLen int) []byte {
	hop := f.HopLimit
	if hop == 0 {
		hop = 64
	}
	b = binary.BigEndian.AppendUint32(b, 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadLen))
	b = append(b, f.NextHeader, hop)
	s, d := f.Src.As16(), f.Dst.As16()
	b = append(b, s[:]...)
	return append(b, d[:]...)
}

// AppendIPv6Options appends a hop-by-hop or destination options header
// (RFC 8200 sections 4.3, 4.6) holding opts, padded with PadN to a
// multiple of 8 bytes; next is the header after it.
func AppendIPv6Options(b []byte, next uint8, opts []byte) []byte {
	n := (2 + len(opts) + 7) &^ 7
	b = append(b, next, byte(n/8-1))
	b = append(b, opts...)
	switch pad := n - 2 - len(opts); pad {
	case 0:
	case 1:
		b = append(b, 0) // Pad1
	default:
		b = append(b, 1, byte(pad-2)) // PadN
		b = append(b, make([]byte, pad-2)...)
	}
	return b
}

// AppendIPv6Fragment appends a fragment header (RFC 8200 section 4.5):
// offset in bytes (a multiple of 8), more for all fragments but the last.
func AppendIPv6Fragment(b []byte, next uint8, offset int, more bool, id uint32) []byte {
	fo := uint16(offset) &^ 7
	if more {
		fo |= 1
	}
	b = append(b, next, 0)
	b = binary.BigEndian.AppendUint16(b, fo)
	return binary.BigEndian.AppendUint32(b, id)
}

// sum16 adds b to sum as 16-bit big-endian words (RFC 1071), an odd last
// byte padded with zero.
func sum16(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// fold folds a sum's carries into 16 bits.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// pseudoSum is the sum of the pseudo-header TCP, UDP and ICMPv6
// checksums cover (RFC 793 section 3.1, RFC 8200 section 8.1).
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = sum16(s[:], sum16(d[:], 0))
	} else {
		s, d := src.As16(), dst.As16()
		sum = sum16(s[:], sum16(d[:], 0))
	}
	return sum + uint32(proto) + uint32(length>>16) + uint32(length&0xffff)
}

// transportChecksum is the checksum of a TCP, UDP or ICMPv6 message b
// (its checksum field zero) from src to dst.
func transportChecksum(src, dst netip.Addr, proto uint8, b []byte) uint16 {
	return fold(sum16(b, pseudoSum(src, dst, proto, len(b))))
}
