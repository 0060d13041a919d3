package trace_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestKernelExplainGolden renders the kernel's recording with the kernel
// functions behind each change of state (--explain), and checks what a
// reader learns from it: every change has its stack, outermost first,
// from the system call or the softirq that made it.
func TestKernelExplainGolden(t *testing.T) {
	evs := load(t, "demo-os-active")
	out := text(evs, trace.TextOptions{Explain: true})
	golden(t, filepath.Join("testdata", "demo-os-active-explain.txt"), out)
	for _, want := range []string{
		"CLOSED -> SYN-SENT  connect()\n",
		"in the kernel: __x64_sys_connect -> __sys_connect",
		"tcp_v4_connect",
		"LISTEN -> SYN-RECEIVED  rcv ACK completing the handshake (a request sock answered the SYN) on fd3",
		"tcp_create_openreq_child",
		"FIN-WAIT-2 -> TIME-WAIT  rcv FIN (tcp_time_wait frees the socket",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the kernel's trace with --explain lacks %q", want)
		}
	}
}

// TestCompareGolden puts the recorded runs on netstack and on the kernel
// side by side, and checks the differences a reader should be shown.
func TestCompareGolden(t *testing.T) {
	var b bytes.Buffer
	err := trace.WriteCompare(&b, load(t, "demo-active"), load(t, "demo-os-active"),
		trace.CompareOptions{Width: 160, Left: "netstack", Right: "Linux"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join("testdata", "compare-active.txt"), b.Bytes())
	out := b.String()

	// With Explain, the kernel's own stack under each of its changes of
	// state, in the kernel's column.
	var x bytes.Buffer
	if err := trace.WriteCompare(&x, load(t, "demo-active"), load(t, "demo-os-active"),
		trace.CompareOptions{Width: 160, Left: "netstack", Right: "Linux", Explain: true}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(x.String(), "\n") {
		_, right, ok := strings.Cut(line, " │ ")
		if ok && strings.Contains(right, "in the kernel: __x64_sys_connect -> __sys_connect") {
			found = true
		}
		if n := len([]rune(line)); n > 160 && !strings.HasPrefix(line, "      ") {
			t.Errorf("explained line is %d columns wide: %q", n, line)
		}
	}
	if !found {
		t.Errorf("with Explain, the kernel's column has no stack of connect's change of state:\n%s", x.String())
	}
	for i, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 160 && !strings.HasPrefix(line, "      ") {
			t.Errorf("line %d is %d columns wide: %q", i+1, n, line)
		}
	}
	for _, want := range []string{
		"── -> RETR hello.txt ──",
		"What differs",
		"a listening socket's connection becomes a socket in SYN-RECEIVED\n      netstack  as the SYN arrives, before its SYN|ACK\n      Linux     as the handshake's last ACK arrives, after its SYN|ACK",
		"the states of the server data connection\n      netstack  INITIAL > BOUND > SYN-SENT",
		"TIME-WAIT on the server\n      netstack  data and control sockets, for 50.0 ms\n      Linux     data and control sockets, for 60s",
		"Nagle's algorithm (RFC 896)",
		"a delayed ACK (RFC 1122 section 4.2.3.2)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the comparison lacks %q", want)
		}
	}
}
