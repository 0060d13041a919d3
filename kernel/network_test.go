package kernel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// pair is a client and a server on the kernel's TCP over this system's
// loopback, recording into one timeline.
func pair(t *testing.T, w *Watch, ns *NetNS, rec *trace.Recorder) (client, server *Network) {
	t.Helper()
	client = NewNetwork(Config{Host: "client", Role: trace.Client, Observer: rec.Record, Watch: w, NetNS: ns})
	server = NewNetwork(Config{Host: "server", Role: trace.Server, Observer: rec.Record, Watch: w, NetNS: ns})
	return client, server
}

// TestNetworkCalls: every BSD call nsftp makes on the kernel's TCP is a
// call of the timeline, begun and ended, with the kernel's own TCP state
// (TCP_INFO) after it: what a run shows with no privilege at all.
func TestNetworkCalls(t *testing.T) {
	stacktest.CheckGoroutines(t)
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	client, server := pair(t, nil, nil, rec)
	ctx := context.Background()
	l, err := server.Listen(trace.WithBacklog(trace.WithLabel(ctx, trace.Control), 1), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	shutDown := make(chan struct{}) // the client's shutdown() has returned
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if _, err = c.Write([]byte("220 ready\r\n")); err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, c) // until the client's FIN
		<-shutDown                      // and only then our FIN
		done <- err
	}()
	c, err := client.DialContext(trace.WithLabel(ctx, trace.Control), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 11)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "220 ready\r\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := c.(*Socket).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	close(shutDown)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(got); err != io.EOF {
		t.Errorf("read after the server closed: %v, want EOF", err)
	}
	c.Close()
	l.Close()
	rec.Stop()

	tracetest.Causal(t, keep.Events)
	after := map[trace.Op]trace.TCPState{}
	var hosts int
	for _, e := range keep.Events {
		if e.Layer != trace.LayerKernel {
			t.Errorf("event of layer %q", e.Layer)
		}
		if e.Kind == trace.KindHost && e.HostInfo.Kernel != "" && e.HostInfo.TimeWait == 60*time.Second {
			hosts++
		}
		if e.Kind != trace.KindCall || e.Phase != trace.End {
			continue
		}
		c := e.Call
		if c.Kernel == "" || c.Article == "" || c.Syscall == "" || c.FD < 3 {
			t.Errorf("%s ended without its names or descriptor: %+v", c.Op, c)
		}
		if _, ok := after[c.Op]; !ok {
			after[c.Op] = c.StateAfter
		}
	}
	if hosts != 2 {
		t.Errorf("%d host events name the kernel and its TIME-WAIT, want 2", hosts)
	}
	for op, want := range map[trace.Op]trace.TCPState{
		trace.OpSocket:  trace.StateClosed,
		trace.OpBind:    trace.StateClosed,
		trace.OpListen:  trace.StateListen,
		trace.OpConnect: trace.StateEstablished,
		trace.OpAccept:  trace.StateEstablished,
	} {
		if after[op] != want {
			t.Errorf("after %s the kernel says %q, want %q", op, after[op], want)
		}
	}
	// Our FIN is out; on loopback its ACK is in by the time the call
	// returns, or nearly.
	if s := after[trace.OpShutdown]; s != trace.StateFinWait1 && s != trace.StateFinWait2 {
		t.Errorf("after shutdown the kernel says %q, want FIN-WAIT-1 or -2", s)
	}
	if _, ok := after[trace.OpClose]; !ok {
		t.Errorf("no close() recorded")
	}
}

// TestSocketWaits: a call waiting in the poller ends at its deadline with
// a timeout, and when the socket is closed under it with net.ErrClosed,
// as Go's net package has it.
func TestSocketWaits(t *testing.T) {
	stacktest.CheckGoroutines(t)
	n := NewNetwork(Config{Host: "server"})
	l, err := n.Listen(trace.WithBacklog(trace.WithLabel(context.Background(), trace.Data), 1), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kl := l.(*Listener)
	kl.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := l.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("accept past its deadline: %v", err)
	}
	var ne net.Error
	kl.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("accept on a socket closed under it: %v", err)
	}
	// connect(2) to a port nobody listens on: the kernel's RST, as
	// ECONNREFUSED, which the FTP layer classes as a network failure.
	_, err = n.DialContext(trace.WithLabel(context.Background(), trace.Data), "tcp", kl.Addr().String())
	if !errors.Is(err, syscall.ECONNREFUSED) || ftp.Classify(err) != ftp.ClassNetwork {
		t.Errorf("connect to a closed port: %v", err)
	}
}

// TestFTPOnKernel: nsftp's FTP client and server run on the kernel's TCP
// through it, in active mode (the server connects from port L-1, or an
// ephemeral port where it may not bind that) and in passive mode.
func TestFTPOnKernel(t *testing.T) {
	stacktest.CheckGoroutines(t)
	root := t.TempDir()
	want := bytes.Repeat([]byte("nsftp over the kernel\n"), 5000)
	if err := os.WriteFile(filepath.Join(root, "f"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	client, server := NewNetwork(Config{Host: "client"}), NewNetwork(Config{Host: "server"})
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: server})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	for _, active := range []bool{true, false} {
		c, err := ftp.Dial(ctx, l.Addr().String(), ftp.ClientConfig{Network: client, Active: active})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(ctx, "", ""); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := c.Retrieve(ctx, "f", 0, &got); err != nil {
			t.Fatalf("active=%v: %v", active, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("active=%v: %d bytes differ from the %d served", active, got.Len(), len(want))
		}
		c.Quit(ctx)
		c.Close()
	}
	srv.Close()
	<-served
}
