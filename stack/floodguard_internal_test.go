package stack

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/nsftp/nsftp/trace"
)

// synFrame is an Ethernet frame holding a TCP SYN from src:sport to
// dst:21, checksums filled in.
func synFrame(srcMAC, dstMAC tcpip.LinkAddress, src, dst netip.Addr, sport uint16) []byte {
	const ipLen, tcpLen = header.IPv4MinimumSize, header.TCPMinimumSize
	b := make([]byte, header.EthernetMinimumSize+ipLen+tcpLen)
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: srcMAC, DstAddr: dstMAC, Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: ipLen + tcpLen, TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: toTCPIP(src), DstAddr: toTCPIP(dst)})
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(b[header.EthernetMinimumSize+ipLen:])
	t.Encode(&header.TCPFields{SrcPort: sport, DstPort: 21, SeqNum: uint32(sport) * 7919, DataOffset: tcpLen, Flags: header.TCPFlagSyn, WindowSize: 64240})
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, toTCPIP(src), toTCPIP(dst), tcpLen)
	t.SetChecksum(^checksum.Checksum(t, xsum))
	return b
}

type discardDispatcher struct{}

func (discardDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}
func (discardDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer)    {}

// TestFloodGuard floods a server on the virtual wire with SYNs from
// spoofed addresses of its own subnet, from a port of the wire no host
// owns, while a real client connects and exchanges data. The guard sees
// the flood (half-open connections failing, cookies going out), drops
// the SYNs of addresses that never asked for the server's Ethernet
// address, and keeps the real client's: it connects within 2 s, and the
// server never holds more half-open connections than its backlog. The
// flood over, the guard stands down.
func TestFloodGuard(t *testing.T) {
	w, err := NewWire(WireConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	newHost := func(name, addr string, guard bool) *Host {
		port, err := w.NewPort()
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(HostConfig{Name: name, Link: port, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}, FloodGuard: guard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	server := newHost("server", "192.0.2.2/24", true)
	server.guard.over = time.Second
	client := newHost("client", "192.0.2.1/24", false)
	attacker, err := w.NewPort()
	if err != nil {
		t.Fatal(err)
	}
	attacker.Attach(discardDispatcher{})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const backlog = 64
	l, err := server.Listen(trace.WithBacklog(trace.WithLabel(ctx, trace.Control), backlog), "tcp", "192.0.2.2:21")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	echo := func() time.Duration {
		t.Helper()
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := client.DialContext(trace.WithLabel(dctx, trace.Control), "tcp", "192.0.2.2:21")
		if err != nil {
			t.Fatalf("the real client during the flood: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	echo() // the client and the server know each other now

	serverMAC := server.link.LinkAddress()
	stop := make(chan struct{})
	flooded := make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		for {
			for i := 3; i < 255; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
				f := synFrame(attacker.LinkAddress(), serverMAC, src, netip.MustParseAddr("192.0.2.2"), uint16(1024+n%60000))
				w.transmit(attacker, buffer.MakeWithData(f), serverMAC)
				n++
			}
			time.Sleep(time.Millisecond)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := server.FloodGuard(); !st.Flood; st, _ = server.FloodGuard() {
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("no flood seen after 10 s: %+v, %v", st, server.Stats().Sub(nil))
		}
		time.Sleep(10 * time.Millisecond)
	}
	worst := time.Duration(0)
	for range 5 {
		worst = max(worst, echo())
		if half := server.Connections()[trace.StateSynReceived]; half > backlog {
			t.Errorf("%d half-open connections, more than the backlog of %d", half, backlog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	n := <-flooded
	st, _ := server.FloodGuard()
	t.Logf("%d SYNs, %d dropped by the guard; the real client connected and echoed within %v at worst", n, st.Dropped, worst)
	if st.Dropped < uint64(n)/2 {
		t.Errorf("the guard dropped %d of %d spoofed SYNs", st.Dropped, n)
	}
	if worst > 2*time.Second {
		t.Errorf("the real client took %v", worst)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, _ := server.FloodGuard(); !st.Flood {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the guard still sees a flood 10 s after it stopped")
		}
	}
	echo()
}

// TestSocketMemoryShares: with HostConfig.SocketMemory, the more
// connections a host holds, the smaller each one's buffers, so that all
// of them together stay within the bound; as they close, the shares grow
// back.
func TestSocketMemoryShares(t *testing.T) {
	const limit = 1 << 20
	p, err := NewPair(PairConfig{Server: HostConfig{SocketMemory: limit}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := p.Server.Listen(trace.WithBacklog(trace.WithLabel(ctx, trace.Data), 16), "tcp", "192.0.2.2:2000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := ln.(*Listener)
	var clients, accepted []*Socket
	buffers := func(s *Socket) (send, recv int64) {
		o := s.ep.SocketOptions()
		return o.GetSendBufferSize(), o.GetReceiveBufferSize()
	}
	for i := 1; i <= 8; i++ {
		c, err := p.Client.DialContext(trace.WithLabel(ctx, trace.Data), "tcp", "192.0.2.2:2000")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c.(*Socket))
		s, err := l.AcceptSocket(ctx)
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, s)
		share := int64(limit / (2 * i))
		for _, s := range accepted {
			send, recv := buffers(s)
			// At most the bound's share, and not much less: it moves in
			// steps.
			if send > share || recv > share || send < share*3/8 {
				t.Errorf("%d connections: buffers %d and %d bytes, want at most %d, and at least %d", i, send, recv, share, share*3/8)
			}
		}
	}
	var total int64
	for _, s := range accepted {
		send, recv := buffers(s)
		total += send + recv
	}
	if total > limit {
		t.Errorf("8 connections hold buffers of %d bytes together, over the bound of %d", total, limit)
	}
	for _, s := range accepted[1:] {
		s.Close()
	}
	for _, c := range clients {
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if send, _ := buffers(accepted[0]); send >= limit/2*3/4 && send <= limit/2 {
			break
		}
		if time.Now().After(deadline) {
			send, recv := buffers(accepted[0])
			t.Fatalf("with one connection left, its buffers are %d and %d bytes, want %d at most, and not much less", send, recv, limit/2)
		}
	}
	accepted[0].Close()
}
