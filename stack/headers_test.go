package stack_test

import (
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestFrameHeaders: each frame's event carries its Ethernet and IP
// headers' facts, as the frame had them (a lesson shows the frame layer
// by layer): the hosts' own Ethernet addresses, the broadcast an ARP
// request goes to, IPv4's TTL and identification.
func TestFrameHeaders(t *testing.T) {
	tl := newTimeline()
	exchange(t, tracedPair(t, tl, false))
	evs := tl.events()
	mac := map[string]trace.MAC{}
	for _, e := range evs {
		if e.Kind == trace.KindHost {
			m, err := trace.ParseMAC(e.HostInfo.MAC)
			if err != nil {
				t.Fatal(err)
			}
			mac[e.Host] = m
		}
	}
	other := map[string]string{"client": "server", "server": "client"}
	var arp, tcp int
	ids := map[uint16]bool{}
	for _, e := range evs {
		s := e.Segment
		if e.Kind != trace.KindSegment || s.Dir != trace.Out {
			continue
		}
		switch s.Proto {
		case "arp":
			arp++
			if s.EtherType != 0x0806 || s.EthSrc != mac[e.Host] {
				t.Errorf("%s's ARP frame: EtherType %#x from %s, want 0x0806 from %s", e.Host, s.EtherType, s.EthSrc, mac[e.Host])
			}
			if s.Info[:7] == "who-has" && s.EthDst != (trace.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
				t.Errorf("an ARP request to %s, not to the broadcast address", s.EthDst)
			}
			if s.TTL != 0 {
				t.Errorf("an ARP frame with a TTL: %d", s.TTL)
			}
		case "tcp":
			tcp++
			if s.EtherType != 0x0800 || s.EthSrc != mac[e.Host] || s.EthDst != mac[other[e.Host]] {
				t.Errorf("%s's TCP frame: EtherType %#x, %s > %s; want 0x0800, %s > %s", e.Host, s.EtherType, s.EthSrc, s.EthDst, mac[e.Host], mac[other[e.Host]])
			}
			if s.TTL == 0 {
				t.Errorf("%s's TCP frame with TTL 0", e.Host)
			}
			if !s.DF {
				ids[s.IPID] = true
			}
		}
	}
	if arp == 0 || tcp < 6 {
		t.Fatalf("%d ARP and %d TCP frames sent", arp, tcp)
	}
	// A frame that may not be fragmented needs no identification (RFC
	// 6864 section 4.1: netstack, like Linux, sends 0); one that may,
	// needs them distinct.
	if len(ids) == 1 {
		t.Errorf("every fragmentable TCP frame has the same IP identification: %v", ids)
	}
	// And they survive the JSON lines.
	var seg trace.Segment
	for _, e := range evs {
		if e.Kind == trace.KindSegment && e.Segment.Proto == "tcp" {
			seg = *e.Segment
			break
		}
	}
	b, err := seg.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back trace.Segment
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if back.EthSrc != seg.EthSrc || back.EthDst != seg.EthDst || back.TTL != seg.TTL || back.IPID != seg.IPID || back.DF != seg.DF || back.EtherType != seg.EtherType {
		t.Errorf("the headers' facts change through JSON: %s", b)
	}
}
