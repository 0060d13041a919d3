package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/nsftp/nsftp/trace"
)

// decodeFrame summarises an Ethernet frame as a trace.Segment, as
// nsftp's stack does its own (stack/capture.go, which reads frames with
// gVisor's header package; this package may not): TCP with its flags,
// numbers, window and a SYN's options; other frames by protocol. b is
// the frame's beginning, size its whole length.
func decodeFrame(b []byte, size int) trace.Segment {
	seg := trace.Segment{Frame: size, Len: size, WindowScale: -1}
	if len(b) < 14 {
		seg.Proto, seg.Info = "ethernet", "truncated frame"
		return seg
	}
	etype := binary.BigEndian.Uint16(b[12:14])
	seg.EtherType = etype
	copy(seg.EthDst[:], b[0:6])
	copy(seg.EthSrc[:], b[6:12])
	b = b[14:]
	switch etype {
	case 0x0806:
		seg.Proto = "arp"
		if len(b) >= 28 {
			sender, _ := netip.AddrFromSlice(b[14:18])
			target, _ := netip.AddrFromSlice(b[24:28])
			seg.Src, seg.Dst = netip.AddrPortFrom(sender, 0), netip.AddrPortFrom(target, 0)
			switch binary.BigEndian.Uint16(b[6:8]) {
			case 1:
				seg.Info = fmt.Sprintf("who-has %s tell %s", target, sender)
			case 2:
				seg.Info = fmt.Sprintf("%s is-at %x", sender, b[8:14])
			}
		}
	case 0x0800:
		if len(b) < 20 || int(b[0]&0x0f)*4 < 20 || int(b[0]&0x0f)*4 > len(b) {
			seg.Proto = "ipv4"
			return seg
		}
		hl := int(b[0]&0x0f) * 4
		seg.TTL, seg.IPID, seg.DF = b[8], binary.BigEndian.Uint16(b[4:6]), b[6]&0x40 != 0
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		payload := int(binary.BigEndian.Uint16(b[2:4])) - hl
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			seg.Proto, seg.Info = "ipv4", "fragment"
			seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
			return seg
		}
		decodeTransport(&seg, b[9], b[hl:], payload, src, dst)
	case 0x86dd:
		if len(b) < 40 {
			seg.Proto = "ipv6"
			return seg
		}
		seg.TTL = b[7]
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		decodeTransport(&seg, b[6], b[40:], int(binary.BigEndian.Uint16(b[4:6])), src.Unmap(), dst.Unmap())
	default:
		seg.Proto = fmt.Sprintf("ethertype-%#04x", etype)
	}
	return seg
}

func decodeTransport(seg *trace.Segment, proto uint8, b []byte, payload int, src, dst netip.Addr) {
	seg.Src, seg.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
	seg.Len = payload
	switch proto {
	case 6:
		seg.Proto = "tcp"
		if len(b) < 20 {
			seg.Info = "truncated TCP header"
			return
		}
		seg.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2]))
		seg.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4]))
		seg.Seq = binary.BigEndian.Uint32(b[4:8])
		seg.Ack = binary.BigEndian.Uint32(b[8:12])
		off := int(b[12]>>4) * 4
		seg.Flags = trace.TCPFlags(b[13])
		seg.Window = binary.BigEndian.Uint16(b[14:16])
		seg.Len = max(payload-off, 0)
		if off > 20 && off <= len(b) {
			if seg.Flags.Has(trace.SYN) {
				seg.Options, seg.WindowScale = synOptions(b[20:off])
			}
			seg.SACK = sackBlocks(b[20:off])
		}
	case 17:
		seg.Proto = "udp"
		if len(b) >= 8 {
			seg.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2]))
			seg.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4]))
			seg.Len = max(payload-8, 0)
		}
	case 1:
		seg.Proto = "icmp"
		if len(b) >= 2 {
			seg.Info = fmt.Sprintf("type %d code %d", b[0], b[1])
		}
	case 58:
		seg.Proto = "icmpv6"
		if len(b) >= 1 {
			seg.Info = fmt.Sprintf("type %d", b[0])
		}
	default:
		seg.Proto = fmt.Sprintf("ip-proto-%d", proto)
	}
}

// synOptions summarises a SYN's options as nsftp's stack does
// ("mss=1460,sackOK,ts,wscale=7"), and the window scale (-1: none).
func synOptions(b []byte) (string, int) {
	mss, ws := -1, -1
	var sack, ts bool
	for i := 0; i < len(b); {
		kind := b[i]
		if kind == 0 {
			break
		}
		if kind == 1 {
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			break
		}
		l := int(b[i+1])
		switch {
		case kind == 2 && l == 4:
			mss = int(binary.BigEndian.Uint16(b[i+2:]))
		case kind == 3 && l == 3:
			ws = int(b[i+2])
		case kind == 4:
			sack = true
		case kind == 8:
			ts = true
		}
		i += l
	}
	s := ""
	if mss >= 0 {
		s = fmt.Sprintf("mss=%d", mss)
	}
	add := func(o string) {
		if s != "" {
			s += ","
		}
		s += o
	}
	if sack {
		add("sackOK")
	}
	if ts {
		add("ts")
	}
	if ws >= 0 {
		add(fmt.Sprintf("wscale=%d", ws))
	}
	return s, ws
}

// sackBlocks reads a SACK option's blocks (RFC 2018), if there is one.
func sackBlocks(b []byte) []trace.SACKBlock {
	for i := 0; i < len(b); {
		kind := b[i]
		if kind == 0 {
			break
		}
		if kind == 1 {
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			break
		}
		l := int(b[i+1])
		if kind == 5 {
			var blocks []trace.SACKBlock
			for j := i + 2; j+8 <= i+l; j += 8 {
				blocks = append(blocks, trace.SACKBlock{Start: binary.BigEndian.Uint32(b[j:]), End: binary.BigEndian.Uint32(b[j+4:])})
			}
			return blocks
		}
		i += l
	}
	return nil
}
