package stack

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Kind says what an Event records.
type Kind string

// The kinds of event a host emits.
const (
	KindCall    Kind = "call"    // a socket call completed
	KindSegment Kind = "segment" // a frame crossed the host's link (capture on)
)

// Event is one socket call or one frame on the link, as plain data: it holds
// no references into the stack and may be kept, copied and encoded freely.
type Event struct {
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Kind    Kind      `json:"kind"`
	Call    *Call     `json:"call,omitempty"`
	Segment *Segment  `json:"segment,omitempty"`
}

// Call describes one BSD socket call on a Socket: what a program asked for,
// what the 2005 article's in-kernel client called to do it, the Linux kernel
// function behind that call today, and the netstack call that does it here.
type Call struct {
	Socket int    `json:"socket"`          // the socket's number on its host, like a file descriptor
	Label  string `json:"label,omitempty"` // the socket's role, e.g. "control" or "data"
	Op     Op     `json:"op"`

	Article  string `json:"article"`  // e.g. "sock->ops->bind"
	Kernel   string `json:"kernel"`   // e.g. "inet_bind"
	Netstack string `json:"netstack"` // e.g. "tcp.endpoint.Bind"

	Local  string `json:"local,omitempty"`  // local address after the call
	Remote string `json:"remote,omitempty"` // remote address after the call
	Bytes  int    `json:"bytes,omitempty"`  // bytes queued (send) or copied out (recv)

	StateBefore string `json:"state_before,omitempty"` // TCP state, e.g. "SYN-SENT"
	StateAfter  string `json:"state_after,omitempty"`

	// NewSocket is the accepted connection's socket number (accept only).
	NewSocket int `json:"new_socket,omitempty"`

	Duration time.Duration `json:"duration_ns"`
	Err      string        `json:"err,omitempty"`
}

// Op is a BSD socket call.
type Op string

// The socket calls a Socket traces.
const (
	OpSocket      Op = "socket"
	OpBind        Op = "bind"
	OpListen      Op = "listen"
	OpAccept      Op = "accept"
	OpConnect     Op = "connect"
	OpSend        Op = "send"
	OpRecv        Op = "recv"
	OpShutdown    Op = "shutdown"
	OpClose       Op = "close"
	OpGetsockname Op = "getsockname"
	OpGetpeername Op = "getpeername"
)

// Segment describes one frame on a host's link. For TCP it is one segment;
// other frames (ARP, ICMP, NDP) carry their protocol and a summary in Info.
type Segment struct {
	Dir    string `json:"dir"`   // "out" (sent by this host) or "in"
	Proto  string `json:"proto"` // "tcp", "arp", "icmp", "icmpv6", ...
	Src    string `json:"src"`   // address, with port for TCP
	Dst    string `json:"dst"`
	Flags  string `json:"flags,omitempty"` // TCP flags, e.g. "SYN|ACK"
	Seq    uint32 `json:"seq,omitempty"`
	Ack    uint32 `json:"ack,omitempty"`
	Window uint16 `json:"window,omitempty"` // the window field as sent, before scaling
	// Options summarises a SYN's options ("mss=1460,sackOK,ts,wscale=8");
	// WindowScale is the shift it announces, -1 when absent. Both are
	// set on SYNs only; the window of later segments is Window shifted by
	// the scale the receiver of the SYN was told.
	Options     string `json:"options,omitempty"`
	WindowScale int    `json:"window_scale,omitempty"`
	Len         int    `json:"len"`            // TCP payload bytes; frame length for others
	Frame       int    `json:"frame"`          // frame length on the wire, link header included
	Info        string `json:"info,omitempty"` // non-TCP frames: what the frame says
	// Chain is, for outgoing frames when CaptureConfig.Chains is set, the
	// netstack functions that produced the frame, outermost first, e.g.
	// ["tcp.(*Endpoint).Write", ..., "ipv4.(*endpoint).WritePacket",
	// "stack.(*nic).WritePacket"]: the 2005 article's Figure 3, for
	// netstack, read off the real call stack.
	Chain []string `json:"chain,omitempty"`
}

// Observer receives events. It is called synchronously on the goroutine
// that made the call or moved the frame, so it must be quick and must not
// call back into the socket that produced the event.
type Observer func(Event)

// Gate is called before every socket call with the call about to run: its
// arguments filled in (the address of a bind or connect, the bytes a send
// is given), its results empty. It may block, as a step-mode prompt does; if it
// returns an error the call does not run and fails with that error.
type Gate func(ctx context.Context, c Call) error

// JSONLines returns an Observer that writes each event to w as one line of
// JSON. It is safe for concurrent use; the first write error is returned by
// the second result's call and later events are dropped.
func JSONLines(w io.Writer) (Observer, func() error) {
	var (
		mu  sync.Mutex
		err error
	)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // "sock->ops->bind" stays readable
	obs := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			err = enc.Encode(e)
		}
	}
	return obs, func() error {
		mu.Lock()
		defer mu.Unlock()
		return err
	}
}
