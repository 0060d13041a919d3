package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// Port is one host's attachment to a Wire: an Ethernet link endpoint.
type Port struct {
	w    *Wire
	id   int        // its number on the wire, from 1
	path *pathState // its outgoing frames' path; nil when clean

	mu         sync.Mutex // guards the fields below and the queue
	dispatcher gstack.NetworkDispatcher
	mtu        uint32
	mac        tcpip.LinkAddress
	onClose    func()
	closed     bool

	queue  frameQueue
	held   *queuedFrame // a frame being reordered: it goes after the next one
	gro    gro.GRO      // with OffloadTSO: merges frames for the stack; run's goroutine only
	signal chan struct{}
	done   chan struct{}
	exited chan struct{}
}

var _ gstack.LinkEndpoint = (*Port)(nil)

// deliver hands one frame to the attached stack: as it is, or through
// GRO (merge).
func (p *Port) deliver(frame buffer.Buffer, gro bool) {
	p.mu.Lock()
	d := p.dispatcher
	mac := p.mac
	p.mu.Unlock()
	if d == nil {
		frame.Release()
		return
	}
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: frame})
	defer pkt.DecRef()
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return
	}
	if gro {
		p.merge(d, mac, header.Ethernet(hdr), pkt)
		return
	}
	p.deliverPacket(d, mac, header.Ethernet(hdr), pkt)
}

// deliverPacket hands a frame, its Ethernet header consumed, to d.
func (p *Port) deliverPacket(d gstack.NetworkDispatcher, mac tcpip.LinkAddress, eth header.Ethernet, pkt *gstack.PacketBuffer) {
	switch dst := eth.DestinationAddress(); {
	case dst == header.EthernetBroadcastAddress:
		pkt.PktType = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		pkt.PktType = tcpip.PacketMulticast
	case dst == mac:
		pkt.PktType = tcpip.PacketHost
	default:
		pkt.PktType = tcpip.PacketOtherHost
	}
	p.w.stats.delivered.Add(1)
	d.DeliverNetworkPacket(eth.Type(), pkt)
}

// WritePackets implements stack.LinkEndpoint.
func (p *Port) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	off := p.w.cfg.Offload
	for _, pkt := range pkts.AsSlice() {
		dst := header.Ethernet(pkt.LinkHeader().Slice()).DestinationAddress()
		n++
		switch {
		case off == OffloadTSO && pkt.GSOOptions.Type != gstack.GSONone && pkt.Data().Size() > int(pkt.GSOOptions.MSS):
			frames, err := segment(pkt, !p.w.skipCsum)
			if err != nil {
				continue // a packet the wire cannot read is lost, as on a NIC
			}
			for _, f := range frames {
				p.w.transmit(p, f, dst)
			}
		case off == OffloadTSO && !p.w.skipCsum:
			// The stack left checksums to the NIC, and this wire's
			// frames should carry them.
			b := pkt.ToBuffer()
			flat := b.Flatten()
			b.Release()
			fillChecksum(flat)
			p.w.transmit(p, buffer.MakeWithData(flat), dst)
		default:
			p.w.transmit(p, pkt.ToBuffer(), dst)
		}
	}
	return n, nil
}

// Attach implements stack.LinkEndpoint.
func (p *Port) Attach(d gstack.NetworkDispatcher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatcher = d
}

// IsAttached implements stack.LinkEndpoint.
func (p *Port) IsAttached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dispatcher != nil
}

// MTU implements stack.LinkEndpoint.
func (p *Port) MTU() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mtu
}

// SetMTU implements stack.LinkEndpoint.
func (p *Port) SetMTU(mtu uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mtu = mtu
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (*Port) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (p *Port) LinkAddress() tcpip.LinkAddress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mac
}

// SetLinkAddress implements stack.LinkEndpoint.
func (p *Port) SetLinkAddress(mac tcpip.LinkAddress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mac = mac
}

// Capabilities implements stack.LinkEndpoint. Neighbours are resolved
// with ARP and NDP. Checksums are left out only on a wire that cannot
// corrupt frames, unless WireConfig.Checksums asks for them.
func (p *Port) Capabilities() gstack.LinkEndpointCapabilities { return p.w.caps }

// ARPHardwareType implements stack.LinkEndpoint.
func (*Port) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: an Ethernet II header.
func (*Port) AddHeader(pkt *gstack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (*Port) ParseHeader(pkt *gstack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Wait implements stack.LinkEndpoint. It does not wait for the delivery
// goroutine: the stack calls Wait with its own lock held, and a delivery
// in progress may need that lock. Host.Close waits after the stack lets go.
func (*Port) Wait() {}

// waitClosed waits until the delivery goroutine has exited after Close.
func (p *Port) waitClosed() { <-p.exited }

// Close implements stack.LinkEndpoint: the port stops delivering and its
// goroutine exits.
func (p *Port) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.dispatcher = nil
	onClose := p.onClose
	p.mu.Unlock()
	close(p.done)
	if onClose != nil {
		onClose()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (p *Port) SetOnCloseAction(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onClose = f
}
