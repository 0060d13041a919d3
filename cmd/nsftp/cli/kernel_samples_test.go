package cli

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestGetNetOSSamples downloads a file from vsftpd on the loopback of the
// test's namespace with get --net os --record, as root and as nobody: the
// kernel's TCB of the data socket is recorded from TCP_INFO (cwnd, RTO,
// the segment size) after its calls, without privilege; as root the
// kernel's per-ACK samples (tcp:tcp_probe) come with them.
//
// vsftpd sends at 4 MB/s (anon_max_rate): over bare loopback 4 MiB take
// a few milliseconds, about what the kernel may take to let a new
// connection's port through the tracepoints' filter (filter.go), where a
// real link's transfer takes longer. A receiver's per-ACK samples change
// little (its cwnd does not move), so there are a few of them.
func TestGetNetOSSamples(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	setpriv := needSetpriv(t)
	bin := buildNsftp(t)
	leftAsFound(t, nil)
	ns := newLabNS(t)
	srv := ns.startVsftpd("127.0.0.1", "anon_max_rate=4000000")
	writeRandomFile(t, filepath.Join(srv.root, "f"), 4<<20, 7)
	dir := nobodyDir(t)
	for _, root := range []bool{true, false} {
		rec := filepath.Join(dir, map[bool]string{true: "root.jsonl", false: "nobody.jsonl"}[root])
		args := []string{bin, "get", "ftp://127.0.0.1/f", "-", "--net", "os", "--record", rec, "-q"}
		if !root {
			args = asNobody(setpriv, args...)
		}
		cmd := ns.command(args[0], args[1:]...)
		cmd.Dir = "/"
		out, err := cmd.Output()
		if err != nil || len(out) != 4<<20 {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("get --net os (root %v): %v, %d bytes\n%s", root, err, len(out), stderr)
		}
		// The data socket, from its recv() calls: its samples come
		// before the first (the kernel's tcp_probe at the first segment).
		evs := readRecording(t, rec)
		data := 0
		for _, e := range evs {
			if e.Kind == trace.KindCall && e.Call.Label == trace.Data && e.Call.Op == trace.OpRecv {
				data = e.Call.Socket
			}
		}
		counts := map[trace.TCBSource]int{}
		received := uint64(0)
		for _, e := range evs {
			switch {
			case e.Kind == trace.KindTCB && e.TCB.Socket == data && data != 0:
				b := e.TCB
				counts[b.Source]++
				received = max(received, b.BytesReceived)
				if e.Layer != trace.LayerKernel || b.Cwnd <= 0 || b.Source == trace.FromTCPInfo && (b.RTO <= 0 || b.MSS <= 0) {
					t.Errorf("root %v: a sample of the data socket without its figures: %+v", root, b)
				}
			}
		}
		if received < 4<<20 {
			t.Errorf("root %v: the data socket's last TCP_INFO says %d bytes received, of %d", root, received, 4<<20)
		}
		t.Logf("root %v: the data socket's samples: %v", root, counts)
		if counts[trace.FromTCPInfo] < 2 {
			t.Errorf("root %v: %d TCP_INFO samples of the data socket, want one after each call", root, counts[trace.FromTCPInfo])
		}
		if root && counts[trace.FromTCPProbe] == 0 {
			t.Errorf("as root, no tcp_probe samples of the data socket")
		}
		if !root && counts[trace.FromTCPProbe] > 0 {
			t.Errorf("as nobody, tcp_probe samples: tracefs is root's")
		}
	}
}
