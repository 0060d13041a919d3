package stack

import (
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

// Default-route destinations: 0.0.0.0/0 and ::/0.
var (
	header4Any = mustSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	header6Any = mustSubnet(tcpip.AddrFrom16([16]byte{}), tcpip.MaskFromBytes(make([]byte, 16)))
)

func mustSubnet(a tcpip.Address, m tcpip.AddressMask) tcpip.Subnet {
	s, err := tcpip.NewSubnet(a, m)
	if err != nil {
		panic(err)
	}
	return s
}

const ipv6Proto = ipv6.ProtocolNumber

// noDeadline is the zero time, which clears a deadline.
var noDeadline time.Time

func toTCPIP(a netip.Addr) tcpip.Address {
	a = a.Unmap()
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

func fromTCPIP(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

func protoOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Unmap().Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func toFull(ap netip.AddrPort) tcpip.FullAddress {
	fa := tcpip.FullAddress{Port: ap.Port()}
	if ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		fa.Addr = toTCPIP(ap.Addr())
	}
	return fa
}

func fromFull(fa tcpip.FullAddress) netip.AddrPort {
	if fa.Addr.Len() == 0 {
		return netip.AddrPortFrom(netip.Addr{}, fa.Port)
	}
	return netip.AddrPortFrom(fromTCPIP(fa.Addr), fa.Port)
}

// tcpAddr converts to the net.Addr that net.Conn users expect, or nil.
func tcpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// eventAddr is an address as events show it: the zero value when unset,
// and 0.0.0.0 (or ::) for a port on no address in particular.
func eventAddr(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().IsValid() && ap.Port() == 0 {
		return netip.AddrPort{}
	}
	return unspecifiedIfNone(ap)
}

// unspecifiedIfNone gives a port without an address the IPv4 wildcard
// address, as bind(2)'s INADDR_ANY.
func unspecifiedIfNone(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().IsValid() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())
	}
	return ap
}
