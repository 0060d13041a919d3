package trace

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The page: a time column on the left, socket-call boxes outside the
// lifelines, messages between them.
const (
	diagramW          = 1000
	diagramTimeX      = 52  // right edge of the time labels
	diagramBoxGap     = 8   // between a call box and its host's outer lane
	diagramBoxMaxW    = 264 // widest call box
	diagramLaneSpread = 40  // between a host's control and data lanes
	diagramHeaderH    = 176 // title, legend, host heads
	diagramCharW      = 0.6 // advance of a monospace glyph, in ems
)

// Lane positions: control lanes outside, data lanes inside, so the long
// control arrows have room for command and reply text.
var ladderXs = [2][3]float64{
	sideClient: {laneOther: 340, laneControl: 340, laneData: 340 + diagramLaneSpread},
	sideServer: {laneOther: 660, laneControl: 660, laneData: 660 - diagramLaneSpread},
}

func ladderX(s ladderSide, l ladderLane) float64 { return ladderXs[s][l] }

// Colours: control blue, data orange, everything else grey.
var ladderColor = [3]string{laneOther: "#8c959f", laneControl: "#0969da", laneData: "#e36209"}

const (
	ladderMuted = "#57606a"
	ladderError = "#cf222e"
	ladderBrown = "#953800" // for text on the data lane: the orange is too light
	ladderUDP   = "#1a7f37" // datagrams: DHCP, DNS
)

const diagramStyle = `text{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono","Liberation Mono",monospace;fill:#24292f}
.h{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.title{font-size:16px;font-weight:700}
.sub{font-size:10px;fill:#57606a}
.leg{font-size:10px;fill:#57606a}
.host{font-size:13px;font-weight:700}
.hostip{font-size:10px;fill:#57606a}
.lane{font-size:9px}
.time{font-size:8.5px;fill:#8c959f}
.seg{font-size:9px}
.msg{font-size:11px;font-weight:700}
.call{font-size:10.5px}
.art{font-size:9px;fill:#57606a}
.state{font-size:8.5px;font-style:italic;fill:#8250df}
.cause{font-size:8px;fill:#8c959f}
.note{font-size:9.5px;font-style:italic;fill:#57606a}
.band{font-size:10px;font-weight:700;fill:#953800}
.band2{font-size:9px;fill:#953800}
.foot{font-size:9px;fill:#8c959f}`

// Row heights.
const (
	rowSeg   = 18
	rowMsg   = 28
	rowCall  = 32
	rowBand  = 52
	rowData  = 32
	rowClose = 24
	rowNote  = 20
)

// ladderSVG accumulates the drawing.
type ladderSVG struct{ bytes.Buffer }

func (b *ladderSVG) f(format string, args ...any) { fmt.Fprintf(&b.Buffer, format, args...) }

// text draws one line of text; s is cleaned and escaped here, never by the
// caller. fill may be empty to keep the class's.
func (b *ladderSVG) text(x, y float64, class, anchor, fill, s string) {
	b.f(`<text x="%s" y="%s" class="%s"`, svgNum(x), svgNum(y), class)
	if anchor != "" && anchor != "start" {
		b.f(` text-anchor="%s"`, anchor)
	}
	if fill != "" {
		b.f(` style="fill:%s"`, fill)
	}
	b.f(">%s</text>\n", svgEscape(s))
}

// title adds a tooltip: lines of text, each cleaned and escaped.
func (b *ladderSVG) title(lines ...string) {
	b.WriteString("<title>")
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(svgEscape(l))
	}
	b.WriteString("</title>")
}

func svgNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// svgEscape cleans s and escapes it for XML text.
func svgEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(Clean(s))) // writes to a strings.Builder cannot fail
	return b.String()
}

// svgFit shortens s to at most n characters, marking the cut.
func svgFit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// svgTextW estimates the width of s in a monospace font of size px.
func svgTextW(s string, px float64) float64 {
	return float64(utf8.RuneCountInString(s)) * px * diagramCharW
}

func (d *ladder) ms(t time.Time) string {
	return strconv.FormatFloat(float64(t.Sub(d.t0).Microseconds())/1000, 'f', 3, 64)
}

// ladderFTPText is what a command or reply arrow says: the line as traced,
// with a multi-line reply's lines joined, and a PASS or ACCT argument
// masked even if whoever recorded it forgot to.
func ladderFTPText(e *Event) string {
	switch e.Kind {
	case KindCommand:
		return RedactCommand(e.Text)
	case KindReply:
		text := strings.ReplaceAll(strings.ReplaceAll(e.Text, "\r", ""), "\n", " / ")
		return strconv.Itoa(e.Code) + " " + text
	}
	return e.Text
}

// ladderHeight is how much room a row takes.
func ladderHeight(it ladderItem) float64 {
	switch {
	case it.seg != nil, it.call != nil && it.call.tiny(), it.result != nil, it.state != nil:
		return rowSeg
	case it.call != nil:
		return rowCall
	case it.band != nil:
		n := max(1, len(it.band.calls[sideClient]), len(it.band.calls[sideServer]))
		return rowBand + float64(n-1)*rowCall
	case it.config != nil:
		return rowNote
	case it.ftp.Kind == KindCommand, it.ftp.Kind == KindReply:
		return rowMsg
	case it.ftp.Kind == KindDataOpen:
		return rowData
	case it.ftp.Kind == KindDataClose:
		return rowClose
	}
	return rowNote
}

func (d *ladder) render(items []ladderItem) []byte {
	// Lay out first: the page's height and the data connections'
	// activation bars depend on where rows fall.
	ys := make([]float64, len(items))
	y := float64(diagramHeaderH)
	type span struct{ from, to float64 }
	var active []span
	open := -1.0
	for i, it := range items {
		ys[i] = y
		y += ladderHeight(it)
		if it.ftp != nil && it.ftp.Kind == KindDataOpen {
			open = ys[i] + 15
		}
		if it.ftp != nil && it.ftp.Kind == KindDataClose && open >= 0 {
			active = append(active, span{open, ys[i] + 14})
			open = -1
		}
		if it.call != nil {
			d.callY[it.call] = ys[i]
		}
	}
	bottom := y + 12
	if open >= 0 {
		active = append(active, span{open, bottom})
	}
	pageH := bottom + 40

	var b ladderSVG
	b.f(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%s" viewBox="0 0 %d %s" font-size="10">`+"\n",
		diagramW, svgNum(pageH), diagramW, svgNum(pageH))
	title := d.title
	if title == "" {
		title = "nsftp: ladder diagram of a run"
	}
	b.title(title)
	b.f("\n<style>\n%s\n</style>\n<defs>\n", diagramStyle)
	for l, c := range ladderColor {
		for _, m := range []struct {
			id   string
			size int
		}{{"s", 7}, {"m", 10}} {
			b.f(`<marker id="a%s%d" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="%d" markerHeight="%d" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="%s"/></marker>`+"\n",
				m.id, l, m.size, m.size, c)
		}
	}
	b.f(`<marker id="arst" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="%s"/></marker>`+"\n", ladderError)
	b.f(`<marker id="audp" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="%s"/></marker>`+"\n", ladderUDP)
	b.f("</defs>\n")
	b.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")

	d.header(&b, title)

	// Lifelines, then the data connections' activation bars, then rows.
	for s := sideClient; s <= sideServer; s++ {
		for _, l := range []ladderLane{laneControl, laneData} {
			dash := ""
			if l == laneData {
				dash = ` stroke-dasharray="5 4"`
			}
			b.f(`<line x1="%s" y1="%d" x2="%s" y2="%s" stroke="%s" stroke-opacity=".45"%s/>`+"\n",
				svgNum(ladderX(s, l)), diagramHeaderH-8, svgNum(ladderX(s, l)), svgNum(bottom), ladderColor[l], dash)
		}
	}
	for _, a := range active {
		for s := sideClient; s <= sideServer; s++ {
			b.f(`<rect x="%s" y="%s" width="6" height="%s" fill="%s" fill-opacity=".3" stroke="%s" stroke-opacity=".6"/>`+"\n",
				svgNum(ladderX(s, laneData)-3), svgNum(a.from), svgNum(a.to-a.from), ladderColor[laneData], ladderColor[laneData])
		}
	}
	for i, it := range items {
		d.row(&b, it, ys[i])
	}

	summary := fmt.Sprintf("%d events drawn as %d rows: %d frames", d.stats.events, len(items), d.stats.segments)
	if d.stats.bands > 0 {
		summary += fmt.Sprintf(" (%d of them in %d %s)", d.stats.banded, d.stats.bands, ladderPlural(d.stats.bands, "band", "bands"))
	}
	summary += fmt.Sprintf(", %d socket calls, %d changes of TCP state", d.stats.calls, d.stats.states)
	if !d.opt.Names {
		summary += " (getsockname/getpeername not shown)"
	}
	b.text(diagramW/2, bottom+24, "foot", "middle", "", summary)
	b.f("</svg>\n")
	return b.Bytes()
}

func ladderPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// header draws the title, the legend and the heads of the lifelines.
func (d *ladder) header(b *ladderSVG, title string) {
	b.text(20, 28, "title", "", "", svgFit(title, 90))
	b.text(20, 46, "sub", "", "", fmt.Sprintf(
		"%s %s and %s %s; one row per event in the order they happened, times in ms since the first",
		d.name[sideClient], d.ipOr(sideClient), d.name[sideServer], d.ipOr(sideServer)))

	// Legend: two rows of swatches.
	type entry struct {
		draw  func(x, y float64)
		label string
	}
	arrow := func(l ladderLane, size string, width float64, dash string) func(x, y float64) {
		return func(x, y float64) {
			b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s marker-end="url(#a%s%d)"/>`+"\n",
				svgNum(x), svgNum(y-4), svgNum(x+28), svgNum(y-4), ladderColor[l], svgNum(width), dash, size, l)
		}
	}
	legend := [][]entry{{
		{arrow(laneControl, "m", 1.8, ""), "FTP command / reply"},
		{arrow(laneControl, "s", 1, ""), "TCP segment, control connection"},
		{arrow(laneData, "s", 1, ""), "TCP segment, data connection"},
		{arrow(laneOther, "s", 1, ` stroke-dasharray="3 2"`), "ARP, other frames"},
	}, {
		{func(x, y float64) {
			b.f(`<rect x="%s" y="%s" width="28" height="11" rx="2" fill="#f6f8fa" stroke="%s"/>`+"\n", svgNum(x), svgNum(y-11), ladderColor[laneControl])
		}, "socket call: BSD call, the article's kernel call"},
		{func(x, y float64) {
			b.text(x, y-2, "state", "", "", "A → B")
		}, "TCP state change"},
		{func(x, y float64) {
			b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1" marker-end="url(#audp)"/>`+"\n",
				svgNum(x), svgNum(y-4), svgNum(x+28), svgNum(y-4), ladderUDP)
		}, "UDP datagram: DHCP, DNS"},
		{func(x, y float64) {
			b.f(`<path d="M%s,%sL%s,%sL%s,%sL%s,%sL%s,%sz" fill="%s" fill-opacity=".2" stroke="%s"/>`+"\n",
				svgNum(x), svgNum(y-12), svgNum(x+20), svgNum(y-11), svgNum(x+28), svgNum(y-5), svgNum(x+20), svgNum(y+1), svgNum(x), svgNum(y), ladderColor[laneData], ladderColor[laneData])
		}, "bulk data, collapsed"},
	}}
	for r, row := range legend {
		x, y := 20.0, 72+float64(r)*18
		for _, e := range row {
			e.draw(x, y)
			b.text(x+36, y, "leg", "", "", e.label)
			x += 36 + svgTextW(e.label, 10) + 22
		}
	}

	for s := sideClient; s <= sideServer; s++ {
		cx := (ladderX(s, laneControl) + ladderX(s, laneData)) / 2
		b.f(`<rect x="%s" y="110" width="150" height="38" rx="6" fill="#f6f8fa" stroke="#d0d7de"/>`+"\n", svgNum(cx-75))
		b.text(cx, 126, "host", "middle", "", svgFit(d.name[s], 20))
		b.text(cx, 141, "hostip", "middle", "", d.ipOr(s))
		for _, l := range []ladderLane{laneControl, laneData} {
			b.text(ladderX(s, l), diagramHeaderH-12, "lane", "middle", ladderColor[l], map[ladderLane]string{laneControl: "control", laneData: "data"}[l])
		}
	}
	b.text(diagramTimeX, diagramHeaderH-12, "time", "end", "", "ms")
	b.text(ladderX(sideClient, laneControl)-diagramBoxGap-24, diagramHeaderH-12, "lane", "end", ladderMuted, "socket calls")
	b.text(ladderX(sideServer, laneControl)+diagramBoxGap+24, diagramHeaderH-12, "lane", "", ladderMuted, "socket calls")
}

func (d *ladder) ipOr(s ladderSide) string {
	if d.ip[s] == "" {
		return "address unknown"
	}
	return d.ip[s]
}

func (d *ladder) row(b *ladderSVG, it ladderItem, y float64) {
	switch {
	case it.seg != nil:
		d.segment(b, it.seg, y)
	case it.call != nil && it.call.tiny():
		d.nameCall(b, it.call, y)
	case it.call != nil:
		d.callBox(b, it.call, y)
	case it.result != nil:
		d.callResult(b, it.result, y)
	case it.state != nil:
		d.stateRow(b, it.state, y)
	case it.band != nil:
		d.drawBand(b, it.band, y)
	case it.config != nil:
		d.configRow(b, it.config, y)
	default:
		d.ftpRow(b, it.ftp, y, it.late)
	}
}

func (d *ladder) timeLabel(b *ladderSVG, t time.Time, y float64) {
	b.text(diagramTimeX, y, "time", "end", "", d.ms(t))
}

// ladderArrow draws a message from one lifeline to the other, sloping down
// as time passes.
func ladderArrow(b *ladderSVG, x1, y1, x2, y2 float64, color, marker string, width float64, dash string) {
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s marker-end="url(#%s)"/>`+"\n",
		svgNum(x1), svgNum(y1), svgNum(x2), svgNum(y2), color, svgNum(width), dash, marker)
}

func (d *ladder) segment(b *ladderSVG, s *ladderSeg, y float64) {
	d.timeLabel(b, s.at, y+13)
	l := s.lane
	color, marker, dash := ladderColor[l], fmt.Sprintf("as%d", l), ""
	var label string
	switch {
	case s.s.Proto == "udp":
		// The datagram's contents say more than its protocol: "DHCP
		// OFFER ...", "DNS query A ...".
		color, marker = ladderUDP, "audp"
		label = s.s.Info
		if label == "" {
			label = fmt.Sprintf("UDP len=%d", s.s.Len)
		}
	case !s.tcp:
		label = strings.ToUpper(s.s.Proto)
		if s.s.Info != "" {
			label += " " + s.s.Info
		}
		dash = ` stroke-dasharray="3 2"`
	default:
		label = s.s.Flags.String()
		if s.s.Len > 0 {
			label += " len=" + strconv.Itoa(s.s.Len)
		}
		if s.s.Flags.Has(RST) {
			color, marker = ladderError, "arst"
		}
	}
	x1, x2 := ladderX(s.from, l), ladderX(s.from.other(), l)
	if !s.tcp {
		x1, x2 = ladderX(s.from, laneControl), ladderX(s.from.other(), laneControl)
	}
	if s.lost != "" {
		// Lost on the way: the arrow stops halfway, at a cross.
		mid := (x1 + x2) / 2
		b.f("<g>")
		b.title(fmt.Sprintf("%s %s > %s, lost on the wire: %s", strings.ToUpper(s.s.Proto), s.s.addrText(s.s.Src), s.s.addrText(s.s.Dst), s.lost),
			ladderSegDetail(s.s))
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-dasharray="2 2"/>`, svgNum(x1), svgNum(y+11), svgNum(mid), svgNum(y+13.5), color)
		b.f(`<path d="M%s,%sl8,8M%s,%sl-8,8" stroke="%s" stroke-width="2"/>`, svgNum(mid-4), svgNum(y+9.5), svgNum(mid+4), svgNum(y+9.5), ladderError)
		b.text(mid, y+8, "seg h", "middle", ladderError, svgFit(label+" lost: "+s.lost, 60))
		b.f("</g>\n")
		return
	}
	b.f("<g>")
	b.title(fmt.Sprintf("%s %s > %s", strings.ToUpper(s.s.Proto), s.s.addrText(s.s.Src), s.s.addrText(s.s.Dst)),
		ladderSegDetail(s.s))
	ladderArrow(b, x1, y+11, x2, y+16, color, marker, 1, dash)
	fill := color
	if l == laneData {
		fill = ladderBrown
	}
	b.text((x1+x2)/2, y+8.5, "seg h", "middle", fill, svgFit(label, 60))
	b.f("</g>\n")
}

func ladderSegDetail(s *Segment) string {
	if s.Proto != "tcp" {
		return fmt.Sprintf("%s, frame %d bytes", s.Info, s.Frame)
	}
	return fmt.Sprintf("%s seq=%d ack=%d win=%d len=%d", s.Flags, s.Seq, s.Ack, s.Window, s.Len)
}

func (d *ladder) ftpRow(b *ladderSVG, ev *Event, y float64, late bool) {
	if !late {
		d.timeLabel(b, ev.Time, y+17)
	}
	switch ev.Kind {
	case KindCommand, KindReply:
		from := sideClient
		if ev.Kind == KindReply {
			from = sideServer
		}
		x1, x2 := ladderX(from, laneControl), ladderX(from.other(), laneControl)
		l := laneOf(ev.Conn)
		if l == laneOther {
			l = laneControl
		}
		text := ladderFTPText(ev)
		color := ladderColor[l]
		if ev.Kind == KindReply && ev.Code >= 400 {
			color = ladderError
		}
		b.f("<g>")
		b.title(fmt.Sprintf("%s %s (%s connection, traced by the %s)", ev.Kind, text, ev.Conn, ev.Side))
		ladderArrow(b, x1, y+16, x2, y+24, color, fmt.Sprintf("am%d", l), 1.8, "")
		b.text((x1+x2)/2, y+12, "msg h", "middle", color, svgFit(text, 100))
		b.f("</g>\n")
	case KindDataOpen:
		x1, x2 := ladderX(sideClient, laneData), ladderX(sideServer, laneData)
		c := ladderColor[laneData]
		b.f("<g>")
		title := fmt.Sprintf("%s data connection open: %s <-> %s", ev.Mode, addrText(ev.Local), addrText(ev.Remote))
		if late {
			title += fmt.Sprintf("; the FTP layer learned it at %s ms, once its data had crossed", d.ms(ev.Time))
		}
		b.title(title)
		b.f(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="2.5"/>`, svgNum(x1), int(y)+15, svgNum(x2), int(y)+15, c)
		b.f(`<circle cx="%s" cy="%d" r="3.5" fill="%s"/><circle cx="%s" cy="%d" r="3.5" fill="%s"/>`+"\n", svgNum(x1), int(y)+15, c, svgNum(x2), int(y)+15, c)
		label := "data connection open"
		if ev.Mode != "" {
			label += " (" + string(ev.Mode) + ")"
		}
		b.text((x1+x2)/2, y+11, "msg h", "middle", ladderBrown, label)
		b.text((x1+x2)/2, y+27, "seg h", "middle", ladderBrown, fmt.Sprintf("%s ↔ %s", addrText(ev.Local), addrText(ev.Remote)))
		b.f("</g>\n")
	case KindDataClose:
		x1, x2 := ladderX(sideClient, laneData), ladderX(sideServer, laneData)
		c := ladderColor[laneData]
		b.f(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="4 3"/>`+"\n", svgNum(x1), int(y)+14, svgNum(x2), int(y)+14, c)
		label := fmt.Sprintf("data connection closed after %s", Bytes(ev.Bytes))
		if ev.Err != "" {
			label += ": " + ev.Err
		}
		b.text((x1+x2)/2, y+10, "seg h", "middle", ladderBrown, svgFit(label, 70))
	default:
		text := string(ev.Kind) + ": " + ev.Text
		if ev.Kind == KindTLS {
			text = "TLS handshake on the " + string(ev.Conn) + " connection"
			if ev.Text != "" {
				text += ": " + ev.Text
			}
		}
		if ev.Err != "" {
			text += " (" + ev.Err + ")"
		}
		b.f("<g>")
		b.title(text)
		b.text(diagramW/2, y+13, "note h", "middle", "", svgFit(text, 120))
		b.f("</g>\n")
	}
}

// configRow writes a host's change of configuration across the page, as
// a note: an address it was leased, a router it learnt of.
func (d *ladder) configRow(b *ladderSVG, e *Event, y float64) {
	d.timeLabel(b, e.Time, y+13)
	text := e.Host + ": " + ConfigText(e.Config)
	b.f("<g>")
	b.title(text)
	b.text(diagramW/2, y+13, "note h", "middle", "", svgFit(text, 120))
	b.f("</g>\n")
}

// callBox draws a socket call as a box beside the calling host's
// lifeline, where the call began, tied by a dot to its lane; the changes
// of TCP state it made at once go next to the lifeline, inside, where the
// messages run. When the call's result came later, it is drawn on its own
// row (callResult), and a bar on the lane joins the two.
func (d *ladder) callBox(b *ladderSVG, lc *ladderCall, y float64) {
	c := lc.call()
	line1 := ladderCallText(lc)
	line2 := c.Article
	if c.Kernel != "" && len(line2)+len(c.Kernel) < 44 {
		line2 += " → " + c.Kernel
	}
	errText := ""
	if !lc.split && c.Err != "" && c.Err != "EOF" && !c.Closed {
		errText = "error: " + c.Err
	}
	line1 = svgFit(line1, ladderBoxChars(10.5))
	line2 = svgFit(line2, ladderBoxChars(9))
	stroke, fill2 := ladderColor[lc.lane], ""
	if errText != "" {
		stroke, fill2, line2 = ladderError, ladderError, svgFit(errText, ladderBoxChars(9))
	}
	d.timeLabel(b, lc.at, y+18)
	b.f("<g>")
	tip := []string{fmt.Sprintf("%s %s", lc.host, ladderCallText(lc)),
		fmt.Sprintf("article: %s; kernel: %s; netstack: %s", c.Article, c.Kernel, c.Netstack)}
	var st []string
	for _, s := range lc.states {
		st = append(st, string(s.From)+" → "+string(s.To))
		tip = append(tip, fmt.Sprintf("TCP state: %s → %s (%s)", s.From, s.To, s.Cause))
	}
	if errText != "" {
		tip = append(tip, errText)
	}
	b.title(tip...)
	d.box(b, lc.side, lc.lane, y, stroke, line1, line2, fill2)
	if len(st) > 0 {
		d.stateText(b, lc.side, y+19, strings.Join(st, ", "), "")
	}
	b.f("</g>\n")
}

// box draws a call box with two lines of text beside side's lifeline,
// tied to its lane; fill2, if set, colours the second line.
func (d *ladder) box(b *ladderSVG, side ladderSide, l ladderLane, y float64, stroke, line1, line2, fill2 string) {
	w := max(svgTextW(line1, 10.5), svgTextW(line2, 9)) + 12
	w = min(max(w, 60), diagramBoxMaxW)
	outer := ladderX(side, laneControl)
	var bx float64
	if side == sideClient {
		bx = outer - diagramBoxGap - w
	} else {
		bx = outer + diagramBoxGap
	}
	fill := [3]string{laneOther: "#f6f8fa", laneControl: "#f1f7ff", laneData: "#fff6ee"}[l]
	// Tie the box to its lane: a line from the box's edge, a dot on the lane.
	edge := bx + w
	if side == sideServer {
		edge = bx
	}
	lx := ladderX(side, l)
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, svgNum(edge), svgNum(y+16), svgNum(lx), svgNum(y+16), stroke)
	b.f(`<circle cx="%s" cy="%s" r="3" fill="%s"/>`, svgNum(lx), svgNum(y+16), stroke)
	b.f(`<rect x="%s" y="%s" width="%s" height="26" rx="3" fill="%s" stroke="%s"/>`+"\n", svgNum(bx), svgNum(y+3), svgNum(w), fill, stroke)
	b.text(bx+6, y+14, "call", "", "", line1)
	b.text(bx+6, y+25, "art", "", fill2, line2)
}

// callResult draws what a call returned, on the row where it returned,
// with a bar on the lane from the call's box: the call was waiting (a
// recv for data, an accept for a connection) or working (a connect for
// its handshake) while the rows between happened.
func (d *ladder) callResult(b *ladderSVG, lc *ladderCall, y float64) {
	d.timeLabel(b, lc.endAt, y+13)
	c := lc.end
	lx := ladderX(lc.side, lc.lane)
	stroke := ladderColor[lc.lane]
	text := "└ " + string(c.Op) + "() = " + CallResult(c)
	if c.Closed {
		text = "└ " + string(c.Op) + "() ended by close()"
	}
	if c.Err != "" && c.Err != "EOF" && !c.Closed {
		stroke = ladderError
		text += ": " + c.Err
	}
	if top, ok := d.callY[lc]; ok {
		b.f(`<rect x="%s" y="%s" width="4" height="%s" fill="%s" fill-opacity=".25"/>`+"\n",
			svgNum(lx-2), svgNum(top+16), svgNum(y+10-top-16), stroke)
	}
	b.f(`<circle cx="%s" cy="%s" r="2" fill="%s"/>`, svgNum(lx), svgNum(y+10), stroke)
	x := ladderX(lc.side, laneControl)
	if lc.side == sideClient {
		b.text(x-diagramBoxGap, y+13, "art", "end", "", svgFit(text, 50))
	} else {
		b.text(x+diagramBoxGap, y+13, "art", "", "", svgFit(text, 50))
	}
}

// stateRow draws a change of TCP state beside the lifeline where it
// happened, with its cause.
func (d *ladder) stateRow(b *ladderSVG, st *ladderState, y float64) {
	d.timeLabel(b, st.at, y+13)
	lx := ladderX(st.side, st.lane)
	b.f(`<circle cx="%s" cy="%s" r="2.5" fill="#8250df"/>`, svgNum(lx), svgNum(y+9))
	cause := st.s.Cause
	if st.s.Listener != 0 {
		cause += fmt.Sprintf(" on fd%d", st.s.Listener)
	}
	b.f("<g>")
	b.title(fmt.Sprintf("%s fd%d: %s → %s", st.host, st.s.Socket, st.s.From, st.s.To), "cause: "+cause)
	d.stateText(b, st.side, y+13, fmt.Sprintf("fd%d %s → %s", st.s.Socket, st.s.From, st.s.To), cause)
	b.f("</g>\n")
}

// stateText writes a state change inside side's lifelines, where the
// messages run, with its cause after it in parentheses.
func (d *ladder) stateText(b *ladderSVG, side ladderSide, y float64, text, cause string) {
	if cause != "" {
		cause = "(" + svgFit(cause, 40) + ")"
	}
	if side == sideClient {
		x := ladderX(sideClient, laneData) + 6
		b.text(x, y, "state h", "", "", text)
		if cause != "" {
			b.text(x+svgTextW(text, 8.5)+5, y, "cause h", "", "", cause)
		}
		return
	}
	x := ladderX(sideServer, laneData) - 6
	if cause != "" {
		b.text(x, y, "cause h", "end", "", cause)
		x -= svgTextW(cause, 8) + 5
	}
	b.text(x, y, "state h", "end", "", text)
}

// nameCall draws getsockname or getpeername small, beside the lifeline.
func (d *ladder) nameCall(b *ladderSVG, lc *ladderCall, y float64) {
	d.timeLabel(b, lc.at, y+13)
	x := ladderX(lc.side, laneControl)
	lx := ladderX(lc.side, lc.lane)
	b.f(`<circle cx="%s" cy="%s" r="2" fill="%s"/>`, svgNum(lx), svgNum(y+10), ladderColor[lc.lane])
	if lc.side == sideClient {
		b.text(x-diagramBoxGap, y+13, "art", "end", "", ladderCallText(lc))
	} else {
		b.text(x+diagramBoxGap, y+13, "art", "", "", ladderCallText(lc))
	}
}

// ladderBoxChars is how many characters of size px fit in the widest box.
func ladderBoxChars(px float64) int { return int((diagramBoxMaxW - 12) / (px * diagramCharW)) }

// ladderCallText is a box's first line: the BSD call as a program wrote
// it, with its result when it returned at once.
func ladderCallText(lc *ladderCall) string {
	c := lc.call()
	fd := "fd" + strconv.Itoa(c.Socket) + " "
	done := lc.end != nil && !lc.split
	text := fd + BSDCall(c, done)
	switch c.Op {
	case OpSend:
		text = fd + "send(" + Bytes(int64(lc.begin.Bytes)) + ")"
	case OpRecv:
		if done && c.Err == "" {
			text = fd + "recv() = " + Bytes(int64(c.Bytes))
		} else if done && c.Err == "EOF" {
			text = fd + "recv() = 0, EOF"
		}
	}
	return text
}

// drawBand draws collapsed bulk data as one wide arrow from the sender's
// data lane to the receiver's, with the send/recv calls that moved it
// beside the lifelines.
func (d *ladder) drawBand(b *ladderSVG, bd *ladderBand, y float64) {
	d.timeLabel(b, bd.start, y+28)
	xs, xr := ladderX(bd.from, laneData), ladderX(bd.from.other(), laneData)
	head := 14.0
	if xr < xs {
		head = -head
	}
	c := ladderColor[laneData]
	b.f("<g>")
	b.title(fmt.Sprintf("%d data segments %s → %s (largest %d bytes), %s in %s, %d retransmitted, with %d bare ACKs",
		bd.segs, bd.from, bd.from.other(), bd.maxLen, Bytes(bd.bytes), Duration(bd.last.Sub(bd.first)), bd.retrans, bd.acks),
		fmt.Sprintf("collapsed: %s %s", bd.conn.a, bd.conn.b))
	b.f(`<path d="M%s,%sL%s,%sL%s,%sL%s,%sL%s,%sz" fill="%s" fill-opacity=".16" stroke="%s" stroke-linejoin="round"/>`+"\n",
		svgNum(xs), svgNum(y+8), svgNum(xr-head), svgNum(y+12), svgNum(xr), svgNum(y+28), svgNum(xr-head), svgNum(y+44), svgNum(xs), svgNum(y+40), c, c)
	mid := (xs + xr) / 2
	b.text(mid, y+25, "band", "middle", "", fmt.Sprintf("%s segments, %s, %s",
		thousands(bd.segs), Bytes(bd.bytes), Duration(bd.last.Sub(bd.first))))
	sub := fmt.Sprintf("%s → %s", bd.from, bd.from.other())
	if bd.acks > 0 {
		sub += fmt.Sprintf(", %s ACKs back", thousands(bd.acks))
	}
	if bd.retrans > 0 {
		sub += fmt.Sprintf(", %s retransmitted", thousands(bd.retrans))
	}
	if bd.drops > 0 {
		sub += fmt.Sprintf(", %s lost on the wire", thousands(bd.drops))
	}
	b.text(mid, y+37, "band2", "middle", "", sub)
	b.f("</g>\n")
	for side := sideClient; side <= sideServer; side++ {
		for i, r := range bd.calls[side] {
			line1 := fmt.Sprintf("fd%d %s ×%s, %s", r.socket, r.op, thousands(r.n), Bytes(r.bytes))
			d.box(b, side, laneData, y+8+float64(i)*rowCall, ladderColor[laneData], svgFit(line1, ladderBoxChars(10.5)), calls[r.op], "")
		}
	}
}

// calls names the article's call for the calls a band sums up.
var calls = map[Op]string{OpSend: "sock_sendmsg → tcp_sendmsg", OpRecv: "sock_recvmsg → tcp_recvmsg"}
