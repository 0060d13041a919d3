package kernel

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/kernel/kerneltest"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// TestSamplesThroughBottleneck downloads 4 MiB through the namespace's
// loopback shaped to 20 Mbit/s with a queue of 32 frames: the kernel's
// TCB is sampled from TCP_INFO after every call on both data sockets, and
// (tracefs) per ACK from tcp:tcp_probe on the sender's, which loses at the
// queue and says so (retransmissions, a congestion state other than
// open); every sample is of one of the run's sockets.
func TestSamplesThroughBottleneck(t *testing.T) {
	kerneltest.NeedRoot(t)
	stacktest.CheckGoroutines(t)
	leftAsFound(t)
	ns, err := NewNetNS(1500)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	b := BottleneckFor(20e6, 32, 0, 1500)
	if b.Queue != 32*1514 || b.Burst != 32*1514/2 {
		t.Errorf("BottleneckFor(20 Mbit/s, 32 frames, MTU 1500) = %s, want a limit of 32 full frames, a bucket of half that", b)
	}
	if err := ns.Shape(b); err != nil {
		t.Fatal(err)
	}
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	w, err := StartWatch(WatchConfig{Recorder: rec, NetNS: ns, Tracefs: true, Samples: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if m := w.Missing(); len(m) > 0 {
		t.Fatalf("as root, the watch misses: %q", m)
	}
	cfg := func(host string, role trace.Role, addr string) Config {
		return Config{Host: host, Role: role, Observer: rec.Record, Watch: w, NetNS: ns, Samples: true,
			Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}
	}
	client := NewNetwork(cfg("client", trace.Client, "127.0.0.1/8"))
	server := NewNetwork(cfg("server", trace.Server, "127.0.0.2/8"))
	// The namespace's own server address: the tracepoints see other
	// tests' namespaces too.
	srvAddr := netip.AddrPortFrom(ns.Loopback(2), 21).String()
	root := t.TempDir()
	const size = 4 << 20
	if err := os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("nsftp"), size/5), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: server})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := server.Listen(trace.WithLabel(ctx, trace.Control), "tcp", srvAddr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	c, err := ftp.Dial(ctx, srvAddr, ftp.ClientConfig{Network: client, Observer: rec.Record})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if n, err := c.Retrieve(ctx, "f", 0, &got); err != nil || n != int64(got.Len()) || got.Len() != size/5*5 {
		t.Fatalf("%d bytes, %v", got.Len(), err)
	}
	c.Quit(ctx)
	c.Close()
	srv.Close()
	<-served
	w.Settle(2 * time.Second)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rec.Stop()
	dropped, sent := ns.QueueDrops()
	t.Logf("the queue sent %d packets and dropped %d", sent, dropped)

	type sock struct {
		host string
		fd   int
	}
	dataSocks := map[sock]bool{}
	from := map[sock]map[trace.TCBSource]int{}
	maxCwnd, retrans := 0, 0
	var congestion []string
	for _, e := range keep.Events {
		switch {
		case e.Kind == trace.KindCall && e.Call != nil && e.Call.Label == trace.Data && e.Call.Op == trace.OpRecv:
			dataSocks[sock{e.Host, e.Call.Socket}] = true
		case e.Kind == trace.KindCall && e.Call != nil && e.Call.Label == trace.Data && e.Call.Op == trace.OpSend:
			dataSocks[sock{e.Host, e.Call.Socket}] = true
		case e.Kind == trace.KindTCB:
			b := e.TCB
			k := sock{e.Host, b.Socket}
			if from[k] == nil {
				from[k] = map[trace.TCBSource]int{}
			}
			from[k][b.Source]++
			if e.Layer != trace.LayerKernel || b.Cwnd <= 0 || !b.Local.IsValid() || !b.Remote.IsValid() {
				t.Errorf("a sample with no layer, window or ends: %+v %+v", e, b)
			}
			if b.Source == trace.FromTCPInfo && (b.RTO <= 0 || b.MSS <= 0) {
				t.Errorf("a TCP_INFO sample with no RTO or MSS: %+v", b)
			}
			if e.Host == "server" && dataSocks[k] {
				maxCwnd = max(maxCwnd, b.Cwnd)
				if b.Congestion != "open" && (len(congestion) == 0 || congestion[len(congestion)-1] != b.Congestion) {
					congestion = append(congestion, b.Congestion)
				}
			}
		case e.Kind == trace.KindTCPEvent && e.TCPEvent.What == trace.Retransmit && e.Host == "server":
			retrans++
		}
	}
	if len(dataSocks) != 2 {
		t.Fatalf("data sockets: %v", dataSocks)
	}
	for k := range dataSocks {
		if from[k][trace.FromTCPInfo] < 2 {
			t.Errorf("%s fd%d: %d TCP_INFO samples, want one after each call", k.host, k.fd, from[k][trace.FromTCPInfo])
		}
		if k.host == "server" && from[k][trace.FromTCPProbe] < 100 {
			t.Errorf("the sender %s fd%d has %d tcp_probe samples: want one per ACK that moved it", k.host, k.fd, from[k][trace.FromTCPProbe])
		}
	}
	if retrans == 0 || len(congestion) == 0 || dropped == 0 {
		t.Errorf("through a queue of 32 frames: %d retransmissions, congestion states %q, %d drops at the queue", retrans, congestion, dropped)
	}
	t.Logf("sender's largest cwnd %d, %d retransmissions, congestion states %s; samples %v", maxCwnd, retrans, strings.Join(congestion, " "), from)
}
