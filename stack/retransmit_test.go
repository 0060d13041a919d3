package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// dropOnce is a host's link that loses the first frame the host sends
// for which pick says so, after the host's capture has recorded it: a
// frame lost on the wire, as its sender saw it leave.
type dropOnce struct {
	nested.Endpoint
	mu      sync.Mutex
	pick    func(trace.Segment) bool
	dropped *trace.Segment
}

// WritePackets implements stack.LinkEndpoint.
func (d *dropOnce) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	var keep gstack.PacketBufferList
	lost := 0
	d.mu.Lock()
	for _, pkt := range pkts.AsSlice() {
		buf := pkt.ToBuffer()
		b := buf.Flatten()
		buf.Release()
		if seg := packet.Decode(b, len(b), packet.LinkEthernet); d.dropped == nil && d.pick(seg) {
			d.dropped = &seg
			lost++
			continue
		}
		keep.PushBack(pkt)
	}
	d.mu.Unlock()
	n, err := d.Endpoint.WritePackets(keep)
	return n + lost, err
}

func (d *dropOnce) lost() *trace.Segment {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// TestRetransmitTail loses a transfer's last data segment on the wire:
// its resend, which a tail-loss probe or a timeout sends, carries
// "retransmit": true in the JSON lines, is marked in the text view and
// in the graph, and no segment sent for the first time is marked. The
// text view used to miss exactly this resend (it guessed from the
// highest sequence number seen, and the last segment's end is that).
func TestRetransmitTail(t *testing.T) {
	stacktest.CheckGoroutines(t)
	const size = 10*1448 + 500 // the last segment is short, and alone
	keep := &trace.Keep{}
	rec := trace.NewRecorder(keep)
	w, err := stack.NewWire(stack.WireConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var iss uint32
	var issKnown bool
	drop := &dropOnce{pick: func(s trace.Segment) bool {
		if s.Proto != "tcp" || s.Src.Port() != 20 {
			return false
		}
		if s.Flags.Has(trace.SYN) {
			iss, issKnown = s.Seq, true
		}
		return issKnown && s.Len > 0 && s.Seq+uint32(s.Len) == iss+1+size
	}}
	newHost := func(name string, addr string, wrap bool) *stack.Host {
		port, err := w.NewPort()
		if err != nil {
			t.Fatal(err)
		}
		var link stack.LinkEndpoint = port
		if wrap {
			drop.Endpoint.Init(port, drop)
			link = drop
		}
		h, err := stack.NewHost(stack.HostConfig{Name: name, Link: link, Observer: rec.Record,
			Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}, MinRTO: stack.WireMinRTO})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	client := newHost("client", "192.0.2.1/24", false)
	server := newHost("server", "192.0.2.2/24", true)

	ctx, cancel := context.WithTimeout(trace.WithLabel(context.Background(), trace.Data), 20*time.Second)
	defer cancel()
	ls, err := server.Socket(ctx, "tcp4")
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Bind(ctx, netip.MustParseAddrPort("192.0.2.2:20")); err != nil {
		t.Fatal(err)
	}
	l, err := ls.Listen(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Socket(ctx, "tcp4")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, netip.MustParseAddrPort("192.0.2.2:20")); err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptSocket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	if _, err := s.Send(ctx, data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the client read %v, data intact: %v", err, bytes.Equal(got, data))
	}
	s.Close()
	c.Close()
	l.Close()
	client.Close()
	server.Close()
	rec.Stop()
	lost := drop.lost()
	if lost == nil {
		t.Fatal("the last data segment was never sent")
	}

	// The JSON lines: the resend is marked, and only resends are: each
	// segment marked starts below the highest sequence number its host
	// had sent (or received) that way, and none other does.
	var resend *trace.Event
	top := map[string]uint32{}
	for i := range keep.Events {
		e := &keep.Events[i]
		sg := e.Segment
		if e.Kind != trace.KindSegment || sg.Proto != "tcp" || sg.Len == 0 {
			continue
		}
		k := e.Host + " " + sg.Src.String() + ">" + sg.Dst.String()
		prev, seen := top[k]
		if want := seen && int32(prev-sg.Seq) > 0; sg.Retransmit != want {
			t.Errorf("%s %s seq %d len %d: retransmit %v, want %v (highest before %d)", e.Host, sg.Dir, sg.Seq-iss, sg.Len, sg.Retransmit, want, prev-iss)
		}
		if end := sg.Seq + uint32(sg.Len); !seen || int32(end-prev) > 0 {
			top[k] = end
		}
		if e.Host == "server" && sg.Dir == trace.Out && sg.Seq == lost.Seq && sg.Retransmit && resend == nil {
			resend = e
		}
	}
	if resend == nil {
		t.Fatalf("no resend of the lost segment (seq %d) marked retransmit in the server's trace", lost.Seq-iss)
	}
	line, err := json.Marshal(resend)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(line), `"retransmit":true`) {
		t.Errorf("the resend's JSON line lacks \"retransmit\":true: %s", line)
	}
	var back trace.Event
	if err := json.Unmarshal(line, &back); err != nil || !back.Segment.Retransmit {
		t.Errorf("the JSON line read back: retransmit %v (%v)", back.Segment != nil && back.Segment.Retransmit, err)
	}

	// The text view marks the resend's line, by its relative numbers,
	// when it shows every segment; a run of them says how many were
	// resent.
	render := func(opt trace.TextOptions) string {
		var b bytes.Buffer
		tv := trace.NewText(&b, opt)
		for i := range keep.Events {
			tv.Event(&keep.Events[i])
		}
		tv.Flush()
		return b.String()
	}
	if banded := render(trace.TextOptions{}); !strings.Contains(banded, "server -> client") || !strings.Contains(banded, " 1 retransmitted") {
		t.Errorf("the text view's band does not count the resend:\n%s", banded)
	}
	text := render(trace.TextOptions{Every: true})
	rel := fmt.Sprintf("seq=%d ", lost.Seq-iss)
	marked := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "(retransmission)") {
			marked++
			if !strings.Contains(l, rel) {
				t.Errorf("the text view marks a line that is not the resend (%s): %s", rel, l)
			}
		}
	}
	if marked == 0 {
		t.Errorf("the text view marks no retransmission:\n%s", text)
	}

	// The graph draws it in red, at its place in the sequence space.
	var svg bytes.Buffer
	if err := trace.WriteGraph(&svg, keep.Events, trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	start := lost.Seq - iss
	if want := fmt.Sprintf("retransmission: %d-%d at", start, start+uint32(lost.Len)); !strings.Contains(svg.String(), want) {
		t.Errorf("the graph has no %q", want)
	}
	t.Logf("lost seq %d len %d; resent at %v; %d text lines marked", start, lost.Len, resend.Time.Sub(keep.Events[0].Time), marked)
}
