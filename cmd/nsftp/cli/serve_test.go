package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestServeLimitFlagErrors: each limit flag names itself when it is wrong.
func TestServeLimitFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--max-sessions", "0"}, "--max-sessions must be at least 1"},
		{[]string{"--max-per-addr", "-1"}, "--max-per-addr and --max-unauthenticated"},
		{[]string{"--max-unauthenticated", "-3"}, "--max-per-addr and --max-unauthenticated"},
		{[]string{"--min-rate", "0"}, "--min-rate must be at least 1"},
		{[]string{"--login-timeout", "0s"}, "--login-timeout"},
		{[]string{"--file-timeout", "-1s"}, "--file-timeout"},
		{[]string{"--data-timeout", "0s"}, "--data-timeout"},
		{[]string{"--max-per-addr", "many"}, "invalid value"},
	} {
		_, errOut, code := run(t, append([]string{"serve", dir, "--net", "os"}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(errOut, tc.msg) {
			t.Errorf("serve %s: exit %d, %q; want exit %d naming %q", strings.Join(tc.args, " "), code, errOut, ExitUsage, tc.msg)
		}
	}
}

// TestServeLimits runs `nsftp serve` with --max-per-addr 2: a third
// connection from one address gets one 421 line and is closed, while
// another address is served, and a FIFO in the served tree is refused at
// once.
func TestServeLimits(t *testing.T) {
	stacktest.CheckGoroutines(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("content"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := startServe(t, dir, "--max-per-addr", "2", "--login-timeout", "10s")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	from := func(ip string) *ftp.OSNetwork {
		return &ftp.OSNetwork{Dialer: net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}}
	}
	greeting := func(c net.Conn) (string, []byte) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		if strings.HasPrefix(line, "421") {
			rest, _ := io.ReadAll(r)
			return line, rest
		}
		return line, nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 3 {
		c, err := from("127.0.0.2").DialContext(trace.WithLabel(context.Background(), "control"), "tcp", addr)
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2 here: %v", err)
		}
		held = append(held, c)
		line, rest := greeting(c)
		want := "220 nsftp ready\r\n"
		if i == 2 {
			want = "421 Too many connections from your address\r\n"
		}
		if line != want || len(rest) > 0 {
			t.Errorf("connection %d from 127.0.0.2: %q then %q, want %q and the end", i+1, line, rest, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: from("127.0.0.3")})
	if err != nil {
		t.Fatalf("127.0.0.3 was not served: %v", err)
	}
	defer c.Close()
	if err := c.Login(ctx, "anonymous", "me@example.org"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Retrieve(ctx, "fifo", 0, io.Discard)
	var re *ftp.ReplyError
	if !errors.As(err, &re) || re.Reply.Code != 550 || !strings.Contains(re.Reply.Text(), "named pipe") {
		t.Errorf("RETR fifo: %v, want 550 naming a named pipe", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("RETR fifo answered after %v", d)
	}
	var got bytes.Buffer
	if _, err := c.Retrieve(ctx, "f", 0, &got); err != nil || got.String() != "content" {
		t.Errorf("RETR f after the refusal: %q, %v", got.String(), err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Error(err)
	}
}
