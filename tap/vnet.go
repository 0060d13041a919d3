package tap

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// vnetHdrLen is the size of struct virtio_net_hdr (linux/virtio_net.h),
// which precedes every frame on the offload path:
//
//	u8 flags; u8 gso_type; le16 hdr_len; le16 gso_size; le16 csum_start; le16 csum_offset
const vnetHdrLen = 10

// encodeVnetHdr describes pkt to the kernel: where to finish its TCP
// checksum (the stack wrote only the pseudo-header sum) and, for a segment
// longer than the MSS, how to cut it up.
func encodeVnetHdr(h *[vnetHdrLen]byte, pkt *gstack.PacketBuffer) {
	*h = [vnetHdrLen]byte{}
	gso := pkt.GSOOptions
	if gso.Type == gstack.GSONone {
		return
	}
	binary.LittleEndian.PutUint16(h[2:], uint16(pkt.HeaderSize()))
	if gso.NeedsCsum {
		h[0] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM
		binary.LittleEndian.PutUint16(h[6:], header.EthernetMinimumSize+gso.L3HdrLen)
		binary.LittleEndian.PutUint16(h[8:], gso.CsumOffset)
	}
	if pkt.Data().Size() > int(gso.MSS) {
		switch gso.Type {
		case gstack.GSOTCPv4:
			h[1] = unix.VIRTIO_NET_HDR_GSO_TCPV4
		case gstack.GSOTCPv6:
			h[1] = unix.VIRTIO_NET_HDR_GSO_TCPV6
		}
		binary.LittleEndian.PutUint16(h[4:], gso.MSS)
	}
}

// vnetChecksumOK reports whether the kernel vouches for a received frame's
// checksums: it either left the checksum to be completed (the segment
// never left the machine, so it cannot have been corrupted on a wire) or
// checked it already.
func vnetChecksumOK(flags byte) bool {
	return flags&(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM|unix.VIRTIO_NET_HDR_F_DATA_VALID) != 0
}

// checkFrame checks the IP header and transport checksums of a frame the
// kernel has not vouched for, such as one it forwarded from another
// interface, and says why it must be dropped, or "" if it may pass. The
// offload path and GRO tell the stack to skip these checks (see
// endpoint.Capabilities), so they happen here instead. Fragments are
// passed with only their IP header checked: their transport checksum
// covers the reassembled datagram, which exists only inside the stack.
// (With Config.DisableGRO on the plain path, the stack checks everything
// itself, reassembled datagrams included.)
func checkFrame(pkt *gstack.PacketBuffer, proto tcpip.NetworkProtocolNumber) string {
	data := pkt.Data()
	switch proto {
	case header.IPv4ProtocolNumber:
		h, ok := data.PullUp(header.IPv4MinimumSize)
		if !ok {
			return "truncated IPv4 header"
		}
		hl := int(header.IPv4(h).HeaderLength())
		if hl < header.IPv4MinimumSize {
			return "bad IPv4 header length"
		}
		if h, ok = data.PullUp(hl); !ok {
			return "truncated IPv4 header"
		}
		ip := header.IPv4(h)
		total := int(ip.TotalLength())
		if total < hl || total > data.Size() {
			return "bad IPv4 total length"
		}
		if !ip.IsChecksumValid() {
			return "bad IPv4 header checksum"
		}
		if ip.More() || ip.FragmentOffset() != 0 {
			return ""
		}
		data.CapLength(total) // drop Ethernet padding, as the stack would
		return transportChecksum(pkt, ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress(), hl, total-hl)
	case header.IPv6ProtocolNumber:
		h, ok := data.PullUp(header.IPv6MinimumSize)
		if !ok {
			return "truncated IPv6 header"
		}
		ip := header.IPv6(h)
		total := header.IPv6MinimumSize + int(ip.PayloadLength())
		if total > data.Size() {
			return "bad IPv6 payload length"
		}
		data.CapLength(total)
		src, dst := ip.SourceAddress(), ip.DestinationAddress()
		next, off := ip.NextHeader(), header.IPv6MinimumSize
		for {
			switch header.IPv6ExtensionHeaderIdentifier(next) {
			case header.IPv6HopByHopOptionsExtHdrIdentifier, header.IPv6RoutingExtHdrIdentifier, header.IPv6DestinationOptionsExtHdrIdentifier:
				eh, ok := data.PullUp(off + 2)
				if !ok {
					return "truncated IPv6 extension header"
				}
				next, off = eh[off], off+(int(eh[off+1])+1)*8
				if off > total {
					return "bad IPv6 extension header length"
				}
				continue
			case header.IPv6FragmentExtHdrIdentifier, header.IPv6NoNextHeaderIdentifier:
				return ""
			}
			return transportChecksum(pkt, tcpip.TransportProtocolNumber(next), src, dst, off, total-off)
		}
	default:
		// ARP carries no checksum; anything else the stack drops.
		return ""
	}
}

// transportChecksum checks the checksum of the transport segment at
// offset off, length bytes long, within pkt's data, and names it if it is
// wrong.
func transportChecksum(pkt *gstack.PacketBuffer, proto tcpip.TransportProtocolNumber, src, dst tcpip.Address, off, length int) string {
	data := pkt.Data()
	// ChecksumAtOffset counts from the start of the frame, not of the
	// data: skip the Ethernet header the reader consumed.
	off += pkt.HeaderSize()
	name := "TCP"
	switch proto {
	case header.TCPProtocolNumber:
	case header.ICMPv6ProtocolNumber:
		name = "ICMPv6"
	case header.UDPProtocolNumber:
		name = "UDP"
		h, ok := data.PullUp(off - pkt.HeaderSize() + header.UDPMinimumSize)
		if !ok {
			return "truncated UDP header"
		}
		if header.UDP(h[off-pkt.HeaderSize():]).Checksum() == 0 && src.Len() == header.IPv4AddressSize {
			return "" // IPv4 UDP without a checksum
		}
	case header.ICMPv4ProtocolNumber:
		if data.ChecksumAtOffset(off) != 0xffff {
			return "bad ICMP checksum"
		}
		return ""
	default:
		return ""
	}
	if length > 0xffff {
		return "bad " + name + " length"
	}
	xsum := header.PseudoHeaderChecksum(proto, src, dst, uint16(length))
	if checksum.Combine(xsum, data.ChecksumAtOffset(off)) != 0xffff {
		return "bad " + name + " checksum"
	}
	return ""
}
