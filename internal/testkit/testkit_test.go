package testkit

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLineDiff(t *testing.T) {
	got := LineDiff("a\nb\nc\n", "a\nB\nc\nd\n")
	for _, want := range []string{"line 2:\n- b\n+ B", "line 4:\n- \n+ d"} {
		if !strings.Contains(got, want) {
			t.Errorf("LineDiff does not say %q:\n%s", want, got)
		}
	}
	if LineDiff("same\n", "same\n") != "" {
		t.Error("LineDiff of equal texts is not empty")
	}
}

func TestGoldenMatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.golden")
	if err := os.WriteFile(path, []byte("golden\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Golden(t, path, []byte("golden\n"))
}

func TestNeedPeerFinds(t *testing.T) {
	if p := NeedPeer(t, "sh"); p == "" {
		t.Error("NeedPeer found no sh")
	}
}

// TestCA: a client trusting the CA's pool accepts the server certificate
// it signed, for the address it was signed for.
func TestCA(t *testing.T) {
	ca := NewCA(t)
	cert := ca.Server(t, "192.0.2.2")
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c2, &tls.Config{Certificates: []tls.Certificate{cert}})
	go srv.Handshake()
	cl := tls.Client(c1, &tls.Config{RootCAs: ca.Pool, ServerName: "192.0.2.2"})
	if err := cl.Handshake(); err != nil {
		t.Fatalf("a client trusting the CA refused its server: %v", err)
	}
	caFile, certFile, keyFile := ca.ServerFiles(t, "127.0.0.1")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("the server files do not load: %v", err)
	}
	if b, err := os.ReadFile(caFile); err != nil || string(b) != string(ca.PEM) {
		t.Errorf("the CA file is not the CA's PEM: %v", err)
	}
}
