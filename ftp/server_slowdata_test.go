package ftp

import (
	"os"
	"path/filepath"
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
