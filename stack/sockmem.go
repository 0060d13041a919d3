package stack

import (
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// sockMem bounds what a host's TCP connections together may hold in their
// buffers (HostConfig.SocketMemory), as Linux's net.ipv4.tcp_mem bounds
// the kernel's: when there are too many connections for each to have the
// default buffers within the bound, each gets an equal share, for sending
// and for receiving. A connection's data then waits in the application,
// not in the stack: ten thousand clients fetching 100 kB at once are served
// more slowly, not refused, and the server's memory stays bounded.
//
// Linux moderates each socket's buffers under pressure
// (sk_stream_moderate_sndbuf) and makes senders wait for memory; netstack
// has no global accounting and tells no one how much a socket has queued,
// so the share is set as the sockets' SO_SNDBUF and SO_RCVBUF, which
// netstack enforces: the sum of the limits is the bound.
//
// A connection counts from connect or accept until its data is all
// acknowledged after close (FIN-WAIT-2, TIME-WAIT or CLOSED): a RETR's
// data connection closes with its file still queued.
type sockMem struct {
	limit       int // bytes; the bound on the sum of the shares, each way
	sendDefault int // the buffers a connection has without a share
	recvDefault int

	mu       sync.Mutex // guards the fields below
	open     map[*Socket]struct{}
	closing  map[*Socket]struct{} // closed, data still queued perhaps
	share    int                  // bytes each way per connection; 0: the defaults
	sweeping bool                 // a goroutine sweeps closing
	stopped  bool
}

// minShare is the smallest buffer a connection is given, netstack's
// minimum: below it, past about limit/minShare connections, the bound gives
// way, as Linux's SOCK_MIN_SNDBUF makes its own.
const minShare = 4 << 10

func newSockMem(limit, sendDefault, recvDefault int) *sockMem {
	return &sockMem{limit: limit, sendDefault: sendDefault, recvDefault: recvDefault,
		open: map[*Socket]struct{}{}, closing: map[*Socket]struct{}{}}
}

// add counts a connected socket and gives it the share there is now.
func (m *sockMem) add(s *Socket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.open[s] = struct{}{}
	if !m.rebalanceLocked() && m.share > 0 {
		m.apply(s, m.share)
	}
}

// closed moves a socket Close released to the closing set, where it
// counts until its data has gone.
func (m *sockMem) closed(s *Socket) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.open[s]; !ok || m.stopped {
		return
	}
	delete(m.open, s)
	m.closing[s] = struct{}{}
	if !m.sweeping {
		m.sweeping = true
		go m.sweep()
	}
}

// sweepEvery is how often the closing connections are looked at.
const sweepEvery = 50 * time.Millisecond

// sweep forgets the closing connections whose data has all been
// acknowledged, until none are left.
func (m *sockMem) sweep() {
	for {
		time.Sleep(sweepEvery)
		m.mu.Lock()
		for s := range m.closing {
			if drained(s) {
				delete(m.closing, s)
			}
		}
		m.rebalanceLocked()
		if len(m.closing) == 0 || m.stopped {
			m.sweeping = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
	}
}

// drained reports whether a closed connection holds no data to send: its
// FIN has been acknowledged, or it has ended.
func drained(s *Socket) bool {
	ep, ok := s.ep.(*tcp.Endpoint)
	if !ok {
		return true
	}
	switch ep.EndpointState() {
	case tcp.StateFinWait1, tcp.StateClosing, tcp.StateLastAck, tcp.StateEstablished, tcp.StateCloseWait:
		return false
	}
	return true
}

// stop forgets every connection: the host is closing.
func (m *sockMem) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	clear(m.open)
	clear(m.closing)
}

// rebalanceLocked works out the share for the connections counted now and,
// when the one applied is too large for the bound, or less than half of
// what the bound allows, gives every open connection a new one, a quarter
// below what the bound allows (so that the next few connections fit
// without another round); it reports whether it did. Between rounds the
// share applied is never above the bound's: the sum of the buffers stays
// within it.
func (m *sockMem) rebalanceLocked() bool {
	// Each connection has two buffers.
	n := 2 * (len(m.open) + len(m.closing))
	exact := 0 // the defaults fit
	if n > 0 && m.limit/n < max(m.sendDefault, m.recvDefault) {
		exact = max(m.limit/n, minShare)
	}
	var share int
	switch {
	case exact == 0 && m.share == 0:
		return false
	case exact == 0:
		share = 0
	case m.share == 0, exact < m.share, exact >= 2*m.share:
		share = max(exact*3/4, minShare)
	default:
		return false
	}
	m.share = share
	for s := range m.open {
		m.apply(s, share)
	}
	return true
}

// apply gives s buffers of share bytes each way, or the defaults for 0.
// Shrinking a buffer below what it holds drops nothing: writers wait until
// acknowledgements bring it under, and the receive window closes as data
// is read.
func (m *sockMem) apply(s *Socket, share int) {
	send, recv := share, share
	if share == 0 {
		send, recv = m.sendDefault, m.recvDefault
	}
	opts := s.ep.SocketOptions()
	opts.SetSendBufferSize(int64(min(send, m.sendDefault)), true)
	opts.SetReceiveBufferSize(int64(min(recv, m.recvDefault)), true)
}
