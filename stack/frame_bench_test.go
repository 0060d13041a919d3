package stack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/trace"
)

// BenchmarkFrameRecord is what recording one frame of a bulk transfer
// costs a traced host, into the text view: the capture's decoding, the
// timeline's connection and the recorder, for a 64 KiB data segment of
// an established connection (as a TAP with offload hands them over).
//
//	go test ./stack/ -run '^$' -bench FrameRecord -benchmem
func BenchmarkFrameRecord(b *testing.B) {
	rec := trace.NewRecorder(trace.NewText(io.Discard, trace.TextOptions{}))
	defer rec.Stop()
	p, err := NewPair(PairConfig{Server: HostConfig{Observer: rec.Record}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	l, err := p.Server.Listen(trace.WithBacklog(trace.WithLabel(ctx, trace.Data), 1), "tcp", "192.0.2.2:20")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := p.Client.DialContext(trace.WithLabel(ctx, trace.Data), "tcp", "192.0.2.2:20")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if s := <-accepted; s != nil {
		defer s.Close()
	}
	src := c.LocalAddr().(*net.TCPAddr).AddrPort()
	frame := dataFrame(src, netip.MustParseAddrPort("192.0.2.2:20"), 65000)
	capture := p.Server.capture
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	b.ReportAllocs()
	for b.Loop() {
		capture.record(trace.In, pkt, nil)
	}
}

// dataFrame is an Ethernet frame holding a TCP data segment of n bytes.
func dataFrame(src, dst netip.AddrPort, n int) []byte {
	const tcpLen = header.TCPMinimumSize + 12 // timestamps
	b := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+tcpLen+n)
	header.Ethernet(b).Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(header.IPv4MinimumSize + tcpLen + n), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.Addr().As4()), DstAddr: tcpip.AddrFrom4(dst.Addr().As4()),
	})
	tcp := header.TCP(ip[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: 1000, AckNum: 1, DataOffset: tcpLen, Flags: header.TCPFlagAck, WindowSize: 1000})
	header.EncodeTSOption(1, 2, tcp[header.TCPMinimumSize:])
	return b
}
