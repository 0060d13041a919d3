package ftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
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

	mu      sync.Mutex // guards stopped, against interrupt from ctx's AfterFunc
	stopped bool

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
			c.event(Event{Kind: EventNote, Conn: "data", Text: fmt.Sprintf(
				"227 reply names %s; connecting to the control peer %s instead", ap.Addr(), c.peer.Addr())})
		}
		port = ap.Port()
	}
	target := netip.AddrPortFrom(c.peer.Addr(), port)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Network.Dial(dctx, "data", target.String())
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
	ln, err := c.cfg.Network.Listen(ctx, "data", laddr.String(), 1)
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
// port must not get its bytes into the file.
func (d *clientData) accept(ctx context.Context) error {
	if d.conn != nil {
		return nil
	}
	deadline := time.Now().Add(d.c.cfg.AcceptTimeout)
	if dl, ok := d.ln.(interface{ SetDeadline(time.Time) error }); ok {
		dl.SetDeadline(deadline)
	}
	for {
		conn, err := d.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if isTimeout(err) {
				return fmt.Errorf("the server did not open the data connection within %v: %w", d.c.cfg.AcceptTimeout, err)
			}
			return fmt.Errorf("accepting the data connection: %w", err)
		}
		from := addrPortOf(conn.RemoteAddr())
		if from.Addr() != d.c.peer.Addr() {
			conn.Close()
			d.c.event(Event{Kind: EventNote, Conn: "data", Remote: from.String(), Text: fmt.Sprintf(
				"refused a data connection from %s: only the control peer %s may connect", from, d.c.peer.Addr()),
				Err: ErrDataPeer.Error()})
			continue
		}
		d.mu.Lock()
		d.conn = conn
		d.ln.Close()
		d.ln = nil
		stopped := d.stopped
		d.mu.Unlock()
		if stopped {
			// ctx ended while we accepted: keep the interruption.
			conn.SetDeadline(time.Unix(1, 0))
		}
		d.opened()
		return nil
	}
}

func (d *clientData) opened() {
	d.local = addrPortOf(d.conn.LocalAddr()).String()
	d.remote = addrPortOf(d.conn.RemoteAddr()).String()
	d.c.event(Event{Kind: EventDataOpen, Conn: "data", Mode: d.mode, Local: d.local, Remote: d.remote})
}

// Read reads from the data connection, with the inactivity timeout.
func (d *clientData) Read(b []byte) (int, error) {
	d.conn.SetReadDeadline(time.Now().Add(d.c.cfg.DataTimeout))
	n, err := d.conn.Read(b)
	d.bytes += int64(n)
	return n, err
}

// Write writes to the data connection, with the inactivity timeout.
func (d *clientData) Write(b []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(d.c.cfg.DataTimeout))
	n, err := d.conn.Write(b)
	d.bytes += int64(n)
	return n, err
}

// interrupt wakes any call blocked on the data connection (ctx done).
func (d *clientData) interrupt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	past := time.Unix(1, 0)
	if d.conn != nil {
		d.conn.SetDeadline(past)
	}
	if l, ok := d.ln.(interface{ SetDeadline(time.Time) error }); ok && d.ln != nil {
		l.SetDeadline(past)
	}
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
	d.c.event(Event{Kind: EventDataClose, Conn: "data", Mode: d.mode, Bytes: d.bytes,
		Local: d.local, Remote: d.remote})
	return err
}

// closeWrite half-closes an upload so the server sees the end of the file
// while we wait for its reply.
func (d *clientData) closeWrite() error {
	if cw, ok := d.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return d.close()
}
