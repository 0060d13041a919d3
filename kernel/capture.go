package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/packet"
	"github.com/nsftp/nsftp/trace"
)

// capture reads every frame of the run's connections from a packet
// socket (AF_PACKET, ETH_P_ALL): in the run's namespace, its loopback;
// else every interface, with a BPF filter that lets only TCP through and
// the run's connections picked out here.
type capture struct {
	w     *Watch
	fd    int
	src   *trace.Source // nil: no segment events
	rec   *trace.Recorder
	pcap  *packet.PCAPWriter
	loops map[int]bool // loopback interfaces: each frame is seen going out and coming in
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error
	drops int       // frames the packet socket dropped
	last  time.Time // the last frame's time

	mark *watermark // every frame captured before it was recorded

	// top is the highest sequence number each way of each connection
	// (source, destination) in the frames read: a segment below it
	// resends sequence space. The packet socket sees a frame as its
	// sender's kernel hands it to the device, so for the run's own
	// sockets this is the sender's record of what it sent. Only the
	// reading goroutine touches it.
	top map[[2]netip.AddrPort]uint32
}

func startCapture(w *Watch, cfg WatchConfig) (*capture, error) {
	c := &capture{w: w, fd: -1, rec: cfg.Recorder, loops: map[int]bool{}, stop: make(chan struct{}), done: make(chan struct{}),
		top: map[[2]netip.AddrPort]uint32{}}
	err := cfg.NetNS.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			if errors.Is(err, unix.EPERM) {
				return errors.New("a packet socket needs CAP_NET_RAW")
			}
			return fmt.Errorf("opening a packet socket: %w", err)
		}
		c.fd = fd
		if err := attachTCPFilter(fd); err != nil {
			return fmt.Errorf("filtering the packet socket: %w", err)
		}
		// Room for bursts: loopback hands the tap 64 KB segments, and the
		// default buffer holds a handful of them.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("packet socket timestamps: %w", err)
		}
		ifaces, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifaces {
			if ifc.Flags&net.FlagLoopback != 0 {
				c.loops[ifc.Index] = true
			}
		}
		if cfg.NetNS != nil {
			// The run's namespace has its loopback and nothing else.
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				return err
			}
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index})
		}
		return nil
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, err
	}
	if cfg.PCAP != nil {
		if c.pcap, err = packet.NewPCAPWriter(cfg.PCAP, packet.LinkEthernet, 0); err != nil {
			unix.Close(c.fd)
			return nil, err
		}
	}
	if cfg.Recorder != nil && cfg.Segments {
		c.mark = newWatermark(cfg.Recorder.Now())
		c.src = cfg.Recorder.NewSource(func(upTo time.Time) { c.mark.wait(upTo, 200*time.Millisecond) })
	}
	go c.read()
	return c, nil
}

// captureMargin is how far behind its last read the capture promises to
// have seen every frame: a frame's timestamp is taken on its way out,
// milliseconds before it reaches the packet socket when TCP sends a
// burst (measured on loopback: up to 4ms on a loaded machine).
const captureMargin = 25 * time.Millisecond

// captureBuffer is the packet socket's receive buffer.
const captureBuffer = 32 << 20

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// attachTCPFilter lets only IPv4 and IPv6 TCP in Ethernet frames reach
// the socket (the kernel's loopback frames have an Ethernet header too).
func attachTCPFilter(fd int) error {
	prog := []unix.SockFilter{
		{Code: 0x28, K: 12},                   // ldh [12]: EtherType
		{Code: 0x15, Jt: 0, Jf: 2, K: 0x0800}, // IPv4?
		{Code: 0x30, K: 23},                   // ldb [23]: protocol
		{Code: 0x15, Jt: 3, Jf: 4, K: 6},      // TCP: accept
		{Code: 0x15, Jt: 0, Jf: 3, K: 0x86dd}, // IPv6?
		{Code: 0x30, K: 20},                   // ldb [20]: next header
		{Code: 0x15, Jt: 0, Jf: 1, K: 6},      // TCP?
		{Code: 0x06, K: 0xffffffff},           // accept
		{Code: 0x06, K: 0},                    // reject
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// read reads frames until stopped, and says how far it has read.
func (c *capture) read() {
	defer close(c.done)
	buf := make([]byte, packet.SnapLen)
	oob := make([]byte, 128)
	for {
		stopping := false
		select {
		case <-c.stop:
			stopping = true
		default:
		}
		if !stopping {
			unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}, 10)
		}
		for {
			var now time.Time
			if c.rec != nil {
				now = c.rec.Now()
			}
			n, oobn, flags, from, err := unix.Recvmsg(c.fd, buf, oob, unix.MSG_TRUNC|unix.MSG_DONTWAIT)
			if err != nil {
				if c.src != nil && (err == unix.EAGAIN || err == unix.EINTR) {
					c.src.Advance(now.Add(-captureMargin))
					c.mark.set(now.Add(-captureMargin))
				}
				break
			}
			size := n
			if flags&unix.MSG_TRUNC != 0 {
				n = min(n, len(buf))
			}
			c.frame(buf[:n], size, from, stamp(oob[:oobn]))
		}
		if stopping {
			return
		}
	}
}

// stamp reads the kernel's receive timestamp (SO_TIMESTAMPNS).
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// frame records one frame if it is one of the run's connections': as
// the sending socket's host sent it and as the receiving socket's host
// received it, when they are the run's.
func (c *capture) frame(b []byte, size int, from unix.Sockaddr, at time.Time) {
	ll, ok := from.(*unix.SockaddrLinklayer)
	if !ok || (ll.Hatype != unix.ARPHRD_ETHER && ll.Hatype != unix.ARPHRD_LOOPBACK) {
		return
	}
	if c.loops[ll.Ifindex] && ll.Pkttype != unix.PACKET_OUTGOING {
		return // the same frame, coming back in on the loopback
	}
	seg := packet.Decode(b, size, packet.LinkEthernet)
	if seg.Proto != "tcp" || !seg.Src.IsValid() {
		return
	}
	synOnly := seg.Flags&(trace.SYN|trace.ACK) == trace.SYN
	w := c.w
	w.mu.Lock()
	var out, in *sockRef
	if synOnly {
		out = w.byTuple[tuple{seg.Src, seg.Dst}]
		if out == nil {
			out = w.connectingLocked(seg.Src, seg.Dst)
		}
	} else {
		out = w.findLocked(seg.Src, seg.Dst, false)
	}
	in = w.findLocked(seg.Dst, seg.Src, synOnly)
	w.mu.Unlock()
	if out == nil && in == nil {
		return
	}
	if c.pcap != nil {
		c.pcap.WriteFrame(at, size, b)
	}
	if c.src == nil {
		return
	}
	c.markRetransmit(&seg)
	// The socket's queue has the frames in the order they crossed the
	// link; their timestamps need not be (TCP stamps an outgoing segment
	// with its planned departure). The order wins.
	t := at.Round(0)
	if t.Before(c.last) {
		t = c.last
	}
	c.last = t
	for _, r := range []struct {
		ref *sockRef
		dir trace.Direction
	}{{out, trace.Out}, {in, trace.In}} {
		if r.ref == nil {
			continue
		}
		s := seg
		s.Dir, s.Socket, s.Label = r.dir, r.ref.id, r.ref.label
		e := r.ref.event(trace.Event{Kind: trace.KindSegment, Segment: &s})
		e.Time = t
		c.src.Record(e)
	}
}

// markRetransmit marks a segment that resends sequence space: it starts
// below the highest sequence number sent that way before. A SYN or a FIN
// occupies one (RFC 793 section 3.3).
func (c *capture) markRetransmit(seg *trace.Segment) {
	space := uint32(seg.Len)
	if seg.Flags.Has(trace.SYN) {
		space++
	}
	if seg.Flags.Has(trace.FIN) {
		space++
	}
	if space == 0 {
		return
	}
	k := [2]netip.AddrPort{seg.Src, seg.Dst}
	top, ok := c.top[k]
	if seg.Flags.Has(trace.SYN) && ok && top != seg.Seq+1 {
		ok = false // a new connection reusing the address pair
	}
	seg.Retransmit = ok && int32(top-seg.Seq) > 0
	if end := seg.Seq + space; !ok || int32(end-top) > 0 {
		c.top[k] = end
	}
}

// close stops the reader and closes the socket; the pcap's first write
// error, if any, is returned.
func (c *capture) close() error {
	c.once.Do(func() {
		if c.rec != nil && c.src != nil {
			// Read what has arrived up to now.
			time.Sleep(captureMargin + 10*time.Millisecond)
		}
		close(c.stop)
		<-c.done
		if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops > 0 {
			c.drops = int(st.Drops)
			if c.src != nil {
				c.src.Record(trace.Event{Layer: trace.LayerKernel, Kind: trace.KindNote, Time: c.rec.Now(),
					Message: &trace.Message{Text: fmt.Sprintf("the packet socket dropped %d frames: segments are missing from the trace", st.Drops)}})
			}
		}
		if c.src != nil {
			c.src.Close()
		}
		unix.Close(c.fd)
		c.err = c.pcap.Err()
	})
	return c.err
}
