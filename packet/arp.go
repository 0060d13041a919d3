package packet

import (
	"encoding/binary"
	"net/netip"
)

// ARPLen is the length of an ARP packet for IPv4 over Ethernet (RFC 826),
// the only kind nsftp's links carry.
const ARPLen = 28

// ARP operations (RFC 826).
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ARP is a view of an ARP packet. Its methods read IPv4-over-Ethernet
// offsets: check Valid first.
type ARP []byte

// Valid reports whether a is long enough and says it maps IPv4 addresses
// (protocol type 0x0800, length 4) to Ethernet ones (hardware type 1,
// length 6).
func (a ARP) Valid() bool {
	return len(a) >= ARPLen && binary.BigEndian.Uint16(a[0:2]) == 1 &&
		EtherType(binary.BigEndian.Uint16(a[2:4])) == EtherTypeIPv4 && a[4] == 6 && a[5] == 4
}

// Op is the operation: ARPRequest or ARPReply.
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:8]) }

// SenderMAC is the sender's hardware address.
func (a ARP) SenderMAC() MAC { return MAC(a[8:14]) }

// SenderIP is the sender's protocol address.
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }

// TargetMAC is the target's hardware address (zero in a request).
func (a ARP) TargetMAC() MAC { return MAC(a[18:24]) }

// TargetIP is the target's protocol address.
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// AppendARP appends an ARP packet mapping IPv4 to Ethernet addresses.
func AppendARP(b []byte, op uint16, senderMAC MAC, senderIP netip.Addr, targetMAC MAC, targetIP netip.Addr) []byte {
	b = append(b, 0, 1, 0x08, 0x00, 6, 4)
	b = binary.BigEndian.AppendUint16(b, op)
	s, t := senderIP.As4(), targetIP.As4()
	b = append(b, senderMAC[:]...)
	b = append(b, s[:]...)
	b = append(b, targetMAC[:]...)
	return append(b, t[:]...)
}
