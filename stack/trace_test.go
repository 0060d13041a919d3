package stack_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// timeline is a run's recorder with every event kept.
type timeline struct {
	rec  *trace.Recorder
	keep *trace.Keep
}

func newTimeline() *timeline {
	k := &trace.Keep{}
	return &timeline{rec: trace.NewRecorder(k), keep: k}
}

// events stops the recorder and returns what it kept.
func (tl *timeline) events() []trace.Event {
	tl.rec.Stop()
	return tl.keep.Events
}

// exchange is the article's dialogue in miniature: socket, bind, listen,
// accept on the server; socket, connect, send, recv, close on the client;
// the server closes first, as an FTP server does after 221.
func exchange(t *testing.T, p *stack.Pair) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls, err := p.Server.Socket(trace.WithLabel(ctx, trace.Control), "tcp4")
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Bind(ctx, serverAddr); err != nil {
		t.Fatal(err)
	}
	l, err := ls.Listen(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan struct{})
	serverErr := make(chan error, 1)
	go func() {
		serverErr <- func() error {
			defer l.Close()
			s, err := l.AcceptSocket(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			buf := make([]byte, 64)
			n, err := s.Recv(ctx, buf)
			if err != nil || string(buf[:n]) != "USER anonymous\r\n" {
				return fmt.Errorf("server recv %q, %v", buf[:n], err)
			}
			if _, err := s.Send(ctx, []byte("331 Send your password.\r\n")); err != nil {
				return err
			}
			<-clientDone
			return nil
		}()
	}()

	c, err := p.Client.Socket(trace.WithLabel(ctx, trace.Control), "tcp4")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, serverAddr); err != nil {
		t.Fatal(err)
	}
	c.LocalAddrPort()
	if _, err := c.Send(ctx, []byte("USER anonymous\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Recv(ctx, buf)
	if err != nil || string(buf[:n]) != "331 Send your password.\r\n" {
		t.Fatalf("client recv %q, %v", buf[:n], err)
	}
	close(clientDone)
	if _, err := c.Recv(ctx, buf); err != io.EOF {
		t.Fatalf("client recv after server's close: %v, want io.EOF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
	for _, h := range []*stack.Host{p.Client, p.Server} {
		if err := h.Settle(ctx); err != nil {
			t.Fatalf("%s: connections not CLOSED: %v", h.Name(), err)
		}
	}
}

// TestTraceGolden runs the exchange and compares each host's socket calls
// and changes of state with a golden file. The wire delays every frame
// 20ms, so the order within each host is exact.
func TestTraceGolden(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	p := stacktest.Pair(t, stack.PairConfig{
		Wire:   stack.WireConfig{Path: stack.Path{Delay: 20 * time.Millisecond}},
		Client: stack.HostConfig{Observer: tl.rec.Record, TimeWait: 100 * time.Millisecond},
		Server: stack.HostConfig{Observer: tl.rec.Record, TimeWait: 100 * time.Millisecond},
	})
	exchange(t, p)
	evs := tl.events()
	var got strings.Builder
	for _, host := range []string{"client", "server"} {
		for _, e := range evs {
			if e.Host != host {
				continue
			}
			switch {
			case e.Kind == trace.KindCall && e.Phase == trace.End:
				got.WriteString(formatCall(e) + "\n")
			case e.Kind == trace.KindState:
				s := e.State
				fmt.Fprintf(&got, "%s fd=%d   state %s -> %s (%s: %s)\n", e.Host, s.Socket, s.From, s.To, s.By, s.Cause)
			}
		}
	}
	compareGolden(t, "testdata/trace.golden", got.String())
}

// formatCall renders a call event without what varies between runs: the
// client's ephemeral port, times and durations.
func formatCall(e trace.Event) string {
	c := e.Call
	norm := func(a netip.AddrPort) string {
		if !a.IsValid() {
			return ""
		}
		if a.Port() == 21 {
			return a.String()
		}
		return a.Addr().String() + ":EPHEMERAL"
	}
	return fmt.Sprintf("%s fd=%d %-11s %-47s %-15s %-30s local=%s remote=%s bytes=%d %s -> %s new=%d err=%q",
		e.Host, c.Socket, c.Op, c.Article, c.Kernel, c.Netstack, norm(c.Local), norm(c.Remote), c.Bytes,
		c.StateBefore, c.StateAfter, c.NewSocket, c.Err)
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	testkit.Golden(t, path, []byte(got))
}

// TestStatesFollowRFC793 checks every socket's life against RFC 793's
// state diagram (page 23): each recorded change is a transition the
// diagram allows, follows on from the one before, and has a cause; and
// between them the two hosts' sockets pass through every state of a
// connection opened by one side and closed first by the other.
func TestStatesFollowRFC793(t *testing.T) {
	for _, probe := range []bool{false, true} {
		t.Run(probeName(probe), func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			tl := newTimeline()
			exchange(t, tracedPair(t, tl, probe))
			seen := tracetest.RFC793(t, tl.events())
			for _, s := range []trace.TCPState{trace.StateBound, trace.StateListen, trace.StateSynSent, trace.StateSynReceived,
				trace.StateEstablished, trace.StateFinWait1, trace.StateFinWait2, trace.StateCloseWait,
				trace.StateLastAck, trace.StateTimeWait, trace.StateClosed} {
				if !seen[s] {
					t.Errorf("no socket passed through %s", s)
				}
			}
		})
	}
}

// tracedPair is a pair whose hosts record into tl, with a short
// TIME-WAIT, with or without netstack's TCP probe (Samples turns it on).
func tracedPair(t *testing.T, tl *timeline, probe bool) *stack.Pair {
	cfg := stack.HostConfig{Observer: tl.rec.Record, Samples: probe, TimeWait: 20 * time.Millisecond}
	return stacktest.Pair(t, stack.PairConfig{Client: cfg, Server: cfg})
}

// probeName names the two ways a host sees changes of state: with
// netstack's TCP probe (a run that shows TCBs: Samples, or step mode)
// and without it.
func probeName(probe bool) string {
	if probe {
		return "with the TCP probe"
	}
	return "without the TCP probe"
}

// TestCausalOrder checks the timeline's order: times never go backwards,
// a call's beginning comes before what it causes and its end after, every
// data segment a socket sends follows the beginning of a send on it, and
// every segment a socket receives comes before the recv it completes.
func TestCausalOrder(t *testing.T) {
	for _, probe := range []bool{false, true} {
		t.Run(probeName(probe), func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			tl := newTimeline()
			exchange(t, tracedPair(t, tl, probe))
			tracetest.Causal(t, tl.events())
		})
	}
}

// TestFinWait2Silent: an ACK of a FIN moves its sender from FIN-WAIT-1 to
// FIN-WAIT-2 without a frame sent or a waiter woken, and the timeline
// still records it as it happens, with the ACK as its cause, while
// nothing else goes on: the peer neither sends nor closes.
func TestFinWait2Silent(t *testing.T) {
	for _, probe := range []bool{false, true} {
		t.Run(probeName(probe), func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			states := stateWatch{ch: make(chan trace.State, 64)}
			rec := trace.NewRecorder(states)
			defer rec.Stop()
			p := stacktest.Pair(t, stack.PairConfig{
				Client: stack.HostConfig{Observer: rec.Record, Samples: probe},
				Server: stack.HostConfig{Observer: rec.Record, Samples: probe},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l := listen(t, p.Server, serverAddr)
			defer l.Close()
			accepted := make(chan *stack.Socket, 1)
			go func() {
				s, err := l.AcceptSocket(ctx)
				if err != nil {
					t.Error(err)
				}
				accepted <- s
			}()
			c, err := p.Client.Socket(trace.WithLabel(ctx, trace.Control), "tcp4")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Connect(ctx, serverAddr); err != nil {
				t.Fatal(err)
			}
			s := <-accepted
			if s == nil {
				return
			}
			s.Close() // FIN-WAIT-1; the client's netstack ACKs the FIN
			for {
				select {
				case st := <-states.ch:
					if st.To == trace.StateFinWait2 {
						if st.Cause != "rcv ACK of our FIN" {
							t.Errorf("FIN-WAIT-2 caused by %q", st.Cause)
						}
						return
					}
				case <-ctx.Done():
					t.Fatal("FIN-WAIT-2 not recorded while the peer stayed quiet")
				}
			}
		})
	}
}

// stateWatch is a Sink that passes each change of state on.
type stateWatch struct{ ch chan trace.State }

func (w stateWatch) Event(e *trace.Event) {
	if e.State != nil {
		select {
		case w.ch <- *e.State:
		default:
		}
	}
}

func (stateWatch) Flush() error { return nil }

// TestSegmentsAndPCAP checks that capture sees the handshake, data and
// teardown as segment events, each TCP one with its socket, and that the
// pcap holds one record per frame and is readable by tshark when it is
// installed.
func TestSegmentsAndPCAP(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	var pcap bytes.Buffer
	p := stacktest.Pair(t, stack.PairConfig{
		Client: stack.HostConfig{Observer: tl.rec.Record, Capture: &stack.CaptureConfig{PCAP: &pcap}},
	})
	l := listen(t, p.Server, serverAddr)
	c := dial(t, p.Client, serverAddr)
	s := accept(t, l)
	if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, err := io.ReadFull(s, buf[:6]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("client read after server close: %v", err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond) // let the last ACK cross
	p.Client.Close()

	var tcp []string
	var arp []string
	segments := 0
	for _, e := range tl.events() {
		if e.Kind != trace.KindSegment {
			continue
		}
		segments++
		switch e.Segment.Proto {
		case "tcp":
			tcp = append(tcp, string(e.Segment.Dir)+" "+e.Segment.Flags.String())
			if e.Segment.Socket != c.ID() {
				t.Errorf("segment %v belongs to fd%d, want the client's fd%d", e.Segment.Flags, e.Segment.Socket, c.ID())
			}
		case "arp":
			arp = append(arp, string(e.Segment.Dir)+" "+e.Segment.Info)
		}
	}
	if len(arp) < 2 || !strings.Contains(arp[0], "out who-has 192.0.2.2 tell 192.0.2.1") || !strings.Contains(arp[1], "in 192.0.2.2 is-at") {
		t.Errorf("ARP exchange = %q", arp)
	}
	wantPrefix := []string{"out SYN", "in SYN|ACK", "out ACK", "out PSH|ACK"}
	if len(tcp) < len(wantPrefix) || strings.Join(tcp[:len(wantPrefix)], ",") != strings.Join(wantPrefix, ",") {
		t.Errorf("TCP segments begin %q, want %q", tcp, wantPrefix)
	}
	fins := 0
	for _, s := range tcp {
		if strings.Contains(s, "FIN") {
			fins++
		}
	}
	if fins != 2 {
		t.Errorf("saw %d FIN segments, want 2 (one each way): %q", fins, tcp)
	}

	records := countPCAPRecords(t, pcap.Bytes())
	if records != segments {
		t.Errorf("pcap has %d records, observer saw %d frames", records, segments)
	}
	tshark := testkit.NeedPeer(t, "tshark")
	path := filepath.Join(t.TempDir(), "run.pcap")
	if err := os.WriteFile(path, pcap.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Output, not CombinedOutput: as root tshark warns on stderr.
	out, err := exec.Command(tshark, "-r", path, "-Y", "tcp.flags.syn==1", "-T", "fields", "-e", "tcp.flags.ack").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 2 {
		t.Errorf("tshark found SYN segments %q, want a SYN and a SYN-ACK", got)
	}
}

// countPCAPRecords walks a nanosecond pcap file and returns its records.
func countPCAPRecords(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b23c4d {
		t.Fatalf("not a nanosecond pcap: % x", b[:min(len(b), 24)])
	}
	if lt := binary.LittleEndian.Uint32(b[20:]); lt != 1 {
		t.Errorf("link type %d, want 1 (Ethernet)", lt)
	}
	b = b[24:]
	n := 0
	for len(b) > 0 {
		if len(b) < 16 {
			t.Fatalf("truncated record header")
		}
		capLen := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+capLen {
			t.Fatalf("truncated record")
		}
		b = b[16+capLen:]
		n++
	}
	return n
}

// TestJSONLines checks that every event encodes as one line of JSON that
// reads back as the same event.
func TestJSONLines(t *testing.T) {
	stacktest.CheckGoroutines(t)
	var out bytes.Buffer
	jw := trace.NewJSONWriter(&out)
	keep := &trace.Keep{}
	rec := trace.NewRecorder(jw, keep)
	p := stacktest.Pair(t, stack.PairConfig{
		Client: stack.HostConfig{Observer: rec.Record},
		Server: stack.HostConfig{Observer: rec.Record},
	})
	l := listen(t, p.Server, serverAddr)
	c := dial(t, p.Client, serverAddr)
	s := accept(t, l)
	c.Write([]byte("NOOP\r\n"))
	io.ReadFull(s, make([]byte, 6))
	c.Close()
	s.Close()
	p.Client.Close()
	p.Server.Close()
	if err := rec.Stop(); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.ReadJSON(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(keep.Events) {
		t.Fatalf("read back %d events, recorded %d", len(evs), len(keep.Events))
	}
	kinds := map[trace.Kind]int{}
	for i, e := range evs {
		kinds[e.Kind]++
		want := keep.Events[i]
		if e.Seq != want.Seq || !e.Time.Equal(want.Time) || e.Kind != want.Kind || e.Host != want.Host {
			t.Errorf("event %d read back as %+v, recorded %+v", i, e, want)
		}
		if want.Segment != nil && (e.Segment == nil || e.Segment.Src != want.Segment.Src || e.Segment.Flags != want.Segment.Flags || e.Segment.Socket != want.Segment.Socket) {
			t.Errorf("segment %d read back as %+v, recorded %+v", i, e.Segment, want.Segment)
		}
	}
	if kinds[trace.KindCall] < 16 || kinds[trace.KindSegment] < 12 || kinds[trace.KindState] < 6 || kinds[trace.KindHost] != 2 {
		t.Errorf("event counts %v", kinds)
	}
}

// TestChains checks that --explain's call chains are real captures: the
// SYN of a connect comes from tcp's connect path through ipv4 to the NIC,
// and data segments from the socket's Send.
func TestChains(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	p := stacktest.Pair(t, stack.PairConfig{
		Client: stack.HostConfig{Observer: tl.rec.Record, Explain: true},
	})
	l := listen(t, p.Server, serverAddr)
	c := dial(t, p.Client, serverAddr)
	s := accept(t, l)
	c.Write([]byte("RETR foo_file\r\n"))
	io.ReadFull(s, make([]byte, 15))
	dial(t, p.Client, serverAddr) // a second SYN, with ARP already resolved
	accept(t, l)
	var syns [][]string
	var data []string
	for _, e := range tl.events() {
		if e.Kind != trace.KindSegment || e.Segment.Dir != trace.Out || e.Segment.Proto != "tcp" {
			continue
		}
		if e.Segment.Flags == trace.SYN {
			syns = append(syns, e.Segment.Chain)
		}
		if e.Segment.Len == 15 {
			data = e.Segment.Chain
		}
	}
	if len(syns) != 2 {
		t.Fatalf("saw %d SYNs, want 2", len(syns))
	}
	first, syn := syns[0], syns[1]
	t.Logf("first SYN chain: %s", strings.Join(first, " -> "))
	t.Logf("second SYN chain: %s", strings.Join(syn, " -> "))
	t.Logf("data chain: %s", strings.Join(data, " -> "))
	has := func(chain []string, parts ...string) bool {
		joined := strings.Join(chain, " -> ")
		for _, p := range parts {
			if !strings.Contains(joined, p) {
				return false
			}
		}
		return true
	}
	// The first SYN waited for ARP: the neighbour cache sent it when the
	// reply arrived, from the goroutine that took the reply; its chain is
	// still the connect() that made it, the wait, and the link.
	if !has(first, "nsftp (*Socket).Connect -> tcp.(*Endpoint).Connect", "(waited for ARP) -> stack.(*nic).writePacket") ||
		strings.Contains(strings.Join(first, " "), "packetsPendingLinkResolution") {
		t.Errorf("first SYN chain %q is not the connect() that made it", first)
	}
	if !has(syn, "tcp.", "ipv4.(*endpoint).WritePacket", "stack.(*nic).WritePacket") {
		t.Errorf("SYN chain %q lacks the tcp -> ipv4 -> nic path", syn)
	}
	if !has(data, "nsftp (*Socket).Send", "tcp.(*Endpoint).Write", "ipv4.(*endpoint).WritePacket") {
		t.Errorf("data chain %q does not start at Socket.Send", data)
	}
}

// TestNoSocketDrop: a SYN to a port where nothing listens has no socket
// to go to; the receiving host's timeline says so right after the SYN
// (netstack answers it with a reset), and says nothing of the kind for
// the segments of a connection that is there.
func TestNoSocketDrop(t *testing.T) {
	stacktest.CheckGoroutines(t)
	tl := newTimeline()
	p := tracedPair(t, tl, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := p.Client.DialContext(trace.WithLabel(ctx, "control"), "tcp", "192.0.2.2:2121"); err == nil {
		c.Close()
		t.Fatal("dial to a closed port succeeded")
	}
	exchange(t, p)
	var drops []trace.Event
	evs := tl.events()
	for i, e := range evs {
		if e.Kind != trace.KindDrop {
			continue
		}
		drops = append(drops, e)
		if i == 0 || evs[i-1].Kind != trace.KindSegment || evs[i-1].Segment.Seq != e.Segment.Seq || evs[i-1].Host != e.Host {
			t.Errorf("drop %+v does not follow its segment", e.Segment)
		}
	}
	if len(drops) != 1 {
		t.Fatalf("%d drops recorded, want 1 (the SYN to port 2121): %+v", len(drops), drops)
	}
	d := drops[0]
	if d.Layer != trace.LayerStack || d.Host != "server" || d.Drop.Reason != "no socket" ||
		d.Segment.Flags != trace.SYN || d.Segment.Dst.Port() != 2121 || d.Segment.Dir != trace.In {
		t.Errorf("drop %s %s %q of %+v; want the server's 'no socket' of the SYN to port 2121", d.Layer, d.Host, d.Drop.Reason, d.Segment)
	}
	var text bytes.Buffer
	tx := trace.NewText(&text, trace.TextOptions{})
	for i := range evs {
		tx.Event(&evs[i])
	}
	tx.Flush()
	if !strings.Contains(text.String(), "✗ dropped (no socket): SYN") {
		t.Errorf("the text view does not name the drop:\n%s", text.String())
	}
}
