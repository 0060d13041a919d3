package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// SnapLen is the pcap snap length nsftp writes: tcpdump's default (its
// MAXIMUM_SNAPLEN), above any frame nsftp can see. A TAP device with
// offload hands over 65,226-byte frames and a wire with GSO 65,550-byte
// ones: a smaller snap length cuts them, and tshark's stream then lacks
// their bytes.
const SnapLen = 262144

// The pcap file format (draft-ietf-opsawg-pcap): a 24-byte file header,
// then per record a 16-byte header and the captured bytes.
const (
	pcapMagicMicro   = 0xa1b2c3d4
	pcapMagicNano    = 0xa1b23c4d
	pcapFileHeader   = 24
	pcapRecordHeader = 16
)

// PCAPWriter writes frames as a pcap file with nanosecond timestamps,
// which tcpdump, tshark and Wireshark read. Each record goes to the
// underlying writer in one Write, so a reader of a live pipe never sees
// half of one. It is safe for concurrent use. The first write error is
// kept (Err) and later frames are dropped: a full disk must not take the
// transfer being captured down with it.
type PCAPWriter struct {
	mu      sync.Mutex // serialises records; guards err and buf
	w       io.Writer
	snapLen int
	err     error
	buf     []byte
}

// NewPCAPWriter writes the file header, for frames that start as link
// says, cut at snapLen bytes (0 means SnapLen).
func NewPCAPWriter(w io.Writer, link LinkType, snapLen int) (*PCAPWriter, error) {
	if snapLen <= 0 {
		snapLen = SnapLen
	}
	var hdr [pcapFileHeader]byte
	binary.LittleEndian.PutUint32(hdr[0:], pcapMagicNano)
	binary.LittleEndian.PutUint16(hdr[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(snapLen))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(link))
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("packet: writing pcap header: %w", err)
	}
	return &PCAPWriter{w: w, snapLen: snapLen}, nil
}

// WriteFrame records a frame seen at t whose length on the link was size:
// parts are its bytes in order (a scattered buffer's slices, or one
// slice), which may be fewer than size when the frame was cut short
// before it got here. At most the snap length is kept.
func (p *PCAPWriter) WriteFrame(t time.Time, size int, parts ...[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	have := 0
	for _, s := range parts {
		have += len(s)
	}
	capLen := min(have, size, p.snapLen)
	var rec [pcapRecordHeader]byte
	binary.LittleEndian.PutUint32(rec[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(rec[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(rec[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(rec[12:], uint32(size))
	p.buf = append(p.buf[:0], rec[:]...)
	left := capLen
	for _, s := range parts {
		if left == 0 {
			break
		}
		s = s[:min(len(s), left)]
		p.buf = append(p.buf, s...)
		left -= len(s)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = fmt.Errorf("packet: writing pcap: %w", err)
	}
	if cap(p.buf) > 4*SnapLen {
		p.buf = nil // one huge frame does not pin its buffer
	}
}

// Err returns the first error writing a frame, if any. A nil writer has
// none.
func (p *PCAPWriter) Err() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// PCAPRecord is one frame read from a pcap file.
type PCAPRecord struct {
	Time time.Time
	// Data is the captured bytes, valid until the next call to Next.
	Data []byte
	// Size is the frame's length on the link; more than len(Data) when
	// the capture cut it short.
	Size int
}

// PCAPReader reads a pcap file, with microsecond or nanosecond
// timestamps, in either byte order. It trusts nothing in the file: a
// record longer than the snap length, or than SnapLen when the header
// claims a larger one, is an error, not an allocation.
type PCAPReader struct {
	r       io.Reader
	order   binary.ByteOrder
	nano    bool
	link    LinkType
	snapLen int
	buf     []byte
}

// ErrNotPCAP is returned for a file that does not start as a pcap file.
var ErrNotPCAP = errors.New("packet: not a pcap file")

// NewPCAPReader reads the file header.
func NewPCAPReader(r io.Reader) (*PCAPReader, error) {
	var hdr [pcapFileHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: %d-byte header cut short", ErrNotPCAP, pcapFileHeader)
		}
		return nil, fmt.Errorf("packet: reading pcap header: %w", err)
	}
	p := &PCAPReader{r: r}
	switch {
	case binary.LittleEndian.Uint32(hdr[:]) == pcapMagicMicro:
		p.order = binary.LittleEndian
	case binary.LittleEndian.Uint32(hdr[:]) == pcapMagicNano:
		p.order, p.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(hdr[:]) == pcapMagicMicro:
		p.order = binary.BigEndian
	case binary.BigEndian.Uint32(hdr[:]) == pcapMagicNano:
		p.order, p.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic % x", ErrNotPCAP, hdr[:4])
	}
	if major := p.order.Uint16(hdr[4:]); major != 2 {
		return nil, fmt.Errorf("%w: version %d", ErrNotPCAP, major)
	}
	p.snapLen = int(p.order.Uint32(hdr[16:]))
	if p.snapLen <= 0 || p.snapLen > SnapLen {
		p.snapLen = SnapLen
	}
	// The upper bits of the link type field carry an FCS length
	// (draft-ietf-opsawg-pcap section 4): the link type is the low 16.
	p.link = LinkType(p.order.Uint32(hdr[20:]) & 0xffff)
	return p, nil
}

// LinkType is what the file's frames start with.
func (p *PCAPReader) LinkType() LinkType { return p.link }

// SnapLen is the file's snap length, at most SnapLen.
func (p *PCAPReader) SnapLen() int { return p.snapLen }

// Next reads the next record; io.EOF after the last.
func (p *PCAPReader) Next() (PCAPRecord, error) {
	var rec [pcapRecordHeader]byte
	if _, err := io.ReadFull(p.r, rec[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return PCAPRecord{}, fmt.Errorf("packet: pcap record header cut short: %w", err)
		}
		return PCAPRecord{}, err
	}
	sec, frac := p.order.Uint32(rec[0:]), p.order.Uint32(rec[4:])
	capLen, size := int(p.order.Uint32(rec[8:])), int(p.order.Uint32(rec[12:]))
	if capLen > p.snapLen {
		return PCAPRecord{}, fmt.Errorf("packet: pcap record of %d bytes, longer than the snap length %d", capLen, p.snapLen)
	}
	if cap(p.buf) < capLen {
		p.buf = make([]byte, capLen)
	}
	p.buf = p.buf[:capLen]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return PCAPRecord{}, fmt.Errorf("packet: pcap record cut short: %w", err)
	}
	nsec := int64(frac)
	if !p.nano {
		nsec *= 1000
	}
	return PCAPRecord{Time: time.Unix(int64(sec), nsec), Data: p.buf, Size: max(size, capLen)}, nil
}
