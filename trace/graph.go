package trace

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GraphOptions tune WriteGraph. The zero value draws every data
// connection of a run.
type GraphOptions struct {
	// Title heads the drawing; empty means the run's own.
	Title string
}

// WriteGraph draws a time-sequence graph of each data connection of a
// run, in the style of tcptrace and Stevens: time across, sequence number
// up; each data segment a vertical bar from its first byte to its last,
// retransmissions in red, segments the wire lost black crosses; the acknowledgment line, the receive window's
// edge above it and SACK blocks, as the sender saw them come back; and,
// on a second axis, the sender's own congestion window and slow-start
// threshold from its TCB samples, with the congestion-control phase each
// sample shows named along the bottom: slow start, congestion avoidance,
// fast recovery, recovery from a timeout (RTO). A transfer too long to
// draw segment by segment is drawn a pixel column at a time, but every
// retransmission keeps its own mark. The SVG is self-contained.
func WriteGraph(w io.Writer, events []Event, opt GraphOptions) error {
	g := newGraph(events, opt)
	_, err := w.Write(g.render())
	return err
}

// graphConn is one connection's data, as its sender saw it (or, when the
// sender is not traced, as the receiver did).
type graphConn struct {
	key      connKey
	from, to netip.AddrPort // the data's sender and receiver
	host     string         // the host whose view is drawn
	socket   int            // the sender's socket, when traced
	label    Conn
	isn      uint32 // the sender's initial sequence number
	irsSet   bool
	ws       [2]int // window scale of the sender's SYN [0] and the receiver's [1]
	t0, t1   time.Time
	data     []graphSeg
	drops    []graphSeg // data segments the wire lost
	acks     []graphAck
	sacks    []graphSACK
	tcb      []graphTCB
	maxSeq   uint32
	bytes    int64 // the sequence space its data segments cover: see covered
	retrans  int
	received map[uint32]bool
}

type graphSeg struct {
	at         time.Time
	start, end uint32 // relative
	rtx        bool
}

type graphAck struct {
	at       time.Time
	ack, win uint32 // relative ack, the right edge of the window
}

type graphSACK struct {
	at         time.Time
	start, end uint32
}

type graphTCB struct {
	at             time.Time
	cwnd, ssthresh int
	mss            int
	phase          string
}

type graph struct {
	title string
	conns []*graphConn
}

// graphScale, where set, fixes a panel's scales (WriteCompareGraph draws
// two runs' panels on the same ones); zero fields are the panel's own.
type graphScale struct {
	span    time.Duration
	seqMax  float64
	cwndMax float64
	name    string // heads the panel: the stack it ran on
}

func newGraph(events []Event, opt GraphOptions) *graph {
	g := &graph{title: opt.Title}
	traced := map[netip.Addr]string{}
	syn := map[dirKey]Segment{}
	for _, e := range events {
		switch {
		case e.Kind == KindRun && e.Run != nil && g.title == "":
			g.title = e.Run.Title + ": time-sequence graph"
		case e.Kind == KindHost && e.HostInfo != nil:
			for _, p := range e.HostInfo.Addrs {
				traced[p.Addr()] = e.Host
			}
		case e.Segment != nil && e.Segment.Proto == "tcp" && e.Segment.Flags.Has(SYN):
			syn[dirKey{e.Segment.Src, e.Segment.Dst}] = *e.Segment
		}
	}
	// Which connections carry data, and who sent it. A frame the wire
	// lost names no connection (the wire knows no sockets): it is drawn on
	// the connection the stacks' own segments make known, and a lost
	// control segment must not make the control connection a graph.
	byKey := map[connKey]*graphConn{}
	for _, e := range events {
		s := e.Segment
		if s == nil || e.Kind == KindDrop || s.Proto != "tcp" || s.Len == 0 || s.Label == Control || s.Flags.Has(SYN) {
			continue
		}
		k := connOf(s)
		if byKey[k] != nil {
			continue
		}
		c := &graphConn{key: k, from: s.Src, to: s.Dst, label: s.Label, ws: [2]int{-1, -1}}
		if h, ok := traced[s.Src.Addr()]; ok {
			c.host = h // the sender's own view, with its TCB
		} else {
			c.host = e.Host
		}
		if sy, ok := syn[dirKey{c.from, c.to}]; ok {
			c.isn, c.irsSet, c.ws[0] = sy.Seq, true, sy.WindowScale
		}
		if sy, ok := syn[dirKey{c.to, c.from}]; ok {
			c.ws[1] = sy.WindowScale
		}
		byKey[k] = c
		g.conns = append(g.conns, c)
	}
	for _, e := range events {
		if e.Time.IsZero() {
			continue
		}
		if s := e.Segment; s != nil && s.Proto == "tcp" && e.Kind == KindSegment {
			c := byKey[connOf(s)]
			if c == nil || e.Host != c.host {
				continue
			}
			c.add(e.Time, s)
		}
		if s := e.Segment; s != nil && e.Kind == KindDrop && s.Proto == "tcp" && s.Len > 0 {
			if c := byKey[connOf(s)]; c != nil && s.Src == c.from {
				start := s.Seq - c.isn
				c.drops = append(c.drops, graphSeg{at: e.Time, start: start, end: start + uint32(s.Len)})
			}
		}
		if b := e.TCB; b != nil && e.Kind == KindTCB {
			for _, c := range g.conns {
				// The sender's own samples: of its socket on the host
				// whose view is drawn, or (the kernel's) of the
				// connection's sending end, whichever host recorded them.
				if e.Host == c.host && b.Socket == c.socket && c.socket != 0 || b.Local == c.from && b.Remote == c.to && b.Local.IsValid() {
					c.tcb = append(c.tcb, graphTCB{at: e.Time, cwnd: b.Cwnd, ssthresh: b.Ssthresh, mss: b.MSS, phase: phaseOf(b)})
				}
			}
		}
	}
	for _, c := range g.conns {
		c.bytes = covered(c.data)
	}
	return g
}

// covered is how many bytes of sequence space the data segments span
// together, each byte once: the data the sender moved. Summing the
// segments that are not resends says the same only when every first
// sending was seen; a kernel's capture (taken where the device sends,
// after its qdisc) never sees a segment the qdisc dropped, only its
// resend.
func covered(segs []graphSeg) int64 {
	spans := make([][2]uint32, len(segs))
	for i, s := range segs {
		spans[i] = [2]uint32{s.start, s.end}
	}
	slices.SortFunc(spans, func(a, b [2]uint32) int { return cmp.Compare(a[0], b[0]) })
	var n int64
	var reach uint32 // the end of the sequence space counted so far
	for i, s := range spans {
		if i == 0 || s[0] > reach {
			n += int64(s[1] - s[0])
			reach = s[1]
		} else if s[1] > reach {
			n += int64(s[1] - reach)
			reach = s[1]
		}
	}
	return n
}

// add takes one segment of the connection, seen from c.host.
func (c *graphConn) add(at time.Time, s *Segment) {
	if c.t0.IsZero() || at.Before(c.t0) {
		c.t0 = at
	}
	if at.After(c.t1) {
		c.t1 = at
	}
	if !c.irsSet {
		c.isn, c.irsSet = s.Seq-1, true
	}
	if s.Src == c.from {
		if c.socket == 0 && s.Dir == Out {
			c.socket = s.Socket
		}
		if s.Len == 0 {
			return
		}
		start := s.Seq - c.isn
		end := start + uint32(s.Len)
		// The recording host marked a resend of sequence space: it knows
		// what it sent (Segment.Retransmit).
		if s.Retransmit {
			c.retrans++
		}
		if int32(end-c.maxSeq) > 0 {
			c.maxSeq = end
		}
		c.data = append(c.data, graphSeg{at: at, start: start, end: end, rtx: s.Retransmit})
		return
	}
	if !s.Flags.Has(ACK) {
		return
	}
	ack := s.Ack - c.isn
	win := uint32(s.Window)
	if c.ws[0] >= 0 && c.ws[1] >= 0 && !s.Flags.Has(SYN) {
		// A SYN's window is never scaled (RFC 7323 section 2.2).
		win <<= c.ws[1]
	}
	c.acks = append(c.acks, graphAck{at: at, ack: ack, win: ack + win})
	for _, b := range s.SACK {
		c.sacks = append(c.sacks, graphSACK{at: at, start: b.Start - c.isn, end: b.End - c.isn})
	}
}

// phaseOf names the congestion-control phase a TCB sample shows.
func phaseOf(b *TCB) string {
	switch {
	case b.Congestion == "fast-recovery" || b.Congestion == "sack-recovery":
		return "fast recovery"
	case b.Congestion == "rto-recovery":
		return "RTO recovery"
	case b.Ssthresh > 0 && b.Cwnd >= b.Ssthresh:
		return "congestion avoidance"
	}
	return "slow start"
}

// The page.
const (
	graphW      = 1000
	graphPlotL  = 80  // left edge of the plot
	graphPlotR  = 920 // right edge
	graphPanelH = 560
	graphPlotT  = 70  // within a panel
	graphPlotB  = 470 // bottom of the plot within a panel
	graphHeadH  = 64
)

var graphPhaseColor = map[string]string{
	"slow start":           "#dafbe1",
	"congestion avoidance": "#ddf4ff",
	"fast recovery":        "#fff8c5",
	"RTO recovery":         "#ffebe9",
}

const graphStyle = `text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono","Liberation Mono",monospace;fill:#24292f}
.title{font-size:16px;font-weight:700}
.sub{font-size:10px;fill:#57606a}
.axis{font-size:9px;fill:#57606a}
.phase{font-size:9.5px;fill:#24292f}
.leg{font-size:10px;fill:#57606a}
.seg{stroke:#0969da;stroke-width:1.2}
.band{stroke:#0969da;stroke-width:1;stroke-opacity:.8}
.rtx{stroke:#cf222e;stroke-width:2}
.ack{fill:none;stroke:#1a7f37;stroke-width:1}
.win{fill:none;stroke:#bf8700;stroke-width:1}
.sack{stroke:#8250df;stroke-width:3}
.drop{stroke:#24292f;stroke-width:1.6;fill:none}
.cwnd{fill:none;stroke:#e36209;stroke-width:1.5}
.ssth{fill:none;stroke:#6e7781;stroke-width:1.2;stroke-dasharray:5 3}`

func (g *graph) render() []byte {
	var b ladderSVG
	n := max(len(g.conns), 1)
	height := graphHeadH + n*graphPanelH
	b.f(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="10">`+"\n",
		graphW, height, graphW, height)
	title := g.title
	if title == "" {
		title = "nsftp: time-sequence graph"
	}
	b.title(title)
	b.f("\n<style>\n%s\n</style>\n", graphStyle)
	b.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	b.text(20, 28, "title", "", "", svgFit(title, 100))
	b.text(20, 46, "sub", "", "", "time across, sequence number up (bytes from the first); the congestion window on the right-hand axis, from the sender's own TCB")
	if len(g.conns) == 0 {
		b.text(graphW/2, graphHeadH+80, "axis", "middle", "", "no data connection in this run")
	}
	for i, c := range g.conns {
		c.render(&b, float64(graphHeadH+i*graphPanelH))
	}
	b.f("</svg>\n")
	return b.Bytes()
}

// panel maps a connection's time and sequence numbers to the page.
type panel struct {
	y0         float64 // the panel's top
	t0         time.Time
	span       time.Duration
	seqMax     float64
	cwndMax    float64
	plotW      float64
	plotTop    float64
	plotBottom float64

	timeAxis, seqAxis, cwndAxis axis
}

// axis is a plot axis from 0 to top, ticked every step, both round: 1, 2,
// 2.5 or 5 times a power of ten.
type axis struct{ top, step float64 }

// roundAxis is the axis for values up to v in about five steps, no step
// finer than least (0: any).
func roundAxis(v, least float64) axis {
	if v <= 0 {
		v = 1
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	step = max(step, least)
	return axis{top: math.Ceil(v/step-1e-9) * step, step: step}
}

// ticks are the axis's values from 0 to its top.
func (a axis) ticks() []float64 {
	var out []float64
	for i := 0; ; i++ {
		v := float64(i) * a.step
		if v > a.top+a.step/1e6 {
			return out
		}
		out = append(out, v)
	}
}

// roundBytes writes a tick on a byte axis in the unit its top calls for,
// with the decimals the step needs: "0", "2 MB", "2.5 MB".
func roundBytes(v float64, a axis) string {
	if v == 0 {
		return "0"
	}
	unit, name := 1.0, "bytes"
	switch {
	case a.top >= 1e9:
		unit, name = 1e9, "GB"
	case a.top >= 1e6:
		unit, name = 1e6, "MB"
	case a.top >= 1e4:
		unit, name = 1e3, "kB"
	}
	return strconv.FormatFloat(v/unit, 'f', -1, 64) + " " + name
}

// roundSeconds writes a tick on a time axis: "0", "250 ms", "1.5 s".
func roundSeconds(v float64, a axis) string {
	switch {
	case v == 0:
		return "0"
	case a.top >= 1:
		return strconv.FormatFloat(v, 'f', -1, 64) + " s"
	case a.top >= 1e-3:
		return strconv.FormatFloat(math.Round(v*1e6)/1e3, 'f', -1, 64) + " ms"
	}
	return strconv.FormatFloat(math.Round(v*1e9)/1e3, 'f', -1, 64) + " µs"
}

func (p *panel) x(t time.Time) float64 {
	if p.span <= 0 {
		return graphPlotL
	}
	return graphPlotL + float64(t.Sub(p.t0))/float64(p.span)*p.plotW
}

func (p *panel) y(seq uint32) float64 {
	return p.plotBottom - float64(seq)/p.seqMax*(p.plotBottom-p.plotTop)
}

func (p *panel) yc(cwnd int) float64 {
	return p.plotBottom - float64(cwnd)/p.cwndMax*(p.plotBottom-p.plotTop)
}

// column is the pixel column of a time: where a long transfer's marks are
// merged.
func (p *panel) column(t time.Time) int { return int(p.x(t)) }

func (c *graphConn) render(b *ladderSVG, y0 float64) { c.renderScaled(b, y0, graphScale{}) }

// ownScale is the scales that fit the connection: its time, the highest
// sequence number sent or offered, the largest window.
func (c *graphConn) ownScale() graphScale {
	top := c.maxSeq
	for _, a := range c.acks {
		top = max(top, a.win)
	}
	sc := graphScale{span: c.t1.Sub(c.t0), seqMax: float64(max(top, 1))}
	for _, s := range c.tcb {
		sc.cwndMax = max(sc.cwndMax, float64(s.cwnd))
		if s.ssthresh > 0 && s.ssthresh < 1<<20 {
			sc.cwndMax = max(sc.cwndMax, float64(s.ssthresh))
		}
	}
	sc.cwndMax = max(sc.cwndMax, 10)
	return sc
}

func (c *graphConn) renderScaled(b *ladderSVG, y0 float64, sc graphScale) {
	own := c.ownScale()
	if sc.seqMax == 0 {
		sc.span, sc.seqMax, sc.cwndMax = own.span, own.seqMax, own.cwndMax
	}
	p := &panel{y0: y0, t0: c.t0, plotW: graphPlotR - graphPlotL,
		plotTop: y0 + graphPlotT, plotBottom: y0 + graphPlotB}
	// Each axis runs to a round value above the scale's, in round steps.
	p.timeAxis = roundAxis(sc.span.Seconds(), 0)
	p.seqAxis = roundAxis(sc.seqMax, 0)
	p.cwndAxis = roundAxis(sc.cwndMax, 1)
	p.span = time.Duration(p.timeAxis.top * float64(time.Second))
	p.seqMax, p.cwndMax = p.seqAxis.top, p.cwndAxis.top

	who := fmt.Sprintf("%s %s → %s", c.label, c.from, c.to)
	if c.label == "" {
		who = fmt.Sprintf("%s → %s", c.from, c.to)
	}
	if sc.name != "" {
		who = sc.name + ": " + who
	}
	b.text(graphPlotL, y0+28, "title", "", "", svgFit(who+" connection", 80))
	rate := 0.0
	if d := c.t1.Sub(c.t0); d > 0 {
		rate = float64(c.bytes) * 8 / d.Seconds()
	}
	sub := fmt.Sprintf("%s in %s (%s), %d segments, %d retransmitted", Bytes(c.bytes), Duration(c.t1.Sub(c.t0)), BitRate(rate), len(c.data), c.retrans)
	if len(c.drops) > 0 {
		sub += fmt.Sprintf(", %d lost on the wire", len(c.drops))
	}
	b.text(graphPlotL, y0+46, "sub", "", "", sub+"; seen from "+c.host)

	c.phases(b, p)
	c.axes(b, p)
	b.f(`<g clip-path="none">` + "\n")
	c.drawWindow(b, p)
	c.drawData(b, p)
	c.drawDrops(b, p)
	c.drawSACK(b, p)
	c.drawTCB(b, p)
	b.f("</g>\n")
	c.legend(b, p)
}

// gnum writes a coordinate to a tenth of a pixel: more is bytes, not
// sharpness.
func gnum(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// BitRate writes a rate in bits per second for people: "19.6 Mbit/s".
func BitRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

// phases shades the plot by the congestion-control phase the sender's TCB
// samples show, and names each along the bottom.
func (c *graphConn) phases(b *ladderSVG, p *panel) {
	if len(c.tcb) == 0 {
		return
	}
	type run struct {
		name     string
		from, to float64
	}
	var runs []run
	for i, s := range c.tcb {
		x := p.x(s.at)
		if i == 0 {
			x = graphPlotL
		}
		if len(runs) > 0 && runs[len(runs)-1].name == s.phase {
			continue
		}
		if len(runs) > 0 {
			runs[len(runs)-1].to = x
		}
		runs = append(runs, run{name: s.phase, from: x})
	}
	runs[len(runs)-1].to = graphPlotR
	for _, r := range runs {
		w := max(r.to-r.from, 0.5)
		b.f(`<rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity=".7"><title>%s</title></rect>`+"\n",
			gnum(r.from), gnum(p.plotTop), gnum(w), gnum(p.plotBottom-p.plotTop), graphPhaseColor[r.name], svgEscape(r.name))
		b.f(`<rect x="%s" y="%s" width="%s" height="10" fill="%s" data-phase="%s"/>`+"\n",
			gnum(r.from), gnum(p.plotBottom+30), gnum(w), graphPhaseColor[r.name], svgEscape(r.name))
	}
	// Names where there is room, each phase at least once.
	named := map[string]bool{}
	lastEnd := 0.0
	for _, r := range runs {
		label := r.name
		if r.name == "RTO recovery" {
			label = "RTO"
		}
		w := svgTextW(label, 9.5)
		if r.from >= lastEnd && (r.to-r.from >= w+4 || !named[r.name] && r.from+w <= graphPlotR+60) {
			b.text(r.from+2, p.plotBottom+52, "phase", "", "", label)
			lastEnd = r.from + w + 8
			named[r.name] = true
		}
	}
}

func (c *graphConn) axes(b *ladderSVG, p *panel) {
	b.f(`<rect x="%d" y="%s" width="%s" height="%s" fill="none" stroke="#d0d7de"/>`+"\n",
		graphPlotL, gnum(p.plotTop), gnum(p.plotW), gnum(p.plotBottom-p.plotTop))
	for _, v := range p.seqAxis.ticks() {
		yy := p.plotBottom - v/p.seqMax*(p.plotBottom-p.plotTop)
		b.f(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#eaeef2"/>`+"\n", graphPlotL, gnum(yy), graphPlotR, gnum(yy))
		b.text(graphPlotL-4, yy+3, "axis seq", "end", "", roundBytes(v, p.seqAxis))
	}
	if len(c.tcb) > 0 {
		for _, v := range p.cwndAxis.ticks() {
			b.text(graphPlotR+4, p.yc(int(v))+3, "axis cwnd", "", "#e36209", strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	for _, v := range p.timeAxis.ticks() {
		xx := graphPlotL + v/p.timeAxis.top*p.plotW
		b.text(xx, p.plotBottom+14, "axis time", "middle", "", roundSeconds(v, p.timeAxis))
	}
	if len(c.tcb) > 0 {
		b.f(`<text x="%s" y="%s" class="axis" style="fill:#e36209" transform="rotate(90 %s %s)">cwnd, ssthresh (segments)</text>`+"\n",
			gnum(graphPlotR+34), gnum(p.plotTop), gnum(graphPlotR+34), gnum(p.plotTop))
	}
}

// drawData draws the data segments: one bar each, or, for a long
// transfer, one bar per pixel column from the lowest to the highest
// sequence number sent in it; retransmissions always one each.
func (c *graphConn) drawData(b *ladderSVG, p *panel) {
	decimate := len(c.data) > 2*int(p.plotW)
	col, lo, hi, n := -1, uint32(0), uint32(0), 0
	flush := func() {
		if n > 0 {
			x := gnum(float64(col) + 0.5)
			b.f(`<line class="band" x1="%s" y1="%s" x2="%s" y2="%s" data-segments="%d"/>`+"\n", x, gnum(p.y(lo)), x, gnum(p.y(hi)), n)
		}
		n = 0
	}
	for _, s := range c.data {
		x := p.x(s.at)
		if s.rtx {
			b.f(`<line class="rtx" x1="%s" y1="%s" x2="%s" y2="%s"><title>retransmission: %d-%d at %s</title></line>`+"\n",
				gnum(x), gnum(p.y(s.start)), gnum(x), gnum(min(p.y(s.end), p.y(s.start)-2)), s.start, s.end, Duration(s.at.Sub(p.t0)))
			continue
		}
		if !decimate {
			b.f(`<line class="seg" x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", gnum(x), gnum(p.y(s.start)), gnum(x), gnum(min(p.y(s.end), p.y(s.start)-1)))
			continue
		}
		if cc := p.column(s.at); cc != col {
			flush()
			col, lo, hi = cc, s.start, s.end
		}
		lo, hi = min(lo, s.start), max(hi, s.end)
		n++
	}
	flush()
}

// drawDrops marks where the wire lost a data segment: a black cross at
// its first byte, when it was sent (retransmissions are red bars). Only the wire knows these; a capture
// shows them as the retransmissions that follow.
func (c *graphConn) drawDrops(b *ladderSVG, p *panel) {
	seen := map[[2]int]bool{}
	for _, s := range c.drops {
		x, y := p.x(s.at), p.y(s.start)
		k := [2]int{int(x), int(y)}
		if seen[k] {
			continue
		}
		seen[k] = true
		b.f(`<path class="drop" d="M%s,%sl5,5M%s,%sl-5,5"/>`+"\n", gnum(x-2.5), gnum(y-2.5), gnum(x+2.5), gnum(y-2.5))
	}
}

// drawWindow draws the acknowledgment line and the receive window's right
// edge, as steps: each holds until the next ACK moves it.
func (c *graphConn) drawWindow(b *ladderSVG, p *panel) {
	if len(c.acks) == 0 {
		return
	}
	steps := func(class string, val func(graphAck) uint32) {
		var pts strings.Builder
		prevY := math.NaN()
		lastCol := -1
		for i, a := range c.acks {
			x, y := p.x(a.at), p.y(val(a))
			// A long transfer: one vertex per pixel column; a step only
			// where the line moves.
			if col := p.column(a.at); col == lastCol && i != len(c.acks)-1 || y == prevY {
				continue
			} else {
				lastCol = col
			}
			if !math.IsNaN(prevY) {
				fmt.Fprintf(&pts, "%s,%s ", gnum(x), gnum(prevY))
			}
			fmt.Fprintf(&pts, "%s,%s ", gnum(x), gnum(y))
			prevY = y
		}
		fmt.Fprintf(&pts, "%d,%s", graphPlotR, gnum(prevY))
		b.f(`<polyline class="%s" points="%s"/>`+"\n", class, strings.TrimSpace(pts.String()))
	}
	steps("win", func(a graphAck) uint32 { return a.win })
	steps("ack", func(a graphAck) uint32 { return a.ack })
}

// drawSACK draws the blocks SACKs reported, at the time they came back.
func (c *graphConn) drawSACK(b *ladderSVG, p *panel) {
	type key struct {
		col        int
		start, end uint32
	}
	seen := map[key]bool{}
	for _, s := range c.sacks {
		k := key{p.column(s.at), s.start, s.end}
		if seen[k] {
			continue
		}
		seen[k] = true
		x := p.x(s.at)
		y1, y2 := p.y(s.start), p.y(s.end)
		if y1-y2 < 0.5 && seen[key{k.col, 0, uint32(y1 * 2)}] {
			continue // under half a pixel high, and one is drawn in this column there
		}
		seen[key{k.col, 0, uint32(y1 * 2)}] = true
		// Beside the data's bars, and at least 3 pixels high, so that a
		// block of one segment still shows.
		b.f(`<line class="sack" x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", gnum(x+3), gnum(y1+1), gnum(x+3), gnum(math.Min(y2, y1-2)))
	}
}

// drawTCB draws the congestion window and the slow-start threshold from
// the sender's TCB samples, as steps. data-cwnd lists the window at each
// step, so a reader (or a test) can match the line with the samples.
func (c *graphConn) drawTCB(b *ladderSVG, p *panel) {
	if len(c.tcb) == 0 {
		return
	}
	keep := c.tcbVertices(p)
	var pts, vals, spts strings.Builder
	prev, prevS := math.NaN(), math.NaN()
	last := -1
	for _, i := range keep {
		s := c.tcb[i]
		x, y := p.x(s.at), p.yc(s.cwnd)
		if s.cwnd != last {
			if !math.IsNaN(prev) {
				fmt.Fprintf(&pts, "%s,%s ", gnum(x), gnum(prev))
			}
			fmt.Fprintf(&pts, "%s,%s ", gnum(x), gnum(y))
			fmt.Fprintf(&vals, "%d ", s.cwnd)
			prev, last = y, s.cwnd
		}
		if s.ssthresh > 0 && s.ssthresh < 1<<20 && p.yc(s.ssthresh) != prevS {
			ys := p.yc(s.ssthresh)
			if !math.IsNaN(prevS) {
				fmt.Fprintf(&spts, "%s,%s ", gnum(x), gnum(prevS))
			}
			fmt.Fprintf(&spts, "%s,%s ", gnum(x), gnum(ys))
			prevS = ys
		}
	}
	fmt.Fprintf(&pts, "%d,%s", graphPlotR, gnum(prev))
	b.f(`<polyline class="cwnd" points="%s" data-cwnd="%s"/>`+"\n", strings.TrimSpace(pts.String()), strings.TrimSpace(vals.String()))
	if spts.Len() > 0 {
		fmt.Fprintf(&spts, "%d,%s", graphPlotR, gnum(prevS))
		b.f(`<polyline class="ssth" points="%s"/>`+"\n", strings.TrimSpace(spts.String()))
	}
}

// tcbVertices picks the samples the window line is drawn through: all of
// them when they fit, else per pixel column the first, the lowest, the
// highest and the last, so that no cut of the window is lost.
func (c *graphConn) tcbVertices(p *panel) []int {
	if len(c.tcb) <= 2*int(p.plotW) {
		idx := make([]int, len(c.tcb))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	var keep []int
	for i := 0; i < len(c.tcb); {
		col := p.column(c.tcb[i].at)
		j := i
		lo, hi := i, i
		for j < len(c.tcb) && p.column(c.tcb[j].at) == col {
			if c.tcb[j].cwnd < c.tcb[lo].cwnd {
				lo = j
			}
			if c.tcb[j].cwnd > c.tcb[hi].cwnd {
				hi = j
			}
			j++
		}
		keep = append(keep, i, lo, hi, j-1)
		i = j
	}
	slices.Sort(keep)
	return slices.Compact(keep)
}

func (c *graphConn) legend(b *ladderSVG, p *panel) {
	y := p.plotBottom + 78
	x := float64(graphPlotL)
	items := []struct{ class, label string }{
		{"seg", "data segment"}, {"rtx", "retransmission"}, {"ack", "ACK"}, {"win", "receive window"},
		{"sack", "SACK block"}, {"drop", "lost on the wire"}, {"cwnd", "cwnd"}, {"ssth", "ssthresh"},
	}
	for _, it := range items {
		if (it.class == "cwnd" || it.class == "ssth") && len(c.tcb) == 0 || it.class == "drop" && len(c.drops) == 0 {
			continue
		}
		b.f(`<line class="%s key" x1="%s" y1="%s" x2="%s" y2="%s"/>`, it.class, gnum(x), gnum(y-4), gnum(x+20), gnum(y-4))
		b.text(x+24, y, "leg", "", "", it.label)
		x += 24 + svgTextW(it.label, 10) + 18
	}
	if len(c.tcb) == 0 {
		b.text(x, y, "leg", "", "", "(the sender is not traced: no congestion window)")
	}
}
