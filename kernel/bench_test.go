package kernel

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
)

// BenchmarkKernelTransfer downloads 16 MiB over loopback on the kernel's
// TCP: with Go's net package (what an untraced --net os run uses), with
// nsftp's own calls recorded (a traced run without privilege), and, as
// root, watched too (tracefs and the packet socket, in a namespace).
//
//	go test ./kernel -run - -bench KernelTransfer -benchtime 20x
func BenchmarkKernelTransfer(b *testing.B) {
	const size = 16 << 20
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, client, server ftp.Network) {
		ctx := context.Background()
		srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: server})
		if err != nil {
			b.Fatal(err)
		}
		l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, l) }()
		defer func() { srv.Close(); <-done }()
		c, err := ftp.Dial(ctx, l.Addr().String(), ftp.ClientConfig{Network: client})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(ctx, "", ""); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			if n, err := c.Retrieve(ctx, "f", 0, io.Discard); err != nil || n != size {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
		b.StopTimer()
		c.Quit(ctx)
	}
	b.Run("go-net", func(b *testing.B) {
		run(b, &ftp.OSNetwork{}, &ftp.OSNetwork{})
	})
	b.Run("calls-recorded", func(b *testing.B) {
		rec := trace.NewRecorder(trace.NewJSONWriter(io.Discard))
		defer rec.Stop()
		run(b, NewNetwork(Config{Host: "client", Observer: rec.Record, NoDelay: true}),
			NewNetwork(Config{Host: "server", Observer: rec.Record, NoDelay: true}))
	})
	b.Run("watched", func(b *testing.B) {
		testkit.NeedRoot(b, "makes a network namespace and reads the kernel's tracepoints")
		ns, err := NewNetNS(0)
		if err != nil {
			b.Fatal(err)
		}
		defer ns.Close()
		rec := trace.NewRecorder(trace.NewJSONWriter(io.Discard))
		defer rec.Stop()
		w, err := StartWatch(WatchConfig{Recorder: rec, NetNS: ns, Tracefs: true, Segments: true})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		run(b, NewNetwork(Config{Host: "client", Observer: rec.Record, NoDelay: true, NetNS: ns, Watch: w}),
			NewNetwork(Config{Host: "server", Observer: rec.Record, NoDelay: true, NetNS: ns, Watch: w}))
	})
}
