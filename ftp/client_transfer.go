package ftp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// copyBufferSize is the buffer every transfer streams through: transfers
// run in constant memory whatever the file's size.
const copyBufferSize = 128 << 10

// Retrieve downloads path into w with RETR, starting at offset (REST) when
// offset > 0, and returns the bytes written. It succeeds only when the
// server ends with 226 or 250 and, where the size is known (from SIZE, or
// the "(N bytes)" of the 150 reply), exactly that many bytes arrived;
// it never writes more than the announced size to w. If w has a method
// ExpectSize(int64), it is told the size once known (for progress bars).
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
		if want < 0 && offset == 0 {
			want = announcedSize(r)
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
// succeeds only when the server ends with 226 or 250.
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
			var lerr *localError
			if errors.As(err, &lerr) {
				return err
			}
			return fmt.Errorf("%w: sending data: %v", ErrIncomplete, err)
		}
		// Half-close, so the server sees the end of the file and can
		// answer while we still listen.
		if err := d.closeWrite(); err != nil {
			return fmt.Errorf("%w: closing the data connection: %v", ErrIncomplete, err)
		}
		return nil
	})
	return n, err
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
		if err != nil && ctx.Err() != nil {
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
	if err := d.accept(ctx); err != nil {
		c.abort(ctx)
		return err
	}
	if err := move(r, d); err != nil {
		d.close()
		c.abort(ctx)
		return err
	}
	d.close()
	final, err := c.readReply(ctx)
	if err != nil {
		return fmt.Errorf("%w: no reply after the data (%v)", ErrIncomplete, err)
	}
	if final.Code == 421 {
		c.dead = &ReplyError{Command: shown(verb, arg), Reply: final}
		c.conn.Close()
		return fmt.Errorf("%w: %w", ErrIncomplete, c.dead)
	}
	if final.Code != 226 && final.Code != 250 {
		return fmt.Errorf("%w: %w", ErrIncomplete, c.replyErr(shown(verb, arg), final, "226"))
	}
	return nil
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
		c.event(Event{Kind: EventReply, Conn: "control", Code: r.Code, Text: r.Text()})
		switch {
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
	c.event(Event{Kind: EventCommand, Conn: "control", Text: strings.TrimSuffix(line, "\r\n")})
	if _, err := io.WriteString(c.conn, line); err != nil {
		c.fail(ctx, err)
		return err
	}
	return nil
}

// bytesRE finds the "(1234 bytes)" that most servers put in a RETR's 150.
var bytesRE = regexp.MustCompile(`\((\d{1,19}) bytes\)`)

// announcedSize returns the size a 150 reply announces, or -1.
func announcedSize(r *Reply) int64 {
	m := bytesRE.FindStringSubmatch(r.Text())
	if m == nil {
		return -1
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
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
	if want >= 0 {
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
	if err != nil && err != io.EOF {
		return n, &localError{err: err}
	}
	return n, err
}

type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(b []byte) (int, error) { return w.w.Write(b) }
