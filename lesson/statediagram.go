package lesson

import (
	"fmt"
	"html"
	"strings"

	"github.com/nsftp/nsftp/trace"
)

// The state diagram: RFC 793's (section 3.2, figure 6), with netstack's
// two names for CLOSED before a connection (INITIAL, BOUND) beside it.
// As in the RFC's figure, CLOSED is drawn twice: where a connection
// starts, at the top, and where it ends, at the bottom right.
const (
	sdL, sdM, sdR = 110, 320, 530
	sdNodeW       = 124
	sdNodeH       = 30
	sdW, sdH      = 680, 610
)

type sdNode struct {
	id    string // the group's id: st-STATE, st-CLOSED-end for the second CLOSED
	state trace.TCPState
	x, y  float64
	note  string // a second line, smaller
}

var sdNodes = []sdNode{
	{"INITIAL", trace.StateInitial, sdL, 40, "netstack: a new socket"},
	{"CLOSED", trace.StateClosed, sdM, 40, ""},
	{"BOUND", trace.StateBound, sdL, 120, "netstack: bound"},
	{"LISTEN", trace.StateListen, sdM, 120, ""},
	{"SYN-RECEIVED", trace.StateSynReceived, sdL, 210, ""},
	{"SYN-SENT", trace.StateSynSent, sdR, 210, ""},
	{"ESTABLISHED", trace.StateEstablished, sdM, 300, ""},
	{"FIN-WAIT-1", trace.StateFinWait1, sdL, 390, ""},
	{"CLOSE-WAIT", trace.StateCloseWait, sdR, 390, ""},
	{"FIN-WAIT-2", trace.StateFinWait2, sdL, 480, ""},
	{"CLOSING", trace.StateClosing, sdM, 480, ""},
	{"LAST-ACK", trace.StateLastAck, sdR, 480, ""},
	{"TIME-WAIT", trace.StateTimeWait, sdM, 570, ""},
	{"CLOSED-end", trace.StateClosed, sdR, 570, ""},
}

// sdEdge is a transition: a path and RFC 793's label for it, event /
// action (netstack's and Linux's socket calls for its own).
type sdEdge struct {
	from, to trace.TCPState
	path     string  // SVG path data
	lx, ly   float64 // where the label goes
	anchor   string
	label    string
}

// sdEdges are the diagram's transitions, routed by hand around the
// nodes. Any other (a reset, an abort) is drawn by the page when taken.
var sdEdges = []sdEdge{
	{trace.StateInitial, trace.StateBound, "M110,55 L110,105", 116, 84, "start", "bind()"},
	{trace.StateBound, trace.StateListen, "M172,120 L258,120", 215, 114, "middle", "listen()"},
	{trace.StateInitial, trace.StateSynSent, "M172,48 C250,85 420,80 505,195", 425, 82, "start", "connect(): snd SYN"},
	{trace.StateBound, trace.StateSynSent, "M172,128 L488,205", 300, 172, "middle", "connect(): snd SYN"},
	{trace.StateClosed, trace.StateListen, "M310,55 L310,105", 304, 72, "end", "passive OPEN"},
	{trace.StateListen, trace.StateClosed, "M330,105 L330,55", 336, 72, "start", "CLOSE"},
	{trace.StateClosed, trace.StateSynSent, "M382,44 C470,44 540,110 540,195", 470, 40, "start", "active OPEN: snd SYN"},
	{trace.StateListen, trace.StateSynReceived, "M276,135 L150,195", 232, 178, "end", "rcv SYN: snd SYN,ACK"},
	{trace.StateListen, trace.StateSynSent, "M382,128 L495,195", 448, 140, "start", "SEND: snd SYN"},
	{trace.StateSynSent, trace.StateSynReceived, "M468,214 L172,214", 320, 228, "middle", "rcv SYN: snd ACK"},
	{trace.StateSynReceived, trace.StateEstablished, "M150,225 L272,285", 196, 268, "end", "rcv ACK of SYN"},
	{trace.StateSynSent, trace.StateEstablished, "M500,225 L372,285", 446, 268, "start", "rcv SYN,ACK: snd ACK"},
	{trace.StateSynReceived, trace.StateFinWait1, "M70,225 L70,375", 64, 300, "end", "CLOSE: snd FIN"},
	{trace.StateEstablished, trace.StateFinWait1, "M270,315 L150,375", 200, 356, "end", "CLOSE: snd FIN"},
	{trace.StateEstablished, trace.StateCloseWait, "M370,315 L490,375", 440, 356, "start", "rcv FIN: snd ACK"},
	{trace.StateFinWait1, trace.StateFinWait2, "M110,405 L110,465", 116, 440, "start", "rcv ACK of FIN"},
	{trace.StateFinWait1, trace.StateClosing, "M160,405 L272,466", 230, 428, "start", "rcv FIN: snd ACK"},
	{trace.StateFinWait1, trace.StateTimeWait, "M140,405 C200,470 230,540 258,562", 222, 505, "start", "rcv FIN,ACK: snd ACK"},
	{trace.StateCloseWait, trace.StateLastAck, "M530,405 L530,465", 536, 440, "start", "CLOSE: snd FIN"},
	{trace.StateFinWait2, trace.StateTimeWait, "M110,495 L260,568", 150, 548, "end", "rcv FIN: snd ACK"},
	{trace.StateClosing, trace.StateTimeWait, "M320,495 L320,555", 326, 530, "start", "rcv ACK of FIN"},
	{trace.StateLastAck, trace.StateClosed, "M530,495 L530,555", 536, 530, "start", "rcv ACK of FIN"},
	{trace.StateTimeWait, trace.StateClosed, "M382,570 L468,570", 425, 562, "middle", "2MSL timeout"},
}

// stateDiagram draws the diagram as SVG for the page: each state a group
// with id "st-NAME", each transition "tr-FROM--TO", for the page's script
// to mark; colours come from the page's style sheet.
func stateDiagram() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="statesvg" viewBox="-24 -14 %d %d" role="img" aria-label="RFC 793's TCP state diagram">`, sdW, sdH+20)
	b.WriteString(`<defs><marker id="sdarrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="sdhead"/></marker>` +
		`<marker id="sdarrowlit" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="sdheadlit"/></marker></defs>`)
	b.WriteString(`<rect x="36" y="8" width="150" height="144" rx="8" class="sdnetstack"/>`)
	b.WriteString(`<text x="40" y="2" class="sdnote">netstack's names for CLOSED</text>`)
	for _, e := range sdEdges {
		fmt.Fprintf(&b, `<g class="sdedge" id="tr-%s--%s"><path d="%s" marker-end="url(#sdarrow)"/><text x="%g" y="%g" text-anchor="%s">%s</text></g>`,
			e.from, e.to, e.path, e.lx, e.ly, e.anchor, html.EscapeString(e.label))
	}
	// The transition just taken when the diagram has no edge for it (a
	// reset, an abort): drawn by the page, straight.
	b.WriteString(`<g id="sdextra" class="sdedge lit" style="display:none"><path d="" marker-end="url(#sdarrowlit)"/><text></text></g>`)
	for _, n := range sdNodes {
		fmt.Fprintf(&b, `<g class="sdnode" id="st-%s" data-x="%g" data-y="%g"><rect x="%g" y="%g" width="%d" height="%d" rx="6"/><text x="%g" y="%g" text-anchor="middle" class="sdname">%s</text>`,
			n.id, n.x, n.y, n.x-sdNodeW/2, n.y-sdNodeH/2, sdNodeW, sdNodeH, n.x, n.y+4, n.state)
		if n.note != "" {
			fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" class="sdnote">%s</text>`, n.x, n.y+sdNodeH/2+10, html.EscapeString(n.note))
		}
		b.WriteString(`<g class="chips"></g></g>`)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
