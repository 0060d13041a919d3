package kernel

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bottleneck is a link of a given rate with a tail-drop queue, as a run's
// namespace makes its loopback with a tbf qdisc: the same bottleneck
// nsftp's virtual wire models (stack.Path's Rate and Queue), on the
// kernel's TCP. This kernel has tbf and no netem: delay, jitter and loss
// have no counterpart here.
type Bottleneck struct {
	// Rate is in bits per second, counting whole frames (Ethernet header
	// included), as the wire counts them.
	Rate int64
	// Queue is what the queue holds, in bytes (tbf's limit).
	Queue int
	// Burst is the token bucket, in bytes: what may leave back to back
	// after the link was idle.
	Burst int
}

// ethernetHeader is the link header loopback's frames carry, and tbf
// counts, as netstack's wire counts its frames' (14 bytes).
const ethernetHeader = 14

// defaultQueueFrames is netstack's wire's queue when none is given.
const defaultQueueFrames = 1000

// BottleneckFor is the loopback's bottleneck for the wire's: rate in bits
// per second, a queue of frames full-size frames (0: the wire's 1000) or,
// if queueBytes is set, of that many bytes, at the given MTU.
//
// tbf's limit is in bytes, the wire's queue in frames: the limit holds
// frames full-size frames (MTU plus the Ethernet header). The two differ
// for small frames (an ACK takes a slot of the wire's queue, 66 bytes of
// tbf's), which a bulk transfer's queue hardly holds.
//
// The bucket is 10 ms at the rate, at least a frame, and at most half the
// queue. The wire's bottleneck has none (it sends each frame when the one
// before has left); tbf needs one, and the tokens a late timer would have
// earned are lost beyond it: with one frame's bucket, 16 MiB at 20 Mbit/s
// over loopback moved at 17.5 Mbit/s, with 16 frames' at 18.6-18.9
// (loaded with three busy loops on two cores: 16.9-17.7 and 18.5-18.8).
// Over half the queue, loopback's 64 KiB segments (GSO) pass tbf whole
// rather than cut into frames, and one larger than the queue is dropped
// whole.
func BottleneckFor(rate int64, frames, queueBytes, mtu int) Bottleneck {
	frame := mtu + ethernetHeader
	if frames <= 0 {
		frames = defaultQueueFrames
	}
	b := Bottleneck{Rate: rate, Queue: frames * frame}
	if queueBytes > 0 {
		b.Queue = queueBytes
	}
	b.Burst = int(float64(rate) / 8 * (10 * time.Millisecond).Seconds())
	b.Burst = max(min(b.Burst, b.Queue/2), frame)
	return b
}

// String says what the bottleneck is, in tc's words.
func (b Bottleneck) String() string {
	return fmt.Sprintf("tbf rate %dbit burst %db limit %db", b.Rate, b.Burst, b.Queue)
}

// Shape makes the namespace's loopback the bottleneck b: a tbf qdisc, its
// root. Both directions of a connection over loopback leave through it:
// a download's ACKs share the rate with its data (about 2% of it), where
// the wire has a queue each way.
func (ns *NetNS) Shape(b Bottleneck) error {
	if b.Rate <= 0 || b.Queue <= 0 || b.Burst <= 0 {
		return fmt.Errorf("kernel: shaping loopback: %s is not a bottleneck", b)
	}
	err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		rate := uint64(b.Rate / 8) // tc's rates are bytes per second
		q := &netlink.Tbf{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
			Rate:       rate,
			Limit:      uint32(b.Queue),
			Buffer:     netlink.Xmittime(rate, uint32(b.Burst)),
		}
		return netlink.QdiscReplace(q)
	})
	if err != nil {
		if err == unix.EPERM {
			return fmt.Errorf("kernel: shaping loopback (%s): needs CAP_NET_ADMIN in the run's namespace", b)
		}
		return fmt.Errorf("kernel: shaping loopback (%s): %w", b, err)
	}
	return nil
}

// QueueDrops is how many packets the loopback's qdisc dropped (a full
// queue), and how many it sent; 0, 0 when unshaped or unknown.
func (ns *NetNS) QueueDrops() (dropped, sent uint64) {
	ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		qs, err := netlink.QdiscList(lo)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if t, ok := q.(*netlink.Tbf); ok && t.Attrs().Statistics != nil {
				if s := t.Attrs().Statistics; s.Queue != nil && s.Basic != nil {
					dropped, sent = uint64(s.Queue.Drops), uint64(s.Basic.Packets)
				}
			}
		}
		return nil
	})
	return dropped, sent
}
