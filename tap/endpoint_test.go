package tap

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// These tests run the endpoint on one end of a SOCK_SEQPACKET socket pair
// instead of a TAP device: it keeps frame boundaries as a TAP device does,
// and needs no privileges. The test plays the kernel on the other end.

var (
	ourMAC    = net.HardwareAddr{0x02, 0x6e, 0x73, 0x66, 0x74, 0x01}
	kernelMAC = net.HardwareAddr{0x02, 0x6b, 0x65, 0x72, 0x6e, 0x01}
	otherMAC  = net.HardwareAddr{0x02, 0x6f, 0x74, 0x68, 0x72, 0x01}
	ourIP     = tcpip.AddrFrom4([4]byte{192, 0, 2, 2})
	kernelIP  = tcpip.AddrFrom4([4]byte{192, 0, 2, 1})
	ourIP6    = tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 2})
	kernelIP6 = tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1})
)

// pairDevice returns a Device whose file is one end of a socket pair, and
// the other end's descriptor.
func pairDevice(t *testing.T, offload bool) (*Device, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	d := &Device{name: "pair0", mac: ourMAC, mtu: 1500, offload: offload, gro: !offload, file: os.NewFile(uintptr(fds[0]), "pair")}
	if d.ep, err = newEndpoint(d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, fds[1]
}

// recorder is a NetworkDispatcher that keeps what it is given.
type recorder struct {
	mu    sync.Mutex
	pkts  []recorded
	ready chan struct{}
}

type recorded struct {
	proto tcpip.NetworkProtocolNumber
	typ   tcpip.PacketType
	data  []byte
}

func newRecorder() *recorder { return &recorder{ready: make(chan struct{}, 1000)} }

func (r *recorder) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	buf := pkt.Data().ToBuffer()
	r.mu.Lock()
	r.pkts = append(r.pkts, recorded{proto, pkt.PktType, buf.Flatten()})
	r.mu.Unlock()
	buf.Release()
	r.ready <- struct{}{}
}

func (*recorder) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}

func (r *recorder) wait(t *testing.T, n int) []recorded {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.ready:
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d packets, want %d", i, n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pkts
	r.pkts = nil
	return out
}

func ethernet(dst, src net.HardwareAddr, typ tcpip.NetworkProtocolNumber, payload []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src), DstAddr: tcpip.LinkAddress(dst), Type: typ})
	copy(b[header.EthernetMinimumSize:], payload)
	return b
}

// ipv4 builds an IPv4 packet around a transport segment whose checksum
// field is at csumOff (-1: none), filling in every checksum.
func ipv4(proto tcpip.TransportProtocolNumber, src, dst tcpip.Address, seg []byte, csumOff int) []byte {
	b := make([]byte, header.IPv4MinimumSize+len(seg))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(proto), SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	copy(b[header.IPv4MinimumSize:], segOf(proto, seg, src, dst, csumOff))
	return b
}

func ipv6(proto tcpip.TransportProtocolNumber, src, dst tcpip.Address, seg []byte, csumOff int) []byte {
	b := make([]byte, header.IPv6MinimumSize+len(seg))
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(len(seg)), TransportProtocol: proto, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	copy(b[header.IPv6MinimumSize:], segOf(proto, seg, src, dst, csumOff))
	return b
}

// segOf returns seg with its checksum filled in.
func segOf(proto tcpip.TransportProtocolNumber, seg []byte, src, dst tcpip.Address, csumOff int) []byte {
	seg = bytes.Clone(seg)
	if csumOff < 0 {
		return seg
	}
	binary.BigEndian.PutUint16(seg[csumOff:], 0)
	var xsum uint16
	if proto != header.ICMPv4ProtocolNumber {
		xsum = header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[csumOff:], ^checksum.Checksum(seg, xsum))
	return seg
}

func udpSeg(payload string) []byte {
	b := make([]byte, header.UDPMinimumSize+len(payload))
	header.UDP(b).Encode(&header.UDPFields{SrcPort: 5000, DstPort: 6000, Length: uint16(len(b))})
	copy(b[header.UDPMinimumSize:], payload)
	return b
}

func tcpSeg(seq uint32, flags header.TCPFlags, payload string) []byte {
	b := make([]byte, header.TCPMinimumSize+len(payload))
	header.TCP(b).Encode(&header.TCPFields{SrcPort: 9000, DstPort: 40000, SeqNum: seq, AckNum: 1, DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535})
	copy(b[header.TCPMinimumSize:], payload)
	return b
}

func icmpEcho() []byte {
	b := make([]byte, header.ICMPv4MinimumSize+4)
	header.ICMPv4(b).SetType(header.ICMPv4Echo)
	copy(b[header.ICMPv4MinimumSize:], "ping")
	return b
}

const (
	udpCsum  = 6
	tcpCsum  = 16
	icmpCsum = 2
)

// corrupt flips one bit in the last byte.
func corrupt(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)-1] ^= 1
	return b
}

func send(t *testing.T, fd int, vnet []byte, frame []byte) {
	t.Helper()
	if _, err := unix.Write(fd, append(bytes.Clone(vnet), frame...)); err != nil {
		t.Fatal(err)
	}
}

// TestReceive checks what the reader passes to the stack and what it
// drops, on both paths.
func TestReceive(t *testing.T) {
	good4 := ipv4(header.UDPProtocolNumber, kernelIP, ourIP, udpSeg("hello"), udpCsum)
	good6 := ipv6(header.UDPProtocolNumber, kernelIP6, ourIP6, udpSeg("hello"), udpCsum)
	noCsum4 := ipv4(header.UDPProtocolNumber, kernelIP, ourIP, udpSeg("hello"), -1) // UDP checksum 0: none
	ping := ipv4(header.ICMPv4ProtocolNumber, kernelIP, ourIP, icmpEcho(), icmpCsum)
	tcp4 := ipv4(header.TCPProtocolNumber, kernelIP, ourIP, tcpSeg(1, header.TCPFlagAck|header.TCPFlagPsh, "data"), tcpCsum)
	badIPHdr := bytes.Clone(good4)
	badIPHdr[8] ^= 1 // TTL, covered by the header checksum only
	padded := append(bytes.Clone(good4), 0, 0, 0, 0, 0, 0)
	for _, offload := range []bool{false, true} {
		var vnet, vnetPartial []byte
		if offload {
			vnet = make([]byte, vnetHdrLen)
			vnetPartial = []byte{unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 16, 0}
		}
		d, peer := pairDevice(t, offload)
		rec := newRecorder()
		d.ep.Attach(rec)
		type frame struct {
			name  string
			vnet  []byte
			frame []byte
			ok    bool
		}
		frames := []frame{
			{"udp4", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, good4), true},
			{"udp6", vnet, ethernet(ourMAC, kernelMAC, header.IPv6ProtocolNumber, good6), true},
			{"udp4 no checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, noCsum4), true},
			{"icmp echo", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, ping), true},
			{"tcp4", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, tcp4), true},
			{"padded", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, padded), true},
			{"broadcast", vnet, ethernet(net.HardwareAddr(header.EthernetBroadcastAddress), kernelMAC, header.IPv4ProtocolNumber, good4), true},
			{"bad udp4 checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, corrupt(good4)), false},
			{"bad udp6 checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv6ProtocolNumber, corrupt(good6)), false},
			{"bad icmp checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, corrupt(ping)), false},
			{"bad tcp checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, corrupt(tcp4)), false},
			{"bad ip header checksum", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, badIPHdr), false},
			{"truncated", vnet, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, good4[:len(good4)-2]), false},
			{"another host's", vnet, ethernet(otherMAC, kernelMAC, header.IPv4ProtocolNumber, good4), false},
			{"runt", vnet, []byte{1, 2, 3}, false},
		}
		if offload {
			// A segment the kernel left for checksum offload: its TCP
			// checksum holds the pseudo-header sum only.
			partial := bytes.Clone(tcp4)
			tcp := header.TCP(partial[header.IPv4MinimumSize:])
			tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, kernelIP, ourIP, uint16(len(tcp))))
			frames = append(frames, frame{"partial checksum", vnetPartial, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, partial), true})
		}
		want := 0
		for _, f := range frames {
			send(t, peer, f.vnet, f.frame)
			if f.ok {
				want++
			}
		}
		got := rec.wait(t, want)
		i := 0
		for _, f := range frames {
			if !f.ok {
				continue
			}
			if i >= len(got) {
				break
			}
			g := got[i]
			i++
			wantData := f.frame[header.EthernetMinimumSize:]
			if f.name == "padded" {
				wantData = good4
			}
			if !bytes.Equal(g.data, wantData) {
				t.Errorf("offload=%v %s: stack got %x, want %x", offload, f.name, g.data, wantData)
			}
			wantType := tcpip.PacketHost
			if f.name == "broadcast" {
				wantType = tcpip.PacketBroadcast
			}
			if g.typ != wantType {
				t.Errorf("offload=%v %s: packet type %v, want %v", offload, f.name, g.typ, wantType)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if extra := rec.wait(t, 0); len(extra) != 0 {
			t.Errorf("offload=%v: %d frames passed that should have been dropped", offload, len(extra))
		}
		st := d.Stats()
		if int(st.RxDropped) != len(frames)-want {
			t.Errorf("offload=%v: RxDropped %d, want %d", offload, st.RxDropped, len(frames)-want)
		}
	}
}

// TestGRO checks that the plain path merges consecutive segments of a
// stream into one before the stack sees them.
func TestGRO(t *testing.T) {
	d, peer := pairDevice(t, false)
	rec := newRecorder()
	// Queue the segments before the reader starts, so that they are read
	// back to back, as they are from a busy device.
	const n, size = 10, 1000
	payload := bytes.Repeat([]byte("x"), size)
	for i := 0; i < n; i++ {
		seg := tcpSeg(uint32(1+i*size), header.TCPFlagAck, string(payload))
		send(t, peer, nil, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, ipv4(header.TCPProtocolNumber, kernelIP, ourIP, seg, tcpCsum)))
	}
	d.ep.Attach(rec)
	got := rec.wait(t, 1)
	if want := header.IPv4MinimumSize + header.TCPMinimumSize + n*size; len(got[0].data) != want {
		t.Errorf("merged packet is %d bytes, want %d", len(got[0].data), want)
	}

	// With GRO off, every frame goes up as it came, and the stack checks
	// the checksums itself.
	d, peer = pairDevice(t, false)
	d.gro, d.ep.checksums = false, false
	if d.ep.Capabilities()&gstack.CapabilityRXChecksumOffload != 0 {
		t.Error("GRO off: the stack is told not to check checksums")
	}
	for i := 0; i < n; i++ {
		seg := tcpSeg(uint32(1+i*size), header.TCPFlagAck, string(payload))
		send(t, peer, nil, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, ipv4(header.TCPProtocolNumber, kernelIP, ourIP, seg, tcpCsum)))
	}
	d.ep.Attach(rec)
	for _, p := range rec.wait(t, n) {
		if want := header.IPv4MinimumSize + header.TCPMinimumSize + size; len(p.data) != want {
			t.Errorf("GRO off: packet of %d bytes, want %d", len(p.data), want)
		}
	}
}

// TestFrameTap checks what a capture is shown (stack.FrameTap): every
// frame as it came off the device, before GRO merges it and whether or not
// it is dropped, and then for each dropped frame, why.
func TestFrameTap(t *testing.T) {
	d, peer := pairDevice(t, false)
	rec := newRecorder()
	var mu sync.Mutex
	var seen [][]byte
	dropped := map[string]string{} // frame (hex) -> reason
	d.ep.SetFrameTap(func(pkt *gstack.PacketBuffer) {
		b := pkt.ToBuffer()
		mu.Lock()
		seen = append(seen, b.Flatten())
		mu.Unlock()
		b.Release()
	}, func(pkt *gstack.PacketBuffer, reason string) {
		b := pkt.ToBuffer()
		mu.Lock()
		dropped[string(b.Flatten())] = reason
		mu.Unlock()
		b.Release()
	})
	const n, size = 8, 1000
	payload := bytes.Repeat([]byte("x"), size)
	var frames [][]byte
	for i := 0; i < n; i++ {
		seg := tcpSeg(uint32(1+i*size), header.TCPFlagAck, string(payload))
		frames = append(frames, ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, ipv4(header.TCPProtocolNumber, kernelIP, ourIP, seg, tcpCsum)))
	}
	badTCP := corrupt(frames[n-1])
	badIP := bytes.Clone(frames[0])
	badIP[header.EthernetMinimumSize+8] ^= 1 // the TTL: only the header checksum covers it
	other := ethernet(otherMAC, kernelMAC, header.IPv4ProtocolNumber, frames[0][header.EthernetMinimumSize:])
	drops := map[string]string{string(badTCP): "bad TCP checksum", string(badIP): "bad IPv4 header checksum", string(other): "not for this host"}
	all := append(slices.Clone(frames), badTCP, badIP, other)
	for _, f := range all {
		send(t, peer, nil, f)
	}
	d.ep.Attach(rec)
	got := rec.wait(t, 1)
	if want := header.IPv4MinimumSize + header.TCPMinimumSize + n*size; len(got) != 1 || len(got[0].data) != want {
		t.Fatalf("the stack got %d packets, want the %d segments merged into one of %d bytes", len(got), n, want)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		done := len(seen) == len(all) && len(dropped) == len(drops)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(all) {
		t.Fatalf("the tap saw %d frames, want %d", len(seen), len(all))
	}
	for i, f := range all {
		if !bytes.Equal(seen[i], f) {
			t.Errorf("frame %d: the tap saw %x, the device carried %x", i, seen[i], f)
		}
	}
	for f, want := range drops {
		if got := dropped[f]; got != want {
			t.Errorf("dropped frame %x...: reason %q, want %q", f[:20], got, want)
		}
	}
	if len(dropped) != len(drops) {
		t.Errorf("%d frames dropped, want %d", len(dropped), len(drops))
	}
}

// TestSend checks the frames the writer sends, with the virtio-net header
// the kernel needs on the offload path.
func TestSend(t *testing.T) {
	for _, offload := range []bool{false, true} {
		d, peer := pairDevice(t, offload)
		d.ep.Attach(newRecorder())
		payload := bytes.Repeat([]byte("y"), 3000)
		pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{
			ReserveHeaderBytes: header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize,
			Payload:            buffer.MakeWithData(payload),
		})
		tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize))
		tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 9000, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck})
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + header.TCPMinimumSize + len(payload)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: ourIP, DstAddr: kernelIP})
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.EgressRoute.LocalLinkAddress = tcpip.LinkAddress(ourMAC)
		pkt.EgressRoute.RemoteLinkAddress = tcpip.LinkAddress(kernelMAC)
		pkt.GSOOptions = gstack.GSO{Type: gstack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: 1460, L3HdrLen: header.IPv4MinimumSize, MaxSize: gsoMaxSize}
		d.ep.AddHeader(pkt)
		var pkts gstack.PacketBufferList
		pkts.PushBack(pkt)
		if n, err := d.ep.WritePackets(pkts); n != 1 || err != nil {
			t.Fatalf("WritePackets = %d, %v", n, err)
		}
		pkt.DecRef()

		buf := make([]byte, 70000)
		var n int
		deadline := time.Now().Add(5 * time.Second)
		for {
			var err error
			n, err = unix.Read(peer, buf)
			if err == nil {
				break
			}
			if err != unix.EAGAIN || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		got := buf[:n]
		hdrs := header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize
		if offload {
			want := []byte{unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, unix.VIRTIO_NET_HDR_GSO_TCPV4}
			want = binary.LittleEndian.AppendUint16(want, uint16(hdrs))
			want = binary.LittleEndian.AppendUint16(want, 1460)
			want = binary.LittleEndian.AppendUint16(want, header.EthernetMinimumSize+header.IPv4MinimumSize)
			want = binary.LittleEndian.AppendUint16(want, 16)
			if !bytes.Equal(got[:vnetHdrLen], want) {
				t.Errorf("virtio-net header % x, want % x", got[:vnetHdrLen], want)
			}
			got = got[vnetHdrLen:]
		}
		if len(got) != hdrs+len(payload) || !bytes.Equal(got[hdrs:], payload) {
			t.Errorf("offload=%v: frame of %d bytes, want %d", offload, len(got), hdrs+len(payload))
		}
		eth := header.Ethernet(got)
		if eth.SourceAddress() != tcpip.LinkAddress(ourMAC) || eth.DestinationAddress() != tcpip.LinkAddress(kernelMAC) || eth.Type() != header.IPv4ProtocolNumber {
			t.Errorf("offload=%v: Ethernet header % x", offload, got[:header.EthernetMinimumSize])
		}
		if st := d.Stats(); st.TxFrames != 1 || st.TxBytes != uint64(hdrs+len(payload)) {
			t.Errorf("offload=%v: stats %+v", offload, st)
		}
	}
}

// TestAllocs checks that a frame in each direction costs no allocations
// once the pools are warm.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector (sync.Pool drops items at random)")
	}
	d, peer := pairDevice(t, false)
	got := make(chan struct{}, 1)
	d.ep.Attach(counter{got})
	frame := ethernet(ourMAC, kernelMAC, header.IPv4ProtocolNumber, ipv4(header.UDPProtocolNumber, kernelIP, ourIP, udpSeg("hello"), udpCsum))
	rx := testing.AllocsPerRun(2000, func() {
		unix.Write(peer, frame)
		<-got
	})
	if rx > 0.1 {
		t.Errorf("%.2f allocations per received frame", rx)
	}

	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{
		ReserveHeaderBytes: header.EthernetMinimumSize,
		Payload:            buffer.MakeWithData(frame[header.EthernetMinimumSize:]),
	})
	defer pkt.DecRef()
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	d.ep.AddHeader(pkt)
	var pkts gstack.PacketBufferList
	pkts.PushBack(pkt)
	buf := make([]byte, 2048)
	// AllocsPerRun runs with GOMAXPROCS=1: wait in poll(2), which lets
	// the writer run, rather than spin.
	pfd := []unix.PollFd{{Fd: int32(peer), Events: unix.POLLIN}}
	tx := testing.AllocsPerRun(2000, func() {
		d.ep.WritePackets(pkts)
		unix.Poll(pfd, 5000)
		unix.Read(peer, buf)
	})
	if tx > 0.1 {
		t.Errorf("%.2f allocations per sent frame", tx)
	}
}

type counter struct{ got chan struct{} }

func (c counter) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {
	c.got <- struct{}{}
}
func (counter) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}

// TestTxQueue hammers the queue from several senders; a lost wake-up of
// the writer would hang it.
func TestTxQueue(t *testing.T) {
	d, peer := pairDevice(t, false)
	d.ep.Attach(newRecorder())
	const senders, each = 4, 5000
	drained := make(chan int)
	go func() {
		buf := make([]byte, 2048)
		n := 0
		for n < senders*each {
			if _, err := unix.Read(peer, buf); err == nil {
				n++
			} else if err != unix.EAGAIN {
				break
			}
		}
		drained <- n
	}()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{ReserveHeaderBytes: header.EthernetMinimumSize, Payload: buffer.MakeWithData([]byte("z"))})
			defer pkt.DecRef()
			d.ep.AddHeader(pkt)
			for i := 0; i < each; i++ {
				var pkts gstack.PacketBufferList
				pkts.PushBack(pkt)
				d.ep.WritePackets(pkts)
			}
		}()
	}
	wg.Wait()
	select {
	case n := <-drained:
		if n != senders*each {
			t.Errorf("%d frames arrived, want %d", n, senders*each)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("writer stuck; stats %+v", d.Stats())
	}
}

// TestCloseStopsGoroutines closes an attached endpoint with nothing to
// read: the reader must not stay blocked.
func TestCloseStopsGoroutines(t *testing.T) {
	d, _ := pairDevice(t, true)
	d.ep.Attach(newRecorder())
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := d.Err(); err != nil {
		t.Errorf("Err() = %v after a clean Close", err)
	}
	// Writes after Close are refused, not queued.
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{ReserveHeaderBytes: header.EthernetMinimumSize})
	defer pkt.DecRef()
	var pkts gstack.PacketBufferList
	pkts.PushBack(pkt)
	if n, err := d.ep.WritePackets(pkts); n != 0 || err == nil {
		t.Errorf("WritePackets after Close = %d, %v", n, err)
	}
}
