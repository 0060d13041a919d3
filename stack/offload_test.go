package stack_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// TestOffload moves data across wires that let the stacks hand over
// segments larger than the MTU, whole or cut up at the wire and merged at
// the receiver, with and without checksums and on a lossy, corrupting
// path: every byte arrives, and the wire's capture shows the frames each
// offload puts on it.
func TestOffload(t *testing.T) {
	stacktest.CheckGoroutines(t)
	for _, tc := range []struct {
		name     string
		wire     stack.WireConfig
		maxFrame int // the largest frame the capture may show
		bigFrame bool
	}{
		{"gso", stack.WireConfig{Offload: stack.OffloadGSO}, 1<<16 + 14, true},
		{"tso", stack.WireConfig{Offload: stack.OffloadTSO}, 1514, false},
		{"tso/checksums", stack.WireConfig{Offload: stack.OffloadTSO, Checksums: true}, 1514, false},
		{"tso/impaired", stack.WireConfig{Offload: stack.OffloadTSO, Path: stack.Path{Loss: 1, Corrupt: 1, Reorder: 1}, Seed: 3}, 1514, false},
		{"tso/mtu9000", stack.WireConfig{Offload: stack.OffloadTSO, MTU: 9000}, 9014, false},
		{"none", stack.WireConfig{}, 1514, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pcap bytes.Buffer
			wire := tc.wire
			wire.PCAP = &pcap
			_, _, p := pathRun(t, wire, 4<<20)
			p.Close()
			largest, tcpFrames, bad := 0, 0, 0
			b := pcap.Bytes()[24:]
			for len(b) >= 16 {
				n := int(binary.LittleEndian.Uint32(b[8:]))
				frame := b[16 : 16+n]
				b = b[16+n:]
				largest = max(largest, n)
				if len(frame) > 34 && frame[23] == 6 {
					tcpFrames++
					if !tcpChecksumOK(frame) {
						bad++
					}
				}
			}
			mtu := tc.wire.MTU
			if mtu == 0 {
				mtu = 1500
			}
			if largest > tc.maxFrame || tc.bigFrame != (largest > mtu+14) {
				t.Errorf("the largest frame on the wire is %d bytes, want at most %d (large frames: %v)", largest, tc.maxFrame, tc.bigFrame)
			}
			if tc.wire.Checksums && bad > 0 {
				t.Errorf("%d of %d TCP frames on a wire with checksums have a wrong one", bad, tcpFrames)
			}
			t.Logf("%d TCP frames, the largest %d bytes, %d with checksums unfilled or wrong; %+v", tcpFrames, largest, bad, p.Wire.Stats())
		})
	}
}

// tcpChecksumOK checks an Ethernet frame's IPv4 TCP checksum.
func tcpChecksumOK(frame []byte) bool {
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) {
		return false
	}
	tcp := ip[ihl:total]
	sum := uint32(0)
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(ip[12:20])
	sum += 6 + uint32(len(tcp))
	add(tcp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func TestOffloadRefusesCorruptGSO(t *testing.T) {
	_, err := stack.NewWire(stack.WireConfig{Offload: stack.OffloadGSO, Path: stack.Path{Corrupt: 1}})
	if err == nil || !strings.Contains(err.Error(), "OffloadTSO") {
		t.Fatalf("a corrupting wire without checksums: %v", err)
	}
}
