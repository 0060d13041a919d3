package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/ftp"
)

var sessions = flag.Int("sessions", 10000, "how many sessions BenchmarkServeSessions holds at once")

// BenchmarkServeSessions measures what `nsftp serve` on a TAP device costs
// per session: the built command serves a directory on nsftp's own stack,
// and kernel clients in the device's namespace each log in, download a
// 100 kB file by passive mode, check its sha256, and stay logged in until
// all of them are; then all quit. It reports the server's peak RSS, its
// RSS with every session idle and logged in, and the kB that costs per
// session:
//
//	go test ./cmd/nsftp/cli/ -run '^$' -bench ServeSessions -benchtime 1x -sessions 10000
//
// The target is 10,000 sessions in at most 1 GiB.
func BenchmarkServeSessions(b *testing.B) {
	needTAPRoot(b)
	n := *sessions
	// The clients hold one descriptor a session (control; each data
	// connection is closed before the next session starts its own), and
	// the server, on its own stack, none: some room above n is enough.
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	need := uint64(n + 1024)
	if need > rl.Max {
		b.Fatalf("%d sessions need %d descriptors; the hard limit is %d", n, need, rl.Max)
	}
	rl.Cur = max(rl.Cur, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatalf("raising the descriptor limit to %d: %v", need, err)
	}
	bin := filepath.Join(b.TempDir(), "nsftp")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nsftp/nsftp/cmd/nsftp").CombinedOutput(); err != nil {
		b.Fatalf("building nsftp: %v\n%s", err, out)
	}
	ns := newLabNS(b)
	ns.tap("tap0", kernelCIDR, 1500)
	root := b.TempDir()
	file := make([]byte, 100_000)
	for i := range file {
		file[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(root, "small.bin"), file, 0o644)
	want := sha256.Sum256(file)

	for b.Loop() {
		cmd := exec.Command(bin, append([]string{"serve", root, "-q",
			"--max-sessions", strconv.Itoa(n + 16), "--max-per-addr", strconv.Itoa(n + 16),
			"--max-unauthenticated", strconv.Itoa(n + 16), "--idle-timeout", "10m", "--login-timeout", "10m"},
			ns.tapFlags()...)...)
		var errOut syncBuffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pid := cmd.Process.Pid
		stop := func() {
			cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		netns, err := nsDialer(ns.path)
		if err != nil {
			stop()
			b.Fatal(err)
		}
		addr := net.JoinHostPort(nsftpIP, "21")
		waitFTP(b, netns, addr, &errOut)
		base := rss(b, pid)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		var (
			ready, failed atomic.Int64
			quit          = make(chan struct{})
			wg            sync.WaitGroup
			firstErr      atomic.Value
		)
		start := time.Now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := loadSession(ctx, netns, addr, want, &ready, quit)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}()
			if i%200 == 199 {
				time.Sleep(10 * time.Millisecond) // let the server's accept loop breathe
			}
		}
		for ready.Load()+failed.Load() < int64(n) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		connected := time.Since(start)
		held := rss(b, pid)
		close(quit)
		wg.Wait()
		cancel()
		peak := hwm(b, pid)
		netns.close()
		stop()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d of %d sessions failed; the first: %v\n%s", f, n, firstErr.Load(), errOut.String())
		}
		perSession := float64(held-base) / float64(n) / 1024
		b.Logf("%d sessions connected, logged in and served in %v; server RSS %d MB at rest, %d MB with all idle, peak %d MB: %.1f kB a session",
			n, connected.Round(time.Millisecond), base>>20, held>>20, peak>>20, perSession)
		b.ReportMetric(float64(n), "sessions")
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
		b.ReportMetric(perSession, "kB/idle-session")
		b.ReportMetric(0, "ns/op")
	}
}

// loadSession is one client: it logs in, downloads small.bin by passive mode,
// checks it, says it is ready and waits, logged in, until quit.
func loadSession(ctx context.Context, netns *netnsDialer, addr string, want [32]byte, ready *atomic.Int64, quit chan struct{}) error {
	c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: netns, ConnectTimeout: 2 * time.Minute, ReplyTimeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, "", ""); err != nil {
		return err
	}
	if err := c.Type(ctx, "I"); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := c.Retrieve(ctx, "small.bin", 0, &buf); err != nil {
		return err
	}
	if sha256.Sum256(buf.Bytes()) != want {
		return fmt.Errorf("small.bin arrived changed")
	}
	ready.Add(1)
	select {
	case <-quit:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.Quit(ctx)
}

// netnsDialer makes the kernel sockets of the benchmark's clients inside
// a network namespace: one goroutine, its thread moved into the
// namespace, creates them all (a socket belongs to the namespace of the
// thread that made it); using them is then done anywhere.
type netnsDialer struct {
	reqs chan dialReq
}

type dialReq struct {
	ctx     context.Context
	address string
	reply   chan dialResult
}

type dialResult struct {
	conn net.Conn
	err  error
}

var _ ftp.Network = (*netnsDialer)(nil)

func nsDialer(name string) (*netnsDialer, error) {
	d := &netnsDialer{reqs: make(chan dialReq)}
	started := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace: when this goroutine
		// returns still locked, the runtime ends the thread.
		runtime.LockOSThread()
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		started <- err
		if err != nil {
			return
		}
		var dialer net.Dialer
		for r := range d.reqs {
			// Start the connection here; wait for it elsewhere, so that
			// one slow handshake does not hold up the others.
			c, err := dialer.DialContext(r.ctx, "tcp", r.address)
			r.reply <- dialResult{c, err}
		}
	}()
	return d, <-started
}

// DialContext implements ftp.Network.
func (d *netnsDialer) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	r := dialReq{ctx: ctx, address: address, reply: make(chan dialResult, 1)}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := <-r.reply
	return res.conn, res.err
}

// Listen implements ftp.Network: the benchmark uses passive mode only.
func (d *netnsDialer) Listen(context.Context, string, string) (net.Listener, error) {
	return nil, fmt.Errorf("netnsDialer: no listening")
}

func (d *netnsDialer) close() { close(d.reqs) }

// waitFTP waits until the server answers.
func waitFTP(b *testing.B, netns *netnsDialer, addr string, logs *syncBuffer) {
	b.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: netns})
		cancel()
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the server did not answer on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rss and hwm read a process's resident set, now and at its peak.
func rss(b *testing.B, pid int) int64 { return statusKB(b, pid, "VmRSS:") << 10 }
func hwm(b *testing.B, pid int) int64 { return statusKB(b, pid, "VmHWM:") << 10 }

func statusKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	b.Fatalf("no %s for process %d", field, pid)
	return 0
}
