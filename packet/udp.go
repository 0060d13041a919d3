package packet

import (
	"encoding/binary"
	"net/netip"
)

// UDPHeaderLen is a UDP header's length (RFC 768).
const UDPHeaderLen = 8

// UDP is a view of a UDP datagram (RFC 768). Its methods read fixed
// offsets: check len(u) >= UDPHeaderLen first.
type UDP []byte

// SrcPort is the source port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:2]) }

// DstPort is the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:4]) }

// Length is the length field: header and data.
func (u UDP) Length() int { return int(binary.BigEndian.Uint16(u[4:6])) }

// Checksum is the checksum field (0 over IPv4: none computed).
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:8]) }

// Payload is what follows the header, as far as u goes.
func (u UDP) Payload() []byte { return u[UDPHeaderLen:] }

// AppendUDP appends a UDP datagram carrying payload, with its checksum.
func AppendUDP(b []byte, src, dst netip.AddrPort, payload []byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(UDPHeaderLen+len(payload)))
	b = append(b, 0, 0)
	b = append(b, payload...)
	c := transportChecksum(src.Addr(), dst.Addr(), ProtoUDP, b[start:])
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(b[start+6:], c)
	return b
}
