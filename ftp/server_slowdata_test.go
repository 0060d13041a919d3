package ftp

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Slow clients on the data connection: one that never reads a download,
// one that reads it a trickle at a time, one that sends an upload a byte
// at a time. None may hold its session past DataTimeout (the first) or a
// few windows of it (the trickles, which reset any stall timer with every
// byte); each transfer ends with 426 and the session goes on.

// slowBound is how long the server may take to cut off a slow client,
// counted from the data connection's opening: DataTimeout is half a
// second in these tests, and the rest is slack for a loaded machine.
const slowBound = 10 * time.Second

func slowDataServer(t *testing.T) *testServer {
	t.Helper()
	ts := startTestServer(t, ServerConfig{Write: true, DataTimeout: 500 * time.Millisecond, MinDataRate: 64 << 10})
	// A sparse file: 1 GiB to send, no disk used.
	f, err := os.Create(filepath.Join(ts.root, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	f.Close()
	return ts
}

// TestServerDataNeverRead: a client that opens the data connection for a
// download and never reads is cut off once the socket buffers are full and
// DataTimeout has passed.
func TestServerDataNeverRead(t *testing.T) {
	ts := slowDataServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	d := c.prepareData("EPSV")
	c.want("RETR huge", 150)
	d.open(t) // and never read
	start := time.Now()
	c.wantReply(426)
	if el := time.Since(start); el > slowBound {
		t.Errorf("cut off after %v", el)
	}
	d.conn.Close()
	c.want("NOOP", 200)
}

// TestServerDataTrickleRead: a client that reads a download a little at a
// time, never stalling for DataTimeout but far below MinDataRate, is cut
// off.
func TestServerDataTrickleRead(t *testing.T) {
	ts := slowDataServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	d := c.prepareData("PASV")
	c.want("RETR huge", 150)
	conn := d.open(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	c.wantReply(426)
	close(stop)
	<-done
	if el := time.Since(start); el > slowBound {
		t.Errorf("cut off after %v", el)
	}
	conn.Close()
	c.want("NOOP", 200)
}

// TestServerDataTrickleWrite: a client that sends an upload a byte at a
// time, each well within DataTimeout of the last, is cut off, and the
// partial upload is not kept.
func TestServerDataTrickleWrite(t *testing.T) {
	ts := slowDataServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	d := c.prepareData("EPSV")
	c.want("STOR trickle", 150)
	conn := d.open(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	c.wantReply(426)
	close(stop)
	<-done
	if el := time.Since(start); el > slowBound {
		t.Errorf("cut off after %v", el)
	}
	conn.Close()
	c.want("NOOP", 200)
	if _, err := os.Stat(filepath.Join(ts.root, "trickle")); err == nil {
		t.Errorf("the cut-off upload was kept")
	}
	waitFor(t, func() bool { return len(tempFiles(ts.root)) == 0 })
}

// TestServerDataSlowButFair: an upload far above MinDataRate but in
// bursts, with pauses well under DataTimeout, completes.
func TestServerDataSlowButFair(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true, DataTimeout: 500 * time.Millisecond, MinDataRate: 1024})
	c := dialRaw(t, ts.addr)
	c.login()
	d := c.prepareData("EPSV")
	c.want("STOR fair", 150)
	conn := d.open(t)
	// 4 KiB every 50 ms: eighty times the rate asked for.
	chunk := randomBytes(t, 4<<10)
	var sent []byte
	for range 20 {
		if _, err := conn.Write(chunk); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, chunk...)
		time.Sleep(50 * time.Millisecond)
	}
	conn.Close()
	c.wantReply(226)
	got, err := os.ReadFile(filepath.Join(ts.root, "fair"))
	if err != nil || string(got) != string(sent) {
		t.Errorf("stored %d bytes, %v; want the %d sent", len(got), err, len(sent))
	}
}

// TestServerDataSlowReaderFair: a download read steadily, far above
// MinDataRate but slower than one large write can drain within a rate
// window, completes intact: the server's writes are cut short at each
// window's end and go on, since each window saw its need.
func TestServerDataSlowReaderFair(t *testing.T) {
	// The window is long enough that a busy machine (CI runs every
	// package at once) does not stall this reader for a whole one.
	ts := startTestServer(t, ServerConfig{DataTimeout: 500 * time.Millisecond, MinDataRate: 64 << 10})
	want := randomBytes(t, 4<<20)
	if err := os.WriteFile(filepath.Join(ts.root, "file"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, ts.addr)
	c.login()
	r := c.want("EPSV", 229)
	port, err := ParseEPSV(r.Text())
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(c.conn.RemoteAddr().String())
	// A small receive buffer, so that the server's writes wait for this
	// reader rather than for the kernel's buffers.
	dialer := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10) })
	}}
	conn, err := dialer.Dial("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c.want("RETR file", 150)
	// 32 KiB every 20 ms: about 1.6 MB/s, twenty-five times the rate
	// asked for, but 1 MiB takes longer than a 500 ms window.
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := io.ReadFull(conn, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.wantReply(226)
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want the %d of the file", len(got), len(want))
	}
	if n := ts.writesResumed.Load(); n == 0 {
		t.Errorf("no write was cut short by a window's end and went on: the test did not test that")
	} else {
		t.Logf("%d writes went on past a window's end", n)
	}
}
