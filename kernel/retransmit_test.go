package kernel

import (
	"net/netip"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestMarkRetransmit: the capture marks a segment that resends sequence
// space, from the frames it has read each way (RFC 793 section 3.3: a
// SYN and a FIN occupy one sequence number each).
func TestMarkRetransmit(t *testing.T) {
	a, b := netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.2:21")
	c := &capture{top: map[[2]netip.AddrPort]uint32{}}
	for _, tc := range []struct {
		what     string
		src, dst netip.AddrPort
		flags    trace.TCPFlags
		seq      uint32
		len      int
		want     bool
	}{
		{"SYN", a, b, trace.SYN, 1000, 0, false},
		{"SYN again: a timeout's resend", a, b, trace.SYN, 1000, 0, true},
		{"SYN|ACK", b, a, trace.SYN | trace.ACK, 5000, 0, false},
		{"ACK", a, b, trace.ACK, 1001, 0, false},
		{"data", a, b, trace.PSH | trace.ACK, 1001, 100, false},
		{"more data", a, b, trace.ACK, 1101, 100, false},
		{"the last segment again: a tail-loss probe", a, b, trace.ACK, 1101, 100, true},
		{"old and new bytes together", a, b, trace.ACK, 1151, 100, true},
		{"a pure ACK the other way", b, a, trace.ACK, 5001, 0, false},
		{"new data after the resends", a, b, trace.ACK, 1251, 50, false},
		{"FIN", a, b, trace.FIN | trace.ACK, 1301, 0, false},
		{"FIN again", a, b, trace.FIN | trace.ACK, 1301, 0, true},
		{"a new connection on the same ports", a, b, trace.SYN, 77, 0, false},
		{"its data", a, b, trace.ACK, 78, 10, false},
	} {
		seg := trace.Segment{Proto: "tcp", Src: tc.src, Dst: tc.dst, Flags: tc.flags, Seq: tc.seq, Len: tc.len}
		c.markRetransmit(&seg)
		if seg.Retransmit != tc.want {
			t.Errorf("%s: retransmit %v, want %v", tc.what, seg.Retransmit, tc.want)
		}
	}
}
