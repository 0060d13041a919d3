package ftp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// clientData is one data connection of a client: opened passively (we
// connect to the port the server names) or actively (the server connects
// to a port we listen on, the article's way). It is its own type so that
// the control connection never carries data-connection state.
type clientData struct {
	c    *Client
	mode string // "active" or "passive"

	ln   net.Listener // active: the listening socket until accept
	conn net.Conn

	// mu guards stopped, and orders setting deadlines against interrupt,
	// which ctx's AfterFunc and the replyWatch goroutine call.
	mu      sync.Mutex
	stopped bool
	ioErr   error // the first failure of the connection itself; see ioFailed

	local, remote string // recorded at open: a closed socket has no addresses
	bytes         int64
}

// openData prepares a data connection before the transfer command is
// sent: in passive mode it connects now; in active mode it listens and
// tells the server where (the accept happens after the server's 1xx).
func (c *Client) openData(ctx context.Context) (*clientData, error) {
	if c.cfg.Active {
		return c.openActive(ctx)
	}
	return c.openPassive(ctx)
}

// openPassive sends EPSV (RFC 2428), falling back to PASV, and connects.
// Whatever address a 227 reply names, the connection goes to the control
// connection's peer: a server must not be able to point us at a third
// host (RFC 2577's bounce, in reverse).
func (c *Client) openPassive(ctx context.Context) (*clientData, error) {
	var port uint16
	if !c.epsvFailed && !c.cfg.DisableEPSV {
		r, err := c.cmd(ctx, "EPSV", "")
		if err != nil {
			return nil, err
		}
		if r.Code == 229 {
			p, perr := ParseEPSV(r.Text())
			if perr != nil {
				return nil, perr
			}
			port = p
		} else if r.Class() == 5 {
			c.epsvFailed = true
		} else {
			return nil, c.replyErr("EPSV", r, "229")
		}
	}
	if port == 0 {
		if !c.peer.Addr().Is4() {
			return nil, errors.New("ftp: server refused EPSV, and PASV cannot work over IPv6")
		}
		r, err := c.expect(ctx, "PASV", "", 227)
		if err != nil {
			return nil, err
		}
		ap, err := ParsePASV(r.Text())
		if err != nil {
			return nil, err
		}
		if ap.Addr() != c.peer.Addr() {
			c.event(event{Kind: trace.KindNote, Conn: trace.Data, Text: fmt.Sprintf(
				"227 reply names %s; connecting to the control peer %s instead", ap.Addr(), c.peer.Addr())})
		}
		port = ap.Port()
	}
	target := netip.AddrPortFrom(c.peer.Addr(), port)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Network.DialContext(trace.WithLabel(dctx, trace.Data), "tcp", target.String())
	if err != nil {
		return nil, fmt.Errorf("opening the data connection to %s: %w", target, err)
	}
	d := &clientData{c: c, mode: "passive", conn: conn}
	d.opened()
	return d, nil
}

// openActive listens on the control connection's local address with a
// port the stack chooses (the article's fixed port is a flaw: a second
// transfer or another user collides with it) and a backlog of one, then
// sends PORT or EPRT.
func (c *Client) openActive(ctx context.Context) (*clientData, error) {
	laddr := netip.AddrPortFrom(c.local.Addr(), 0)
	ln, err := c.cfg.Network.Listen(dataListenContext(ctx), "tcp", laddr.String())
	if err != nil {
		return nil, fmt.Errorf("listening for the data connection: %w", err)
	}
	d := &clientData{c: c, mode: "active", ln: ln}
	ap := addrPortOf(ln.Addr())
	ap = netip.AddrPortFrom(c.local.Addr(), ap.Port())
	if ap.Addr().Is4() && !c.cfg.UseEPRT {
		arg, ferr := FormatPORT(ap)
		if ferr != nil {
			d.close()
			return nil, ferr
		}
		_, err = c.expect(ctx, "PORT", arg, 200)
	} else {
		_, err = c.expect(ctx, "EPRT", FormatEPRT(ap), 200)
	}
	if err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// accept waits, in active mode, for the server's connection. Connections
// from any address but the control connection's peer are refused and
// reported, and the wait goes on: a third party racing the server to our
// port must not get its bytes into the file (RFC 2577 section 8, from the
// client's side).
func (d *clientData) accept(ctx context.Context) error {
	if d.conn != nil {
		return nil
	}
	deadline := time.Now().Add(d.c.cfg.AcceptTimeout)
	if dl, ok := d.ln.(interface{ SetDeadline(time.Time) error }); ok {
		dl.SetDeadline(deadline)
	}
	var refused []string // the first few foreign peers, for the error
	nRefused := 0
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case d.interrupted():
				return errInterrupted
			case isTimeout(err) && nRefused > 0:
				return fmt.Errorf("the server did not open the data connection within %v, and one from %s was refused (%w): %w",
					d.c.cfg.AcceptTimeout, refusedList(refused, nRefused), ErrDataPeer, err)
			case isTimeout(err):
				return fmt.Errorf("the server did not open the data connection within %v: %w", d.c.cfg.AcceptTimeout, err)
			}
			return fmt.Errorf("accepting the data connection: %w", err)
		}
		from := addrPortOf(conn.RemoteAddr())
		if from.Addr() != d.c.peer.Addr() {
			conn.Close()
			nRefused++
			if len(refused) < 3 {
				refused = append(refused, from.String())
			}
			d.c.event(event{Kind: trace.KindNote, Conn: trace.Data, Remote: from.String(), Text: fmt.Sprintf(
				"refused a data connection from %s: only the control peer %s may connect", from, d.c.peer.Addr()),
				Err: ErrDataPeer.Error()})
			continue
		}
		d.mu.Lock()
		d.conn = conn
		d.ln.Close()
		d.ln = nil
		stopped := d.stopped
		if stopped {
			// Interrupted while we accepted: keep the interruption.
			resetClose(conn)
		}
		d.mu.Unlock()
		d.opened()
		if stopped {
			return errInterrupted
		}
		return nil
	}
}

// refusedList names the refused peers, and how many more there were.
func refusedList(shown []string, n int) string {
	s := strings.Join(shown, ", ")
	if n > len(shown) {
		s += fmt.Sprintf(" and %d more", n-len(shown))
	}
	return s
}

func (d *clientData) opened() {
	d.local = addrPortOf(d.conn.LocalAddr()).String()
	d.remote = addrPortOf(d.conn.RemoteAddr()).String()
	d.c.event(event{Kind: trace.KindDataOpen, Conn: trace.Data, Mode: d.mode, Local: d.local, Remote: d.remote})
}

// errInterrupted is what the data connection returns once the transfer
// has been cut short: by the caller's context, or by a reply that ended it
// early (see replyWatch). Callers report the reason, not this.
var errInterrupted = errors.New("ftp: data connection interrupted")

// Read reads from the data connection, with the inactivity timeout.
func (d *clientData) Read(b []byte) (int, error) {
	if err := d.arm(d.conn.SetReadDeadline); err != nil {
		return 0, err
	}
	n, err := d.conn.Read(b)
	d.bytes += int64(n)
	d.noteErr(err)
	return n, err
}

// Write writes to the data connection, with the inactivity timeout.
func (d *clientData) Write(b []byte) (int, error) {
	if err := d.arm(d.conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	n, err := d.conn.Write(b)
	d.bytes += int64(n)
	d.noteErr(err)
	return n, err
}

// arm pushes a deadline DataTimeout ahead before each Read or Write, unless
// the connection has been interrupted. Holding d.mu orders it against
// interrupt: an interruption is never overwritten by a later deadline, which
// would let the transfer run on as if nothing had happened.
func (d *clientData) arm(set func(time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errInterrupted
	}
	set(time.Now().Add(d.c.cfg.DataTimeout))
	return nil
}

// interrupt stops the data connection for good and wakes any call blocked
// on it: ctx is done, the server has ended the transfer, or the transfer
// failed. The connection is reset, not closed, so that a server never takes
// a broken upload for a complete one (in stream mode a plain close means
// end of file, RFC 959 section 3.4.1). Closing, rather than moving the
// deadlines into the past, also keeps clear of a deadline timer that fires
// at the same moment.
func (d *clientData) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.conn != nil {
		resetClose(d.conn)
	}
	if d.ln != nil {
		d.ln.Close()
	}
}

// ioFailed reports whether a Read or Write failed on the connection itself
// (a reset, a broken pipe) rather than on a timeout, an interruption or the
// end of the data: then the server's reply, if one comes, says why.
func (d *clientData) ioFailed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ioErr != nil
}

// noteErr records a Read or Write error for ioFailed.
func (d *clientData) noteErr(err error) {
	if err == nil || err == io.EOF || isTimeout(err) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped && d.ioErr == nil {
		d.ioErr = err
	}
}

// interrupted reports whether interrupt has been called.
func (d *clientData) interrupted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopped
}

// close closes whatever is open and reports the byte count.
func (d *clientData) close() error {
	d.mu.Lock()
	ln, conn := d.ln, d.conn
	d.ln, d.conn = nil, nil
	d.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	if conn == nil {
		return nil
	}
	err := conn.Close()
	d.c.event(event{Kind: trace.KindDataClose, Conn: trace.Data, Mode: d.mode, Bytes: d.bytes,
		Local: d.local, Remote: d.remote})
	return err
}

// closeWrite half-closes an upload so the server sees the end of the file
// while we wait for its reply.
func (d *clientData) closeWrite() error {
	conn := d.conn
	if tc, ok := conn.(*tls.Conn); ok {
		// close_notify first: the TLS end of the file, without which a
		// server cannot tell a complete upload from a cut one.
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		conn = tc.NetConn()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return d.close()
}
