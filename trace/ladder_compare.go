package trace

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// CompareLadderOptions tune WriteCompareLadder.
type CompareLadderOptions struct {
	// Title heads the drawing; empty means the left run's own.
	Title string
	// Left and Right name the two runs' stacks, above their ladders.
	Left, Right string
}

// svgRoot is a drawing's root element as this package writes it, with its
// size.
var svgRoot = regexp.MustCompile(`<svg xmlns="http://www.w3.org/2000/svg" width="([0-9.]+)" height="([0-9.]+)" (viewBox="[^"]*") font-size="10">`)

// compareHead is the height of the two ladders' common heading.
const compareHead = 64

// WriteCompareLadder draws two runs of the same session (--compare: on
// netstack and on the kernel's TCP) as their two ladder diagrams side by
// side in one self-contained SVG, each as WriteLadder draws it, under one
// title and each under its stack's name. It is a pure function of the two
// runs' events.
func WriteCompareLadder(w io.Writer, left, right []Event, opt CompareLadderOptions) error {
	title := opt.Title
	if title == "" {
		for _, e := range left {
			if e.Kind == KindRun && e.Run != nil {
				title = e.Run.Title
				break
			}
		}
	}
	var parts [2][]byte
	var size [2][2]float64
	for i, evs := range [][]Event{left, right} {
		var b bytes.Buffer
		if err := WriteLadder(&b, evs, LadderOptions{}); err != nil {
			return err
		}
		svg := b.Bytes()
		m := svgRoot.FindSubmatchIndex(svg)
		if m == nil {
			return fmt.Errorf("trace: a ladder's drawing has no root element")
		}
		size[i][0], _ = strconv.ParseFloat(string(svg[m[2]:m[3]]), 64)
		size[i][1], _ = strconv.ParseFloat(string(svg[m[4]:m[5]]), 64)
		x := 0.0
		if i == 1 {
			x = size[0][0] + 20
		}
		root := fmt.Sprintf(`<svg x="%s" y="%d" width="%s" height="%s" %s font-size="10">`,
			svgNum(x), compareHead, svgNum(size[i][0]), svgNum(size[i][1]), svg[m[6]:m[7]])
		body := svg[m[1]:]
		// Each ladder's markers under names of its own: one document
		// holds both.
		prefix := []byte{"lr"[i]}
		body = bytes.ReplaceAll(body, []byte(`id="`), append([]byte(`id="`), prefix...))
		body = bytes.ReplaceAll(body, []byte(`url(#`), append([]byte(`url(#`), prefix...))
		parts[i] = append([]byte(root), body...)
	}
	width := size[0][0] + 20 + size[1][0]
	height := compareHead + max(size[0][1], size[1][1])
	var b ladderSVG
	b.f(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-size="10">`+"\n",
		svgNum(width), svgNum(height), svgNum(width), svgNum(height))
	b.title(title, opt.Left+" | "+opt.Right)
	b.f("\n<style>\n%s\n</style>\n", diagramStyle)
	b.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	b.text(20, 26, "title", "", "", svgFit(Clean(title), int(width/8)))
	for i, name := range []string{opt.Left, opt.Right} {
		x := 20.0
		if i == 1 {
			x += size[0][0] + 20
		}
		b.text(x, 52, "title", "", "", svgFit(Clean(name), int(size[i][0]/9)))
	}
	b.f(`<line x1="%s" y1="%d" x2="%s" y2="%s" stroke="#d0d7de"/>`+"\n", svgNum(size[0][0]+10), compareHead, svgNum(size[0][0]+10), svgNum(height))
	for _, p := range parts {
		b.Write(p)
	}
	b.f("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}
