package trace

import (
	"net/netip"
	"time"
)

// GraphPanel is where WriteGraph draws one data connection, so that a
// page showing the SVG can mark a moment on it: a time maps to
// X0 + (t-T0)/(T1-T0) * (X1-X0), in the SVG's own coordinates. T1 is the
// time at X1, the time axis' round end, at or past the last segment.
type GraphPanel struct {
	// Host and Socket are the sender's view the panel draws (Socket is
	// 0 when the sender is not traced).
	Host     string
	Socket   int
	From, To netip.AddrPort
	T0, T1   time.Time
	// X0 and X1 are the plot's left and right edges, Top and Bottom its
	// upper and lower ones.
	X0, X1, Top, Bottom float64
}

// GraphLayout says where WriteGraph, given the same events, draws each
// connection's time axis: one panel per data connection, in the order
// the SVG has them.
func GraphLayout(events []Event) []GraphPanel {
	g := newGraph(events, GraphOptions{})
	var out []GraphPanel
	for i, c := range g.conns {
		y0 := float64(graphHeadH + i*graphPanelH)
		// As renderScaled draws the axis: to a round time past the end.
		span := time.Duration(roundAxis(c.ownScale().span.Seconds(), 0).top * float64(time.Second))
		out = append(out, GraphPanel{
			Host: c.host, Socket: c.socket, From: c.from, To: c.to, T0: c.t0, T1: c.t0.Add(span),
			X0: graphPlotL, X1: graphPlotR, Top: y0 + graphPlotT, Bottom: y0 + graphPlotB,
		})
	}
	return out
}
