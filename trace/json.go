package trace

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// segmentJSON is a Segment as JSON: addresses as text, with a port for TCP
// and UDP, as tcpdump writes them.
type segmentJSON struct {
	Dir         Direction   `json:"dir"`
	Proto       string      `json:"proto"`
	Src         string      `json:"src,omitempty"`
	Dst         string      `json:"dst,omitempty"`
	Socket      int         `json:"socket,omitempty"`
	Label       Conn        `json:"label,omitempty"`
	Flags       TCPFlags    `json:"flags,omitempty"`
	Seq         uint32      `json:"seq,omitempty"`
	Ack         uint32      `json:"ack,omitempty"`
	Window      uint16      `json:"window,omitempty"`
	Options     string      `json:"options,omitempty"`
	WindowScale *int        `json:"window_scale,omitempty"`
	SACK        [][2]uint32 `json:"sack,omitempty"`
	Retransmit  bool        `json:"retransmit,omitempty"`
	Len         int         `json:"len"`
	Frame       int         `json:"frame"`
	Info        string      `json:"info,omitempty"`
	Chain       []string    `json:"chain,omitempty"`
	EtherType   uint16      `json:"ethertype,omitempty"`
	EthSrc      string      `json:"eth_src,omitempty"`
	EthDst      string      `json:"eth_dst,omitempty"`
	TTL         uint8       `json:"ttl,omitempty"`
	IPID        uint16      `json:"ip_id,omitempty"`
	DF          bool        `json:"df,omitempty"`
}

// Addrs is the segment's "source > destination", with ports for TCP and
// UDP.
func (s *Segment) Addrs() string { return s.addrText(s.Src) + " > " + s.addrText(s.Dst) }

// HasPorts reports whether the segment's addresses carry ports.
func (s *Segment) HasPorts() bool { return s.Proto == "tcp" || s.Proto == "udp" }

// MarshalJSON implements json.Marshaler.
func (s Segment) MarshalJSON() ([]byte, error) {
	j := segmentJSON{
		Dir: s.Dir, Proto: s.Proto, Socket: s.Socket, Label: s.Label, Flags: s.Flags,
		Seq: s.Seq, Ack: s.Ack, Window: s.Window, Options: s.Options, Retransmit: s.Retransmit,
		Len: s.Len, Frame: s.Frame, Info: s.Info, Chain: s.Chain,
		EtherType: s.EtherType, TTL: s.TTL, IPID: s.IPID, DF: s.DF,
	}
	if s.EtherType != 0 {
		j.EthSrc, j.EthDst = s.EthSrc.String(), s.EthDst.String()
	}
	j.Src, j.Dst = s.addrText(s.Src), s.addrText(s.Dst)
	for _, b := range s.SACK {
		j.SACK = append(j.SACK, [2]uint32{b.Start, b.End})
	}
	if s.Options != "" {
		ws := s.WindowScale
		j.WindowScale = &ws
	}
	return json.Marshal(j)
}

func (s *Segment) addrText(a netip.AddrPort) string {
	switch {
	case !a.Addr().IsValid():
		return ""
	case s.HasPorts():
		return a.String()
	default:
		return a.Addr().String()
	}
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *Segment) UnmarshalJSON(b []byte) error {
	var j segmentJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Segment{
		Dir: j.Dir, Proto: j.Proto, Socket: j.Socket, Label: j.Label, Flags: j.Flags,
		Seq: j.Seq, Ack: j.Ack, Window: j.Window, Options: j.Options, WindowScale: -1, Retransmit: j.Retransmit,
		Len: j.Len, Frame: j.Frame, Info: j.Info, Chain: j.Chain,
		EtherType: j.EtherType, TTL: j.TTL, IPID: j.IPID, DF: j.DF,
	}
	var err error
	if j.EthSrc != "" {
		if s.EthSrc, err = ParseMAC(j.EthSrc); err != nil {
			return err
		}
	}
	if j.EthDst != "" {
		if s.EthDst, err = ParseMAC(j.EthDst); err != nil {
			return err
		}
	}
	if j.WindowScale != nil {
		s.WindowScale = *j.WindowScale
	}
	for _, b := range j.SACK {
		s.SACK = append(s.SACK, SACKBlock{b[0], b[1]})
	}
	if s.Src, err = parseEnd(j.Src); err != nil {
		return err
	}
	s.Dst, err = parseEnd(j.Dst)
	return err
}

// parseEnd reads "ip:port" or a bare IP address.
func parseEnd(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("trace: address %q: %w", s, err)
	}
	return netip.AddrPortFrom(a, 0), nil
}

// JSONWriter writes events as JSON lines, one object per event, in the
// order it is given them. It holds lines back to write many at once, never
// one cut in two; EndBatch and Flush write out what it holds.
type JSONWriter struct {
	bw  *lineWriter
	enc *json.Encoder
	err error
}

// NewJSONWriter returns a JSONWriter on w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	bw := newLineWriter(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // "sock->ops->bind" stays readable
	return &JSONWriter{bw: bw, enc: enc}
}

// Event implements Sink. A command's PASS or ACCT argument is written
// masked (RedactCommand), even if whoever recorded it forgot to.
func (j *JSONWriter) Event(e *Event) {
	if j.err != nil {
		return
	}
	if e.Kind == KindCommand && e.Message != nil {
		if r := RedactCommand(e.Text); r != e.Text {
			m := *e.Message
			m.Text = r
			masked := *e
			masked.Message = &m
			e = &masked
		}
	}
	j.err = j.enc.Encode(e)
}

// EndBatch implements LineSink.
func (j *JSONWriter) EndBatch() error { return j.Flush() }

// Flush implements Sink.
func (j *JSONWriter) Flush() error {
	if j.err == nil {
		j.err = j.bw.Flush()
	}
	return j.err
}

// ReadJSON reads a run recorded as JSON lines (--trace=json), or the
// same compressed with gzip (RUN.jsonl.gz: known by its first bytes, not
// its name). Blank lines are skipped. A line that is not an event, or an
// event without what its kind carries (a state event without "state"),
// stops the reading: ReadJSON returns the events before it with a
// *CutError that says where, so a recording cut short while it was
// written (a killed run, a full disk) can still be shown up to there.
func ReadJSON(r io.Reader) ([]Event, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading the gzip header: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	var (
		offset, next int64 // the current line's first byte, and the next's
		whole        bool  // the current line ended with a newline
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			offset, next, whole = next, next+int64(i)+1, true
			return i + 1, bytes.TrimSuffix(data[:i], []byte("\r")), nil
		}
		if atEOF && len(data) > 0 {
			offset, next, whole = next, next+int64(len(data)), false
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	var evs eventChunks
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		cut := func(err error) ([]Event, error) {
			return evs.all(), &CutError{Line: n, Offset: offset, Events: evs.n, Err: err}
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			var syntax *json.SyntaxError
			if !whole && errors.As(err, &syntax) {
				// The last line, unfinished: the recording was cut.
				return evs.all(), &CutError{Line: n, Offset: offset, MidLine: true, Events: evs.n, Err: err}
			}
			return cut(fmt.Errorf("not a trace event: %w", err))
		}
		if e.Kind == "" || e.Layer == "" {
			return cut(fmt.Errorf("not a trace event: no %s", strconv.Quote(map[bool]string{true: "kind", false: "layer"}[e.Kind == ""])))
		}
		if field := missing(&e); field != "" {
			return cut(fmt.Errorf("a %s event without %s", strconv.Quote(string(e.Kind)), strconv.Quote(field)))
		}
		evs.add(e)
	}
	if err := sc.Err(); err != nil {
		// A compressed recording cut short ends inside its stream.
		return evs.all(), &CutError{Line: n + 1, Offset: next, MidLine: true, Events: evs.n, Err: err}
	}
	return evs.all(), nil
}

// eventChunks gathers a recording's events in chunks and copies them into
// one slice once, at the end. Appending to one slice would copy it whole
// each time it grows: for a 1 GiB run's 1.5 million events, copies of
// hundreds of megabytes that the garbage collector must wait out (a
// profile of `nsftp show --html` of that run had 10.9 s of its 24.6 s in
// growslice and the collector's waits for it).
type eventChunks struct {
	done [][]Event
	cur  []Event
	n    int
}

const eventChunk = 4096

func (c *eventChunks) add(e Event) {
	if len(c.cur) == cap(c.cur) {
		if len(c.cur) > 0 {
			c.done = append(c.done, c.cur)
		}
		c.cur = make([]Event, 0, eventChunk)
	}
	c.cur = append(c.cur, e)
	c.n++
}

func (c *eventChunks) all() []Event {
	if len(c.done) == 0 {
		return c.cur
	}
	out := make([]Event, 0, c.n)
	for _, d := range c.done {
		out = append(out, d...)
	}
	return append(out, c.cur...)
}

// CutError says where a recording stops being readable. The events
// before it were read.
type CutError struct {
	Line    int   // the line that could not be read, from 1
	Offset  int64 // its first byte (in the uncompressed stream)
	MidLine bool  // the recording ends inside that line: cut short as it was written
	Events  int   // how many events were read before it
	Err     error // what is wrong with the line
}

func (e *CutError) Error() string {
	if e.MidLine {
		return fmt.Sprintf("the recording ends in the middle of line %d (byte %d), after %d events: it was cut short while it was written", e.Line, e.Offset, e.Events)
	}
	return fmt.Sprintf("line %d (byte %d), after %d events: %v", e.Line, e.Offset, e.Events, e.Err)
}

func (e *CutError) Unwrap() error { return e.Err }

// Whole reports whether a run's events end with the end its recorder
// writes when the run is over (KindEnd): a recording that stops without
// it was cut short, or is still being written.
func Whole(evs []Event) bool {
	return len(evs) > 0 && evs[len(evs)-1].Kind == KindEnd
}

// missing names the field an event of its kind must carry and does not:
// the views read it without looking, and a recording is anyone's file.
// Kinds this version does not know pass, for a later version's
// recordings.
func missing(e *Event) string {
	switch {
	case e.Kind == KindRun && e.Run == nil:
		return "run"
	case e.Kind == KindHost && e.HostInfo == nil:
		return "host_info"
	case e.Kind == KindCall && e.Call == nil:
		return "call"
	case (e.Kind == KindSegment || e.Kind == KindDrop) && e.Segment == nil:
		return "segment"
	case e.Kind == KindDrop && e.Drop == nil:
		return "drop"
	case e.Kind == KindState && e.State == nil:
		return "state"
	case e.Kind == KindTCB && e.TCB == nil:
		return "tcb"
	case e.Kind == KindConfig && e.Config == nil:
		return "config"
	case e.Kind == KindTCPEvent && e.TCPEvent == nil:
		return "tcp_event"
	}
	switch e.Kind {
	case KindCommand, KindReply, KindDataOpen, KindDataClose, KindTLS, KindNote:
		if e.Message == nil {
			return "side"
		}
	}
	return ""
}
