package stack

import (
	"reflect"
	"sort"

	"gvisor.dev/gvisor/pkg/tcpip"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/nsftp/nsftp/trace"
)

// Stats is a snapshot of a host's netstack counters by dotted name, e.g.
// "TCP.Retransmits" or "TCP.ChecksumErrors", as gVisor names them.
type Stats map[string]uint64

// Sub returns the counters that differ between s and an earlier snapshot,
// as s minus before.
func (s Stats) Sub(before Stats) Stats {
	d := Stats{}
	for k, v := range s {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// Names returns the counter names in order.
func (s Stats) Names() []string {
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

var statCounterType = reflect.TypeOf((*tcpip.StatCounter)(nil))

// statsOf flattens the stack's nested counter structs by reflection, so
// every counter gVisor keeps is visible without a hand-kept list.
func statsOf(s *gstack.Stack) Stats {
	out := Stats{}
	st := s.Stats()
	walkStats(reflect.ValueOf(&st).Elem(), "", out)
	return out
}

func walkStats(v reflect.Value, prefix string, out Stats) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Type() == statCounterType {
			out[prefix] = v.Interface().(*tcpip.StatCounter).Value()
			return
		}
		walkStats(v.Elem(), prefix, out)
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if prefix != "" {
				name = prefix + "." + name
			}
			walkStats(v.Field(i), name, out)
		}
	}
}

// Connections counts the host's TCP connections by state (RFC 793's
// names, as trace.TCPState has them): what `ss -s` tells of the kernel's.
// SYN-RECEIVED counts the half-open connections a listener holds.
func (h *Host) Connections() map[trace.TCPState]int {
	out := map[trace.TCPState]int{}
	for _, te := range h.s.RegisteredEndpoints() {
		ep, ok := te.(*tcp.Endpoint)
		if !ok {
			continue
		}
		if st, ok := rfcState(ep.EndpointState()); ok {
			out[st]++
		}
	}
	return out
}
