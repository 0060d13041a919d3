package ftp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/nsftp/nsftp/trace"
)

// prepareTLS builds the session's TLS configuration from the caller's:
// verified against the host dialled unless told otherwise, with a session
// cache that the data connections resume from. The cache is keyed by
// ServerName, so it must be set: without it every data connection would
// be keyed by its own address and never resume.
func (c *Client) prepareTLS(address string) error {
	if c.cfg.TLS == nil {
		return errors.New("ftp: ClientConfig.TLS is nil but a TLS mode is set")
	}
	cfg := c.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("ftp: %q: %w", address, err)
		}
		cfg.ServerName = host
	}
	if cfg.ClientSessionCache == nil {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	c.tlsCfg = cfg
	return nil
}

// authTLS asks the server to secure the control connection (RFC 4217
// section 4). If it will not, TLSRequire ends the session here, before
// USER and PASS are ever sent; TLSTry goes on in clear.
func (c *Client) authTLS(ctx context.Context) error {
	r, err := c.cmd(ctx, "AUTH", "TLS")
	if err != nil {
		return err
	}
	if r.Code == 234 {
		return c.startTLS(ctx)
	}
	if c.cfg.TLSMode == TLSRequire {
		return fmt.Errorf("%w: the server refused AUTH TLS (%s); nothing more was sent", ErrTLSRequired, sanitize(r.String()))
	}
	c.event(event{Kind: trace.KindNote, Conn: trace.Control, Text: "the server refused AUTH TLS: continuing in clear"})
	return nil
}

// startTLS runs the TLS handshake on the control connection and reads
// everything after it through TLS.
func (c *Client) startTLS(ctx context.Context) error {
	if c.r.Buffered() > 0 {
		// Anything the server sent after 234 came in clear where only a
		// handshake may follow: an injection attempt or a broken server.
		return &ProtocolError{Msg: "data in clear after the reply to AUTH TLS"}
	}
	tc := tls.Client(c.conn, c.tlsCfg)
	hctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", c.peer, err)
	}
	c.conn = tc
	c.r = bufio.NewReaderSize(tc, 16<<10)
	c.secure = true
	c.event(event{Kind: trace.KindTLS, Conn: trace.Control, Text: tlsSummary(tc.ConnectionState())})
	return nil
}

// protect sets data connection protection after login (RFC 4217 sections
// 8 and 9): PBSZ 0, then PROT P - or PROT C when only the control
// connection is to be protected. A server that refuses PROT P leaves the
// data in clear, which TLSRequire does not accept.
func (c *Client) protect(ctx context.Context) error {
	if !c.secure {
		return nil
	}
	if _, err := c.expect(ctx, "PBSZ", "0", 200); err != nil {
		return err
	}
	if c.cfg.ClearData {
		_, err := c.expect(ctx, "PROT", "C", 200)
		return err
	}
	r, err := c.cmd(ctx, "PROT", "P")
	if err != nil {
		return err
	}
	switch {
	case r.Code == 200:
		c.protP = true
	case c.cfg.TLSMode == TLSRequire || c.cfg.TLSMode == TLSImplicit:
		return fmt.Errorf("%w: the server refused to protect data connections (%s)", ErrTLSRequired, sanitize(r.String()))
	default:
		c.event(event{Kind: trace.KindNote, Conn: trace.Control, Text: "the server refused PROT P: data connections stay in clear"})
	}
	return nil
}

// secure runs the TLS handshake on a data connection once the server has
// started the transfer (it only listens for the handshake then), resuming
// the control connection's session. The client is the TLS client whatever
// the direction of the TCP connection (RFC 4217 section 7).
func (d *clientData) secure(ctx context.Context) error {
	if !d.c.protP {
		return nil
	}
	d.mu.Lock()
	raw := d.conn
	d.mu.Unlock()
	tc := tls.Client(raw, d.c.tlsCfg)
	hctx, cancel := context.WithTimeout(ctx, d.c.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("TLS handshake on the data connection: %w", err)
	}
	d.mu.Lock()
	d.conn = tc
	d.mu.Unlock()
	d.c.event(event{Kind: trace.KindTLS, Conn: trace.Data, Mode: d.mode, Local: d.local, Remote: d.remote,
		Text: tlsSummary(tc.ConnectionState())})
	return nil
}
