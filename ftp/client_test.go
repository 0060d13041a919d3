package ftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
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

// netCase is one network the client and server can run on: nsftp's
// virtual wire, or the kernel's loopback.
type netCase struct {
	name           string
	client, server ftp.Network
	listen         string // server control address
}

func netCases(t *testing.T, v6 bool) []netCase {
	t.Helper()
	p := stacktest.Pair(t, stack.PairConfig{})
	wire := netCase{name: "wire", client: p.Client, server: p.Server, listen: "192.0.2.2:21"}
	loop := netCase{name: "loopback", client: &ftp.OSNetwork{}, server: &ftp.OSNetwork{}, listen: "127.0.0.1:0"}
	if v6 {
		wire.listen = "[2001:db8::2]:21"
		loop.listen = "[::1]:0"
	}
	return []netCase{wire, loop}
}

// serve starts an anonymous, writable server on n over root and returns
// its control address.
func serve(t *testing.T, n netCase, root string, obs trace.Observer) string {
	t.Helper()
	srv, err := ftp.NewServer(ftp.ServerConfig{
		Root: root, Write: true, Anonymous: true, Network: n.server,
		DataTimeout: 10 * time.Second, Observer: obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := n.server.Listen(trace.WithLabel(ctx, "control"), "tcp", n.listen)
	if err != nil {
		if strings.Contains(n.listen, "::1") {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func login(t *testing.T, n ftp.Network, addr string, cfg ftp.ClientConfig) *ftp.Client {
	t.Helper()
	cfg.Network = n
	ctx := context.Background()
	c, err := ftp.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Type(ctx, "I"); err != nil {
		t.Fatal(err)
	}
	return c
}

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// TestClientServerMatrix downloads and uploads files of 0 bytes, 1 byte
// and 10 MiB, active and passive, IPv4 and IPv6, over the virtual wire and
// over kernel loopback, and compares SHA-256 sums.
func TestClientServerMatrix(t *testing.T) {
	sizes := []int{0, 1, 10 << 20}
	for _, v6 := range []bool{false, true} {
		family := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
		for _, n := range netCases(t, v6) {
			for _, active := range []bool{false, true} {
				mode := map[bool]string{false: "passive", true: "active"}[active]
				t.Run(fmt.Sprintf("%s/%s/%s", n.name, family, mode), func(t *testing.T) {
					stacktest.CheckGoroutines(t)
					root := t.TempDir()
					for i, size := range sizes {
						os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", size)), randomData(size, uint64(i)), 0o644)
					}
					addr := serve(t, n, root, nil)
					c := login(t, n.client, addr, ftp.ClientConfig{Active: active})
					ctx := context.Background()
					for i, size := range sizes {
						want := randomData(size, uint64(i))
						var got bytes.Buffer
						m, err := c.Retrieve(ctx, fmt.Sprintf("f%d", size), 0, &got)
						if err != nil {
							t.Fatalf("RETR %d bytes: %v", size, err)
						}
						if m != int64(size) || sha256.Sum256(got.Bytes()) != sha256.Sum256(want) {
							t.Fatalf("RETR %d bytes: got %d bytes, sha256 differs", size, got.Len())
						}
						up := randomData(size, uint64(100+i))
						if _, err := c.Store(ctx, fmt.Sprintf("up%d", size), bytes.NewReader(up)); err != nil {
							t.Fatalf("STOR %d bytes: %v", size, err)
						}
						onDisk, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("up%d", size)))
						if err != nil || sha256.Sum256(onDisk) != sha256.Sum256(up) {
							t.Fatalf("STOR %d bytes: stored file differs (%v)", size, err)
						}
					}
					if err := c.Quit(ctx); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestActiveTranscript is the article's flow - USER, PASS, TYPE I, PORT,
// RETR, QUIT - as the client actually sends it, against a golden file.
// The client also asks SIZE before RETR, to check the byte count.
func TestActiveTranscript(t *testing.T) {
	stacktest.CheckGoroutines(t)
	n := netCases(t, false)[0]
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "foo_file"), []byte("hello from the server\n"), 0o644)
	addr := serve(t, n, root, nil)

	var mu sync.Mutex
	var lines []string
	obs := func(e trace.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case trace.KindCommand:
			lines = append(lines, "> "+e.Text)
		case trace.KindReply:
			lines = append(lines, fmt.Sprintf("< %d", e.Code))
		case trace.KindDataOpen, trace.KindDataClose:
			lines = append(lines, fmt.Sprintf("= %s %s bytes=%d", e.Kind, e.Mode, e.Bytes))
		}
	}
	c := ftp.ClientConfig{Network: n.client, Active: true, Observer: obs}
	ctx := context.Background()
	cl, err := ftp.Dial(ctx, addr, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := cl.Type(ctx, "I"); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := cl.Retrieve(ctx, "foo_file", 0, &got); err != nil {
		t.Fatal(err)
	}
	if err := cl.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	transcript := strings.Join(lines, "\n") + "\n"
	// The port the stack chose varies; its address does not.
	transcript = regexp.MustCompile(`PORT 192,0,2,1,\d+,\d+`).ReplaceAllString(transcript, "PORT 192,0,2,1,P1,P2")
	testkit.Golden(t, "testdata/active-download.golden", []byte(transcript))
}

// TestFailedDownloadKeepsDestination: a download that breaks leaves the
// old file exactly as it was and no temporary file beside it.
func TestFailedDownloadKeepsDestination(t *testing.T) {
	stacktest.CheckGoroutines(t)
	n := netCases(t, false)[0]
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "big"), randomData(4<<20, 9), 0o644)
	addr := serve(t, n, root, nil)
	c := login(t, n.client, addr, ftp.ClientConfig{})

	dir := t.TempDir()
	destPath := filepath.Join(dir, "big")
	os.WriteFile(destPath, []byte("precious old contents\n"), 0o600)
	dest, err := ftp.CreateDest(destPath, "big", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{w: dest, n: 1 << 20, cancel: cancel}
	_, err = c.Retrieve(ctx, "big", 0, w)
	if err == nil {
		t.Fatal("download cancelled half-way reported success")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not say it was cancelled", err)
	}
	dest.Abort()
	got, _ := os.ReadFile(destPath)
	if string(got) != "precious old contents\n" {
		t.Errorf("destination changed to %d bytes", len(got))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the old file", len(entries))
	}
}

// cancelAfter cancels a context once n bytes have been written through it.
type cancelAfter struct {
	w      io.Writer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(b []byte) (int, error) {
	c.n -= len(b)
	if c.n <= 0 {
		c.cancel()
	}
	return c.w.Write(b)
}

// TestDestCommit: a completed download replaces the destination and keeps
// its permissions.
func TestDestCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o640)
	d, err := ftp.CreateDest(p, "f", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(d, "new contents")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(got) != "new contents" || fi.Mode().Perm() != 0o640 {
		t.Errorf("after commit: %q mode %v", got, fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries left", len(entries))
	}
}

// TestDestRefusesDevices: /dev/zero stands for any device but the null
// device, which takes a download without Force.
func TestDestRefusesDevices(t *testing.T) {
	_, err := ftp.CreateDest("/dev/zero", "x", ftp.DestOptions{})
	if !errors.Is(err, ftp.ErrLocalFile) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("CreateDest(/dev/zero) = %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink("/dev/zero", link)
	if _, err := ftp.CreateDest(link, "x", ftp.DestOptions{}); !errors.Is(err, ftp.ErrLocalFile) {
		t.Errorf("CreateDest(symlink to /dev/zero) = %v", err)
	}
	d, err := ftp.CreateDest("/dev/zero", "x", ftp.DestOptions{Force: true})
	if err != nil {
		t.Fatalf("forced: %v", err)
	}
	d.Abort()
}
