package packet

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/nsftp/nsftp/trace"
)

// TCPHeaderLen is a TCP header's length without options.
const TCPHeaderLen = 20

// TCP option kinds (RFC 793, RFC 7323, RFC 2018).
const (
	TCPOptEnd           = 0
	TCPOptNOP           = 1
	TCPOptMSS           = 2
	TCPOptWindowScale   = 3
	TCPOptSACKPermitted = 4
	TCPOptSACK          = 5
	TCPOptTimestamps    = 8
)

// TCP is a view of a TCP segment (RFC 793 section 3.1). Its methods read
// fixed offsets: check len(t) >= TCPHeaderLen first, and DataOffset
// against len(t) before Options or Payload.
type TCP []byte

// SrcPort is the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:2]) }

// DstPort is the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:4]) }

// Seq is the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:8]) }

// Ack is the acknowledgment number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:12]) }

// DataOffset is the header's length in bytes, options included.
func (t TCP) DataOffset() int { return int(t[12]>>4) * 4 }

// Flags are the flags, CWR to FIN (RFC 3168 section 6.1).
func (t TCP) Flags() trace.TCPFlags { return trace.TCPFlags(t[13]) }

// Window is the window field, before any scaling.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:16]) }

// Checksum is the checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:18]) }

// Urgent is the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:20]) }

// Options are the header's option bytes.
func (t TCP) Options() []byte { return t[TCPHeaderLen:t.DataOffset()] }

// Payload is what follows the header, as far as t goes.
func (t TCP) Payload() []byte { return t[t.DataOffset():] }

// ChecksumValid reports whether the checksum is right for a segment from
// src to dst, t being the whole segment.
func (t TCP) ChecksumValid(src, dst netip.Addr) bool {
	return fold(sum16(t, pseudoSum(src, dst, ProtoTCP, len(t)))) == 0
}

// TCPOptions are the options a TCP header carries, as ParseTCPOptions
// reads them. The zero value is no options; WindowScale is -1 when
// absent.
type TCPOptions struct {
	MSS           uint16 // 0: absent
	WindowScale   int    // the shift (RFC 7323 section 2); -1: absent
	SACKPermitted bool
	Timestamps    bool
	TSVal, TSEcr  uint32
	// SACK holds the first NSACK blocks of a SACK option (RFC 2018
	// section 3): forty bytes of options hold four at most.
	SACK  [4]trace.SACKBlock
	NSACK int
	// Malformed reports an option whose length is wrong or runs past
	// the header; the options before it were read.
	Malformed bool
}

// ParseTCPOptions reads a header's option bytes (TCP.Options).
func ParseTCPOptions(b []byte) TCPOptions {
	o := TCPOptions{WindowScale: -1}
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case TCPOptEnd:
			return o
		case TCPOptNOP:
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			o.Malformed = true
			return o
		}
		l := int(b[i+1])
		data := b[i+2 : i+l]
		switch {
		case kind == TCPOptMSS && l == 4:
			o.MSS = binary.BigEndian.Uint16(data)
		case kind == TCPOptWindowScale && l == 3:
			// RFC 7323 section 2.3: a shift above 14 is taken as 14.
			o.WindowScale = min(int(data[0]), 14)
		case kind == TCPOptSACKPermitted && l == 2:
			o.SACKPermitted = true
		case kind == TCPOptTimestamps && l == 10:
			o.Timestamps = true
			o.TSVal, o.TSEcr = binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:])
		case kind == TCPOptSACK && l >= 10 && (l-2)%8 == 0:
			for j := 0; j+8 <= len(data) && o.NSACK < len(o.SACK); j += 8 {
				o.SACK[o.NSACK] = trace.SACKBlock{Start: binary.BigEndian.Uint32(data[j:]), End: binary.BigEndian.Uint32(data[j+4:])}
				o.NSACK++
			}
		case kind == TCPOptMSS, kind == TCPOptWindowScale, kind == TCPOptSACKPermitted,
			kind == TCPOptTimestamps, kind == TCPOptSACK:
			o.Malformed = true // a known option of the wrong length
			return o
		}
		i += l
	}
	return o
}

// onlyTimestamps reports whether option bytes are the timestamps alone,
// laid out as RFC 7323's appendix A has them (NOP, NOP, TS): nearly
// every segment of a connection, so worth a quick look before a parse.
func onlyTimestamps(b []byte) bool {
	return len(b) == 12 && b[0] == TCPOptNOP && b[1] == TCPOptNOP && b[2] == TCPOptTimestamps && b[3] == 10
}

// SynSummary is how the trace shows a SYN's options:
// "mss=1460,sackOK,ts,wscale=7", each only when present.
func (o *TCPOptions) SynSummary() string {
	var b []byte
	add := func(s string) {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, s...)
	}
	if o.MSS != 0 {
		add("mss=" + strconv.Itoa(int(o.MSS)))
	}
	if o.SACKPermitted {
		add("sackOK")
	}
	if o.Timestamps {
		add("ts")
	}
	if o.WindowScale >= 0 {
		add("wscale=" + strconv.Itoa(o.WindowScale))
	}
	return string(b)
}

// TCPFields are what AppendTCP writes.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            trace.TCPFlags
	Window           uint16
	Urgent           uint16
	// Options are the option bytes (the AppendTCPOpt functions make
	// them), padded here with end-of-options to a multiple of 4.
	Options []byte
}

// AppendTCP appends a TCP segment with payload and its checksum, for an
// IP packet from src to dst.
func AppendTCP(b []byte, f TCPFields, src, dst netip.Addr, payload []byte) []byte {
	start := len(b)
	hl := TCPHeaderLen + (len(f.Options)+3)&^3
	b = binary.BigEndian.AppendUint16(b, f.SrcPort)
	b = binary.BigEndian.AppendUint16(b, f.DstPort)
	b = binary.BigEndian.AppendUint32(b, f.Seq)
	b = binary.BigEndian.AppendUint32(b, f.Ack)
	b = append(b, byte(hl/4)<<4, byte(f.Flags))
	b = binary.BigEndian.AppendUint16(b, f.Window)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, f.Urgent)
	b = append(b, f.Options...)
	for len(b)-start < hl {
		b = append(b, TCPOptEnd)
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[start+16:], transportChecksum(src, dst, ProtoTCP, b[start:]))
	return b
}

// AppendTCPOptMSS appends a maximum segment size option.
func AppendTCPOptMSS(b []byte, mss uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, TCPOptMSS, 4), mss)
}

// AppendTCPOptWindowScale appends a window scale option (RFC 7323).
func AppendTCPOptWindowScale(b []byte, shift uint8) []byte {
	return append(b, TCPOptWindowScale, 3, shift)
}

// AppendTCPOptSACKPermitted appends a SACK-permitted option (RFC 2018).
func AppendTCPOptSACKPermitted(b []byte) []byte { return append(b, TCPOptSACKPermitted, 2) }

// AppendTCPOptTimestamps appends a timestamps option (RFC 7323).
func AppendTCPOptTimestamps(b []byte, val, ecr uint32) []byte {
	b = append(b, TCPOptTimestamps, 10)
	b = binary.BigEndian.AppendUint32(b, val)
	return binary.BigEndian.AppendUint32(b, ecr)
}

// AppendTCPOptSACK appends a SACK option with blocks (RFC 2018).
func AppendTCPOptSACK(b []byte, blocks ...trace.SACKBlock) []byte {
	b = append(b, TCPOptSACK, byte(2+8*len(blocks)))
	for _, s := range blocks {
		b = binary.BigEndian.AppendUint32(b, s.Start)
		b = binary.BigEndian.AppendUint32(b, s.End)
	}
	return b
}

// AppendTCPOptNOP appends a no-operation option, which aligns the next.
func AppendTCPOptNOP(b []byte) []byte { return append(b, TCPOptNOP) }
