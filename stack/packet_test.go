package stack_test

import (
	"bytes"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestPacketAgreesWithNetstack holds the packet package, which knows no
// gVisor, to gVisor's own header package: every TCP frame of a real
// exchange (a transfer through a lossy wire, so with SACK blocks) decodes
// to the fields netstack's parser reads, and the frames packet's
// emitters build carry checksums netstack accepts.
func TestPacketAgreesWithNetstack(t *testing.T) {
	stacktest.CheckGoroutines(t)
	var pcap bytes.Buffer
	p := stacktest.Pair(t, stack.PairConfig{
		Wire:   stack.WireConfig{Path: stack.Path{Loss: 3}, Seed: 7},
		Client: stack.HostConfig{Capture: &stack.CaptureConfig{PCAP: &pcap}},
	})
	l := listen(t, p.Server, serverAddr)
	c := dial(t, p.Client, serverAddr)
	s := accept(t, l)
	go func() {
		s.Write(bytes.Repeat([]byte("x"), 1<<20))
		s.Close()
	}()
	if n, err := io.Copy(io.Discard, c); n != 1<<20 || err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	p.Client.Close()

	r, err := packet.NewPCAPReader(&pcap)
	if err != nil {
		t.Fatal(err)
	}
	frames, sacks, syns := 0, 0, 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got := packet.Decode(rec.Data, rec.Size, r.LinkType())
		eth := header.Ethernet(rec.Data)
		if eth.Type() != header.IPv4ProtocolNumber {
			continue
		}
		ip := header.IPv4(rec.Data[header.EthernetMinimumSize:])
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		tcp := header.TCP(ip.Payload())
		frames++
		want := trace.Segment{Proto: "tcp", Frame: rec.Size, WindowScale: -1,
			Src:   netip.AddrPortFrom(netip.AddrFrom4(ip.SourceAddress().As4()), tcp.SourcePort()),
			Dst:   netip.AddrPortFrom(netip.AddrFrom4(ip.DestinationAddress().As4()), tcp.DestinationPort()),
			Flags: trace.TCPFlags(tcp.Flags()), Seq: tcp.SequenceNumber(), Ack: tcp.AckNumber(), Window: tcp.WindowSize(),
			Len:       int(ip.PayloadLength()) - int(tcp.DataOffset()),
			EtherType: uint16(eth.Type()), TTL: ip.TTL(), IPID: ip.ID(), DF: ip.Flags()&header.IPv4FlagDontFragment != 0}
		copy(want.EthSrc[:], eth.SourceAddress())
		copy(want.EthDst[:], eth.DestinationAddress())
		opts := tcp.Options()
		if tcp.Flags()&header.TCPFlagSyn != 0 {
			syns++
			o := header.ParseSynOptions(opts, tcp.Flags()&header.TCPFlagAck != 0)
			want.WindowScale = o.WS
			po := packet.ParseTCPOptions(opts)
			if int(po.MSS) != int(o.MSS) || po.SACKPermitted != o.SACKPermitted || po.Timestamps != o.TS || po.WindowScale != o.WS {
				t.Errorf("SYN options: packet reads %+v, netstack %+v", po, o)
			}
			want.Options = po.SynSummary()
		} else {
			for _, b := range header.ParseTCPOptions(opts).SACKBlocks {
				want.SACK = append(want.SACK, trace.SACKBlock{Start: uint32(b.Start), End: uint32(b.End)})
			}
		}
		if len(want.SACK) > 0 {
			sacks++
		}
		if !equalSegments(got, want) {
			t.Errorf("frame %d:\npacket  %+v\nnetstack %+v", frames, got, want)
		}
	}
	if frames < 500 || syns != 2 || sacks == 0 {
		t.Errorf("%d TCP frames, %d SYNs, %d with SACK blocks: the run shows too little", frames, syns, sacks)
	}
	t.Logf("%d TCP frames agree, %d with SACK blocks; wire %+v", frames, sacks, p.Wire.Stats())

	// What packet emits, netstack's checksums accept.
	src, dst := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:21")
	payload := []byte("RETR big\r\n")
	opts := packet.AppendTCPOptTimestamps(packet.AppendTCPOptNOP(packet.AppendTCPOptNOP(nil)), 1, 2)
	seg := packet.AppendTCP(nil, packet.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), Seq: 9, Ack: 10,
		Flags: trace.PSH | trace.ACK, Window: 500, Options: opts}, src.Addr(), dst.Addr(), payload)
	ipb := packet.AppendIPv4(nil, packet.IPv4Fields{Src: src.Addr(), Dst: dst.Addr(), Protocol: packet.ProtoTCP}, len(seg))
	if !header.IPv4(ipb).IsChecksumValid() {
		t.Error("netstack finds packet's IPv4 header checksum wrong")
	}
	srcA, dstA := tcpip.AddrFrom4(src.Addr().As4()), tcpip.AddrFrom4(dst.Addr().As4())
	if !header.TCP(seg).IsChecksumValid(srcA, dstA, checksum.Checksum(payload, 0), uint16(len(payload))) {
		t.Error("netstack finds packet's TCP checksum wrong")
	}
	u := packet.AppendUDP(nil, src, dst, payload)
	if !header.UDP(u).IsChecksumValid(srcA, dstA, checksum.Checksum(payload, 0)) {
		t.Error("netstack finds packet's UDP checksum wrong")
	}
}

func equalSegments(a, b trace.Segment) bool { return reflect.DeepEqual(a, b) }
