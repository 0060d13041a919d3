package packet

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// fuzzSeeds are frames of every kind Decode reads, for the fuzzers to
// start from (testdata/fuzz/FuzzDecode has them too, and what the
// fuzzers found).
func fuzzSeeds(t testing.TB) [][]byte {
	ns := append(make([]byte, 4), ip6B.AsSlice()...)
	return [][]byte{
		tcpFrame(cli4, srv4, TCPFields{Seq: 1000, Flags: trace.SYN, Window: 64240, Options: synOpts()}, nil, 0, nil),
		tcpFrame(srv4, cli4, TCPFields{Seq: 1, Ack: 1000, Flags: trace.ACK, Options: sackOpts(trace.SACKBlock{Start: 3000, End: 4000})}, nil, 0, nil),
		tcpFrame(cli6, srv6, TCPFields{Seq: 5, Flags: trace.ACK, Options: tsOpts()}, []byte("hello"), ProtoHopByHop,
			AppendIPv6Options(AppendIPv6Options(nil, ProtoFragment, []byte{5, 2, 0, 0}), ProtoTCP, nil)),
		ipFrame(ip6A, ip6B, ProtoTCP, make([]byte, 30), ProtoFragment, AppendIPv6Fragment(nil, ProtoTCP, 8, false, 1)),
		AppendARP(AppendEthernet(nil, macB, macA, EtherTypeARP), ARPRequest, macA, ip4A, MAC{}, ip4B),
		ipFrame(ip4B, ip4A, ProtoICMPv4, AppendICMPv4(nil, ICMPv4DstUnreachable, ICMPv4FragNeeded, []byte{0, 0, 5, 0xdc}), 0, nil),
		ipFrame(ip6A, ip6B, ProtoICMPv6, AppendICMPv6(nil, ICMPv6NeighborSolicit, 0, ns, ip6A, ip6B), 0, nil),
		udpFrame(netip.AddrPortFrom(ip4A, 33000), netip.AddrPortFrom(ip4B, 53), dnsMessage(t, "ftp.example.org.", false, 0)),
		udpFrame(netip.AddrPortFrom(ip4A, 68), netip.AddrPortFrom(ip4B, 67), dhcpMessage(t, 1)),
	}
}

// FuzzDecode: frames come from the wire and from a TAP device, which
// anyone on the network can send to; none may crash the decoder, and
// what it reads from a frame's first HeaderBytes must be what it reads
// from the whole frame.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, false)
		f.Add(s[EthernetHeaderLen:], true)
	}
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		link := LinkEthernet
		if raw {
			link = LinkRaw
		}
		whole := Decode(b, len(b), link)
		if whole.Frame != len(b) || whole.Len < 0 || whole.Proto == "" {
			t.Fatalf("Decode = %+v", whole)
		}
		if whole.Proto == "tcp" && whole.Info == "" && (!whole.Src.IsValid() || !whole.Dst.IsValid()) {
			t.Fatalf("a TCP segment without its addresses: %+v", whole)
		}
		if len(whole.SACK) > 4 {
			t.Fatalf("%d SACK blocks: forty bytes of options hold four", len(whole.SACK))
		}
		head := Decode(b[:min(len(b), HeaderBytes)], len(b), link)
		if head.Proto == "tcp" && head.Info == "" {
			h, w := head, whole
			h.SACK, w.SACK, h.Options, w.Options = nil, nil, "", "" // options may lie past the head
			h.WindowScale, w.WindowScale = 0, 0
			if !reflect.DeepEqual(h, w) {
				t.Fatalf("the head decodes as\n%+v\nthe whole frame as\n%+v", head, whole)
			}
		}
		NeedsPayload(b, link)
	})
}

// FuzzTCPRoundTrip emits TCP segments from arbitrary fields and decodes
// them: every field must come back as it went in, over IPv4 and IPv6.
func FuzzTCPRoundTrip(f *testing.F) {
	f.Add(uint16(40000), uint16(21), uint32(1000), uint32(0), uint8(trace.SYN), uint16(64240), uint16(1460), uint8(7), uint8(0), uint16(0), false)
	f.Add(uint16(1), uint16(2), uint32(0xffffffff), uint32(5), uint8(trace.ACK), uint16(0), uint16(0), uint8(255), uint8(3), uint16(1400), true)
	f.Fuzz(func(t *testing.T, sport, dport uint16, seq, ack uint32, flags uint8, win, mss uint16, ws, nsack uint8, n uint16, v6 bool) {
		var opts []byte
		var blocks []trace.SACKBlock
		syn := trace.TCPFlags(flags).Has(trace.SYN)
		if syn {
			if mss != 0 {
				opts = AppendTCPOptMSS(opts, mss)
			}
			opts = AppendTCPOptSACKPermitted(opts)
			opts = AppendTCPOptWindowScale(AppendTCPOptNOP(opts), ws)
		} else {
			for i := range int(nsack % 5) {
				blocks = append(blocks, trace.SACKBlock{Start: seq + uint32(i)*100, End: seq + uint32(i)*100 + 50})
			}
			if len(blocks) > 0 {
				opts = AppendTCPOptSACK(AppendTCPOptNOP(AppendTCPOptNOP(opts)), blocks...)
			}
		}
		src, dst := netip.AddrPortFrom(ip4A, sport), netip.AddrPortFrom(ip4B, dport)
		if v6 {
			src, dst = netip.AddrPortFrom(ip6A, sport), netip.AddrPortFrom(ip6B, dport)
		}
		payload := make([]byte, n%9000)
		b := tcpFrame(src, dst, TCPFields{Seq: seq, Ack: ack, Flags: trace.TCPFlags(flags), Window: win, Options: opts}, payload, 0, nil)
		ip := b[EthernetHeaderLen:]
		l4 := ip[IPv4HeaderLen:]
		if v6 {
			l4 = ip[IPv6HeaderLen:]
		}
		if !TCP(l4).ChecksumValid(src.Addr(), dst.Addr()) {
			t.Fatal("the checksum just computed is wrong")
		}
		got := Decode(b[:min(len(b), HeaderBytes)], len(b), LinkEthernet)
		want := trace.Segment{Proto: "tcp", Src: src, Dst: dst, Flags: trace.TCPFlags(flags), Seq: seq, Ack: ack, Window: win,
			Len: len(payload), Frame: len(b), WindowScale: -1, SACK: blocks,
			EtherType: uint16(EtherTypeIPv4), EthSrc: trace.MAC(macA), EthDst: trace.MAC(macB), TTL: 64, DF: true}
		if v6 {
			want.EtherType, want.DF = uint16(EtherTypeIPv6), false
		}
		if syn {
			o := TCPOptions{MSS: mss, SACKPermitted: true, WindowScale: min(int(ws), 14)}
			want.Options, want.WindowScale = o.SynSummary(), o.WindowScale
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
		}
	})
}

// FuzzPCAPReader: a pcap file is untrusted input too (nsftp show may be
// handed one); the reader must end with an error or io.EOF, never panic
// or allocate what a header claims.
func FuzzPCAPReader(f *testing.F) {
	var b bytes.Buffer
	p, _ := NewPCAPWriter(&b, LinkEthernet, 0)
	for _, s := range fuzzSeeds(f) {
		p.WriteFrame(time.Unix(1, 2), len(s), s)
	}
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewPCAPReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range len(b) {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if len(rec.Data) > r.SnapLen() || rec.Size < len(rec.Data) {
				t.Fatalf("a record of %d bytes of %d, snap length %d", len(rec.Data), rec.Size, r.SnapLen())
			}
		}
		t.Fatal("more records than bytes")
	})
}
