package stack

import (
	"fmt"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Offload is what a wire does for its hosts that Linux's NICs, veth and
// loopback do for theirs: take TCP segments larger than the MTU.
type Offload int

// The offloads.
const (
	// OffloadNone: every frame is at most the MTU; each host's TCP builds
	// and processes every MTU-sized segment. What a lesson on a slow
	// path wants to see.
	OffloadNone Offload = iota
	// OffloadGSO: segments of up to 64 KiB cross the wire whole, as
	// veth and loopback pass them (and their checksums are left unfilled,
	// as there): the hosts' TCP works 64 KiB at a time, the wire sees
	// large frames. The fastest: for hermetic tests.
	OffloadGSO
	// OffloadTSO: each host's TCP builds segments of up to 64 KiB, the
	// wire cuts them into MTU-sized frames (TCP segmentation offload, as
	// a NIC does), and the receiving host merges consecutive frames again
	// before its TCP sees them (GRO). A capture of the wire shows the
	// frames a real network carries; the stacks work 64 KiB at a time.
	OffloadTSO
)

func (o Offload) String() string {
	switch o {
	case OffloadGSO:
		return "gso"
	case OffloadTSO:
		return "tso"
	}
	return "none"
}

// gsoMaxSize is the largest segment a host hands an offloading wire,
// headers included, as Linux's GSO_MAX_SIZE.
const gsoMaxSize = 1 << 16

var _ gstack.GSOEndpoint = (*Port)(nil)

// GSOMaxSize implements stack.GSOEndpoint.
func (p *Port) GSOMaxSize() uint32 { return gsoMaxSize }

// SupportedGSO implements stack.GSOEndpoint. With an offload the wire is
// the "host" that cuts large segments up (or lets them through whole).
// Without, none: netstack's software GSO ("gVisor GSO", which builds a
// batch of MSS-sized segments at once) moved no more bytes across a clean
// wire (70 against 81 MB/s at MTU 1500, in one noisy run each), and under
// bursty loss it stalled a transfer for good (TestBurstLoss timed out).
func (p *Port) SupportedGSO() gstack.SupportedGSO {
	if p.w.cfg.Offload == OffloadNone {
		return gstack.GSONotSupported
	}
	return gstack.HostGSOSupported
}

// segment cuts a TCP segment larger than the MSS into MTU-sized frames,
// as a NIC's TCP segmentation offload does: each frame has the original's
// headers with the IP length (and IPv4 identification and checksum), the
// TCP sequence number and flags fixed up, and, when withCsum, its TCP
// checksum computed. The frames are returned with their Ethernet headers;
// the caller owns them.
func segment(pkt *gstack.PacketBuffer, withCsum bool) ([]buffer.Buffer, error) {
	gso := pkt.GSOOptions
	eth := pkt.LinkHeader().Slice()
	ip := pkt.NetworkHeader().Slice()
	tcp := header.TCP(pkt.TransportHeader().Slice())
	if len(eth) != header.EthernetMinimumSize || len(tcp) < header.TCPMinimumSize || gso.MSS == 0 {
		return nil, fmt.Errorf("stack: cannot segment a %v packet (link %d, TCP %d bytes, MSS %d)", gso.Type, len(eth), len(tcp), gso.MSS)
	}
	payload := pkt.Data().ToBuffer()
	defer payload.Release()
	total := int(payload.Size())
	mss := int(gso.MSS)
	v4 := gso.Type == gstack.GSOTCPv4
	var ipID uint16
	if v4 {
		ipID = header.IPv4(ip).ID()
	}
	seq := tcp.SequenceNumber()
	flags := tcp.Flags()
	frames := make([]buffer.Buffer, 0, (total+mss-1)/mss)
	for off, i := 0, 0; off < total; off, i = off+mss, i+1 {
		n := min(mss, total-off)
		hdr := make([]byte, len(eth)+len(ip)+len(tcp))
		copy(hdr, eth)
		h := hdr[len(eth):]
		copy(h, ip)
		th := header.TCP(h[len(ip):])
		copy(th, tcp)
		var src, dst tcpip.Address
		if v4 {
			iph := header.IPv4(h[:len(ip)])
			iph.SetTotalLength(uint16(len(ip) + len(tcp) + n))
			iph.SetID(ipID + uint16(i))
			iph.SetChecksum(0)
			iph.SetChecksum(^iph.CalculateChecksum())
			src, dst = iph.SourceAddress(), iph.DestinationAddress()
		} else {
			iph := header.IPv6(h[:len(ip)])
			iph.SetPayloadLength(uint16(len(ip) - header.IPv6MinimumSize + len(tcp) + n))
			src, dst = iph.SourceAddress(), iph.DestinationAddress()
		}
		th.SetSequenceNumber(seq + uint32(off))
		f := flags
		if off+n < total {
			f &^= header.TCPFlagFin | header.TCPFlagPsh // only the last frame ends the segment
		}
		if i > 0 {
			f &^= header.TCPFlagCwr // only the first frame signals
		}
		th.SetFlags(uint8(f))
		data := payload.Clone()
		data.TrimFront(int64(off))
		data.Truncate(int64(n))
		if withCsum {
			th.SetChecksum(0)
			xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)+n))
			xsum = checksum.Combine(xsum, checksum.Checksum(th, 0))
			xsum = checksum.Combine(xsum, data.Checksum(0))
			th.SetChecksum(^xsum)
		}
		frame := buffer.MakeWithData(hdr)
		frame.Merge(&data)
		frames = append(frames, frame)
	}
	return frames, nil
}

// fillChecksum computes the TCP checksum of a frame the stack left to the
// NIC (TX checksum offload), for a wire that wants checksums on.
func fillChecksum(frame []byte) {
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	var src, dst tcpip.Address
	var l4 []byte
	switch header.Ethernet(frame).Type() {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(frame[header.EthernetMinimumSize:])
		if !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.TCPProtocolNumber || ip.FragmentOffset() != 0 {
			return
		}
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
		l4 = ip[ip.HeaderLength():ip.TotalLength()]
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(frame[header.EthernetMinimumSize:])
		if !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.TCPProtocolNumber {
			return
		}
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
		l4 = ip[header.IPv6MinimumSize : header.IPv6MinimumSize+int(ip.PayloadLength())]
	default:
		return
	}
	if len(l4) < header.TCPMinimumSize {
		return
	}
	th := header.TCP(l4)
	th.SetChecksum(0)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(l4)))
	th.SetChecksum(^checksum.Checksum(l4, xsum))
}

// merge hands one frame, its Ethernet header consumed, to d through GRO,
// which merges a TCP stream's consecutive frames into one segment before
// the stack sees it, as Linux's GRO does.
func (p *Port) merge(d gstack.NetworkDispatcher, mac tcpip.LinkAddress, eth header.Ethernet, pkt *gstack.PacketBuffer) {
	if eth.DestinationAddress() != mac {
		p.deliverPacket(d, mac, eth, pkt) // not a unicast TCP frame for us: as it is
		return
	}
	pkt.PktType = tcpip.PacketHost
	pkt.NetworkProtocolNumber = eth.Type()
	// The wire computed the checksums (or, on a wire that skips them,
	// nobody did): GRO checks them only where frames can be corrupted.
	pkt.RXChecksumValidated = !p.w.corrupting
	p.w.stats.delivered.Add(1)
	if d != p.gro.Dispatcher {
		p.gro.Flush()
		p.gro.Dispatcher = d
	}
	p.gro.Enqueue(pkt)
}
