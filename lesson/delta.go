package lesson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"time"
)

// Mark is how much of a Builder's model a page has been sent: Delta
// sends what is new or changed since.
type Mark struct {
	rows, stable, changes, lines, bands, states, tcbs int
}

// modelJSON is the page's model, or a delta of it: every table's rows
// from its From on (the page drops what it had from there and appends).
// Tables are columns, for size: a 100 MiB run has 75,000 rows.
type modelJSON struct {
	V        int        `json:"v"`
	Title    string     `json:"title"`
	About    string     `json:"about,omitempty"`
	T0       string     `json:"t0,omitempty"`
	Bands    bool       `json:"bands"`
	Events   int64      `json:"events"`
	Hosts    []hostRec  `json:"hosts"`
	Conns    []*connRec `json:"conns"`
	States   []string   `json:"stateNames"`
	Rows     rowsJSON   `json:"rows"`
	BandRows bandsJSON  `json:"bandRows"`
	St       statesJSON `json:"st"`
	TCB      tcbJSON    `json:"tcb"`
	// NLines is how many lines the page has in all, once this delta is
	// applied; Lines are the new ones from LinesFrom, for a live page (a
	// file's page carries its lines apart, as JSON lines).
	NLines    int               `json:"nlines"`
	LinesFrom int               `json:"linesFrom"`
	Lines     []json.RawMessage `json:"lines,omitempty"`

	// Name titles a run of a page of two, side by side.
	Name string `json:"name,omitempty"`
	// Graph is the run's time-sequence graph, when it has a data
	// connection.
	Graph *graphJSON `json:"graph,omitempty"`
}

// graphJSON is the time-sequence graph as WriteGraph draws it, and where
// each connection's time axis is, for the page to mark the cursor on.
type graphJSON struct {
	SVG    string      `json:"svg"`
	Panels []panelJSON `json:"panels"`
}

type panelJSON struct {
	Host   string  `json:"host"`
	Socket int     `json:"socket"`
	T0     int64   `json:"t0"` // µs since the run's first event
	T1     int64   `json:"t1"`
	X0     float64 `json:"x0"`
	X1     float64 `json:"x1"`
	Top    float64 `json:"top"`
	Bottom float64 `json:"bottom"`
}

type rowsJSON struct {
	From  int      `json:"from"`
	Kind  []int    `json:"k"`
	At    []int64  `json:"at"`
	T     []int64  `json:"t"`
	Host  []int    `json:"h"`
	FD    []int    `json:"fd"`
	Label []int    `json:"lb"`
	Line  []int    `json:"ln"`
	Line2 []int    `json:"ln2"`
	Text  []string `json:"tx"`
	X     []int    `json:"x"`
	Flags []int    `json:"fl"`
	Band  []int    `json:"b"`
	Conn  []int    `json:"cn"`
	Recv  []int64  `json:"rt"`
}

type bandsJSON struct {
	From    int      `json:"from"`
	First   []int    `json:"first"`
	Last    []int    `json:"last"`
	Row     []int    `json:"row"`
	At      []int64  `json:"at"`
	T0      []int64  `json:"t0"`
	T1      []int64  `json:"t1"`
	Host    []int    `json:"h"`
	FD      []int    `json:"fd"`
	Label   []int    `json:"lb"`
	Side    []int    `json:"side"`
	Conn    []int    `json:"cn"`
	Segs    []int    `json:"segs"`
	Retrans []int    `json:"retrans"`
	Drops   []int    `json:"drops"`
	Bytes   []int64  `json:"bytes"`
	Text    []string `json:"tx"`
}

type statesJSON struct {
	From  int      `json:"from"`
	At    []int64  `json:"at"`
	Host  []int    `json:"h"`
	FD    []int    `json:"fd"`
	Was   []int    `json:"from_"`
	Is    []int    `json:"to"`
	Cause []string `json:"cause"`
	Line  []int    `json:"ln"`
}

type tcbJSON struct {
	From int     `json:"from"`
	At   []int64 `json:"at"`
	Host []int   `json:"h"`
	FD   []int   `json:"fd"`
	Line []int   `json:"ln"`
}

// fileModel is a file's model: its rows' numbers as little-endian
// binary columns after the JSON (a page of 75,000 rows then parses no
// million numbers), and their texts apart, in chunks of textChunk, read
// when shown.
type fileModel struct {
	*modelJSON
	Rows fileRows `json:"rows"`
}

type fileRows struct {
	N int `json:"n"`
	// Order lists the binary columns as they follow the JSON: name and
	// type (i32, f64), each padded to 8 bytes.
	Order     [][2]string `json:"order"`
	TextChunk int         `json:"textChunk"`
	Texts     int         `json:"texts"` // how many chunks of texts
}

// textChunk is how many rows' texts are compressed together.
const textChunk = 2048

// fileParts is a run's model for a file: the JSON with the binary
// columns after it, and the rows' texts in chunks.
//
// A column is written as what compresses best: "i32" plain, "d32" the
// differences from the row before (line numbers, seqs and times climb
// row by row), "r32" the difference from the column "t" (when a frame
// arrived, from when it was sent), or "f64" plain where a difference
// would not fit 32 bits (a run that slept for an hour).
func fileParts(j *modelJSON) (model []byte, texts [][]string) {
	r := &j.Rows
	toInt := func(v []int) []int64 {
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out
	}
	cols := []struct {
		name string
		v    []int64
		enc  string
	}{
		{"k", toInt(r.Kind), "i32"}, {"h", toInt(r.Host), "i32"}, {"fd", toInt(r.FD), "i32"}, {"lb", toInt(r.Label), "i32"},
		{"ln", toInt(r.Line), "d32"}, {"ln2", toInt(r.Line2), "i32"}, {"x", toInt(r.X), "i32"}, {"fl", toInt(r.Flags), "i32"},
		{"b", toInt(r.Band), "i32"}, {"cn", toInt(r.Conn), "i32"},
		{"at", r.At, "d32"}, {"t", r.T, "d32"}, {"rt", r.Recv, "r32"},
	}
	fm := fileModel{modelJSON: j, Rows: fileRows{N: len(r.Kind), TextChunk: textChunk}}
	for t := r.Text; len(t) > 0; {
		n := min(len(t), textChunk)
		texts = append(texts, t[:n])
		t = t[n:]
	}
	fm.Rows.Texts = len(texts)
	fits := func(v int64) bool { return v >= math.MinInt32 && v <= math.MaxInt32 }
	var bin []byte
	for _, c := range cols {
		enc := c.enc
		vals := make([]int64, len(c.v))
		for i, v := range c.v {
			switch enc {
			case "d32":
				if i > 0 {
					v -= c.v[i-1]
				}
			case "r32":
				if v >= 0 {
					v -= r.T[i]
				}
			}
			vals[i] = v
			if !fits(v) {
				enc = "f64"
			}
		}
		fm.Rows.Order = append(fm.Rows.Order, [2]string{c.name, enc})
		if enc == "f64" {
			for _, v := range c.v {
				bin = binary.LittleEndian.AppendUint64(bin, math.Float64bits(float64(v)))
			}
		} else {
			for _, v := range vals {
				bin = binary.LittleEndian.AppendUint32(bin, uint32(int32(v)))
			}
		}
		for len(bin)%8 != 0 {
			bin = append(bin, 0)
		}
	}
	head := marshal(fm)
	model = append(head, '\n')
	for len(model)%8 != 0 { // the columns start 8-byte aligned
		model = append(model, ' ')
	}
	return append(model, bin...), texts
}

// model is the whole model, with the lines apart.
func (b *Builder) model() (*modelJSON, [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, _ := b.table(Mark{}, false)
	return j, b.lines
}

// Delta is the model's JSON since m, with the new lines, and the mark
// to give next time. Mark{} gives the whole model.
func (b *Builder) Delta(m Mark) ([]byte, Mark) {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, next := b.table(m, true)
	return marshal(j), next
}

// marshal writes the model as JSON.
func marshal(j any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "->" stays readable, and short; the page never parses it as HTML
	if err := enc.Encode(j); err != nil {
		// Every field is a number, a string or a list of them.
		panic("lesson: encoding the model: " + err.Error())
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func (b *Builder) table(m Mark, lines bool) (*modelJSON, Mark) {
	j := &modelJSON{V: 1, Title: b.title, About: b.about, Bands: b.opt.Bands, Events: b.n,
		Hosts: b.hosts, Conns: b.conns, NLines: len(b.lines), Graph: b.graph}
	if !b.t0.IsZero() {
		j.T0 = b.t0.Format(time.RFC3339Nano)
	}
	if j.Hosts == nil {
		j.Hosts = []hostRec{}
	}
	if j.Conns == nil {
		j.Conns = []*connRec{}
	}
	for _, s := range stateNames {
		j.States = append(j.States, string(s))
	}
	from := min(m.rows, m.stable)
	for _, r := range b.changes[min(m.changes, len(b.changes)):] {
		from = min(from, r)
	}
	rs := &j.Rows
	rs.From = from
	for _, r := range b.rows[from:] {
		rs.Kind = append(rs.Kind, r.kind)
		rs.At = append(rs.At, r.at)
		rs.T = append(rs.T, r.t)
		rs.Host = append(rs.Host, r.host)
		rs.FD = append(rs.FD, r.fd)
		rs.Label = append(rs.Label, r.label)
		rs.Line = append(rs.Line, r.line)
		rs.Line2 = append(rs.Line2, r.line2)
		rs.Text = append(rs.Text, r.text)
		rs.X = append(rs.X, r.x)
		rs.Flags = append(rs.Flags, r.flags)
		rs.Band = append(rs.Band, r.band)
		rs.Conn = append(rs.Conn, r.conn)
		rs.Recv = append(rs.Recv, r.recv)
	}
	bs := &j.BandRows
	bs.From = min(m.bands, len(b.bands))
	for _, bd := range b.bands[bs.From:] {
		bs.First = append(bs.First, bd.first)
		bs.Last = append(bs.Last, bd.last)
		bs.Row = append(bs.Row, bd.row)
		bs.At = append(bs.At, bd.at)
		bs.T0 = append(bs.T0, bd.t0)
		bs.T1 = append(bs.T1, bd.t1)
		bs.Host = append(bs.Host, bd.host)
		bs.FD = append(bs.FD, bd.fd)
		bs.Label = append(bs.Label, bd.label)
		bs.Side = append(bs.Side, bd.side)
		bs.Conn = append(bs.Conn, bd.conn)
		bs.Segs = append(bs.Segs, bd.segs)
		bs.Retrans = append(bs.Retrans, bd.retrans)
		bs.Drops = append(bs.Drops, bd.drops)
		bs.Bytes = append(bs.Bytes, bd.bytes)
		bs.Text = append(bs.Text, bd.text)
	}
	st := &j.St
	st.From = m.states
	for _, s := range b.states[m.states:] {
		st.At = append(st.At, s.at)
		st.Host = append(st.Host, s.host)
		st.FD = append(st.FD, s.fd)
		st.Was = append(st.Was, s.from)
		st.Is = append(st.Is, s.to)
		st.Cause = append(st.Cause, s.cause)
		st.Line = append(st.Line, s.line)
	}
	tc := &j.TCB
	tc.From = m.tcbs
	for _, t := range b.tcbs[m.tcbs:] {
		tc.At = append(tc.At, t.at)
		tc.Host = append(tc.Host, t.host)
		tc.FD = append(tc.FD, t.fd)
		tc.Line = append(tc.Line, t.line)
	}
	if lines {
		j.LinesFrom = m.lines
		for _, l := range b.lines[m.lines:] {
			j.Lines = append(j.Lines, json.RawMessage(l))
		}
		if j.Lines == nil {
			j.Lines = []json.RawMessage{}
		}
	}
	next := Mark{rows: len(b.rows), stable: b.stable, changes: len(b.changes), lines: len(b.lines),
		bands: b.closedBand, states: len(b.states), tcbs: len(b.tcbs)}
	return j, next
}
