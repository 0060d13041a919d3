package kernel

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// synFrame builds an Ethernet frame carrying a TCP SYN from src to dst
// with the options Linux sends (RFC 793 section 3.1, RFC 7323, RFC 2018).
func synFrame(src, dst netip.AddrPort) []byte {
	opts := []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 10} // mss 1460, sackOK, ts, nop, wscale 10
	tcp := make([]byte, 20+len(opts))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12] = byte(len(tcp)/4) << 4
	tcp[13] = byte(trace.SYN)
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
	ip[9] = 6
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	eth := make([]byte, 14)
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	return append(append(eth, ip...), tcp...)
}

// TestDecodeFrame reads a SYN as nsftp's stack summarises one: addresses
// with ports, flags, numbers, window and options.
func TestDecodeFrame(t *testing.T) {
	src, dst := netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.2:21")
	f := synFrame(src, dst)
	seg := decodeFrame(f, len(f))
	if seg.Proto != "tcp" || seg.Src != src || seg.Dst != dst || seg.Flags != trace.SYN || seg.Seq != 1000 || seg.Window != 64240 || seg.Len != 0 || seg.Frame != len(f) {
		t.Errorf("decoded %+v", seg)
	}
	if seg.Options != "mss=1460,sackOK,ts,wscale=10" || seg.WindowScale != 10 {
		t.Errorf("options %q, window scale %d", seg.Options, seg.WindowScale)
	}
	// An ACK with a SACK block (RFC 2018): kind 5, length 10, after two NOPs.
	ack := append([]byte(nil), f...)
	tcp := ack[34:]
	tcp[13] = byte(trace.ACK)
	copy(tcp[20:], []byte{1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 1, 1, 1, 1, 1, 1, 1, 1})
	if seg := decodeFrame(ack, len(ack)); len(seg.SACK) != 1 || seg.SACK[0] != (trace.SACKBlock{Start: 0x1000, End: 0x2000}) || seg.Options != "" {
		t.Errorf("SACK blocks %+v, options %q", seg.SACK, seg.Options)
	}
	if seg := decodeFrame(f[:10], 10); seg.Proto != "ethernet" {
		t.Errorf("a truncated frame: %+v", seg)
	}
}

// FuzzDecodeFrame: frames come from the wire; none may crash the decoder.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(synFrame(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.2:2")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeFrame(b, len(b))
	})
}
