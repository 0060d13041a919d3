package packet

import (
	"encoding/binary"
	"fmt"
)

// LinkType is what a frame starts with, numbered as pcap's LINKTYPE_
// values (tcpdump.org's link-layer header types), which the pcap header
// carries.
type LinkType uint32

// The link types nsftp's links have.
const (
	// LinkEthernet: an Ethernet II header (IEEE 802.3), as on the virtual
	// wire, a TAP device and a packet socket.
	LinkEthernet LinkType = 1
	// LinkRaw: the IP packet itself, no link header (a TUN device); its
	// version says IPv4 or IPv6.
	LinkRaw LinkType = 101
)

// EthernetHeaderLen is an Ethernet II header's length: two addresses and
// the EtherType, without the frame check sequence, which links hand over
// stripped.
const EthernetHeaderLen = 14

// EtherType names the protocol an Ethernet frame carries (IEEE's
// registry).
type EtherType uint16

// The EtherTypes nsftp reads.
const (
	EtherTypeIPv4 EtherType = 0x0800
	EtherTypeARP  EtherType = 0x0806
	EtherTypeIPv6 EtherType = 0x86dd
)

// MAC is an IEEE 802 MAC-48 address.
type MAC [6]byte

// String is the address as ip(8) writes it: 02:00:5e:10:00:01.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Ethernet is a view of an Ethernet II frame. Its methods read fixed
// offsets: check len(e) >= EthernetHeaderLen first.
type Ethernet []byte

// Dst is the destination address.
func (e Ethernet) Dst() MAC { return MAC(e[0:6]) }

// Src is the source address.
func (e Ethernet) Src() MAC { return MAC(e[6:12]) }

// Type is the EtherType.
func (e Ethernet) Type() EtherType { return EtherType(binary.BigEndian.Uint16(e[12:14])) }

// Payload is what follows the header.
func (e Ethernet) Payload() []byte { return e[EthernetHeaderLen:] }

// AppendEthernet appends an Ethernet II header to b.
func AppendEthernet(b []byte, dst, src MAC, t EtherType) []byte {
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	return binary.BigEndian.AppendUint16(b, uint16(t))
}
