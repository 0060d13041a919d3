package ftp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/nsftp/nsftp/trace"
)

// FTPS on the server (RFC 4217): AUTH TLS upgrades the control connection,
// PBSZ and PROT set the protection of data connections, and data
// connections under PROT P are TLS servers bound to the control
// connection's session (see sessionBinding).

// upgradeDecision is what the dispatcher tells the reader goroutine after
// an AUTH line: whether to run the handshake, and where to report it.
type upgradeDecision struct {
	do     bool
	result chan<- upgradeResult
}

type upgradeResult struct {
	conn *tls.Conn
	err  error
}

func handleAUTH(s *session, arg string) {
	switch {
	case s.srv.tls == nil:
		s.reply(502, "AUTH not supported: no TLS certificate configured.")
		return
	case s.secure:
		s.reply(503, "Already using TLS.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "TLS", "TLS-C", "SSL":
	default:
		s.reply(504, "Only AUTH TLS is supported.")
		return
	}
	s.reply(234, "Proceed with negotiation.")
	result := make(chan upgradeResult, 1)
	s.authAnswered = true
	select {
	case s.upgrade <- upgradeDecision{do: true, result: result}:
	case <-s.ctx.Done():
		return
	}
	var r upgradeResult
	select {
	case r = <-result:
	case <-s.ctx.Done():
		return
	}
	if r.err != nil {
		s.srv.emit(s.controlEvent(trace.KindNote, "TLS handshake failed: "+r.err.Error()))
		s.quit = true // nothing more can be said in clear or in TLS
		return
	}
	s.ctrl = r.conn
	s.secure = true
	s.srv.emit(s.controlEvent(trace.KindTLS, tlsSummary(r.conn.ConnectionState())))
}

// answerAUTH tells a reader waiting after an AUTH line that there is no
// upgrade, unless handleAUTH already answered.
func (s *session) answerAUTH() {
	if s.authAnswered {
		return
	}
	select {
	case s.upgrade <- upgradeDecision{}:
	case <-s.ctx.Done():
	}
}

// awaitUpgrade is the reader's side of AUTH: it waits for the decision and
// runs the handshake on the raw connection, starting with whatever bytes
// of it the reader has already buffered. It returns the reader to use from
// now on, or nil when the session must end.
func (s *session) awaitUpgrade(raw net.Conn, r *bufio.Reader) *bufio.Reader {
	var d upgradeDecision
	select {
	case d = <-s.upgrade:
	case <-s.ctx.Done():
		return nil
	}
	if !d.do {
		return r
	}
	pre, _ := r.Peek(r.Buffered())
	tc := tls.Server(&prefixConn{Conn: raw, pre: append([]byte(nil), pre...)}, s.binding.controlConfig(s.srv.tls))
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DataTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	d.result <- upgradeResult{conn: tc, err: err}
	if err != nil {
		return nil
	}
	return bufio.NewReaderSize(&urgentABOR{r: tc}, controlReadBuffer)
}

// prefixConn replays bytes already read from a connection before reading
// more from it.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// startImplicitTLS runs the handshake a control connection starts with in
// implicit FTPS, and reports whether the session can go on.
func (s *session) startImplicitTLS() bool {
	tc := tls.Server(s.ctrl, s.binding.controlConfig(s.srv.tls))
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LoginTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.srv.emit(s.controlEvent(trace.KindNote, "TLS handshake failed: "+err.Error()))
		return false
	}
	s.ctrl = tc
	s.secure = true
	s.srv.emit(s.controlEvent(trace.KindTLS, tlsSummary(tc.ConnectionState())))
	return true
}

func handlePBSZ(s *session, arg string) {
	if !s.secure {
		s.reply(503, "PBSZ needs AUTH TLS first.")
		return
	}
	// RFC 4217 section 8: a streaming protocol's buffer size is 0.
	s.reply(200, "PBSZ=0")
}

func handlePROT(s *session, arg string) {
	if !s.secure {
		s.reply(503, "PROT needs AUTH TLS first.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "P":
		s.protP = true
		s.reply(200, "Protection level set to Private.")
	case "C":
		if s.cfg.TLSRequired {
			s.reply(534, "Data connections must be protected.")
			return
		}
		s.protP = false
		s.reply(200, "Protection level set to Clear.")
	case "S", "E":
		s.reply(536, "Only C and P are supported.")
	default:
		s.reply(504, "Unknown protection level.")
	}
}

// tlsRefusal is the reply a command gets when TLSRequired forbids it now,
// or 0 when it may run.
func (s *session) tlsRefusal(verb string) (int, string) {
	if !s.cfg.TLSRequired {
		return 0, ""
	}
	switch verb {
	case "USER", "PASS":
		if !s.secure {
			return 530, "TLS required: send AUTH TLS first."
		}
	case "RETR", "STOR", "APPE", "LIST", "NLST", "MLSD":
		if !s.protP {
			return 521, "Data connections must be protected: send PBSZ 0 and PROT P first."
		}
	}
	return 0, ""
}

// errNotResumed refuses a data connection whose TLS session is not its
// control connection's.
var errNotResumed = errors.New("the data connection did not resume the control connection's TLS session")

// errDataTLS is a data connection whose TLS handshake failed.
var errDataTLS = errors.New("TLS handshake on the data connection")

// secureData runs the TLS handshake on a data connection under PROT P. The
// server is the TLS server whichever side opened the TCP connection. When
// TLS is required the session must be resumed from a ticket this control
// connection was given (RFC 4217 section 10.2).
func (s *session) secureData(ctx context.Context, c net.Conn, mode string) (net.Conn, error) {
	if !s.protP {
		return c, nil
	}
	tc := tls.Server(c, s.binding.dataConfig(s.srv.tls))
	hctx, cancel := context.WithTimeout(ctx, s.cfg.DataTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("ftp: %w: %w", errDataTLS, err)
	}
	cs := tc.ConnectionState()
	e := s.dataEvent(trace.KindTLS, mode, addrText(c.LocalAddr()), addrText(c.RemoteAddr()))
	e.Text = tlsSummary(cs)
	if !cs.DidResume && s.cfg.TLSRequired {
		e.Err = errNotResumed.Error()
		s.srv.emit(e)
		return nil, fmt.Errorf("ftp: %w", errNotResumed)
	}
	s.srv.emit(e)
	return tc, nil
}
