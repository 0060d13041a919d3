package packet

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/dns/dnsmessage"
)

// dhcpMessage builds a DHCP message with the given type and, for a
// server's answer, what RFC 2132 options a lease carries.
func dhcpMessage(t testing.TB, typ dhcpv4.MessageType) []byte {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef})}
	switch typ {
	case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
		mods = append(mods, dhcpv4.WithReply(&dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, TransactionID: dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}, ClientHWAddr: mac}),
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 57)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))))
	case dhcpv4.MessageTypeRequest:
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 0, 2, 57))))
	case dhcpv4.MessageTypeRelease:
		mods = append(mods, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 57)))
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

// dnsMessage builds a DNS query for name, or an answer with the rcode and
// A records given.
func dnsMessage(t testing.TB, name string, response bool, rcode dnsmessage.RCode, a ...[4]byte) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, Response: response, RCode: rcode})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	for _, ip := range a {
		b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(name), Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDatagramInfo checks what the trace says of DHCP (RFC 2131, the
// message types of RFC 2132 section 9.6) and DNS (RFC 1035 section 4.1.1:
// RCODE 3 is a name error) datagrams.
func TestDatagramInfo(t *testing.T) {
	for _, tc := range []struct {
		src, dst uint16
		b        []byte
		want     string
	}{
		{68, 67, dhcpMessage(t, dhcpv4.MessageTypeDiscover), "DHCP DISCOVER xid 0xdeadbeef"},
		{67, 68, dhcpMessage(t, dhcpv4.MessageTypeOffer), "DHCP OFFER 192.0.2.57/24: router 192.0.2.1, DNS 192.0.2.1, lease 1h0m0s (server 192.0.2.1) xid 0xdeadbeef"},
		{68, 67, dhcpMessage(t, dhcpv4.MessageTypeRequest), "DHCP REQUEST 192.0.2.57 xid 0xdeadbeef"},
		{67, 68, dhcpMessage(t, dhcpv4.MessageTypeAck), "DHCP ACK 192.0.2.57/24: router 192.0.2.1, DNS 192.0.2.1, lease 1h0m0s (server 192.0.2.1) xid 0xdeadbeef"},
		{68, 67, dhcpMessage(t, dhcpv4.MessageTypeRelease), "DHCP RELEASE 192.0.2.57 xid 0xdeadbeef"},
		{68, 67, []byte("not dhcp"), "DHCP (unreadable)"},
		{40000, 53, dnsMessage(t, "ftp.example.org.", false, dnsmessage.RCodeSuccess), "DNS query A ftp.example.org. id 7"},
		{53, 40000, dnsMessage(t, "ftp.example.org.", true, dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 1}), "DNS answer A ftp.example.org. = 192.0.2.1 id 7"},
		{53, 40000, dnsMessage(t, "nope.example.org.", true, dnsmessage.RCodeNameError), "DNS answer A nope.example.org.: NXDOMAIN, no such name id 7"},
		{53, 40000, dnsMessage(t, "empty.example.org.", true, dnsmessage.RCodeSuccess), "DNS answer A empty.example.org.: no records of that type id 7"},
		{40000, 40001, []byte("anything"), ""},
	} {
		if got := datagramInfo(tc.src, tc.dst, tc.b, true); got != tc.want {
			t.Errorf("%d > %d: %q, want %q", tc.src, tc.dst, got, tc.want)
		}
	}
	if got := datagramInfo(53, 40000, []byte{1, 2}, false); !strings.Contains(got, "longer than the trace keeps") {
		t.Errorf("a DNS message cut short: %q", got)
	}
}

// FuzzDatagramInfo feeds the datagram decoder what a hostile DHCP or DNS
// server might send: it must never panic.
func FuzzDatagramInfo(f *testing.F) {
	f.Add(uint16(67), dhcpMessage(f, dhcpv4.MessageTypeOffer))
	f.Add(uint16(68), dhcpMessage(f, dhcpv4.MessageTypeRequest))
	f.Add(uint16(53), dnsMessage(f, "ftp.example.org.", true, dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 1}))
	f.Add(uint16(53), dnsMessage(f, "x.", true, dnsmessage.RCodeNameError))
	f.Fuzz(func(t *testing.T, port uint16, b []byte) {
		datagramInfo(port, 40000, b, true)
		datagramInfo(40000, port, b, len(b)%2 == 0)
	})
}
