package ftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// copyBufferSize is the buffer every transfer streams through: transfers
// run in constant memory whatever the file's size. It is large because
// each read from the stack costs TCP work of its own: 1 MiB reads move a
// download across the virtual wire faster than 128 KiB ones
// (BenchmarkRETRWireVsLoopback), and a client has one transfer at a time.
const copyBufferSize = 1 << 20

// Retrieve downloads path into w with RETR, starting at offset (REST) when
// offset > 0, and returns the bytes written. It succeeds only when the
// server ends with 226 or 250 and, where the size is known (from SIZE, or
// failing that the last "(N bytes)" of the 150 reply), exactly that many
// bytes arrived; it never writes more than the announced size to w. If w
// has a method ExpectSize(int64), it is told the size once known (for
// progress bars).
//
// When the transfer fails, the data connection is reset and the server is
// heard out (or sent ABOR), so the session can go on; w may have received
// part of the file, which is why cmd/nsftp writes into a Dest.
func (c *Client) Retrieve(ctx context.Context, path string, offset int64, w io.Writer) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("ftp: negative offset %d", offset)
	}
	if _, err := FormatCommand("RETR", path); err != nil {
		return 0, err
	}
	want := int64(-1)
	if size, err := c.Size(ctx, path); err == nil {
		want = size - offset
		if want < 0 {
			return 0, fmt.Errorf("%w: the local file (%d bytes) is longer than the remote one (%d bytes)", ErrIncomplete, offset, size)
		}
	} else if c.dead != nil {
		return 0, err
	}
	var n int64
	err := c.transfer(ctx, "RETR", path, offset, func(r *Reply, d *clientData) error {
		// SIZE is the authority when the server answered it: the 150's
		// text is free-form, and it may echo a name that looks like a
		// size. Servers differ on what a 150 after REST announces, so it
		// counts only for whole files.
		if announced := announcedSize(r); want < 0 && offset == 0 {
			want = announced
		} else if announced >= 0 && offset == 0 && announced != want {
			c.event(event{Kind: trace.KindNote, Conn: trace.Control, Text: fmt.Sprintf(
				"the %d reply announces %d bytes, SIZE said %d; expecting %d", r.Code, announced, want, want)})
		}
		if es, ok := w.(interface{ ExpectSize(int64) }); ok && want >= 0 {
			es.ExpectSize(want)
		}
		var err error
		n, err = receiveData(w, d, want)
		return err
	})
	return n, err
}

// Store uploads r to path with STOR and returns the bytes sent. It
// succeeds only when the server ends with 226 or 250. A failed upload ends
// with a reset of the data connection, never a plain close, which in
// stream mode would tell the server the file is complete (RFC 959 section
// 3.4.1).
func (c *Client) Store(ctx context.Context, path string, r io.Reader) (int64, error) {
	return c.upload(ctx, "STOR", path, 0, r)
}

// Append uploads r to the end of path with APPE.
func (c *Client) Append(ctx context.Context, path string, r io.Reader) (int64, error) {
	return c.upload(ctx, "APPE", path, 0, r)
}

func (c *Client) upload(ctx context.Context, verb, path string, offset int64, r io.Reader) (int64, error) {
	var n int64
	err := c.transfer(ctx, verb, path, offset, func(_ *Reply, d *clientData) error {
		buf := make([]byte, copyBufferSize)
		var err error
		n, err = io.CopyBuffer(writerOnly{d}, readerOnly{r}, buf)
		if err != nil {
			if errors.Is(err, ErrLocalFile) {
				return err
			}
			return fmt.Errorf("%w: sending data after %d bytes: %w", ErrIncomplete, n, err)
		}
		// Half-close, so the server sees the end of the file and can
		// answer while we still listen.
		if err := d.closeWrite(); err != nil {
			return fmt.Errorf("%w: closing the data connection: %v", ErrIncomplete, err)
		}
		d.drain()
		return nil
	})
	return n, err
}

// drainGrace bounds how long an upload waits for the server to close the
// data connection after our end of file.
const drainGrace = 2 * time.Second

// drain waits, briefly, for the server's side of the data connection to
// end after our half-close. Closing at once would reset a connection the
// server is still shutting down - under TLS it answers our close_notify
// with its own - and vsftpd reports that as a failed upload (426).
func (d *clientData) drain() {
	d.mu.Lock()
	conn := d.conn
	d.mu.Unlock()
	if conn == nil {
		return
	}
	conn.SetReadDeadline(time.Now().Add(drainGrace))
	io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
}

// List streams the raw LIST output for path (a directory or file; ""
// for the current directory) to w.
func (c *Client) List(ctx context.Context, path string, w io.Writer) error {
	return c.transfer(ctx, "LIST", path, 0, func(_ *Reply, d *clientData) error {
		_, err := receiveData(w, d, -1)
		return err
	})
}

// NameList calls fn with each name NLST returns for path.
func (c *Client) NameList(ctx context.Context, path string, fn func(name string) error) error {
	return c.lines(ctx, "NLST", path, fn)
}

// MLSD calls fn with each entry of a machine-readable listing (RFC 3659
// section 7). Lines that do not parse are a protocol error.
func (c *Client) MLSD(ctx context.Context, path string, fn func(Entry) error) error {
	return c.lines(ctx, "MLSD", path, func(line string) error {
		e, err := ParseMLSDLine(line)
		if err != nil {
			return err
		}
		return fn(e)
	})
}

// lines runs a listing command and calls fn per line, with the line length
// bounded, so an endless or hostile listing costs bounded memory.
func (c *Client) lines(ctx context.Context, verb, path string, fn func(string) error) error {
	return c.transfer(ctx, verb, path, 0, func(_ *Reply, d *clientData) error {
		sc := bufio.NewScanner(d)
		sc.Buffer(make([]byte, 4096), MaxLineLength)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if line == "" {
				continue
			}
			if err := fn(line); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return &ProtocolError{Msg: fmt.Sprintf("%s line longer than %d bytes", verb, MaxLineLength)}
			}
			return fmt.Errorf("%w: reading the %s listing: %v", ErrIncomplete, verb, err)
		}
		return nil
	})
}

// transfer runs one data-connection command: set up the data connection,
// REST if offset > 0, send the command, on its 1xx accept (active mode),
// run move, close the data connection and require the final 226/250.
// On any failure or cancellation it tries ABOR so the session stays in
// step, and closes everything it opened.
func (c *Client) transfer(ctx context.Context, verb, arg string, offset int64, move func(*Reply, *clientData) error) (err error) {
	if c.dead != nil {
		return c.dead
	}
	if _, err := FormatCommand(verb, arg); err != nil {
		return err
	}
	d, err := c.openData(ctx)
	if err != nil {
		return err
	}
	stop := c.watch(ctx, d)
	defer func() {
		stop()
		d.close()
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}()
	if offset > 0 {
		if _, err := c.expect(ctx, "REST", strconv.FormatInt(offset, 10), 350); err != nil {
			return err
		}
	}
	r, err := c.cmd(ctx, verb, arg)
	if err != nil {
		return err
	}
	switch r.Class() {
	case 1:
	case 2:
		// Some servers answer an empty listing with 226 and no data
		// connection at all.
		if verb == "LIST" || verb == "NLST" || verb == "MLSD" {
			return nil
		}
		return c.replyErr(shown(verb, arg), r, "150")
	default:
		return c.replyErr(shown(verb, arg), r, "150")
	}
	return c.dataPhase(ctx, shown(verb, arg), r, d, move)
}

// abortGrace is how long a failed transfer waits for the server to explain
// itself (a 426 or 552 already on its way) before sending ABOR.
const abortGrace = 250 * time.Millisecond

// dataPhase runs the transfer that first (a 1xx) started: accept the data
// connection in active mode, run move, and read the final reply. The
// control connection is read all along (see replyWatch), so a server that
// gives up half-way is heard at once.
//
// A failure after the 1xx wraps ErrIncomplete, unless it is a local file
// error or the server's data connection never came (active mode). Of the
// errors a failure may bring, the one that explains it best is returned:
// ours when we decided (a local file, a byte count, a malformed listing),
// the server's reply when the server ended the transfer or broke the data
// connection.
func (c *Client) dataPhase(ctx context.Context, what string, first *Reply, d *clientData, move func(*Reply, *clientData) error) error {
	w := c.watchReply(ctx, d)
	err := d.accept(ctx)
	if err == nil {
		err = d.secure(ctx)
	}
	if err == nil {
		err = move(first, d)
	}
	if err == nil {
		d.close() // the server may wait for our end before it replies
		final, ferr := w.wait(ctx, c.cfg.ReplyTimeout)
		if ferr != nil {
			c.fail(ctx, ferr)
			return fmt.Errorf("%w: no reply after the data (%v)", ErrIncomplete, ferr)
		}
		return c.finalReply(what, final)
	}

	// Reset the data connection: that stops a server still sending, and
	// no server can take the upload for complete. Its reply usually
	// follows at once, and then no ABOR is needed.
	serverSide := (w.cutShort() || d.ioFailed()) && !errors.Is(err, ErrLocalFile)
	d.interrupt()
	final, ferr := w.wait(ctx, abortGrace)
	switch {
	case final != nil:
		ferr := c.finalReply(what, final) // ends the session on 421
		if final.Class() != 2 && serverSide {
			return ferr
		}
		return err
	case !w.clean && ctx.Err() == nil:
		// The control connection broke: no final reply can come.
		c.fail(ctx, ferr)
		if serverSide {
			return fmt.Errorf("%w: %v", ErrIncomplete, ferr)
		}
		return err
	case !w.clean:
		c.fail(ctx, ferr)
		return err
	}
	// No word from the server yet: tell it to stop (RFC 959 section
	// 4.1.3), so that the session stays usable.
	c.abort(ctx)
	return err
}

// finalReply checks the reply that ends a transfer.
func (c *Client) finalReply(what string, final *Reply) error {
	switch {
	case final.Code == 226 || final.Code == 250:
		return nil
	case final.Code == 421:
		c.dead = &ReplyError{Command: what, Reply: final}
		c.conn.Close()
		return fmt.Errorf("%w: %w", ErrIncomplete, c.dead)
	}
	return fmt.Errorf("%w: %w", ErrIncomplete, c.replyErr(what, final, "226"))
}

// replyWatch reads the reply that ends a transfer in a goroutine of its
// own, while the data connection is in use, so that a server that gives up
// (425 in active mode, 426, 451 or 552 half-way, 421, a closed control
// connection) is heard at once and not after the data connection's
// timeout. A 226 that arrives before the data has all been read is kept:
// the data is read to its end all the same.
//
// Until wait returns, only the goroutine reads c.r. It waits for the
// reply's first byte without a deadline (the data connection has its own),
// then gives the whole reply ReplyTimeout.
type replyWatch struct {
	c    *Client
	ctx  context.Context
	d    *clientData
	done chan struct{}

	mu       sync.Mutex // guards reading, stopping and stopped
	reading  bool       // a reply has started to arrive: let it finish
	stopping bool       // wait has been called
	stopped  bool       // the goroutine cut the data connection short

	// Set by the goroutine before done is closed.
	replies []timedReply // everything read, preliminary replies included
	final   *Reply       // the first reply that is not 1xx
	err     error
	clean   bool // err is a deadline before a reply's first byte: c.r is in step
}

type timedReply struct {
	r  *Reply
	at time.Time
}

// watchReply starts watching the control connection for the end of the
// transfer on d.
func (c *Client) watchReply(ctx context.Context, d *clientData) *replyWatch {
	w := &replyWatch{c: c, ctx: ctx, d: d, done: make(chan struct{})}
	w.setDeadline(time.Time{})
	go w.run()
	return w
}

// setDeadline sets the control connection's read deadline without losing
// a cancellation of ctx: once ctx is done, a reply gets cancelGrace at
// most, as everywhere else (see Client.watch), whenever the cancellation
// came.
func (w *replyWatch) setDeadline(t time.Time) {
	if w.ctx.Err() == nil {
		w.c.conn.SetReadDeadline(t)
		if w.ctx.Err() == nil {
			return
		}
	}
	if g := time.Now().Add(cancelGrace); t.IsZero() || t.After(g) {
		t = g
	}
	w.c.conn.SetReadDeadline(t)
}

func (w *replyWatch) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		if i > 0 {
			// After a preliminary reply, wait for the next one as for
			// the first: for as long as the data takes.
			w.mu.Lock()
			if !w.stopping {
				w.setDeadline(time.Time{})
			}
			w.mu.Unlock()
		}
		if _, err := w.c.r.Peek(1); err != nil {
			// A deadline (wait's, or ctx's) leaves c.r at a reply
			// boundary; anything else means the connection is gone.
			w.err, w.clean = err, isTimeout(err)
			break
		}
		w.mu.Lock()
		w.reading = true
		w.setDeadline(time.Now().Add(w.c.cfg.ReplyTimeout))
		w.mu.Unlock()
		r, err := ReadReply(w.c.r)
		w.mu.Lock()
		w.reading = false
		w.mu.Unlock()
		if err != nil {
			w.err = err
			break
		}
		w.replies = append(w.replies, timedReply{r, time.Now()})
		if r.Class() == 1 && i < maxPreliminary {
			continue // a second preliminary reply; the final one follows
		}
		w.final = r
		break
	}
	if w.err == io.EOF {
		w.err = fmt.Errorf("server closed the control connection: %w", io.ErrUnexpectedEOF)
	}
	if w.final != nil && w.final.Class() == 2 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopping {
		// The server gave up, or went away: no one will send the rest.
		w.stopped = true
		w.d.interrupt()
	}
}

// cutShort reports whether the watcher ended the data phase: it read a
// failure reply, or the control connection failed, while data moved.
func (w *replyWatch) cutShort() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// wait gives the server timeout more to send its reply (a reply that has
// started to arrive gets ReplyTimeout), waits for the goroutine, and
// returns the final reply or the error that ended the wait. The replies
// read are reported to the Observer here, from the caller's goroutine.
func (w *replyWatch) wait(ctx context.Context, timeout time.Duration) (*Reply, error) {
	w.mu.Lock()
	w.stopping = true
	if !w.reading {
		w.setDeadline(time.Now().Add(timeout))
	}
	w.mu.Unlock()
	<-w.done
	for _, tr := range w.replies {
		w.c.event(event{Kind: trace.KindReply, Conn: trace.Control, Code: tr.r.Code, Text: tr.r.Text()})
	}
	if w.final != nil {
		return w.final, nil
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return nil, w.err
}

// abort sends ABOR after a failed transfer and reads what the server says
// (RFC 959 4.1.3: 426 for the aborted transfer, then 226; or just 225/226
// when nothing was running), briefly, so the session can go on. If that
// fails the session is closed.
func (c *Client) abort(ctx context.Context) {
	if c.dead != nil {
		return
	}
	// The caller's ctx may be what failed; ABOR gets a short budget of
	// its own so cancellation still tells the server.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	line, _ := FormatCommand("ABOR", "")
	if err := c.sendBudget(actx, line); err != nil {
		return
	}
	// A transfer the server had already finished leaves its 226 ahead of
	// ABOR's own reply (225 or 226): after a 226, give the server a moment
	// to send the second so that the next command reads its own reply.
	wait := 2 * time.Second
	for i := 0; i < 3; i++ {
		c.conn.SetReadDeadline(time.Now().Add(wait))
		r, err := ReadReply(c.r)
		if err != nil {
			if i > 0 && isTimeout(err) {
				return // only one reply came; the session is in step
			}
			c.fail(actx, err)
			return
		}
		c.event(event{Kind: trace.KindReply, Conn: trace.Control, Code: r.Code, Text: r.Text()})
		switch {
		case r.Code == 421:
			c.dead = &ReplyError{Command: "ABOR", Reply: r}
			c.conn.Close()
			return
		case r.Code == 225, r.Class() == 5:
			return
		case r.Code == 226:
			wait = 300 * time.Millisecond
		}
	}
}

func (c *Client) sendBudget(ctx context.Context, line string) error {
	dl, _ := ctx.Deadline()
	c.conn.SetWriteDeadline(dl)
	c.event(event{Kind: trace.KindCommand, Conn: trace.Control, Text: trace.RedactCommand(strings.TrimSuffix(line, "\r\n"))})
	if _, err := io.WriteString(c.conn, line); err != nil {
		c.fail(ctx, err)
		return err
	}
	return nil
}

// bytesRE finds the "(1234 bytes)" that most servers put in a RETR's 150.
var bytesRE = regexp.MustCompile(`\((\d{1,19}) bytes\)`)

// announcedSize returns the size a 150 reply announces, or -1. Servers
// (vsftpd, ProFTPD, nsftp's own) echo the file name before the size, and a
// name may itself contain "(5 bytes)", so the last match counts.
func announcedSize(r *Reply) int64 {
	all := bytesRE.FindAllStringSubmatch(r.Text(), -1)
	if all == nil {
		return -1
	}
	n, err := strconv.ParseInt(all[len(all)-1][1], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// receiveData copies the data connection to w. With want >= 0 it reads at
// most want+1 bytes, writes at most want, and fails unless exactly want
// arrived: a server that sends more than it announced must not fill the
// disk, and one that sends less must not leave a short file that looks
// complete.
func receiveData(w io.Writer, d *clientData, want int64) (int64, error) {
	var src io.Reader = d
	if want >= 0 && want < math.MaxInt64 {
		src = io.LimitReader(d, want+1)
	}
	buf := make([]byte, copyBufferSize)
	var n int64
	for {
		m, rerr := src.Read(buf)
		if m > 0 {
			chunk := buf[:m]
			if want >= 0 && n+int64(m) > want {
				chunk = chunk[:want-n]
			}
			if len(chunk) > 0 {
				if _, werr := w.Write(chunk); werr != nil {
					if errors.Is(werr, ErrLocalFile) {
						return n, werr
					}
					return n, &localError{err: werr}
				}
				n += int64(len(chunk))
			}
			if want >= 0 && n+int64(m-len(chunk)) > want {
				return n, fmt.Errorf("%w: server sent more than the %d bytes it announced", ErrIncomplete, want)
			}
		}
		if rerr == io.EOF {
			if want >= 0 && n != want {
				return n, fmt.Errorf("%w: received %d of %d bytes", ErrIncomplete, n, want)
			}
			return n, nil
		}
		if rerr != nil {
			if d.interrupted() {
				return n, fmt.Errorf("%w: after %d bytes: %w", ErrIncomplete, n, errInterrupted)
			}
			if isTimeout(rerr) && d.c.cfg.DataTimeout > 0 {
				return n, fmt.Errorf("%w: no data for %v after %d bytes: %w", ErrIncomplete, d.c.cfg.DataTimeout, n, rerr)
			}
			return n, fmt.Errorf("%w: after %d bytes: %v", ErrIncomplete, n, rerr)
		}
	}
}

// readerOnly and writerOnly hide ReadFrom/WriteTo so io.CopyBuffer uses
// our buffer and our per-call deadlines, and local read errors are marked.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF && !errors.Is(err, ErrLocalFile) {
		return n, &localError{err: err}
	}
	return n, err
}

type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(b []byte) (int, error) { return w.w.Write(b) }
