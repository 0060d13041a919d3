package kernel

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// pcapWriter writes frames in the pcap format nsftp's stack writes
// (stack/capture.go): nanosecond timestamps, Ethernet link type, one
// Write per record so that a reader of a live pipe never sees half of
// one. The first write error stops it and is kept.
type pcapWriter struct {
	w   io.Writer
	buf []byte
	err error
}

const (
	pcapSnapLen      = 262144
	linkTypeEthernet = 1
)

func newPCAPWriter(w io.Writer) (*pcapWriter, error) {
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d) // nanosecond-resolution pcap
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(hdr[20:], linkTypeEthernet)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("writing pcap header: %w", err)
	}
	return &pcapWriter{w: w}, nil
}

// write records frame, captured at t, whose whole length was size.
func (p *pcapWriter) write(t time.Time, frame []byte, size int) {
	if p.err != nil {
		return
	}
	frame = frame[:min(len(frame), pcapSnapLen)]
	var rec [16]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(size))
	p.buf = append(append(p.buf[:0], rec[:]...), frame...)
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = fmt.Errorf("writing pcap: %w", err)
	}
}
