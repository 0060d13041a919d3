package lesson

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/nsftp/nsftp/trace"
)

//go:embed page/page.html page/page.css page/page.js
var assets embed.FS

// Keep says which events a page keeps.
type Keep int

// What a page keeps.
const (
	// KeepAuto keeps every event of a run of up to EveryLimit events,
	// else bands of bulk data.
	KeepAuto Keep = iota
	// KeepEvery keeps every event: every segment steppable.
	KeepEvery
	// KeepBands keeps each band of bulk data as one row, as the text view
	// shows it, and every other event.
	KeepBands
)

// PageOptions tune Write.
type PageOptions struct {
	// Title heads the page; empty means the run's own.
	Title string
	Keep  Keep
	// Names title the runs of a page of two, side by side (a --compare
	// recording): "nsftp's netstack", "Linux 6.18's TCP".
	Names []string
}

// Write writes one self-contained HTML page of a run, or of two side by
// side, with the runs' events in it: it opens from a file, with no
// network, in any current browser. The events are kept as the JSON lines
// of --record, gzip-compressed; the page's model beside them.
func Write(w io.Writer, runs [][]trace.Event, opt PageOptions) error {
	var blobs []string
	for i, evs := range runs {
		keep := opt.Keep
		if keep == KeepAuto {
			keep = KeepEvery
			if len(evs) > EveryLimit {
				keep = KeepBands
			}
		}
		b := NewBuilder(Options{Title: opt.Title, Bands: keep == KeepBands})
		for j := range evs {
			b.event(&evs[j])
		}
		b.Finish()
		m, lines := b.model()
		if i < len(opt.Names) {
			m.Name = opt.Names[i]
		}
		m.Graph = graphOf(evs, b.t0)
		model, texts := fileParts(m)
		blob, err := pack(model, texts, lines)
		if err != nil {
			return err
		}
		blobs = append(blobs, blob)
	}
	title := opt.Title
	if title == "" && len(runs) > 0 {
		for _, e := range runs[0] {
			if e.Kind == trace.KindRun && e.Run != nil {
				title = e.Run.Title
				break
			}
		}
	}
	return writePage(w, title, blobs, pageConfig{})
}

// WriteLive writes the page of a live run: the same page, which reads
// the run from the nsftp that serves it (server-sent events at
// "events", commands to "control").
func WriteLive(w io.Writer, title string) error {
	return writePage(w, title, nil, pageConfig{Live: true})
}

// graphOf is the run's time-sequence graph, or nil when it has no data
// connection.
func graphOf(evs []trace.Event, t0 time.Time) *graphJSON {
	panels := trace.GraphLayout(evs)
	if len(panels) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := trace.WriteGraph(&buf, evs, trace.GraphOptions{}); err != nil {
		return nil
	}
	svg := buf.String()
	if i := strings.Index(svg, "<svg"); i > 0 {
		svg = svg[i:] // no XML declaration inside HTML
	}
	g := &graphJSON{SVG: svg}
	for _, p := range panels {
		g.Panels = append(g.Panels, panelJSON{Host: p.Host, Socket: p.Socket,
			T0: p.T0.Sub(t0).Microseconds(), T1: p.T1.Sub(t0).Microseconds(),
			X0: p.X0, X1: p.X1, Top: p.Top, Bottom: p.Bottom})
	}
	return g
}

// linesPerChunk is how many of a run's JSON lines are compressed
// together: the page decompresses a chunk when it first shows one of its
// events, so it opens after decompressing only its model.
const linesPerChunk = 2048

// pack is a run's model, its rows' texts and its lines, each chunk
// gzip-compressed, as lines of base64: the model first, then the chunks
// of texts, then the chunks of JSON lines.
func pack(model []byte, texts [][]string, lines [][]byte) (string, error) {
	var out strings.Builder
	z, err := gz(model)
	if err != nil {
		return "", err
	}
	out.WriteString(z)
	for _, t := range texts {
		if z, err = gz(marshal(t)); err != nil {
			return "", err
		}
		out.WriteByte('\n')
		out.WriteString(z)
	}
	for len(lines) > 0 {
		n := min(len(lines), linesPerChunk)
		z, err := gz(bytes.Join(lines[:n], []byte("\n")))
		if err != nil {
			return "", err
		}
		out.WriteByte('\n')
		out.WriteString(z)
		lines = lines[n:]
	}
	return out.String(), nil
}

// gz is b gzip-compressed, in base64.
func gz(b []byte) (string, error) {
	var buf bytes.Buffer
	b64 := base64.NewEncoder(base64.StdEncoding, &buf)
	zw, err := gzip.NewWriterLevel(b64, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(b); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := b64.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// pageConfig tells the page's script how it runs.
type pageConfig struct {
	Live bool `json:"live,omitempty"`
}

// writePage fills the page's template: its style and script inline,
// the state diagram, the runs.
func writePage(w io.Writer, title string, blobs []string, cfg pageConfig) error {
	tmpl, err := assets.ReadFile("page/page.html")
	if err != nil {
		return err
	}
	css, _ := assets.ReadFile("page/page.css")
	js, _ := assets.ReadFile("page/page.js")
	conf, _ := json.Marshal(cfg)
	var runs strings.Builder
	for i, b := range blobs {
		fmt.Fprintf(&runs, "<script type=\"application/octet-stream\" class=\"runblob\" id=\"run%d\" data-chunk=\"%d\">\n%s\n</script>\n", i, linesPerChunk, b)
	}
	if title == "" {
		title = "nsftp: a run"
	}
	// The page may run its own script and style and nothing else: no
	// request leaves it (a live page talks to the nsftp that served it).
	sum := sha256.Sum256(js)
	connect := "'none'"
	if cfg.Live {
		connect = "'self'"
	}
	csp := "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; style-src 'unsafe-inline'; img-src data:; connect-src " + connect + "; base-uri 'none'; form-action 'none'"
	repl := map[string]string{
		"{{CSP}}":    csp,
		"{{TITLE}}":  html.EscapeString(trace.Clean(title)),
		"{{STYLE}}":  string(css),
		"{{STATES}}": stateDiagram(),
		"{{CONFIG}}": strings.ReplaceAll(string(conf), "</", `<\/`),
		"{{RUNS}}":   runs.String(),
		"{{SCRIPT}}": string(js),
	}
	// The template is cut at its markers; what fills them is never looked
	// into for markers.
	bw := bufio.NewWriterSize(w, 256<<10)
	rest := string(tmpl)
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			bw.WriteString(rest)
			break
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			bw.WriteString(rest)
			break
		}
		bw.WriteString(rest[:i])
		key := rest[i : i+j+2]
		v, ok := repl[key]
		if !ok {
			return fmt.Errorf("lesson: the page's template has an unknown marker %s", key)
		}
		bw.WriteString(v)
		rest = rest[i+j+2:]
	}
	return bw.Flush()
}

// Runs are the runs of a recording a page shows: the two of a --compare
// recording, side by side, or the one.
func Runs(events []trace.Event) [][]trace.Event {
	if left, right, ok := trace.CompareRuns(events); ok {
		return [][]trace.Event{left, right}
	}
	return [][]trace.Event{events}
}

// Moment is a row of a run's page: the event the cursor stands on there
// (the number a link gives as #e=N), the host or FTP side it is of, and
// what the row says.
type Moment struct {
	Seq  int64
	Host string
	Text string
}

// Moments lists the rows of a run's page as Write makes them, for links
// to moments of a lesson (a link to #e=N opens at the first row whose
// Seq is N or more).
func Moments(events []trace.Event, keep Keep) []Moment {
	bands := keep == KeepBands || keep == KeepAuto && len(events) > EveryLimit
	b := NewBuilder(Options{Bands: bands})
	for i := range events {
		b.event(&events[i])
	}
	b.Finish()
	out := make([]Moment, 0, len(b.rows))
	for _, r := range b.rows {
		m := Moment{Seq: r.at, Text: r.text}
		if r.host >= 0 {
			m.Host = b.hosts[r.host].Name
		}
		if r.kind == rowBand {
			m.Text = b.bands[r.band].text
		}
		out = append(out, m)
	}
	return out
}
