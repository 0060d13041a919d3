package trace

import (
	"fmt"
	"io"
)

// CompareGraphOptions tune WriteCompareGraph.
type CompareGraphOptions struct {
	// Title heads the drawing; empty means the left run's own.
	Title string
	// Left and Right name the two runs' stacks, over their panels.
	Left, Right string
}

// WriteCompareGraph draws the data connection of each of two runs of the
// same session (--compare: on netstack and on the kernel's TCP) as
// WriteGraph does, one above the other, on the same scales: time (from
// each one's first segment), sequence numbers and the congestion window,
// so that the two senders' progress and windows can be read off one
// against the other. Of each run, the data connection that moved the most
// is drawn. It is a pure function of the two runs' events.
func WriteCompareGraph(w io.Writer, left, right []Event, opt CompareGraphOptions) error {
	var conns [2]*graphConn
	for i, evs := range [][]Event{left, right} {
		g := newGraph(evs, GraphOptions{})
		if opt.Title == "" {
			opt.Title = g.title
		}
		for _, c := range g.conns {
			if conns[i] == nil || c.bytes > conns[i].bytes {
				conns[i] = c
			}
		}
	}
	var sc graphScale
	for _, c := range conns {
		if c == nil {
			continue
		}
		own := c.ownScale()
		sc.span, sc.seqMax, sc.cwndMax = max(sc.span, own.span), max(sc.seqMax, own.seqMax), max(sc.cwndMax, own.cwndMax)
	}
	var b ladderSVG
	height := graphHeadH + 2*graphPanelH
	b.f(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-size="10">`+"\n",
		graphW, height, graphW, height)
	title := opt.Title
	if title == "" {
		title = "nsftp --compare: time-sequence graphs"
	}
	b.title(title)
	b.f("\n<style>\n%s\n</style>\n", graphStyle)
	b.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	b.text(20, 28, "title", "", "", svgFit(title, 100))
	b.text(20, 46, "sub", "", "", "both on the same scales: time from each one's first segment, sequence numbers, and on the right the congestion window from each sender's own TCB")
	for i, name := range []string{opt.Left, opt.Right} {
		y0 := float64(graphHeadH + i*graphPanelH)
		if conns[i] == nil {
			b.text(graphW/2, y0+80, "axis", "middle", "", fmt.Sprintf("%s: no data connection in this run", name))
			continue
		}
		s := sc
		s.name = name
		conns[i].renderScaled(&b, y0, s)
	}
	b.f("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}
