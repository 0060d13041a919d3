package ftp

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
)

// TLSMode says whether and how the client secures the session with TLS
// (FTPS, RFC 4217).
type TLSMode int

// The TLS modes.
const (
	// TLSOff sends everything in clear, as the 2005 article does.
	TLSOff TLSMode = iota
	// TLSTry sends AUTH TLS and continues in clear if the server refuses
	// (curl's --ssl).
	TLSTry
	// TLSRequire sends AUTH TLS and ends the session, before USER and PASS
	// are ever sent, if the server refuses (curl's --ssl-reqd).
	TLSRequire
	// TLSImplicit starts TLS as soon as the TCP connection is open, before
	// the greeting: ftps:// URLs, port 990.
	TLSImplicit
)

// ErrTLSRequired: the session needed TLS and the peer would not use it.
var ErrTLSRequired = errors.New("ftp: TLS required")

// tlsSummary describes a completed handshake for the trace.
func tlsSummary(cs tls.ConnectionState) string {
	s := fmt.Sprintf("%s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	if cs.DidResume {
		s += ", session resumed"
	} else {
		s += ", full handshake"
	}
	return s
}

// sessionBinding ties a server's data connections to the TLS session of
// their control connection (RFC 4217 section 10.2, "data connection
// security"; vsftpd's require_ssl_reuse). Every session ticket the
// control connection is given carries a random token of this session; a
// data connection must resume from such a ticket, so a third party that
// races the client to a passive port cannot complete a handshake that
// passes, even with a ticket of a session of its own.
type sessionBinding struct {
	token []byte
}

func newSessionBinding() *sessionBinding {
	b := &sessionBinding{token: make([]byte, 16)}
	rand.Read(b.token) // crypto/rand.Read does not fail (it panics first)
	return b
}

// controlConfig is base with tickets stamped with the session's token.
func (b *sessionBinding) controlConfig(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, b.token)
		return c.EncryptTicket(cs, ss)
	}
	return c
}

// dataConfig is base accepting only tickets that carry the session's
// token: any other ticket makes the handshake a full one, which
// resumed() then refuses.
func (b *sessionBinding) dataConfig(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, b.token)
		return c.EncryptTicket(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := c.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		for _, e := range ss.Extra {
			if bytes.Equal(e, b.token) {
				return ss, nil
			}
		}
		return nil, nil // not this session's: no resumption
	}
	return c
}
