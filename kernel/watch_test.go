package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/kernel/kerneltest"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// leftAsFound checks, when the test ends, that the kernel's tracing state
// is what it was when the test began.
func leftAsFound(t *testing.T) {
	t.Helper()
	before := kerneltest.TracingState(t)
	t.Cleanup(func() {
		if after := kerneltest.TracingState(t); after != before {
			t.Errorf("the kernel's tracing state changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// TestWatchInNamespace runs FTP sessions (active and passive) on the
// kernel's TCP in a namespace made for the test, watched: the kernel's
// changes of state for every socket follow RFC 793's diagram with a cause
// read off the kernel's stack, every frame of the run's connections is a
// segment of the socket it belongs to and is in the pcap, the timeline is
// causal across what nsftp recorded and what the kernel told later, and
// the tracing state is left as it was found.
func TestWatchInNamespace(t *testing.T) {
	kerneltest.NeedRoot(t)
	stacktest.CheckGoroutines(t)
	leftAsFound(t)
	ns, err := NewNetNS(1500)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	var pcap bytes.Buffer
	w, err := StartWatch(WatchConfig{Recorder: rec, NetNS: ns, Tracefs: true, Segments: true, PCAP: &pcap})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if m := w.Missing(); len(m) > 0 {
		t.Fatalf("as root, the watch misses: %q", m)
	}
	client := NewNetwork(Config{Host: "client", Role: trace.Client, Observer: rec.Record, Watch: w, NetNS: ns,
		Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}})
	server := NewNetwork(Config{Host: "server", Role: trace.Server, Observer: rec.Record, Watch: w, NetNS: ns,
		Addrs: []netip.Prefix{netip.PrefixFrom(ns.Loopback(2), 8)}})
	// The namespace's own server address: the tracepoints see other
	// tests' namespaces too.
	srvAddr := netip.AddrPortFrom(ns.Loopback(2), 21).String()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("x"), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: server})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", srvAddr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	for _, active := range []bool{true, false} {
		c, err := ftp.Dial(ctx, srvAddr, ftp.ClientConfig{Network: client, Active: active, Observer: rec.Record})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(ctx, "", ""); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := c.Retrieve(ctx, "f", 0, &got); err != nil || got.Len() != 100000 {
			t.Fatalf("active=%v: %d bytes, %v", active, got.Len(), err)
		}
		c.Quit(ctx)
		c.Close()
	}
	srv.Close()
	<-served
	w.Settle(2 * time.Second)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rec.Stop()

	evs := keep.Events
	tracetest.Causal(t, evs)
	seen := tracetest.RFC793(t, evs)
	for _, s := range tracetest.Lifecycle {
		if !seen[s] {
			t.Errorf("no socket passes through %s", s)
		}
	}
	var states, segs, born, timeWait int
	for _, e := range evs {
		switch {
		case e.Kind == trace.KindState:
			states++
			s := e.State
			if len(s.Stack) == 0 || strings.HasPrefix(s.Cause, "the kernel") {
				t.Errorf("%s fd%d %s -> %s: cause %q, stack %q", e.Host, s.Socket, s.From, s.To, s.Cause, s.Stack)
			}
			if s.From == trace.StateListen && s.To == trace.StateSynReceived {
				born++
				if s.Listener == 0 {
					t.Errorf("a connection born with no listener: %+v", s)
				}
			}
			if s.To == trace.StateTimeWait {
				timeWait++
				if !strings.Contains(s.Cause, "tcp_time_wait") {
					t.Errorf("TIME-WAIT's cause does not say what the kernel did: %q", s.Cause)
				}
			}
		case e.Kind == trace.KindSegment:
			segs++
			if e.Segment.Socket == 0 || e.Layer != trace.LayerKernel {
				t.Errorf("a segment of no socket: %+v", e)
			}
		}
	}
	if born < 4 || timeWait < 2 || segs < 40 {
		t.Errorf("%d connections born on listeners, %d TIME-WAITs, %d segments: too few for two sessions", born, timeWait, segs)
	}
	// The pcap: nanosecond magic, Ethernet, one record per frame of the
	// run's connections (each recorded twice as segments: out and in).
	b := pcap.Bytes()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b23c4d || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("not a nanosecond Ethernet pcap: % x", b[:min(len(b), 24)])
	}
	records := 0
	for off := 24; off+16 <= len(b); records++ {
		off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
	}
	if records*2 != segs {
		t.Errorf("%d frames in the pcap, %d segment events: want two events (out, in) a frame", records, segs)
	}
}

// TestWatchRemovesStale: a run killed before it could clean up leaves a
// tracing instance and maybe a tracefs mount behind, named with its pid;
// the next run removes them.
func TestWatchRemovesStale(t *testing.T) {
	kerneltest.NeedRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	leftAsFound(t)

	// A stale mount, and in whatever tracefs the next run finds, a stale
	// instance.
	stale := filepath.Join(os.TempDir(), fmt.Sprintf("nsftp-tracefs-%d-cafe", pid))
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("nodev", stale, "tracefs", 0, ""); err != nil {
		os.Remove(stale)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(stale, unix.MNT_DETACH)
		os.Remove(stale)
	})
	instance := filepath.Join(stale, "instances", fmt.Sprintf("nsftp-%d-beef", pid))
	if err := os.Mkdir(instance, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(instance) })

	rec := trace.NewRecorder()
	w, err := StartWatch(WatchConfig{Recorder: rec, Tracefs: true})
	if err != nil {
		t.Fatal(err)
	}
	if !w.Tracing() {
		t.Fatalf("no tracing: %q", w.Missing())
	}
	w.Close()
	rec.Stop()
	if slices.Contains(kerneltest.Instances(t, pid), filepath.Base(instance)) {
		t.Errorf("the killed run's instance %s is still there", filepath.Base(instance))
	}
	if mounted(stale) {
		t.Errorf("the killed run's tracefs mount at %s is still there", stale)
	}
}

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(b), " "+dir+" ")
}
