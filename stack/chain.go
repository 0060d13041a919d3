package stack

import (
	"runtime"
	"strings"
	"sync"
)

// chainCache turns call stacks into the netstack functions they pass
// through. Stacks repeat (every data segment of a transfer is sent the
// same way), so symbolised chains are cached by their program counters.
type chainCache struct {
	mu    sync.Mutex
	cache map[string][]string
}

func newChainCache() *chainCache {
	return &chainCache{cache: map[string][]string{}}
}

const tcpipPrefix = "gvisor.dev/gvisor/pkg/tcpip/"

// here returns the chain of the calling goroutine's stack, skipping skip
// frames above the caller.
func (cc *chainCache) here(skip int) []string {
	var pcs [64]uintptr
	n := runtime.Callers(skip+1, pcs[:])
	key := pcKey(pcs[:n])
	cc.mu.Lock()
	chain, ok := cc.cache[key]
	cc.mu.Unlock()
	if ok {
		return chain
	}
	chain = symbolize(pcs[:n])
	cc.mu.Lock()
	cc.cache[key] = chain
	cc.mu.Unlock()
	return chain
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
// nsftp socket call that started it. Locks, buffers, checksums and the
// runtime are left out. The result is outermost first.
func symbolize(pcs []uintptr) []string {
	frames := runtime.CallersFrames(pcs)
	var chain []string
	for {
		f, more := frames.Next()
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
					strings.HasPrefix(name, "stack.(*PacketBuffer)") || strings.HasPrefix(name, "stack.PacketBufferList") {
					return "", false
				}
				return name, true
			}
		}
	}
	return "", false
}
