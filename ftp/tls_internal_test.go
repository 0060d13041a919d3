package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
)

// TestFTPSDataTheftRefused: a third party that races the client to a
// passive port, from the client's own address, gets its TCP connection
// accepted (the address check cannot tell it apart), but not the file: it
// cannot resume the control connection's TLS session, and a server that
// requires TLS refuses any data connection that does not (RFC 4217
// section 10.2; vsftpd's require_ssl_reuse).
func TestFTPSDataTheftRefused(t *testing.T) {
	for _, withTicket := range []bool{false, true} {
		name := map[bool]string{false: "own session", true: "ticket from a session of its own"}[withTicket]
		t.Run(name, func(t *testing.T) { testDataTheft(t, withTicket) })
	}
}

// testDataTheft: with withTicket the thief has logged in over TLS itself
// and holds a valid session ticket from the same server, just not from
// the victim's control connection.
func testDataTheft(t *testing.T, withTicket bool) {
	pki := newInternalPKI(t)
	srv := startTestServer(t, ServerConfig{
		Anonymous: true, TLSRequired: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{pki.cert}},
	})
	writeTree(t, srv.root, map[string]string{"secret.txt": "the secret"})
	ctx := context.Background()
	c, err := Dial(ctx, srv.addr, ClientConfig{
		Network: &OSNetwork{}, TLSMode: TLSRequire, TLS: &tls.Config{RootCAs: pki.pool},
		ReplyTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	r, err := c.expect(ctx, "EPSV", "", 229)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ParseEPSV(r.Text())
	if err != nil {
		t.Fatal(err)
	}

	// The thief connects first, with a TLS session of its own.
	thiefTLS := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
	if withTicket {
		thief, err := Dial(ctx, srv.addr, ClientConfig{
			Network: &OSNetwork{}, TLSMode: TLSRequire, TLS: &tls.Config{RootCAs: pki.pool},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer thief.Close()
		if err := thief.Login(ctx, "", ""); err != nil { // reads past the ticket
			t.Fatal(err)
		}
		thiefTLS = thief.tlsCfg
	}
	stolen := make(chan int, 1)
	go func() {
		conn, err := (&OSNetwork{}).DialContext(trace.WithLabel(ctx, "data"), "tcp", netip.AddrPortFrom(c.peer.Addr(), port).String())
		if err != nil {
			stolen <- 0
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Client(conn, thiefTLS)
		n, _ := io.Copy(io.Discard, tc)
		stolen <- int(n)
	}()
	time.Sleep(100 * time.Millisecond)

	r, err = c.cmd(ctx, "RETR", "secret.txt")
	if err != nil {
		t.Fatal(err)
	}
	if r.Class() == 1 {
		if r, err = c.readReply(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r.Class() == 2 {
		t.Errorf("RETR ended %s: the transfer went to the thief", r)
	}
	if n := <-stolen; n != 0 {
		t.Errorf("the thief received %d bytes", n)
	}
}

type internalPKI struct {
	pool *x509.CertPool
	cert tls.Certificate
}

// newInternalPKI makes a CA and a server certificate for loopback.
func newInternalPKI(t *testing.T) *internalPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	return &internalPKI{pool: ca.Pool, cert: ca.Server(t, "127.0.0.1", "::1")}
}

// TestFTPSReuseRequired: a client whose data connection does not resume
// the control connection's TLS session (Python's ftplib does not) is told
// why, as vsftpd tells it with require_ssl_reuse: 522 SSL connection
// failed: session reuse required, after the 150.
func TestFTPSReuseRequired(t *testing.T) {
	pki := newInternalPKI(t)
	srv := startTestServer(t, ServerConfig{
		Anonymous: true, TLSRequired: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{pki.cert}},
	})
	writeTree(t, srv.root, map[string]string{"f.txt": "the file"})
	ctx := context.Background()
	c, err := Dial(ctx, srv.addr, ClientConfig{
		Network: &OSNetwork{}, TLSMode: TLSRequire, TLS: &tls.Config{RootCAs: pki.pool},
		ReplyTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	r, err := c.expect(ctx, "EPSV", "", 229)
	if err != nil {
		t.Fatal(err)
	}
	port, err := ParseEPSV(r.Text())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&OSNetwork{}).DialContext(trace.WithLabel(ctx, "data"), "tcp", netip.AddrPortFrom(c.peer.Addr(), port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, err = c.expect(ctx, "RETR", "f.txt", 150); err != nil {
		t.Fatal(err)
	}
	// A session of its own: no ticket from the control connection.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, tls.Client(conn, &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}))
	r, err = c.readReply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || r.String() != "522 SSL connection failed: session reuse required" {
		t.Errorf("RETR over a data connection that did not resume: %d bytes, then %q; want none, then 522", n, r.String())
	}
	// The session goes on, and a client that resumes gets the file.
	var got strings.Builder
	if _, err := c.Retrieve(ctx, "f.txt", 0, &got); err != nil || got.String() != "the file" {
		t.Errorf("RETR after the 522: %q, %v", got.String(), err)
	}
}
