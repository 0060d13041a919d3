package ftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// testPKI is a certificate authority made for one test, and a server
// certificate it signed for the test addresses.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	caPEM  []byte
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	return &testPKI{
		pool:   ca.Pool,
		server: ca.Server(t, "192.0.2.2", "2001:db8::2", "127.0.0.1", "::1", "192.0.2.1"),
		caPEM:  ca.PEM,
	}
}

// events records a run's protocol events.
type events struct {
	mu  sync.Mutex
	all []trace.Event
}

func (e *events) add(ev trace.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) of(kind trace.Kind, conn trace.Conn) []trace.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []trace.Event
	for _, ev := range e.all {
		if ev.Kind == kind && (conn == "" || ev.Conn == conn) {
			out = append(out, ev)
		}
	}
	return out
}

// serveTLS starts a TLS-capable server on the virtual wire.
func serveTLS(t *testing.T, p *stack.Pair, pki *testPKI, cfg ftp.ServerConfig, listen string) string {
	t.Helper()
	cfg.Root = t.TempDir()
	cfg.Network = p.Server
	cfg.Anonymous = true
	cfg.Write = true
	cfg.DataTimeout = 10 * time.Second
	if pki != nil {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}}
	}
	srv, err := ftp.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Server.Listen(trace.WithLabel(context.Background(), "control"), "tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	os.WriteFile(filepath.Join(cfg.Root, "secret.bin"), randomData(3<<20, 5), 0o644)
	return l.Addr().String()
}

// TestFTPS runs client and server over the virtual wire with TLS on the
// control connection and, with PROT P, on every data connection, each
// resuming the control connection's session; explicit (AUTH TLS) and
// implicit, passive and active.
func TestFTPS(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name      string
		implicit  bool
		active    bool
		clearData bool
	}{
		{"explicit/passive", false, false, false},
		{"explicit/active", false, true, false},
		{"implicit/passive", true, false, false},
		{"explicit/passive/control-only", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			p := stacktest.Pair(t, stack.PairConfig{})
			var srvEv, cliEv events
			addr := serveTLS(t, p, pki, ftp.ServerConfig{TLSRequired: !tc.clearData, TLSImplicit: tc.implicit, Observer: srvEv.add}, "192.0.2.2:990")
			mode := ftp.TLSRequire
			if tc.implicit {
				mode = ftp.TLSImplicit
			}
			ctx := context.Background()
			c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{
				Network: p.Client, Active: tc.active, TLSMode: mode, ClearData: tc.clearData,
				TLS: &tls.Config{RootCAs: pki.pool}, Observer: cliEv.add,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Login(ctx, "", ""); err != nil {
				t.Fatal(err)
			}
			if err := c.Type(ctx, "I"); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := c.Retrieve(ctx, "secret.bin", 0, &got); err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got.Bytes()) != sha256.Sum256(randomData(3<<20, 5)) {
				t.Fatal("download differs")
			}
			up := randomData(1<<20, 6)
			if _, err := c.Store(ctx, "up.bin", bytes.NewReader(up)); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(ctx); err != nil {
				t.Fatal(err)
			}

			control := cliEv.of(trace.KindTLS, "control")
			data := cliEv.of(trace.KindTLS, "data")
			if len(control) != 1 {
				t.Errorf("client saw %d control handshakes, want 1", len(control))
			}
			if tc.clearData {
				if len(data) != 0 {
					t.Errorf("PROT C, but %d data handshakes", len(data))
				}
				return
			}
			if len(data) != 2 {
				t.Fatalf("client saw %d data handshakes, want 2 (RETR, STOR)", len(data))
			}
			for _, ev := range data {
				if !strings.Contains(ev.Text, "session resumed") {
					t.Errorf("data connection did not resume the control session: %s", ev.Text)
				}
			}
			for _, ev := range srvEv.of(trace.KindTLS, "data") {
				if ev.Err != "" || !strings.Contains(ev.Text, "resumed") {
					t.Errorf("server's data handshake: %s %s", ev.Text, ev.Err)
				}
			}
		})
	}
}

// TestFTPSUnknownAuthority: a certificate the client cannot verify stops
// the session before USER is sent.
func TestFTPSUnknownAuthority(t *testing.T) {
	stacktest.CheckGoroutines(t)
	pki := newTestPKI(t)
	p := stacktest.Pair(t, stack.PairConfig{})
	addr := serveTLS(t, p, pki, ftp.ServerConfig{TLSRequired: true}, "192.0.2.2:21")
	var ev events
	_, err := ftp.Dial(context.Background(), addr, ftp.ClientConfig{
		Network: p.Client, TLSMode: ftp.TLSRequire, TLS: &tls.Config{}, Observer: ev.add,
	})
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("dial with an untrusted certificate: %v", err)
	}
	for _, e := range ev.of(trace.KindCommand, "") {
		if strings.HasPrefix(e.Text, "USER") || strings.HasPrefix(e.Text, "PASS") {
			t.Errorf("%s was sent", e.Text)
		}
	}
}

// TestFTPSRequiredAgainstPlainServer: --ssl-reqd against a server without
// TLS fails, and no USER or PASS crosses the wire (checked in a capture
// of every frame).
func TestFTPSRequiredAgainstPlainServer(t *testing.T) {
	stacktest.CheckGoroutines(t)
	var pcap bytes.Buffer
	p := stacktest.Pair(t, stack.PairConfig{Client: stack.HostConfig{Capture: &stack.CaptureConfig{PCAP: &pcap}}})
	addr := serveTLS(t, p, nil, ftp.ServerConfig{}, "192.0.2.2:21")
	c, err := ftp.Dial(context.Background(), addr, ftp.ClientConfig{
		Network: p.Client, TLSMode: ftp.TLSRequire, TLS: &tls.Config{},
	})
	if err == nil {
		c.Login(context.Background(), "alice", "hunter2")
		t.Fatal("TLS required, but the session went on without it")
	}
	if !errors.Is(err, ftp.ErrTLSRequired) {
		t.Errorf("error %v, want ErrTLSRequired", err)
	}
	p.Client.Close()
	if !bytes.Contains(pcap.Bytes(), []byte("AUTH TLS")) {
		t.Fatal("capture does not hold the AUTH TLS: it is not capturing the control connection")
	}
	for _, s := range []string{"USER", "PASS"} {
		if bytes.Contains(pcap.Bytes(), []byte(s)) {
			t.Errorf("%s crossed the wire", s)
		}
	}
}
