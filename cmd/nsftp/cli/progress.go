package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line progress bar on a terminal for transfers that
// run longer than a second: bytes, percentage when the size is known,
// rate and time left. It draws nothing when stderr is not a terminal.
type progress struct {
	out   io.Writer
	name  string
	total atomic.Int64 // -1 while unknown
	done  atomic.Int64
	start time.Time

	stopOnce sync.Once
	stop     chan struct{}
	exited   chan struct{}
}

// progressDelay is how long a transfer runs before the bar appears.
const progressDelay = time.Second

// startProgress returns a running progress bar, or nil when there must be
// none (quiet, or stderr is not a terminal).
func startProgress(e *env, quiet bool, name string, total int64) *progress {
	f, ok := e.stderr.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	p := &progress{out: f, name: name, start: time.Now(), stop: make(chan struct{}), exited: make(chan struct{})}
	p.total.Store(total)
	go p.run()
	return p
}

func (p *progress) run() {
	defer close(p.exited)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	drawn := false
	for {
		select {
		case <-p.stop:
			if drawn {
				fmt.Fprint(p.out, "\r\033[K")
			}
			return
		case <-tick.C:
			if time.Since(p.start) >= progressDelay {
				p.draw()
				drawn = true
			}
		}
	}
}

func (p *progress) draw() {
	done, total := p.done.Load(), p.total.Load()
	elapsed := time.Since(p.start).Seconds()
	rate := float64(done) / elapsed
	line := fmt.Sprintf("%s  %s", truncateName(p.name, 24), humanBytes(float64(done)))
	if total > 0 {
		pct := float64(done) * 100 / float64(total)
		line = fmt.Sprintf("%s  %3.0f%%  %s / %s", truncateName(p.name, 24), pct, humanBytes(float64(done)), humanBytes(float64(total)))
	}
	line += fmt.Sprintf("  %s/s", humanBytes(rate))
	if total > 0 && rate > 0 && done < total {
		eta := time.Duration(float64(total-done)/rate) * time.Second
		line += fmt.Sprintf("  ETA %v", eta.Round(time.Second))
	}
	fmt.Fprintf(p.out, "\r\033[K%s", line)
}

func truncateName(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "..." + string(r[len(r)-n+3:])
}

// finish removes the bar. It is safe on a nil progress.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.exited
}

// writer counts what passes through w. It is safe on a nil progress.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return &countingWriter{w: w, p: p}
}

// reader counts what passes through r. It is safe on a nil progress.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r: r, p: p}
}

type countingWriter struct {
	w io.Writer
	p *progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.done.Add(int64(n))
	return n, err
}

// ExpectSize is called by the FTP client once it knows the download's
// size (see ftp.Client.Retrieve).
func (c *countingWriter) ExpectSize(n int64) { c.p.total.Store(n) }

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.done.Add(int64(n))
	return n, err
}
