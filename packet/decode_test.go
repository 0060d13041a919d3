package packet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/nsftp/nsftp/trace"
)

var (
	cli4 = netip.AddrPortFrom(ip4A, 40000)
	srv4 = netip.AddrPortFrom(ip4B, 21)
	cli6 = netip.AddrPortFrom(ip6A, 40000)
	srv6 = netip.AddrPortFrom(ip6B, 21)
)

func port0(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 0) }

// TestDecode reads the frames nsftp's links carry as the trace shows
// them, each case citing the RFC section that lays its bytes out.
func TestDecode(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 65000)
	routerAlert := []byte{5, 2, 0, 0} // RFC 2711: MLD's router alert
	ns := append(make([]byte, 4), ip6B.AsSlice()...)
	na := append(append([]byte{0x60, 0, 0, 0}, ip6B.AsSlice()...), 2, 1, 2, 0x6e, 0x73, 0x66, 0x74, 2)
	ra := []byte{64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0} // hop limit, flags, lifetime, reachable, retrans
	ra = append(ra, 3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0)
	ra = append(ra, netip.MustParseAddr("2001:db8:1::").AsSlice()...)
	for _, tc := range []struct {
		name  string
		frame []byte
		size  int // 0: len(frame)
		link  LinkType
		want  trace.Segment
	}{
		{
			// RFC 793 section 3.1, RFC 7323 section 2 and 3, RFC 2018 section 2.
			name:  "SYN with Linux's options",
			frame: tcpFrame(cli4, srv4, TCPFields{Seq: 1000, Flags: trace.SYN, Window: 64240, Options: synOpts()}, nil, 0, nil),
			want: trace.Segment{Proto: "tcp", Src: cli4, Dst: srv4, Flags: trace.SYN, Seq: 1000, Window: 64240,
				Options: "mss=1460,sackOK,ts,wscale=7", WindowScale: 7},
		},
		{
			// RFC 7323 appendix A: NOP, NOP, timestamps on every segment.
			name:  "data with timestamps",
			frame: tcpFrame(cli4, srv4, TCPFields{Seq: 1001, Ack: 5001, Flags: trace.PSH | trace.ACK, Window: 502, Options: tsOpts()}, []byte("QUIT\r\n"), 0, nil),
			want:  trace.Segment{Proto: "tcp", Src: cli4, Dst: srv4, Flags: trace.PSH | trace.ACK, Seq: 1001, Ack: 5001, Window: 502, Len: 6, WindowScale: -1},
		},
		{
			// RFC 2018 section 3: the SACK option, kind 5, 8 bytes a block.
			name: "ACK with two SACK blocks",
			frame: tcpFrame(srv4, cli4, TCPFields{Seq: 1, Ack: 1000, Flags: trace.ACK, Window: 1000,
				Options: sackOpts(trace.SACKBlock{Start: 3000, End: 4000}, trace.SACKBlock{Start: 5000, End: 6000})}, nil, 0, nil),
			want: trace.Segment{Proto: "tcp", Src: srv4, Dst: cli4, Flags: trace.ACK, Seq: 1, Ack: 1000, Window: 1000, WindowScale: -1,
				SACK: []trace.SACKBlock{{Start: 3000, End: 4000}, {Start: 5000, End: 6000}}},
		},
		{
			// A 64 KiB segment (GSO) of which Decode is handed the headers:
			// its length comes from the IPv4 header (RFC 791 section 3.1).
			name:  "GSO segment, headers only",
			frame: tcpFrame(cli4, srv4, TCPFields{Seq: 7, Ack: 9, Flags: trace.ACK, Window: 3, Options: tsOpts()}, big, 0, nil)[:HeaderBytes],
			size:  EthernetHeaderLen + IPv4HeaderLen + 32 + len(big),
			want:  trace.Segment{Proto: "tcp", Src: cli4, Dst: srv4, Flags: trace.ACK, Seq: 7, Ack: 9, Window: 3, Len: len(big), WindowScale: -1},
		},
		{
			// Linux's BIG TCP leaves IPv4's total length 0 for a
			// segment longer than 64 KiB: the frame's length says it.
			name: "BIG TCP over IPv4",
			frame: func() []byte {
				b := tcpFrame(cli4, srv4, TCPFields{Seq: 7, Flags: trace.ACK}, make([]byte, 100), 0, nil)
				binary.BigEndian.PutUint16(b[EthernetHeaderLen+2:], 0)
				return b[:HeaderBytes]
			}(),
			size: EthernetHeaderLen + IPv4HeaderLen + TCPHeaderLen + 100000,
			want: trace.Segment{Proto: "tcp", Src: cli4, Dst: srv4, Flags: trace.ACK, Seq: 7, Len: 100000, WindowScale: -1},
		},
		{
			name:  "TCP over IPv6",
			frame: tcpFrame(cli6, srv6, TCPFields{Seq: 1, Flags: trace.SYN, Window: 64800, Options: synOpts()}, nil, 0, nil),
			want: trace.Segment{Proto: "tcp", Src: cli6, Dst: srv6, Flags: trace.SYN, Seq: 1, Window: 64800,
				Options: "mss=1460,sackOK,ts,wscale=7", WindowScale: 7},
		},
		{
			// RFC 8200 section 4.1: hop-by-hop, then destination options,
			// then TCP; each header says its length (sections 4.3, 4.6).
			name: "TCP after hop-by-hop and destination options",
			frame: tcpFrame(cli6, srv6, TCPFields{Seq: 5, Ack: 6, Flags: trace.ACK, Window: 7}, []byte("hello"), ProtoHopByHop,
				AppendIPv6Options(AppendIPv6Options(nil, ProtoDestOpts, routerAlert), ProtoTCP, make([]byte, 20))),
			want: trace.Segment{Proto: "tcp", Src: cli6, Dst: srv6, Flags: trace.ACK, Seq: 5, Ack: 6, Window: 7, Len: 5, WindowScale: -1},
		},
		{
			// RFC 8200 section 4.5: the first fragment (offset 0) holds the
			// upper-layer header; its length is this fragment's.
			name: "first IPv6 fragment",
			frame: tcpFrame(cli6, srv6, TCPFields{Seq: 5, Flags: trace.ACK}, make([]byte, 16), ProtoFragment,
				AppendIPv6Fragment(nil, ProtoTCP, 0, true, 77)),
			want: trace.Segment{Proto: "tcp", Src: cli6, Dst: srv6, Flags: trace.ACK, Seq: 5, Len: 16, WindowScale: -1},
		},
		{
			name: "later IPv6 fragment",
			frame: ipFrame(ip6A, ip6B, ProtoTCP, make([]byte, 64), ProtoFragment,
				AppendIPv6Fragment(nil, ProtoTCP, 1448, false, 77)),
			want: trace.Segment{Proto: "ipv6", Src: port0(ip6A), Dst: port0(ip6B), Len: 64, Info: "fragment", WindowScale: -1},
		},
		{
			// RFC 4303: ESP hides what follows.
			name:  "ESP",
			frame: ipFrame(ip6A, ip6B, ProtoESP, make([]byte, 32), 0, nil),
			want:  trace.Segment{Proto: "ipv6", Src: port0(ip6A), Dst: port0(ip6B), Len: 32, Info: "next header 50", WindowScale: -1},
		},
		{
			// RFC 791 section 3.2: a fragment with a non-zero offset.
			name: "later IPv4 fragment",
			frame: func() []byte {
				b := AppendEthernet(nil, macB, macA, EtherTypeIPv4)
				b = AppendIPv4(b, IPv4Fields{Src: ip4A, Dst: ip4B, Protocol: ProtoUDP, FragmentOffset: 1480}, 100)
				return append(b, make([]byte, 100)...)
			}(),
			want: trace.Segment{Proto: "ipv4", Src: port0(ip4A), Dst: port0(ip4B), Len: 100, Info: "fragment", WindowScale: -1},
		},
		{
			// RFC 826.
			name:  "ARP request",
			frame: AppendARP(AppendEthernet(nil, MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macA, EtherTypeARP), ARPRequest, macA, ip4A, MAC{}, ip4B),
			want:  trace.Segment{Proto: "arp", Src: port0(ip4A), Dst: port0(ip4B), Len: 42, Info: "who-has 192.0.2.2 tell 192.0.2.1", WindowScale: -1},
		},
		{
			name:  "ARP reply",
			frame: AppendARP(AppendEthernet(nil, macA, macB, EtherTypeARP), ARPReply, macB, ip4B, macA, ip4A),
			want:  trace.Segment{Proto: "arp", Src: port0(ip4B), Dst: port0(ip4A), Len: 42, Info: "192.0.2.2 is-at 02:6e:73:66:74:02", WindowScale: -1},
		},
		{
			// RFC 792 page 4: destination unreachable, code 3.
			name:  "ICMP port unreachable",
			frame: ipFrame(ip4B, ip4A, ProtoICMPv4, AppendICMPv4(nil, ICMPv4DstUnreachable, ICMPv4PortUnreachable, make([]byte, 32)), 0, nil),
			want:  trace.Segment{Proto: "icmp", Src: port0(ip4B), Dst: port0(ip4A), Len: 36, Info: "destination unreachable: port unreachable", WindowScale: -1},
		},
		{
			// RFC 1191 section 4: the next hop's MTU in the low 16 bits.
			name:  "ICMP fragmentation needed",
			frame: ipFrame(ip4B, ip4A, ProtoICMPv4, AppendICMPv4(nil, ICMPv4DstUnreachable, ICMPv4FragNeeded, []byte{0, 0, 0x05, 0xdc}), 0, nil),
			want:  trace.Segment{Proto: "icmp", Src: port0(ip4B), Dst: port0(ip4A), Len: 8, Info: "destination unreachable: fragmentation needed, mtu 1500", WindowScale: -1},
		},
		{
			// RFC 4861 section 4.3.
			name:  "neighbor solicitation",
			frame: ipFrame(ip6A, ip6B, ProtoICMPv6, AppendICMPv6(nil, ICMPv6NeighborSolicit, 0, ns, ip6A, ip6B), 0, nil),
			want:  trace.Segment{Proto: "icmpv6", Src: port0(ip6A), Dst: port0(ip6B), Len: 24, Info: "neighbor solicitation for 2001:db8::2", WindowScale: -1},
		},
		{
			// RFC 4861 section 4.4, with the target link-layer address
			// option (section 4.6.1).
			name:  "neighbor advertisement",
			frame: ipFrame(ip6B, ip6A, ProtoICMPv6, AppendICMPv6(nil, ICMPv6NeighborAdvert, 0, na, ip6B, ip6A), 0, nil),
			want:  trace.Segment{Proto: "icmpv6", Src: port0(ip6B), Dst: port0(ip6A), Len: 32, Info: "neighbor advertisement 2001:db8::2 is-at 02:6e:73:66:74:02", WindowScale: -1},
		},
		{
			// RFC 4861 section 4.2, with a prefix information option
			// (section 4.6.2).
			name:  "router advertisement",
			frame: ipFrame(ip6B, ip6A, ProtoICMPv6, AppendICMPv6(nil, ICMPv6RouterAdvert, 0, ra, ip6B, ip6A), 0, nil),
			want:  trace.Segment{Proto: "icmpv6", Src: port0(ip6B), Dst: port0(ip6A), Len: 48, Info: "router advertisement: prefix 2001:db8:1::/64", WindowScale: -1},
		},
		{
			// RFC 3810 section 5.2, after a hop-by-hop router alert.
			name: "MLDv2 report",
			frame: ipFrame(ip6A, netip.MustParseAddr("ff02::16"), ProtoICMPv6,
				AppendICMPv6(nil, ICMPv6MLDv2Report, 0, make([]byte, 4), ip6A, netip.MustParseAddr("ff02::16")),
				ProtoHopByHop, AppendIPv6Options(nil, ProtoICMPv6, routerAlert)),
			want: trace.Segment{Proto: "icmpv6", Src: port0(ip6A), Dst: port0(netip.MustParseAddr("ff02::16")), Len: 8, Info: "multicast listener report", WindowScale: -1},
		},
		{
			// RFC 1035 section 4.1.
			name:  "DNS query",
			frame: udpFrame(netip.AddrPortFrom(ip4A, 33000), netip.AddrPortFrom(ip4B, 53), dnsMessage(t, "ftp.example.org.", false, dnsmessage.RCodeSuccess)),
			want: trace.Segment{Proto: "udp", Src: netip.AddrPortFrom(ip4A, 33000), Dst: netip.AddrPortFrom(ip4B, 53), Len: 33,
				Info: "DNS query A ftp.example.org. id 7", WindowScale: -1},
		},
		{
			// RFC 2131 section 4.4.1.
			name:  "DHCP discover",
			frame: udpFrame(netip.AddrPortFrom(netip.IPv4Unspecified(), 68), netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), 67), dhcpMessage(t, dhcpv4.MessageTypeDiscover)),
			want: trace.Segment{Proto: "udp", Src: netip.AddrPortFrom(netip.IPv4Unspecified(), 68), Dst: netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), 67),
				Len: len(dhcpMessage(t, dhcpv4.MessageTypeDiscover)), Info: "DHCP DISCOVER xid 0xdeadbeef", WindowScale: -1},
		},
		{
			// A TUN device's packets have no link header.
			name:  "raw IPv4",
			frame: tcpFrame(cli4, srv4, TCPFields{Seq: 1, Flags: trace.RST}, nil, 0, nil)[EthernetHeaderLen:],
			link:  LinkRaw,
			want:  trace.Segment{Proto: "tcp", Src: cli4, Dst: srv4, Flags: trace.RST, Seq: 1, WindowScale: -1},
		},
		{
			name:  "LLDP",
			frame: append(AppendEthernet(nil, MAC{1, 0x80, 0xc2, 0, 0, 0x0e}, macA, 0x88cc), make([]byte, 46)...),
			want:  trace.Segment{Proto: "ethertype-0x88cc", Len: 60, Info: "02:6e:73:66:74:01 > 01:80:c2:00:00:0e", WindowScale: -1},
		},
		{
			name:  "runt",
			frame: make([]byte, 10),
			want:  trace.Segment{Proto: "ethernet", Len: 10, Info: "truncated frame", WindowScale: -1},
		},
		{
			name: "IPv4 header length beyond the packet",
			frame: func() []byte {
				b := tcpFrame(cli4, srv4, TCPFields{}, nil, 0, nil)[:EthernetHeaderLen+IPv4HeaderLen]
				b[EthernetHeaderLen] = 0x4f
				return b
			}(),
			want: trace.Segment{Proto: "ipv4", Len: 34, Info: "bad header length", WindowScale: -1},
		},
		{
			name:  "TCP header cut short",
			frame: tcpFrame(cli4, srv4, TCPFields{}, nil, 0, nil)[:EthernetHeaderLen+IPv4HeaderLen+10],
			want:  trace.Segment{Proto: "tcp", Src: port0(ip4A), Dst: port0(ip4B), Len: 20, Info: "truncated TCP header", WindowScale: -1},
		},
		{
			name: "hop-by-hop header cut short",
			frame: tcpFrame(cli6, srv6, TCPFields{}, nil, ProtoHopByHop,
				AppendIPv6Options(nil, ProtoTCP, make([]byte, 100)))[:EthernetHeaderLen+IPv6HeaderLen+50],
			size: 200,
			want: trace.Segment{Proto: "ipv6", Src: port0(ip6A), Dst: port0(ip6B), Len: 200, Info: "extension header 0 longer than the bytes kept", WindowScale: -1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size == 0 {
				size = len(tc.frame)
			}
			link := tc.link
			if link == 0 {
				link = LinkEthernet
			}
			want := tc.want
			want.Frame = size
			got := Decode(tc.frame, size, link)
			// The link and IP headers' facts: TestDecodeHeaders.
			got.EtherType, got.EthSrc, got.EthDst, got.TTL, got.IPID, got.DF = 0, trace.MAC{}, trace.MAC{}, 0, 0, false
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestDecodeHeaders: a segment keeps its frame's Ethernet header and
// IP's TTL (hop limit), identification and don't-fragment bit, for a view
// of the frame layer by layer (RFC 894, RFC 791 section 3.1, RFC 8200
// section 3).
func TestDecodeHeaders(t *testing.T) {
	v4 := append(AppendEthernet(nil, macB, macA, EtherTypeIPv4), AppendIPv4(nil, IPv4Fields{Src: ip4A, Dst: ip4B, Protocol: ProtoUDP, TTL: 17, ID: 4711}, 0)...)
	v6 := append(AppendEthernet(nil, macB, macA, EtherTypeIPv6), AppendIPv6(nil, IPv6Fields{Src: ip6A, Dst: ip6B, NextHeader: ProtoUDP, HopLimit: 9}, 0)...)
	arp := AppendARP(AppendEthernet(nil, MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macA, EtherTypeARP), ARPRequest, macA, ip4A, MAC{}, ip4B)
	for _, tc := range []struct {
		name  string
		frame []byte
		link  LinkType
		want  [6]any
	}{
		{"IPv4", v4, LinkEthernet, [6]any{uint16(0x0800), trace.MAC(macA), trace.MAC(macB), uint8(17), uint16(4711), false}},
		{"IPv4 don't fragment", tcpFrame(cli4, srv4, TCPFields{Flags: trace.SYN}, nil, 0, nil), LinkEthernet, [6]any{uint16(0x0800), trace.MAC(macA), trace.MAC(macB), uint8(64), uint16(0), true}},
		{"IPv6", v6, LinkEthernet, [6]any{uint16(0x86dd), trace.MAC(macA), trace.MAC(macB), uint8(9), uint16(0), false}},
		{"ARP to the broadcast address", arp, LinkEthernet, [6]any{uint16(0x0806), trace.MAC(macA), trace.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(0), uint16(0), false}},
		{"IPv4 on a link without Ethernet", v4[EthernetHeaderLen:], LinkRaw, [6]any{uint16(0), trace.MAC{}, trace.MAC{}, uint8(17), uint16(4711), false}},
	} {
		s := Decode(tc.frame, len(tc.frame), tc.link)
		if got := [6]any{s.EtherType, s.EthSrc, s.EthDst, s.TTL, s.IPID, s.DF}; got != tc.want {
			t.Errorf("%s: EtherType, source, destination, TTL, ID, DF = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTCPOptions reads options as RFC 7323 and RFC 2018 lay them out,
// and stops at what is malformed.
func TestTCPOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want TCPOptions
	}{
		{"none", nil, TCPOptions{WindowScale: -1}},
		{"SYN", synOpts(), TCPOptions{MSS: 1460, SACKPermitted: true, Timestamps: true, TSVal: 1, WindowScale: 7}},
		// RFC 7323 section 2.3: a shift above 14 is used as 14.
		{"window scale 15", AppendTCPOptWindowScale(nil, 15), TCPOptions{WindowScale: 14}},
		{"end of options", append([]byte{TCPOptEnd}, AppendTCPOptMSS(nil, 1)...), TCPOptions{WindowScale: -1}},
		{"length past the end", []byte{TCPOptMSS, 4, 5}, TCPOptions{WindowScale: -1, Malformed: true}},
		{"length 0", []byte{99, 0, 1, 1}, TCPOptions{WindowScale: -1, Malformed: true}},
		{"MSS of length 3", []byte{TCPOptMSS, 3, 5, 1}, TCPOptions{WindowScale: -1, Malformed: true}},
		{"unknown kind skipped", append([]byte{30, 4, 0, 0}, AppendTCPOptMSS(nil, 536)...), TCPOptions{MSS: 536, WindowScale: -1}},
		{"SACK, 3 blocks", AppendTCPOptSACK(nil, trace.SACKBlock{Start: 1, End: 2}, trace.SACKBlock{Start: 3, End: 4}, trace.SACKBlock{Start: 5, End: 6}),
			TCPOptions{WindowScale: -1, NSACK: 3, SACK: [4]trace.SACKBlock{{Start: 1, End: 2}, {Start: 3, End: 4}, {Start: 5, End: 6}}}},
	} {
		if got := ParseTCPOptions(tc.b); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestIPv4Checksum checks the header checksum against a known answer:
// the header RFC 1071's arithmetic gives 0xb861.
func TestIPv4Checksum(t *testing.T) {
	b := AppendIPv4(nil, IPv4Fields{Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("192.168.0.199"),
		Protocol: ProtoUDP, DontFragment: true}, 0x73-20)
	if got := IPv4(b).Checksum(); got != 0xb861 {
		t.Errorf("checksum %#04x, want 0xb861: % x", got, b)
	}
	if !IPv4(b).ChecksumValid() {
		t.Error("ChecksumValid is false for the header just written")
	}
	b[8]--
	if IPv4(b).ChecksumValid() {
		t.Error("ChecksumValid is true after the TTL changed")
	}
}

// TestNeedsPayload: only DHCP and DNS datagrams are read past their
// headers.
func TestNeedsPayload(t *testing.T) {
	dns := udpFrame(netip.AddrPortFrom(ip6A, 33000), netip.AddrPortFrom(ip6B, 53), make([]byte, 40))
	dhcp := udpFrame(netip.AddrPortFrom(ip4A, 68), netip.AddrPortFrom(ip4B, 67), make([]byte, 300))
	other := udpFrame(netip.AddrPortFrom(ip4A, 5000), netip.AddrPortFrom(ip4B, 5001), make([]byte, 300))
	tcp := tcpFrame(netip.AddrPortFrom(ip4A, 53), srv4, TCPFields{}, nil, 0, nil)
	for _, tc := range []struct {
		name  string
		frame []byte
		link  LinkType
		want  bool
	}{
		{"DNS over IPv6", dns, LinkEthernet, true},
		{"DHCP", dhcp, LinkEthernet, true},
		{"DHCP, raw", dhcp[EthernetHeaderLen:], LinkRaw, true},
		{"other UDP", other, LinkEthernet, false},
		{"TCP from port 53", tcp, LinkEthernet, false},
		{"runt", dns[:20], LinkEthernet, false},
	} {
		if got := NeedsPayload(tc.frame, tc.link); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDecodeAllocs holds Decode to its contract: a TCP segment that
// carries no SYN and no SACK blocks costs no allocation.
func TestDecodeAllocs(t *testing.T) {
	f := tcpFrame(cli6, srv6, TCPFields{Seq: 7, Flags: trace.ACK, Options: tsOpts()}, make([]byte, 1000), 0, nil)
	if n := testing.AllocsPerRun(100, func() { Decode(f[:HeaderBytes], len(f), LinkEthernet) }); n != 0 {
		t.Errorf("%v allocations per decode, want 0", n)
	}
}

// BenchmarkDecode is the decoding of a bulk transfer's segment, as the
// stack's capture does for every frame:
//
//	go test ./packet/ -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	f := tcpFrame(cli4, srv4, TCPFields{Seq: 7, Flags: trace.ACK, Options: tsOpts()}, make([]byte, 65000), 0, nil)
	b.ReportAllocs()
	for b.Loop() {
		Decode(f[:HeaderBytes], len(f), LinkEthernet)
	}
}
