package lesson

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/netip"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
)

// load reads a recording: the trace package's demos, or this package's.
func load(t *testing.T, path string) []trace.Event {
	t.Helper()
	return testkit.ReadRecording(t, path)
}

var (
	demoActive = filepath.Join("..", "trace", "testdata", "demo-active.jsonl")
	demoOS     = filepath.Join("..", "trace", "testdata", "demo-os-active.jsonl")
	bulk       = filepath.Join("testdata", "bulk.jsonl.gz") // nsftp demo -q --size 256KiB --record
)

func build(evs []trace.Event, opt Options) (*Builder, *modelJSON) {
	b := NewBuilder(opt)
	for i := range evs {
		b.Event(&evs[i])
	}
	b.Finish()
	m, _ := b.model()
	return b, m
}

// traced are the addresses of the hosts that record their own frames.
func traced(evs []trace.Event) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, e := range evs {
		if e.Kind == trace.KindHost && e.HostInfo != nil {
			for _, p := range e.HostInfo.Addrs {
				out[p.Addr()] = true
			}
		}
	}
	return out
}

// TestRowsEveryFrameOnce: with every event kept, each frame is one row,
// as its sender sent it (the receiver's copy adds the time it arrived),
// rows keep the run's order, each row's line is its event, and the
// states and TCB samples are all there.
func TestRowsEveryFrameOnce(t *testing.T) {
	for _, path := range []string{demoActive, demoOS, bulk} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			evs := load(t, path)
			b, m := build(evs, Options{})
			tr := traced(evs)
			var frames, states, tcbs int
			for _, e := range evs {
				switch {
				case e.Kind == trace.KindSegment && !(e.Segment.Dir == trace.In && tr[e.Segment.Src.Addr()]):
					frames++
				case e.Kind == trace.KindState:
					states++
				case e.Kind == trace.KindTCB:
					tcbs++
				}
			}
			r := m.Rows
			segRows, received := 0, 0
			for i := range r.Kind {
				if i > 0 && r.At[i] < r.At[i-1] {
					t.Fatalf("row %d is at event %d, before row %d's %d", i, r.At[i], i-1, r.At[i-1])
				}
				if r.Kind[i] == rowSegment {
					segRows++
					var e trace.Event
					if err := json.Unmarshal(b.lines[r.Line[i]], &e); err != nil || e.Kind != trace.KindSegment || int64(e.Seq) != r.At[i] {
						t.Fatalf("row %d (%s) shows line %d, event %d (%v); want the segment at event %d", i, r.Text[i], r.Line[i], e.Seq, err, r.At[i])
					}
					if r.Recv[i] >= 0 {
						received++
					}
				}
			}
			if segRows != frames {
				t.Errorf("%d segment rows for %d frames sent", segRows, frames)
			}
			if len(tr) == 2 && received < segRows*9/10 {
				t.Errorf("only %d of %d frames have the time they arrived", received, segRows)
			}
			if len(b.states) != states || len(b.tcbs) != tcbs {
				t.Errorf("model: %d states, %d TCB samples; the run: %d, %d", len(b.states), len(b.tcbs), states, tcbs)
			}
		})
	}
}

// TestBandsAsTheTextView: bulk data makes the same bands as the text
// view shows (segments, bytes, ACKs, calls), whether the page keeps
// their events or not; without them, a band's last TCB samples stay.
func TestBandsAsTheTextView(t *testing.T) {
	evs := load(t, bulk)
	var text bytes.Buffer
	tv := trace.NewText(&text, trace.TextOptions{})
	for i := range evs {
		tv.Event(&evs[i])
	}
	tv.Flush()
	var want []string
	for _, l := range strings.Split(text.String(), "\n") {
		if _, band, ok := strings.Cut(l, "═ "); ok {
			want = append(want, "═ "+strings.Join(strings.Fields(band), " "))
		}
	}
	if len(want) == 0 {
		t.Fatal("the text view shows no band: the recording has no bulk data")
	}
	for _, bands := range []bool{false, true} {
		b, m := build(evs, Options{Bands: bands})
		var got []string
		for _, bd := range b.bands {
			got = append(got, strings.Join(strings.Fields(bd.text), " "))
		}
		if !slices.Equal(got, want) {
			t.Errorf("Bands=%v: the page's bands\n%q\nthe text view's\n%q", bands, got, want)
		}
		if !bands {
			for i, bd := range b.bands {
				for r := bd.first; r <= bd.last; r++ {
					if m.Rows.Band[r] != i {
						t.Errorf("band %d spans rows %d-%d, but row %d is in band %d", i, bd.first, bd.last, r, m.Rows.Band[r])
					}
				}
			}
			continue
		}
		// The events of a band are not in the page; the band's row is.
		rows := 0
		for i, k := range m.Rows.Kind {
			if k == rowBand {
				rows++
				if bd := b.bands[m.Rows.Band[i]]; bd.row != i || m.Rows.At[i] != bd.at {
					t.Errorf("band row %d: band %+v", i, bd)
				}
			}
		}
		if rows != len(b.bands) || len(b.lines) >= len(evs)/2 {
			t.Errorf("Bands: %d band rows for %d bands; %d of %d events kept", rows, len(b.bands), len(b.lines), len(evs))
		}
		// The sender's TCB at each band's end: its last sample in the band.
		for _, bd := range b.bands {
			var last int64 = -1
			for _, e := range evs {
				if e.Kind == trace.KindTCB && e.Host == b.hosts[bd.host].Name && e.TCB.Socket == bd.fd && int64(e.Seq) <= bd.at {
					last = int64(e.Seq)
				}
			}
			found := last < 0
			for _, s := range b.tcbs {
				if s.at == last && s.host == bd.host && s.fd == bd.fd {
					found = true
				}
			}
			if !found {
				t.Errorf("band %q: the sender's last TCB sample (event %d) is not in the page", bd.text, last)
			}
		}
	}
}

// client is a page's copy of a model, built from deltas as page.js
// builds it: each table cut at the delta's from, the delta appended.
type client struct {
	rows  rowsJSON
	bands bandsJSON
	st    statesJSON
	tcb   tcbJSON
	lines []json.RawMessage
}

func cut[T any](dst *[]T, from int, add []T) {
	*dst = append((*dst)[:min(from, len(*dst))], add...)
}

func (c *client) apply(t *testing.T, d []byte) {
	t.Helper()
	var j modelJSON
	if err := json.Unmarshal(d, &j); err != nil {
		t.Fatal(err)
	}
	r, f := &c.rows, j.Rows.From
	cut(&r.Kind, f, j.Rows.Kind)
	cut(&r.At, f, j.Rows.At)
	cut(&r.T, f, j.Rows.T)
	cut(&r.Host, f, j.Rows.Host)
	cut(&r.FD, f, j.Rows.FD)
	cut(&r.Label, f, j.Rows.Label)
	cut(&r.Line, f, j.Rows.Line)
	cut(&r.Line2, f, j.Rows.Line2)
	cut(&r.Text, f, j.Rows.Text)
	cut(&r.X, f, j.Rows.X)
	cut(&r.Flags, f, j.Rows.Flags)
	cut(&r.Band, f, j.Rows.Band)
	cut(&r.Conn, f, j.Rows.Conn)
	cut(&r.Recv, f, j.Rows.Recv)
	bs, f := &c.bands, j.BandRows.From
	cut(&bs.First, f, j.BandRows.First)
	cut(&bs.Last, f, j.BandRows.Last)
	cut(&bs.Segs, f, j.BandRows.Segs)
	cut(&bs.Text, f, j.BandRows.Text)
	cut(&bs.At, f, j.BandRows.At)
	cut(&c.st.At, j.St.From, j.St.At)
	cut(&c.st.Is, j.St.From, j.St.Is)
	cut(&c.tcb.At, j.TCB.From, j.TCB.At)
	cut(&c.tcb.Line, j.TCB.From, j.TCB.Line)
	cut(&c.lines, j.LinesFrom, j.Lines)
	if len(c.lines) != j.NLines {
		t.Fatalf("after a delta the page has %d lines, the model %d", len(c.lines), j.NLines)
	}
}

// TestDeltas: a live page that gets the model in deltas, as events come
// (and as step mode flushes before each prompt), ends with the model a
// file would hold, bands formed under its eyes included.
func TestDeltas(t *testing.T) {
	for _, path := range []string{demoActive, bulk} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			evs := load(t, path)
			b := NewBuilder(Options{})
			var c client
			var m Mark
			for i := range evs {
				b.Event(&evs[i])
				if i%3 == 0 {
					b.Flush()
				}
				if i%2 == 0 || i%7 == 0 {
					var d []byte
					d, m = b.Delta(m)
					c.apply(t, d)
				}
			}
			b.Finish()
			d, _ := b.Delta(m)
			c.apply(t, d)
			whole, _ := b.Delta(Mark{})
			var w client
			w.apply(t, whole)
			if !reflect.DeepEqual(c.rows, w.rows) {
				for i := range max(len(c.rows.Kind), len(w.rows.Kind)) {
					if i >= len(c.rows.Text) || i >= len(w.rows.Text) || c.rows.Text[i] != w.rows.Text[i] || c.rows.Band[i] != w.rows.Band[i] || c.rows.Recv[i] != w.rows.Recv[i] {
						t.Fatalf("row %d differs: live %v, whole %v", i, rowAt(c.rows, i), rowAt(w.rows, i))
					}
				}
				t.Fatal("the live rows differ from the whole model's")
			}
			if !reflect.DeepEqual(c.bands, w.bands) || !reflect.DeepEqual(c.st, w.st) || !reflect.DeepEqual(c.tcb, w.tcb) || !reflect.DeepEqual(c.lines, w.lines) {
				t.Error("the live bands, states, TCB samples or lines differ from the whole model's")
			}
		})
	}
}

func rowAt(r rowsJSON, i int) any {
	if i >= len(r.Text) {
		return "(none)"
	}
	return []any{r.Kind[i], r.At[i], r.Text[i], r.Band[i], r.Recv[i]}
}

// TestFileColumns: the binary columns of a file's model read back as the
// model's numbers, the compressed ones (differences) and the wide ones
// (an hour's gap between two events) alike.
func TestFileColumns(t *testing.T) {
	evs := load(t, bulk)
	// A gap of an hour in the middle: times no longer differ by 32 bits' worth of µs.
	gap := slices.Clone(evs)
	for i := len(gap) / 2; i < len(gap); i++ {
		gap[i].Time = gap[i].Time.Add(time.Hour)
	}
	for name, run := range map[string][]trace.Event{"bulk": evs, "gap": gap} {
		_, m := build(run, Options{})
		model, texts := fileParts(m)
		nl := bytes.IndexByte(model, '\n')
		var fm struct {
			Rows fileRows `json:"rows"`
		}
		if err := json.Unmarshal(model[:nl], &fm); err != nil {
			t.Fatal(err)
		}
		off := nl + 1
		for off%8 != 0 {
			off++
		}
		got := map[string][]int64{}
		for _, c := range fm.Rows.Order {
			n := fm.Rows.N
			vals := make([]int64, n)
			if c[1] == "f64" {
				for i := range vals {
					vals[i] = int64(math.Float64frombits(binary.LittleEndian.Uint64(model[off+8*i:])))
				}
				off += 8 * n
			} else {
				var acc int64
				for i := range vals {
					v := int64(int32(binary.LittleEndian.Uint32(model[off+4*i:])))
					switch c[1] {
					case "d32":
						acc += v
						v = acc
					case "r32":
						if v >= 0 {
							v += got["t"][i]
						}
					}
					vals[i] = v
				}
				off += 4 * n
			}
			for off%8 != 0 {
				off++
			}
			got[c[0]] = vals
		}
		ints := func(v []int) []int64 {
			out := make([]int64, len(v))
			for i, x := range v {
				out[i] = int64(x)
			}
			return out
		}
		r := m.Rows
		for col, want := range map[string][]int64{"k": ints(r.Kind), "ln": ints(r.Line), "at": r.At, "t": r.T, "rt": r.Recv, "b": ints(r.Band), "fl": ints(r.Flags)} {
			if !slices.Equal(got[col], want) {
				t.Errorf("%s: column %s reads back differently", name, col)
			}
		}
		if name == "gap" && !strings.Contains(string(model[:nl]), `["t","f64"]`) {
			t.Errorf("an hour's gap: the times are not written wide: %s", model[:nl])
		}
		var joined []string
		for _, tx := range texts {
			joined = append(joined, tx...)
		}
		if !slices.Equal(joined, r.Text) {
			t.Errorf("%s: the texts' chunks hold %d texts, the model %d", name, len(joined), len(r.Text))
		}
	}
}

// TestPageSelfContained: the page runs its own script (allowed by its
// hash and nothing else), and names no address but SVG's namespace:
// nothing from elsewhere, no font, no script, no style.
func TestPageSelfContained(t *testing.T) {
	var page bytes.Buffer
	if err := Write(&page, [][]trace.Event{load(t, demoActive)}, PageOptions{}); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	js, _ := assets.ReadFile("page/page.js")
	sum := sha256.Sum256(js)
	if !strings.Contains(html, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(html, "default-src 'none'") ||
		!strings.Contains(html, "connect-src 'none'") {
		t.Error("the page's policy does not allow its own script by its hash and nothing else")
	}
	if n := strings.Count(html, "<script>"); n != 1 || !strings.Contains(html, "<script>"+string(js)+"</script>") {
		t.Errorf("the page has %d scripts, want its own, whole", n)
	}
	for _, u := range regexp.MustCompile(`(?i)(https?:|//[a-z0-9.-]+\.[a-z]{2,}/)\S*`).FindAllString(html, -1) {
		if !strings.HasPrefix(u, "http://www.w3.org/2000/svg") {
			t.Errorf("the page names an address: %s", u)
		}
	}
	for _, bad := range []string{" src=", "@import", "url(http", "<link rel=\"stylesheet\"", "@font-face"} {
		if strings.Contains(html, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
}

// TestStateDiagram: a node for every state (CLOSED twice, as RFC 793's
// figure has it), and an arrow only where RFC 793 (or netstack's names
// for CLOSED) allows a move.
func TestStateDiagram(t *testing.T) {
	svg := stateDiagram()
	for _, s := range stateNames {
		if !strings.Contains(svg, `id="st-`+string(s)+`"`) {
			t.Errorf("no node for %s", s)
		}
	}
	if !strings.Contains(svg, `id="st-CLOSED-end"`) {
		t.Error("no second CLOSED where connections end")
	}
	seen := map[string]bool{}
	for _, e := range sdEdges {
		if !trace.Allowed(e.from, e.to) {
			t.Errorf("an arrow %s -> %s, which RFC 793 does not allow", e.from, e.to)
		}
		k := string(e.from) + "--" + string(e.to)
		if seen[k] {
			t.Errorf("two arrows %s", k)
		}
		seen[k] = true
	}
	// RFC 793's own transitions, figure 6, are all drawn.
	for _, k := range []string{"CLOSED--LISTEN", "CLOSED--SYN-SENT", "LISTEN--SYN-RECEIVED", "LISTEN--SYN-SENT", "LISTEN--CLOSED",
		"SYN-SENT--SYN-RECEIVED", "SYN-SENT--ESTABLISHED", "SYN-RECEIVED--ESTABLISHED", "SYN-RECEIVED--FIN-WAIT-1",
		"ESTABLISHED--FIN-WAIT-1", "ESTABLISHED--CLOSE-WAIT", "FIN-WAIT-1--FIN-WAIT-2", "FIN-WAIT-1--CLOSING",
		"FIN-WAIT-2--TIME-WAIT", "CLOSING--TIME-WAIT", "CLOSE-WAIT--LAST-ACK", "LAST-ACK--CLOSED", "TIME-WAIT--CLOSED"} {
		if !seen[k] {
			t.Errorf("RFC 793's figure 6 has %s; the diagram does not", k)
		}
	}
}
