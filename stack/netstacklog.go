package stack

import (
	"os"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/log"
)

var quietOnce sync.Once

// quietNetstack keeps netstack's own log lines off the program's stderr:
// gVisor writes glog-style warnings ("W1201 ... dispatcher.go:307] port is
// in use") that a user must never see raw; what they are about shows in
// the trace as what happened. NSFTP_NETSTACK_LOG=1 lets them through, for
// debugging netstack itself.
func quietNetstack() {
	quietOnce.Do(func() {
		if os.Getenv("NSFTP_NETSTACK_LOG") == "" {
			log.SetTarget(discard{})
		}
	})
}

// discard is a log target that drops everything.
type discard struct{}

// Emit implements log.Emitter.
func (discard) Emit(int, log.Level, time.Time, string, ...any) {}
