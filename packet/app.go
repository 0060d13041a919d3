package packet

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/dns/dnsmessage"
)

// Well-known UDP ports of the services whose datagrams the trace reads.
const (
	portDNS        = 53
	portDHCPServer = 67
	portDHCPClient = 68
)

// datagramInfo says what a UDP datagram carries, for the services nsftp
// speaks over UDP: DHCP (RFC 2131) and DNS (RFC 1035). b is as much of
// the payload as the trace saw, whole says whether that is all of it. It
// returns "" for anything else.
func datagramInfo(src, dst uint16, b []byte, whole bool) string {
	switch {
	case src == portDHCPServer || dst == portDHCPServer || src == portDHCPClient || dst == portDHCPClient:
		return dhcpInfo(b)
	case src == portDNS || dst == portDNS:
		s := dnsInfo(b)
		if s == "" && !whole {
			return "DNS (longer than the trace keeps)"
		}
		return s
	}
	return ""
}

// appPort reports whether a UDP port is one whose datagrams
// datagramInfo reads.
func appPort(p uint16) bool {
	return p == portDNS || p == portDHCPServer || p == portDHCPClient
}

// dhcpInfo summarises a DHCP message: its type, the address it is about,
// and what a server's answer grants.
func dhcpInfo(b []byte) string {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return "DHCP (unreadable)"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "DHCP %s", strings.ToUpper(strings.TrimPrefix(m.MessageType().String(), "DHCP")))
	addr := func(ip []byte) string {
		a, ok := netip.AddrFromSlice(ip)
		if !ok || a.Unmap().IsUnspecified() {
			return ""
		}
		return a.Unmap().String()
	}
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
	case dhcpv4.MessageTypeRequest:
		if a := addr(m.RequestedIPAddress()); a != "" {
			s.WriteString(" " + a)
		} else if a := addr(m.ClientIPAddr); a != "" {
			s.WriteString(" " + a) // renewing
		}
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeInform:
		s.WriteString(" " + addr(m.ClientIPAddr))
	case dhcpv4.MessageTypeDecline:
		s.WriteString(" " + addr(m.RequestedIPAddress()))
	case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
		y := addr(m.YourIPAddr)
		if ones, _ := m.SubnetMask().Size(); y != "" && m.SubnetMask() != nil {
			y += fmt.Sprintf("/%d", ones)
		}
		s.WriteString(" " + y)
		var extra []string
		if r := m.Router(); len(r) > 0 {
			extra = append(extra, "router "+addr(r[0]))
		}
		if d := m.DNS(); len(d) > 0 {
			var ds []string
			for _, ip := range d {
				ds = append(ds, addr(ip))
			}
			extra = append(extra, "DNS "+strings.Join(ds, " "))
		}
		if l := m.IPAddressLeaseTime(0); l > 0 {
			extra = append(extra, "lease "+l.String())
		}
		if len(extra) > 0 {
			s.WriteString(": " + strings.Join(extra, ", "))
		}
	case dhcpv4.MessageTypeNak:
		if msg := m.Message(); msg != "" {
			s.WriteString(": " + msg)
		}
	}
	if sid := addr(m.ServerIdentifier()); sid != "" && m.OpCode == dhcpv4.OpcodeBootReply {
		fmt.Fprintf(&s, " (server %s)", sid)
	}
	fmt.Fprintf(&s, " xid %#08x", uint32(m.TransactionID[0])<<24|uint32(m.TransactionID[1])<<16|uint32(m.TransactionID[2])<<8|uint32(m.TransactionID[3]))
	return s.String()
}

// dnsInfo summarises a DNS message: the question, and in an answer what
// the server said: its records, or why there are none.
func dnsInfo(b []byte) string {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		return ""
	}
	q, err := p.Question()
	if err != nil {
		return ""
	}
	question := fmt.Sprintf("%s %s", typeName(q.Type), q.Name)
	if !h.Response {
		return fmt.Sprintf("DNS query %s id %d", question, h.ID)
	}
	p.SkipAllQuestions()
	var answers []string
	for len(answers) < 8 {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		var a string
		switch rh.Type {
		case dnsmessage.TypeA:
			r, rerr := p.AResource()
			a, err = netip.AddrFrom4(r.A).String(), rerr
		case dnsmessage.TypeAAAA:
			r, rerr := p.AAAAResource()
			a, err = netip.AddrFrom16(r.AAAA).String(), rerr
		case dnsmessage.TypeCNAME:
			r, rerr := p.CNAMEResource()
			a, err = "CNAME "+r.CNAME.String(), rerr
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			break // a record the parser cannot read: what came before stands
		}
		if a != "" {
			answers = append(answers, a)
		}
	}
	s := fmt.Sprintf("DNS answer %s", question)
	switch {
	case h.RCode == dnsmessage.RCodeNameError:
		s += ": NXDOMAIN, no such name"
	case h.RCode != dnsmessage.RCodeSuccess:
		s += ": " + strings.TrimPrefix(h.RCode.String(), "RCode")
	case h.Truncated:
		s += ": truncated, ask again over TCP"
	case len(answers) == 0:
		s += ": no records of that type"
	default:
		s += " = " + strings.Join(answers, ", ")
	}
	return s + fmt.Sprintf(" id %d", h.ID)
}

func typeName(t dnsmessage.Type) string {
	return strings.TrimPrefix(t.String(), "Type")
}
