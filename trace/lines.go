package trace

import (
	"bytes"
	"io"
)

// A LineSink is a Sink that writes lines and holds them back, to write
// many in one system call. The recorder calls EndBatch after each batch of
// events it hands the sink (events that waited a millisecond at most, or
// a few hundred of them), and the sink writes out the lines it holds: a
// trace or a log going to a file or a pipe shows each line as it happens,
// and at bulk speed a write carries hundreds of lines.
type LineSink interface {
	Sink
	EndBatch() error
}

// lineWriter holds whole lines for w and writes them out together, never
// a line cut in two: whoever reads w (a log being followed), and whoever
// else writes to it (serve's messages on standard error), never sees half
// of one.
type lineWriter struct {
	w   io.Writer
	buf []byte
	max int // past this many bytes held, the complete lines go out
	err error
}

func newLineWriter(w io.Writer, max int) *lineWriter {
	return &lineWriter{w: w, max: max, buf: make([]byte, 0, max)}
}

// Write implements io.Writer: it holds p, and writes out every complete
// line held once they are more than max bytes.
func (l *lineWriter) Write(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) > l.max {
		if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
			l.writeOut(i + 1)
		}
	}
	return len(p), l.err
}

// WriteString is Write for a string.
func (l *lineWriter) WriteString(s string) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	l.buf = append(l.buf, s...)
	if len(l.buf) > l.max {
		if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
			l.writeOut(i + 1)
		}
	}
	return len(s), l.err
}

// Flush writes out everything held.
func (l *lineWriter) Flush() error {
	if l.err == nil && len(l.buf) > 0 {
		l.writeOut(len(l.buf))
	}
	return l.err
}

// writeOut writes the first n bytes held.
func (l *lineWriter) writeOut(n int) {
	_, l.err = l.w.Write(l.buf[:n])
	l.buf = l.buf[:copy(l.buf, l.buf[n:])]
}
