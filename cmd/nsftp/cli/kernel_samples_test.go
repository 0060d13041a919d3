package cli

import (
	"os"
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
// vsftpd sends at 4 MB/s (anon_max_rate): over bare loopback 4 MiB would
// take a few milliseconds, less than the kernel takes to filter a new
// connection's port in (13-33 ms here), and a real link's transfer lasts
// longer than that.
func TestGetNetOSSamples(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("skipping: needs setpriv (util-linux)")
	}
	bin := buildNsftp(t)
	leftAsFound(t, nil)
	ns := newLabNS(t)
	srv := ns.startVsftpd("127.0.0.1", "anon_max_rate=4000000")
	writeRandomFile(t, filepath.Join(srv.root, "f"), 4<<20, 7)
	// A directory nobody may write the recording to (t.TempDir's parent
	// is root's alone).
	dir, err := os.MkdirTemp("", "nsftp-samples-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	for _, root := range []bool{true, false} {
		rec := filepath.Join(dir, map[bool]string{true: "root.jsonl", false: "nobody.jsonl"}[root])
		args := []string{bin, "get", "ftp://127.0.0.1/f", "-", "--net", "os", "--record", rec, "-q"}
		if !root {
			args = append([]string{setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"}, args...)
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
		data := 0
		counts := map[trace.TCBSource]int{}
		for _, e := range readRecording(t, rec) {
			switch {
			case e.Kind == trace.KindCall && e.Call.Label == trace.Data && e.Call.Op == trace.OpRecv:
				data = e.Call.Socket
			case e.Kind == trace.KindTCB && e.TCB.Socket == data && data != 0:
				b := e.TCB
				counts[b.Source]++
				if e.Layer != trace.LayerKernel || b.Cwnd <= 0 || b.Source == trace.FromTCPInfo && (b.RTO <= 0 || b.MSS <= 0 || b.BytesReceived == 0 && counts[b.Source] > 2) {
					t.Errorf("root %v: a sample of the data socket without its figures: %+v", root, b)
				}
			}
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
