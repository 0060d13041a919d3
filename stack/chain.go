package stack

import (
	"runtime"
	"strings"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// chainCache turns call stacks into the netstack functions they pass
// through. Stacks repeat (every data segment of a transfer is sent the
// same way), so symbolised chains are cached by their program counters.
//
// It also keeps, for each IP packet on its way out, the call stack of the
// goroutine that handed it to IP (senderNote, an iptables Output hook
// that runs there): a packet that has to wait for link resolution (ARP,
// NDP) leaves later from the goroutine that took the answer, whose stack
// says nothing of the connect() or send() that made it.
type chainCache struct {
	mu    sync.Mutex
	cache map[string][]string

	senderMu sync.Mutex
	senders  map[string][]uintptr // by the packet's IP and transport headers
}

func newChainCache() *chainCache {
	return &chainCache{cache: map[string][]string{}, senders: map[string][]uintptr{}}
}

const tcpipPrefix = "gvisor.dev/gvisor/pkg/tcpip/"

// here returns the chain of the calling goroutine's stack, skipping skip
// frames above the caller.
func (cc *chainCache) here(skip int) []string {
	var pcs [64]uintptr
	n := runtime.Callers(skip+1, pcs[:])
	return cc.chainOf(pcs[:n])
}

// chainOf returns the chain of a call stack.
func (cc *chainCache) chainOf(pcs []uintptr) []string {
	key := pcKey(pcs)
	cc.mu.Lock()
	chain, ok := cc.cache[key]
	cc.mu.Unlock()
	if ok {
		return chain
	}
	chain = symbolize(pcs)
	cc.mu.Lock()
	cc.cache[key] = chain
	cc.mu.Unlock()
	return chain
}

// maxSenders bounds the stacks kept for packets not yet written: a packet
// dropped on its way (a neighbour that never answers) leaves its stack
// behind.
const maxSenders = 4096

// packetKey names a packet by its IP and transport headers, which are
// complete when it is handed to IP: netstack queues a copy of a packet
// that waits for link resolution, so its address cannot name it.
func packetKey(pkt *gstack.PacketBuffer) string {
	return string(pkt.NetworkHeader().Slice()) + string(pkt.TransportHeader().Slice())
}

// noteSender keeps the calling goroutine's stack for pkt.
func (cc *chainCache) noteSender(pkt *gstack.PacketBuffer) {
	var pcs [64]uintptr
	n := runtime.Callers(3, pcs[:])
	key := packetKey(pkt)
	cc.senderMu.Lock()
	if len(cc.senders) >= maxSenders {
		clear(cc.senders)
	}
	cc.senders[key] = append([]uintptr(nil), pcs[:n]...)
	cc.senderMu.Unlock()
}

// forPacket is the chain of a packet the link is writing, whose writer's
// own stack gave chain: the sender's stack, as noted when the packet was
// handed to IP, for one that waited for link resolution; chain for any
// other.
func (cc *chainCache) forPacket(pkt *gstack.PacketBuffer, chain []string) []string {
	if pkt.NetworkProtocolNumber != header.IPv4ProtocolNumber && pkt.NetworkProtocolNumber != header.IPv6ProtocolNumber {
		return chain
	}
	key := packetKey(pkt)
	cc.senderMu.Lock()
	pcs := cc.senders[key]
	delete(cc.senders, key)
	cc.senderMu.Unlock()
	i := waitedAt(chain)
	if pcs == nil || i < 0 {
		return chain
	}
	resolver := "ARP"
	if pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber {
		resolver = "NDP"
	}
	sender := cc.chainOf(pcs)
	out := make([]string, 0, len(sender)+1+len(chain)-i)
	out = append(out, sender...)
	out = append(out, "(waited for "+resolver+")")
	return append(out, chain[i:]...)
}

// waitedAt finds where a chain comes out of the link resolution queue:
// the index of the first function after it, or -1 when the packet did not
// wait.
func waitedAt(chain []string) int {
	last := -1
	for i, name := range chain {
		if strings.Contains(name, "packetsPendingLinkResolution") {
			last = i
		}
	}
	if last < 0 {
		return -1
	}
	return last + 1
}

// senderNote is an iptables match that matches nothing: it runs on the
// goroutine that hands each packet to IP (netstack's Output hook, before
// link resolution can queue it), and notes that goroutine's stack.
type senderNote struct{ cc *chainCache }

// Match implements stack.Matcher.
func (n senderNote) Match(_ gstack.Hook, pkt *gstack.PacketBuffer, _, _ string) (bool, bool) {
	n.cc.noteSender(pkt)
	return false, false
}

// noteSenders puts senderNote first in the filter table's Output chain,
// for IPv4 and IPv6. It turns on netstack's iptables (and its connection
// tracking) for the host: a cost paid only with Explain.
func noteSenders(s *gstack.Stack, cc *chainCache) {
	it := s.IPTables()
	for _, v6 := range []bool{false, true} {
		t := it.GetTable(gstack.FilterID, v6)
		at := t.BuiltinChains[gstack.Output]
		if at == gstack.HookUnset {
			continue
		}
		filter, proto := gstack.EmptyFilter4(), header.IPv4ProtocolNumber
		if v6 {
			filter, proto = gstack.EmptyFilter6(), header.IPv6ProtocolNumber
		}
		rule := gstack.Rule{Filter: filter, Matchers: []gstack.Matcher{senderNote{cc}}, Target: &gstack.AcceptTarget{NetworkProtocol: proto}}
		t.Rules = append(t.Rules[:at:at], append([]gstack.Rule{rule}, t.Rules[at:]...)...)
		for h := range t.BuiltinChains {
			if i := t.BuiltinChains[h]; i != gstack.HookUnset && i > at {
				t.BuiltinChains[h] = i + 1
			}
			if i := t.Underflows[h]; i != gstack.HookUnset && i >= at {
				t.Underflows[h] = i + 1
			}
		}
		it.ReplaceTable(gstack.FilterID, t, v6)
	}
}

func pcKey(pcs []uintptr) string {
	b := make([]byte, 0, len(pcs)*8)
	for _, pc := range pcs {
		for i := 0; i < 8; i++ {
			b = append(b, byte(pc>>(8*i)))
		}
	}
	return string(b)
}

// symbolize keeps the frames that tell how a segment came to be: the
// netstack's transport, network, stack and link functions, and the
// nsftp socket call that started it. Locks, buffers, checksums, iptables
// and the runtime are left out, and so is everything outside the host
// that sent the frame: on the virtual wire a frame is handed to the
// receiving stack on the sender's goroutine, so an answer sent at once
// (an ARP reply, an ACK) has the sender's functions below its own, and
// those are cut at the wire. The result is outermost first.
func symbolize(pcs []uintptr) []string {
	frames := runtime.CallersFrames(pcs)
	var chain []string
	for {
		f, more := frames.Next()
		if crossesWire(f.Function) {
			break
		}
		if name, ok := chainName(f.Function); ok && (len(chain) == 0 || chain[len(chain)-1] != name) {
			chain = append(chain, name)
		}
		if !more {
			break
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// crossesWire reports whether fn hands a frame from the wire to a host:
// what is below it on the stack is another host's.
func crossesWire(fn string) bool {
	switch fn {
	case "github.com/nsftp/nsftp/stack.(*Port).deliver",
		"github.com/nsftp/nsftp/stack.(*Port).deliverPacket",
		"github.com/nsftp/nsftp/stack.(*Port).merge":
		return true
	}
	return false
}

func chainName(fn string) (string, bool) {
	switch {
	case strings.HasPrefix(fn, "github.com/nsftp/nsftp/stack.(*Socket)."):
		name := strings.TrimPrefix(fn, "github.com/nsftp/nsftp/stack.")
		// The exported call, not its unexported helper.
		if i := strings.LastIndexByte(name, '.'); i >= 0 && name[i+1] >= 'a' && name[i+1] <= 'z' {
			return "", false
		}
		return "nsftp " + name, true
	case strings.HasPrefix(fn, tcpipPrefix):
		name := strings.TrimPrefix(fn, tcpipPrefix)
		for _, layer := range []string{"transport/", "network/", "stack.", "link/"} {
			if strings.HasPrefix(name, layer) {
				name = strings.TrimPrefix(name, "transport/")
				name = strings.TrimPrefix(name, "network/")
				name = strings.TrimPrefix(name, "link/")
				if strings.Contains(name, "Mutex") || strings.Contains(name, ".func") ||
					strings.Contains(name, "IPTables") || strings.HasPrefix(name, "stack.check") ||
					strings.HasPrefix(name, "stack.(*PacketBuffer)") || strings.HasPrefix(name, "stack.PacketBufferList") {
					return "", false
				}
				return name, true
			}
		}
	}
	return "", false
}
