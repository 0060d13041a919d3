package stack

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"
)

// pcap link types.
const (
	linkTypeEthernet = 1
	linkTypeRaw      = 101
)

// pcapWriter writes frames as pcap records (nanosecond timestamps), each
// in one Write, so a reader of a live pipe never sees half of one. It is
// safe for concurrent use. A write error is kept, and later records are
// dropped: a full disk must not take the transfer down with it.
type pcapWriter struct {
	mu      sync.Mutex // serialises records; guards err and buf
	w       io.Writer
	snapLen int
	err     error
	buf     []byte
}

// newPCAPWriter writes the file header for frames of linkType.
func newPCAPWriter(w io.Writer, snapLen int, linkType uint32) (*pcapWriter, error) {
	if snapLen <= 0 {
		snapLen = MaxMTU + 128
	}
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d) // nanosecond-resolution pcap
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(snapLen))
	binary.LittleEndian.PutUint32(hdr[20:], linkType)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("stack: writing pcap header: %w", err)
	}
	return &pcapWriter{w: w, snapLen: snapLen}, nil
}

// record writes one frame, given as the slices of its bytes.
func (p *pcapWriter) record(now time.Time, slices [][]byte) {
	size := 0
	for _, s := range slices {
		size += len(s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	capLen := min(size, p.snapLen)
	p.buf = p.buf[:0]
	var rec [16]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(now.Nanosecond()))
	binary.LittleEndian.PutUint32(rec[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(rec[12:], uint32(size))
	p.buf = append(p.buf, rec[:]...)
	left := capLen
	for _, s := range slices {
		if left == 0 {
			break
		}
		s = s[:min(len(s), left)]
		p.buf = append(p.buf, s...)
		left -= len(s)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = err
	}
}

// closeErr returns the first error writing the pcap, if any.
func (p *pcapWriter) closeErr() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("stack: writing pcap: %w", p.err)
	}
	return nil
}
