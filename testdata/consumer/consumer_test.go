// Package consumer is a module of its own that uses nsftp as a library
// does, through its exported API only: it proves that another module can
// import it and test its own code over nsftp's virtual network.
package consumer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// TestUDPEcho: a datagram echo over ListenPacket and DialContext("udp").
func TestUDPEcho(t *testing.T) {
	stacktest.CheckGoroutines(t)
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()
	pc, err := p.Server.ListenPacket(ctx, "udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	defer func() { pc.Close(); <-done }()

	c, err := p.Client.DialContext(ctx, "udp", net.JoinHostPort(stack.ServerIPv4, "7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("echo me")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "echo me" {
		t.Fatalf("echo: %q, %v", buf[:n], err)
	}
}

// TestReadDeadline: a read deadline that passes with nothing to read
// gives os.ErrDeadlineExceeded, a net.Error whose Timeout is true.
func TestReadDeadline(t *testing.T) {
	stacktest.CheckGoroutines(t)
	p := stacktest.Pair(t, stack.PairConfig{})
	ctx := context.Background()
	l, err := p.Server.Listen(ctx, "tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := p.Client.DialContext(ctx, "tcp", net.JoinHostPort(stack.ServerIPv4, "7"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := <-accepted; s != nil {
		defer s.Close() // silent: it never writes
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// bigFile is what bigFileHandler serves: 4 MiB of random bytes.
var bigFile = func() []byte {
	b := make([]byte, 4<<20)
	rand.Read(b)
	return b
}()

var bigFileHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(bigFile) })

func checkBigFile(t *testing.T, r io.Reader) {
	t.Helper()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, bigFile) {
		t.Fatalf("got %d bytes (%v), want the %d served, identical", len(got), err, len(bigFile))
	}
}

// TestDownloadOverABadNetwork is the README's example, word for word
// (TestREADME checks): net/http's server on one host and its client on
// the other, with the host's DialContext as the transport's, 4 MiB
// through a 20 Mbit/s bottleneck with a 32-frame queue that also loses
// 2% of frames and delays each 5 ms, the body byte for byte.
func TestDownloadOverABadNetwork(t *testing.T) {
	p := stacktest.Pair(t, stack.PairConfig{Wire: stack.WireConfig{
		Path: stack.Path{Loss: 2, Delay: 5 * time.Millisecond, Rate: 20e6, Queue: 32},
	}})
	l, err := p.Server.Listen(context.Background(), "tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(l, bigFileHandler)

	client := &http.Client{Transport: &http.Transport{DialContext: p.Client.DialContext}}
	resp, err := client.Get("http://" + stack.ServerIPv4 + "/big-file")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	checkBigFile(t, resp.Body)
}

// TestREADME: the README's example is the test above, so it compiles and
// passes as the README shows it.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("consumer_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```go\nfunc TestDownloadOverABadNetwork")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(string(src), "func TestDownloadOverABadNetwork"+block) {
		t.Errorf("the README's example is not TestDownloadOverABadNetwork as it stands in consumer_test.go")
	}
}
