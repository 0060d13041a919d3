package stack_test

import (
	"net"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/pipe"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/nsftp/nsftp/stack"
)

// pipePair is two bare gVisor stacks joined by gVisor's pipe link, the
// baseline BenchmarkWireVsPipe measures the wire against: gonet's
// net.Conn over them, nothing of nsftp's.
type pipePair struct {
	client, server *gstack.Stack
}

var (
	pipeClient = tcpip.AddrFrom4([4]byte{192, 0, 2, 1})
	pipeServer = tcpip.AddrFrom4([4]byte{192, 0, 2, 2})
)

func newPipePair(b *testing.B, mtu uint32) *pipePair {
	b.Helper()
	e1, e2 := pipe.New("\x02\x00\x00\x00\x00\x01", "\x02\x00\x00\x00\x00\x02", mtu)
	p := &pipePair{client: newBareStack(b, e1, pipeClient), server: newBareStack(b, e2, pipeServer)}
	b.Cleanup(func() {
		for _, s := range []*gstack.Stack{p.client, p.server} {
			s.Close()
			s.Wait()
		}
	})
	return p
}

func newBareStack(b *testing.B, ep gstack.LinkEndpoint, addr tcpip.Address) *gstack.Stack {
	b.Helper()
	s := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{tcp.NewProtocol},
	})
	// The TCP settings nsftp's hosts use, so that only the link differs.
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(false)
	send := stack.DefaultSendBuffer
	recv := stack.DefaultReceiveBuffer
	sendOpt := tcpip.TCPSendBufferSizeRangeOption{Min: send.Min, Default: send.Default, Max: send.Max}
	recvOpt := tcpip.TCPReceiveBufferSizeRangeOption{Min: recv.Min, Default: recv.Default, Max: recv.Max}
	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &moderate, &sendOpt, &recvOpt} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			b.Fatalf("bare stack: %T: %s", opt, err)
		}
	}
	if err := s.CreateNIC(1, ep); err != nil {
		b.Fatalf("bare stack: CreateNIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr.WithPrefix()}
	pa.AddressWithPrefix.PrefixLen = 24
	if err := s.AddProtocolAddress(1, pa, gstack.AddressProperties{}); err != nil {
		b.Fatalf("bare stack: AddProtocolAddress: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s
}

// Listen listens on the server stack's port 20.
func (p *pipePair) Listen() (net.Listener, error) {
	return gonet.ListenTCP(p.server, tcpip.FullAddress{NIC: 1, Addr: pipeServer, Port: 20}, ipv4.ProtocolNumber)
}

// Dial connects from the client stack to the server's port 20.
func (p *pipePair) Dial() (net.Conn, error) {
	return gonet.DialTCP(p.client, tcpip.FullAddress{NIC: 1, Addr: pipeServer, Port: 20}, ipv4.ProtocolNumber)
}
