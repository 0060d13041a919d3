package cli

// Both ends of one connection: nsftp's stack on a TAP device, and the
// kernel at the other end of it (vsftpd in the test's namespace) traced
// from tracefs as host "peer (Linux)".

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/kernel/kerneltest"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// TestTAPPeerKernel downloads a file from vsftpd through a TAP device,
// in passive and active mode, with --peer-kernel --record: the recording
// has both ends of each connection, nsftp's netstack as the client and
// the kernel under vsftpd as "peer (Linux)". vsftpd's data socket goes
// from ESTABLISHED through FIN-WAIT-1 and FIN-WAIT-2 to TIME-WAIT (it
// closes first, at the end of the file), or through the passive close,
// each change with the kernel's own stack; its connection is the very one
// nsftp's data socket has, ends swapped. The recording keeps a timeline's
// promises, shows as it was recorded, and draws as one ladder with the
// kernel's states on the server's side; the tracing state is as it was.
func TestTAPPeerKernel(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	kerneltest.NeedRoot(t)
	stacktest.CheckGoroutines(t)
	leftAsFound(t, nil)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP)
	sum := writeRandomFile(t, filepath.Join(srv.root, "f"), 8<<20, 5)
	for _, mode := range []string{"passive", "active"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "run.jsonl")
			svg := filepath.Join(dir, "run.svg")
			dest := filepath.Join(dir, "f")
			_, errOut, code := ns.nsftp(t, "get", "ftp://"+kernelIP+"/f", dest, "--"+mode, "-q", "--peer-kernel", "--record", rec, "--diagram", svg)
			if code != 0 {
				t.Fatalf("get --peer-kernel: exit %d\n%s", code, errOut)
			}
			if errOut != "" {
				t.Errorf("as root, get --peer-kernel says on stderr: %s", errOut)
			}
			if fileSHA(t, dest) != sum {
				t.Fatalf("the file arrived changed")
			}
			evs := readRecording(t, rec)
			tracetest.Causal(t, evs)
			tracetest.RFC793(t, evs)

			var peer *trace.HostInfo
			type conn struct{ local, remote string }
			clientData := map[conn]bool{}
			peerStates := map[int][]trace.TCPState{}
			peerConn := map[int]conn{}
			lastCause := map[int]string{}
			var peerData []int
			for _, e := range evs {
				switch {
				case e.Kind == trace.KindHost && e.Host == peerHost:
					peer = e.HostInfo
				case e.Kind == trace.KindCall && e.Host == "client" && e.Call.Label == trace.Data && e.Call.Remote.IsValid() && e.Call.Local.IsValid():
					clientData[conn{e.Call.Local.String(), e.Call.Remote.String()}] = true
				case e.Kind == trace.KindState && e.Host == peerHost:
					s := e.State
					if e.Layer != trace.LayerKernel || len(s.Stack) == 0 || strings.HasPrefix(s.Cause, "the kernel") {
						t.Errorf("peer fd%d %s -> %s: layer %s, cause %q, stack %q: want the kernel's own stack", s.Socket, s.From, s.To, e.Layer, s.Cause, s.Stack)
					}
					if len(peerStates[s.Socket]) == 0 {
						peerStates[s.Socket] = []trace.TCPState{s.From}
						if s.Label == trace.Data {
							peerData = append(peerData, s.Socket)
						}
					}
					peerStates[s.Socket] = append(peerStates[s.Socket], s.To)
					if s.From == trace.StateFinWait2 && s.To == trace.StateClosed {
						lastCause[s.Socket] = s.Cause
					}
				case e.Kind == trace.KindTCB && e.Host == peerHost:
					peerConn[e.TCB.Socket] = conn{e.TCB.Local.String(), e.TCB.Remote.String()}
				}
			}
			if peer == nil || peer.Kernel == "" || peer.Role != trace.Server {
				t.Fatalf("no peer host, or not the kernel serving: %+v", peer)
			}
			if len(peerData) != 1 {
				t.Fatalf("vsftpd's data sockets seen: %v (states %v)", peerData, peerStates)
			}
			// vsftpd closes first, at the end of the file, and nsftp's
			// FIN moves it to TIME-WAIT; or it shuts down its end
			// (shutdown) and closes its descriptor in FIN-WAIT-2, and
			// the kernel hands the connection to a timewait sock, which
			// no tracepoint follows; or nsftp closes first.
			states := peerStates[peerData[0]]
			activeClose := []trace.TCPState{trace.StateEstablished, trace.StateFinWait1, trace.StateFinWait2, trace.StateTimeWait}
			closedInFinWait2 := []trace.TCPState{trace.StateEstablished, trace.StateFinWait1, trace.StateFinWait2, trace.StateClosed}
			passiveClose := []trace.TCPState{trace.StateEstablished, trace.StateCloseWait, trace.StateLastAck, trace.StateClosed}
			switch {
			case containsRun(states, activeClose), containsRun(states, passiveClose):
			case containsRun(states, closedInFinWait2) && strings.Contains(lastCause[peerData[0]], "timewait sock"):
			default:
				t.Errorf("vsftpd's data socket went %v (%q): want %v, %v or %v", states, lastCause[peerData[0]], activeClose, closedInFinWait2, passiveClose)
			}
			t.Logf("vsftpd's data socket: %v", states)
			if c, ok := peerConn[peerData[0]]; ok && !clientData[conn{c.remote, c.local}] {
				t.Errorf("the peer's data socket %s > %s is no data connection of the client's: %v", c.local, c.remote, clientData)
			}

			shown, errOut, err := runIn(t, "", "show", rec)
			if err != nil || !strings.Contains(shown, peerHost) || !strings.Contains(shown, "FIN-WAIT-1") {
				t.Errorf("show: %v\n%s\n%s", err, errOut, shown)
			}
			b, err := os.ReadFile(svg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "peer (Linux)") || !strings.Contains(string(b), "FIN-WAIT-1") {
				t.Errorf("the ladder has no peer, or no state of its")
			}
		})
	}
}

// containsRun reports whether want appears in states, in order, one after
// the other.
func containsRun(states, want []trace.TCPState) bool {
	for i := range states {
		if i+len(want) <= len(states) && slices.Equal(states[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// TestTAPPeerKernelSignals: a TAP run tracing its peer, stopped by Ctrl-C
// (SIGINT) in the middle of a download, removes its tracing instance and
// leaves the kernel's tracing state as it found it. vsftpd sends slowly
// (anon_max_rate), so the download is still going when the signal comes.
func TestTAPPeerKernelSignals(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	kerneltest.NeedRoot(t)
	bin := buildNsftp(t)
	var pids []int
	leftAsFound(t, func() []int { return pids })
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP, "anon_max_rate=200000")
	writeRandomFile(t, filepath.Join(srv.root, "f"), 8<<20, 6)
	dir := t.TempDir()
	dest := filepath.Join(dir, "f")
	cmd := exec.Command(bin, append([]string{"get", "ftp://" + kernelIP + "/f", dest, "--peer-kernel", "--record", filepath.Join(dir, "run.jsonl")}, ns.tapFlags()...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	pids = append(pids, pid)
	t.Cleanup(func() { cmd.Process.Kill() })
	var errOut strings.Builder
	readDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Split(bufio.ScanRunes)
		for sc.Scan() {
			errOut.WriteString(sc.Text())
		}
		close(readDone)
	}()
	// Until the file is on its way: the download's partial file holds
	// some of it.
	for deadline := time.Now().Add(20 * time.Second); ; {
		parts, _ := filepath.Glob(filepath.Join(dir, ".f.nsftp-*.part"))
		if len(parts) == 1 {
			if fi, err := os.Stat(parts[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the download did not begin")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(kerneltest.Instances(t, pid)); n != 1 {
		t.Fatalf("the run has %d tracing instances, want its own one", n)
	}
	cmd.Process.Signal(syscall.SIGINT)
	werr := cmd.Wait()
	<-readDone
	if left := kerneltest.Instances(t, pid); len(left) != 0 {
		t.Errorf("after SIGINT the run left %q", left)
	}
	if werr == nil {
		t.Errorf("a download stopped by SIGINT exited 0:\n%s", errOut.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*f*")); len(left) != 0 {
		t.Errorf("a download stopped by SIGINT left %q behind", left)
	}
}

// TestTAPPeerKernelUnprivileged: as nobody (on a TAP device nobody owns,
// nsftp inside the test's namespace), --peer-kernel cannot read tracefs:
// one line says why the peer stays dark, the run goes on, and the
// recording's peer host says what it did not see.
func TestTAPPeerKernelUnprivileged(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	setpriv := needSetpriv(t)
	bin := buildNsftp(t)
	leftAsFound(t, nil)
	ns := newLabNS(t)
	ns.ip("tuntap", "add", "dev", "tap0", "mode", "tap", "user", "65534")
	ns.ip("addr", "add", kernelCIDR, "dev", "tap0")
	ns.ip("link", "set", "tap0", "up")
	srv := ns.startVsftpd(kernelIP)
	writeRandomFile(t, filepath.Join(srv.root, "f"), 64<<10, 8)
	dir := nobodyDir(t)
	rec := filepath.Join(dir, "run.jsonl")
	line := asNobody(setpriv, bin, "get", "ftp://"+kernelIP+"/f", "-", "--tap", "tap0", "--addr", nsftpCIDR, "--peer-kernel", "--record", rec, "-q")
	cmd := ns.command(line[0], line[1:]...)
	cmd.Dir = "/"
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stdout.Len() != 64<<10 {
		t.Fatalf("get --peer-kernel as nobody: %v, %d bytes\n%s", err, stdout.Len(), stderr.String())
	}
	if e := stderr.String(); strings.Count(e, "\n") != 1 || !strings.Contains(e, "--peer-kernel") || !strings.Contains(e, "stays dark") || !strings.Contains(e, "tracefs is root's") {
		t.Errorf("stderr should be one line on why the peer is dark:\n%s", e)
	}
	var unseen []trace.Seen
	for _, e := range readRecording(t, rec) {
		switch {
		case e.Kind == trace.KindHost && e.Host == peerHost:
			for _, u := range e.HostInfo.Unseen {
				unseen = append(unseen, u.What)
			}
		case e.Host == peerHost:
			t.Errorf("as nobody, an event of the peer's: %+v", e)
		}
	}
	if !slices.Contains(unseen, trace.SeenStates) {
		t.Errorf("the peer host does not say it saw no changes of state: %v", unseen)
	}
}
