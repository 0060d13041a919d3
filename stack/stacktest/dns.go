package stacktest

import (
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// Zone is what ServeDNS answers.
type Zone struct {
	// Records are the addresses of each name, fully qualified with its
	// final dot ("ftp.example.test."). A and AAAA questions get the
	// addresses of their family; a name not here gets NXDOMAIN.
	Records map[string][]netip.Addr
	// TruncateUDP names the names whose answer over UDP has the TC bit
	// and no records (RFC 1035 section 4.2.1), so a resolver must ask
	// again over TCP.
	TruncateUDP []string
}

// ServeDNS answers DNS questions from zone on port 53 of h's addresses,
// over UDP and TCP, until the test ends: a name server for a hermetic
// network. Give its address to the other hosts with Host.Configure
// (stack.Change{DNS: ...}).
func ServeDNS(tb testing.TB, h *stack.Host, zone Zone) {
	tb.Helper()
	ctx, cancel := context.WithCancel(trace.WithLabel(context.Background(), trace.DNS))
	s, err := h.UDPSocket(ctx, "udp4")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Bind(ctx, netip.MustParseAddrPort("0.0.0.0:53")); err != nil {
		tb.Fatal(err)
	}
	ln, err := h.Listen(ctx, "tcp", "0.0.0.0:53")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); s.Close(); ln.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := s.RecvFrom(ctx, buf)
			if err != nil {
				return
			}
			if msg := zone.answer(buf[:n], true); msg != nil {
				s.SendTo(ctx, msg, from)
			}
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// One query, length-prefixed (RFC 1035 section 4.2.2).
			var n [2]byte
			if _, err := io.ReadFull(c, n[:]); err == nil {
				q := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(c, q); err == nil {
					msg := zone.answer(q, false)
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
				}
			}
			c.Close()
		}
	})
}

// answer is the zone's reply to a query, nil for one it cannot read.
func (z Zone) answer(query []byte, udp bool) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	addrs, known := z.Records[q.Name.String()]
	rh := dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	if udp && slices.Contains(z.TruncateUDP, q.Name.String()) {
		rh.Truncated, addrs = true, nil
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	for _, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case a.Is4() && q.Type == dnsmessage.TypeA:
			b.AResource(h, dnsmessage.AResource{A: a.As4()})
		case a.Is6() && q.Type == dnsmessage.TypeAAAA:
			b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	msg, _ := b.Finish()
	return msg
}
