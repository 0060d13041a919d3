package cli

// A server and a crowd: `nsftp serve` on a TAP device, built and run as a
// process of its own, against 10,000 kernel clients arriving at once, and
// against a SYN flood from spoofed addresses while a real client logs in
// and downloads. Benchmarks, not tests: they need root, take minutes and
// gigabytes, and run only with -bench:
//
//	go test ./cmd/nsftp/cli/ -run '^$' -bench FlashCrowd -benchtime 1x
//	go test ./cmd/nsftp/cli/ -run '^$' -bench SYNFlood -benchtime 1x
//
// The clients run in copies of the test binary inside the device's
// namespace (a socket belongs to the namespace of the thread that makes
// it; in a process of their own, every thread is there); the flood is
// written on the device's kernel side from a packet socket made there.
// CROWD_SERVE_FLAGS adds flags to the server's command line
// (--memory-limit 1GiB), and CROWD_GODEBUG sets its GODEBUG.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/ftp"
)

var (
	crowdN     = flag.Int("crowd", 10000, "how many clients BenchmarkFlashCrowd sends at once")
	floodSYNs  = flag.Int("flood-syns", 400000, "how many SYNs BenchmarkSYNFlood writes")
	floodRate  = flag.Int("flood-rate", 75000, "SYNs a second BenchmarkSYNFlood writes")
	floodAfter = flag.Duration("flood-after", time.Minute, "how long BenchmarkSYNFlood watches the server after the flood")
	crowdProf  = flag.String("crowd-profile", "", "write the server's heap profiles into `DIR` (crowd benchmarks): when all are logged in, then every second")
)

// crowdRoleEnv selects a helper role for a copy of the test binary.
const crowdRoleEnv = "NSFTP_CROWD_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(crowdRoleEnv); role != "" {
		if err := runCrowdRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "crowd helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runCrowdRole(role string) error {
	addr := os.Getenv("ADDR")
	want, err := hex.DecodeString(os.Getenv("SHA"))
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("SHA %q", os.Getenv("SHA"))
	}
	switch role {
	case "crowd":
		n, err := strconv.Atoi(os.Getenv("N"))
		if err != nil {
			return err
		}
		return crowdClients(addr, n, [32]byte(want))
	case "client":
		every, err := time.ParseDuration(os.Getenv("EVERY"))
		if err != nil {
			return err
		}
		return realClient(addr, every, [32]byte(want))
	}
	return fmt.Errorf("unknown role")
}

// crowdResult is what the crowd helper reports.
type crowdResult struct {
	N        int     `json:"n"`
	LoggedIn int     `json:"logged_in"`
	Served   int     `json:"served"`
	Failed   int     `json:"failed"`
	FirstErr string  `json:"first_err,omitempty"`
	LoginS   float64 `json:"login_s"` // from the start until the last logged in
	ServeS   float64 `json:"serve_s"` // from the moment all RETR until the last file arrived
	CPUS     float64 `json:"cpu_s"`   // the clients' own CPU time, user and system
}

// crowdClients is the crowd: n clients connect at once, log in, and once
// every one has (or failed), all send RETR small.bin at the same moment
// and check what arrives; then all quit. It prints a crowdResult.
func crowdClients(addr string, n int, want [32]byte) error {
	// A control and a data connection each, and some (see
	// clientsPerHelper).
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	if need := uint64(2*n + 512); rl.Cur < need {
		rl.Cur = min(need, rl.Max)
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		res      = crowdResult{N: n}
		mu       sync.Mutex
		loggedIn sync.WaitGroup
		done     sync.WaitGroup
		retr     = make(chan struct{})
		lastIn   time.Time
		lastFile time.Time
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Failed++
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
	}
	start := time.Now()
	loggedIn.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			in := false
			defer func() {
				if !in {
					loggedIn.Done()
				}
			}()
			c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: &ftp.OSNetwork{}, ConnectTimeout: 5 * time.Minute, ReplyTimeout: 5 * time.Minute, DataTimeout: 5 * time.Minute})
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			if err := c.Login(ctx, "", ""); err != nil {
				fail(err)
				return
			}
			if err := c.Type(ctx, "I"); err != nil {
				fail(err)
				return
			}
			mu.Lock()
			res.LoggedIn++
			lastIn = time.Now()
			mu.Unlock()
			in = true
			loggedIn.Done()
			<-retr
			var buf bytes.Buffer
			if _, err := c.Retrieve(ctx, "small.bin", 0, &buf); err != nil {
				fail(err)
				return
			}
			if sha256.Sum256(buf.Bytes()) != want {
				fail(fmt.Errorf("small.bin arrived changed"))
				return
			}
			mu.Lock()
			res.Served++
			lastFile = time.Now()
			mu.Unlock()
			c.Quit(ctx)
		}()
	}
	loggedIn.Wait()
	res.LoginS = lastIn.Sub(start).Seconds()
	// The parent samples the server's memory, and says go when every
	// helper's clients are in.
	fmt.Printf("logged in %d\n", res.LoggedIn)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	retrAt := time.Now()
	close(retr)
	done.Wait()
	res.ServeS = lastFile.Sub(retrAt).Seconds()
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	res.CPUS = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	b, _ := json.Marshal(res)
	fmt.Printf("%s\n", b)
	return nil
}

// attempt is one of the real client's downloads.
type attempt struct {
	Start time.Time `json:"start"`
	Secs  float64   `json:"secs"` // from dialling to the file's last byte
	Err   string    `json:"err,omitempty"`
}

// realClient is a user during a flood: every period it connects, logs in
// and downloads small.bin, and prints how long that took, until its
// standard input closes.
func realClient(addr string, every time.Duration, want [32]byte) error {
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	enc := json.NewEncoder(os.Stdout)
	for {
		a := attempt{Start: time.Now()}
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: &ftp.OSNetwork{}})
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
			a.Secs = time.Since(a.Start).Seconds()
			c.Quit(ctx)
			return nil
		}()
		if err != nil {
			a.Err, a.Secs = err.Error(), time.Since(a.Start).Seconds()
		}
		enc.Encode(a)
		select {
		case <-stop:
			return nil
		case <-time.After(time.Until(a.Start.Add(every))):
		}
	}
}

// crowdServer is nsftp serve, built and running on tap0 in a namespace.
type crowdServer struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	ns     *labNS
	sha    string
	addr   string
}

// startCrowdServer builds nsftp, makes the namespace and its tap0, and
// serves a 100 kB file with every limit raised for n sessions.
func startCrowdServer(b *testing.B, n int, extra ...string) *crowdServer {
	b.Helper()
	needTAPRoot(b)
	var bin string
	if *crowdProf != "" {
		bin = buildNsftp(b, "nsftp_profhook")
	} else {
		bin = buildNsftp(b)
	}
	ns := newLabNS(b)
	ns.tap("tap0", kernelCIDR, 1500)
	// Every limit raised, on the kernel's side too: ports enough for a
	// control and a data connection each, and a device queue (frames the
	// kernel has for nsftp to read) of 10,000 frames rather than 1,000,
	// which a crowd's handshakes and ACKs overflow while nsftp sends:
	// each frame dropped there costs its sender a retransmission timeout,
	// and an ARP request or reply dropped a "no route to host".
	ns.command("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535").Run()
	ns.ip("link", "set", "tap0", "txqueuelen", "10000")
	root := b.TempDir()
	file := make([]byte, 100_000)
	for i := range file {
		file[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(root, "small.bin"), file, 0o644)
	sum := sha256.Sum256(file)
	limit := strconv.Itoa(n + 64)
	args := append([]string{"serve", root, "--mac", crowdMAC,
		"--max-sessions", limit, "--max-per-addr", limit, "--max-unauthenticated", limit,
		"--idle-timeout", "10m", "--login-timeout", "10m", "--data-timeout", "5m", "--min-rate", "1"}, extra...)
	args = append(args, ns.tapFlags()...)
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	if *crowdProf != "" {
		cmd.Env = append(cmd.Env, "NSFTP_HEAP_PROFILE="+filepath.Join(*crowdProf, "heap"))
	}
	if v := os.Getenv("CROWD_GODEBUG"); v != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+v)
	}
	s := &crowdServer{cmd: cmd, stderr: &syncBuffer{}, ns: ns, sha: hex.EncodeToString(sum[:]), addr: net.JoinHostPort(nsftpIP, "21")}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.stop(b) })
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(s.stderr.String(), "nsftp: serving "); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("nsftp serve is not serving after 20s:\n%s", s.stderr.String())
		}
	}
	return s
}

// crowdMAC is the server's Ethernet address, which the flood's frames
// are sent to.
const crowdMAC = "02:00:00:00:00:02"

func (s *crowdServer) stop(b *testing.B) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpuSeconds is the CPU time the server has used so far, user and system.
func (s *crowdServer) cpuSeconds(b *testing.B) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// After the command's name in parentheses: utime and stime are fields
	// 14 and 15 of the line, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stime) / 100
}

// rssMB and hwmMB are the server's resident set now and at its peak.
func (s *crowdServer) rssMB(b *testing.B) float64 {
	return float64(rss(b, s.cmd.Process.Pid)) / (1 << 20)
}
func (s *crowdServer) hwmMB(b *testing.B) float64 {
	return float64(hwm(b, s.cmd.Process.Pid)) / (1 << 20)
}

// helper starts a copy of the test binary in the namespace in role.
func (s *crowdServer) helper(b *testing.B, role string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := s.ns.command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{crowdRoleEnv + "=" + role, "ADDR=" + s.addr, "SHA=" + s.sha}, env...)...)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd, in, bufio.NewReader(out)
}

// BenchmarkFlashCrowd: -crowd clients (10,000) connect to nsftp serve at
// once, log in, and then all download a 100 kB file at the same moment.
// Every one must be served. It reports how many were, how long logging
// in and serving took, and the server's peak resident memory, which must
// stay within 1 GiB.
func BenchmarkFlashCrowd(b *testing.B) {
	for b.Loop() {
		flashCrowd(b, *crowdN)
	}
}

// clientsPerHelper is how many clients one helper process holds: two
// descriptors each, within the descriptor limit (this one's hard limit,
// which a sandbox may keep root from raising), as the crowd came
// from two processes.
func clientsPerHelper() int {
	var rl unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	return max(int(min(rl.Max, 1<<20)-512)/2, 100)
}

func flashCrowd(b *testing.B, n int) {
	var extra []string
	if v := os.Getenv("CROWD_SERVE_FLAGS"); v != "" {
		extra = strings.Fields(v)
	}
	s := startCrowdServer(b, n, extra...)
	base := s.rssMB(b)
	per := clientsPerHelper()
	type helper struct {
		in  io.WriteCloser
		out *bufio.Reader
	}
	var helpers []helper
	for left := n; left > 0; left -= per {
		_, in, out := s.helper(b, "crowd", "N="+strconv.Itoa(min(left, per)))
		helpers = append(helpers, helper{in, out})
	}
	read := func(h helper) string {
		line, err := h.out.ReadString('\n')
		if err != nil {
			b.Fatalf("crowd helper: %v\nserver:\n%s", err, s.stderr.String())
		}
		return line
	}
	for _, h := range helpers {
		if line := read(h); !strings.HasPrefix(line, "logged in") {
			b.Fatalf("crowd helper said %q", line)
		}
	}
	atLogin := s.rssMB(b)
	if testing.Verbose() {
		s.cmd.Process.Signal(syscall.SIGUSR1)
	}
	if *crowdProf != "" {
		s.cmd.Process.Signal(syscall.SIGUSR2)
		go func() {
			for s.cmd.ProcessState == nil {
				time.Sleep(time.Second)
				s.cmd.Process.Signal(syscall.SIGUSR2)
			}
		}()
	}
	for _, h := range helpers {
		io.WriteString(h.in, "go\n")
	}
	var res crowdResult
	for _, h := range helpers {
		var r crowdResult
		if line := read(h); json.Unmarshal([]byte(line), &r) != nil {
			b.Fatalf("crowd helper said %q", line)
		}
		res.N += r.N
		res.LoggedIn += r.LoggedIn
		res.Served += r.Served
		res.Failed += r.Failed
		res.LoginS = max(res.LoginS, r.LoginS)
		res.ServeS = max(res.ServeS, r.ServeS)
		res.CPUS += r.CPUS
		if res.FirstErr == "" {
			res.FirstErr = r.FirstErr
		}
	}
	peak := s.hwmMB(b)
	if testing.Verbose() {
		s.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(time.Second)
		b.Logf("the server:\n%s", s.stderr.String())
		b.Logf("the device after:\n%s", s.ns.ip("-s", "-s", "link", "show", "dev", "tap0"))
		if out, err := s.ns.command("nstat", "-az", "TcpExtTCPBacklogDrop", "TcpRetransSegs", "TcpExtListenDrops", "TcpExtTCPTimeouts", "IpExtInNoRoutes").CombinedOutput(); err == nil {
			b.Logf("the kernel's side:\n%s", out)
		}
	}
	if *crowdProf != "" {
		s.cmd.Process.Signal(syscall.SIGUSR1) // the CPU profile ends
		time.Sleep(time.Second)
	}
	cpu := s.cpuSeconds(b)
	b.Logf("%d clients at once (%d processes): %d logged in in %.1f s, %d served in %.1f s after RETR; server RSS %.0f MB at rest, %.0f MB all logged in, peak %.0f MB; CPU %.1f s server, %.1f s clients; failed %d (first: %s)",
		n, len(helpers), res.LoggedIn, res.LoginS, res.Served, res.ServeS, base, atLogin, peak, cpu, res.CPUS, res.Failed, res.FirstErr)
	b.ReportMetric(float64(res.Served), "served")
	b.ReportMetric(res.LoginS, "login-s")
	b.ReportMetric(res.ServeS, "serve-s")
	b.ReportMetric(peak, "peak-RSS-MB")
	b.ReportMetric(0, "ns/op")
	if res.Served != n {
		b.Errorf("%d of %d clients served; first error: %s\n%s", res.Served, n, res.FirstErr, s.stderr.String())
	}
	if peak > 1024 {
		b.Errorf("peak RSS %.0f MB, over 1 GiB", peak)
	}
}

// BenchmarkSYNFlood: while nsftp serve runs on tap0, -flood-syns SYNs
// (400,000) are written on the device's kernel side at -flood-rate a
// second (75,000), each from a spoofed address of the device's subnet (not
// the kernel's own or nsftp's) and port, to nsftp's port 21; the frames go
// only to nsftp. Meanwhile a real client in the namespace logs in and
// downloads a file every 250 ms: each must be served within 2 s of asking.
// Then the server is watched for -flood-after (a minute): its memory must
// have stayed bounded, and be given back. It reports the SYNs written and
// their rate, the real client's downloads and the longest, the server's
// peak memory and its memory a minute after the flood, and the half-open
// connections the server still holds then.
func BenchmarkSYNFlood(b *testing.B) {
	// The body is a function of its own: Go 1.26's compiler crashed
	// (escape analysis, an internal error) on it inside b.Loop's loop.
	for b.Loop() {
		synFlood(b)
	}
}

func synFlood(b *testing.B) {
	s := startCrowdServer(b, 64)
	base := s.rssMB(b)
	raw := s.ns.openRaw("tap0")
	defer raw.close()
	_, stop, out := s.helper(b, "client", "EVERY=250ms")
	attempts := make(chan attempt, 1024)
	go func() {
		defer close(attempts)
		for {
			line, err := out.ReadString('\n')
			if err != nil {
				return
			}
			var a attempt
			if json.Unmarshal([]byte(line), &a) == nil {
				attempts <- a
			}
		}
	}()
	// A second of the client alone first.
	time.Sleep(time.Second)

	dst, _ := net.ParseMAC(crowdMAC)
	if testing.Verbose() {
		// The server's state every second of the flood.
		go func() {
			for range 8 {
				time.Sleep(time.Second)
				s.cmd.Process.Signal(syscall.SIGUSR1)
			}
		}()
	}
	start := time.Now()
	sent, dropped, err := flood(raw, dst, *floodSYNs, *floodRate)
	took := time.Since(start)
	floodEnd := time.Now()
	if err != nil {
		b.Fatalf("after %d SYNs: %v", sent, err)
	}
	atEnd := s.rssMB(b)
	if *crowdProf != "" {
		s.cmd.Process.Signal(syscall.SIGUSR2) // heap.1: the flood's end
	}
	halfAtEnd := s.halfOpen(b)
	peak := s.hwmMB(b)
	// Watch the memory after the flood.
	var after []float64
	for t := time.Second; t <= *floodAfter; t += time.Second {
		time.Sleep(time.Until(floodEnd.Add(t)))
		after = append(after, s.rssMB(b))
	}
	stop.Close()
	var during, later []attempt
	for a := range attempts {
		switch {
		case a.Start.Before(start):
		case a.Start.Before(floodEnd):
			during = append(during, a)
		default:
			later = append(later, a)
		}
	}
	worst, failed := 0.0, 0
	for _, a := range during {
		worst = max(worst, a.Secs)
		if a.Err != "" {
			failed++
			b.Logf("a download during the flood failed after %.2f s: %s", a.Secs, a.Err)
		}
	}
	half := s.halfOpen(b)
	if *crowdProf != "" {
		s.cmd.Process.Signal(syscall.SIGUSR2) // heap.2: the end
		time.Sleep(2 * time.Second)
	}
	s.stop(b)
	rate := float64(sent) / took.Seconds()
	b.Logf("%d SYNs in %.2f s (%.0f/s; the device's queue, full, dropped %d); the real client: %d downloads during the flood, %d failed, the longest %.2f s; %d after; server RSS %.0f MB before, %.0f MB at the flood's end, peak %.0f MB, %.0f MB %v after; half-open connections %d at the flood's end, %d %v after",
		sent, took.Seconds(), rate, dropped, len(during), failed, worst, len(later), base, atEnd, peak, after[len(after)-1], *floodAfter, halfAtEnd, half, *floodAfter)
	if testing.Verbose() {
		b.Logf("the server's state:\n%s", s.stderr.String())
	}
	b.ReportMetric(float64(sent), "SYNs")
	b.ReportMetric(rate, "SYNs/s")
	b.ReportMetric(worst, "longest-get-s")
	b.ReportMetric(peak, "peak-RSS-MB")
	b.ReportMetric(after[len(after)-1], "RSS-after-MB")
	b.ReportMetric(float64(half), "half-open-after")
	b.ReportMetric(0, "ns/op")
	if len(during) == 0 || failed > 0 || worst > 2 {
		b.Errorf("the real client during the flood: %d downloads, %d failed, the longest %.2f s; want every one within 2 s", len(during), failed, worst)
	}
	if rate < float64(*floodRate) {
		b.Errorf("the flood ran at %.0f SYNs a second, not %d", rate, *floodRate)
	}
}

// flood writes n SYNs on raw at rate a second, in bursts every 10 ms of
// sendmmsg(2) calls, each from a random address of 192.0.2.0/24 other than
// the network's, the broadcast's, the kernel's (.1) and nsftp's (.2), and
// a random port, to nsftp's port 21.
func flood(raw *rawLink, dst net.HardwareAddr, n, rate int) (sent, dropped int, err error) {
	const tick, batch = 10 * time.Millisecond, 64
	// A frame more a tick than the rate asks: sleeping overshoots.
	perTick := rate/int(time.Second/tick) + 1
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = tcpFrame(raw.mac, dst, kernelIP, nsftpIP, 1, 21, tcpSYN, 0)
	}
	next := time.Now()
	for sent < n {
		for left := min(perTick, n-sent); left > 0; {
			k := min(left, batch)
			for _, f := range frames[:k] {
				spoof(f, byte(3+rng.IntN(252)), uint16(1024+rng.IntN(64511)), rng.Uint32())
			}
			d, err := raw.sendBatch(frames[:k])
			if err != nil {
				return sent, dropped, err
			}
			sent += k
			dropped += d
			left -= k
		}
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	return sent, dropped, nil
}

// spoof sets a SYN frame's source address (192.0.2.ip), port and sequence
// number, and its checksums.
func spoof(f []byte, ip byte, port uint16, seq uint32) {
	iph, tcp := f[14:34], f[34:]
	iph[15] = ip
	binary.BigEndian.PutUint16(tcp[0:], port)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint16(iph[10:], 0)
	binary.BigEndian.PutUint16(iph[10:], ^inetSum(iph))
	binary.BigEndian.PutUint16(tcp[16:], 0)
	pseudo := append(append([]byte{}, iph[12:20]...), 0, 6, 0, byte(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], ^inetSum(append(pseudo, tcp...)))
}

// halfOpen asks the server for its state (SIGUSR1) and returns how many
// half-open connections (SYN-RECEIVED) it holds.
func (s *crowdServer) halfOpen(b *testing.B) int {
	b.Helper()
	before := strings.Count(s.stderr.String(), "nsftp: status:")
	s.cmd.Process.Signal(syscall.SIGUSR1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		lines := strings.Split(s.stderr.String(), "\n")
		seen := 0
		for _, l := range lines {
			if !strings.HasPrefix(l, "nsftp: status:") {
				continue
			}
			if seen++; seen <= before {
				continue
			}
			m := regexp.MustCompile(`([0-9]+) SYN-RECEIVED`).FindStringSubmatch(l)
			if m == nil {
				return 0
			}
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	b.Fatalf("the server did not answer SIGUSR1 with its status:\n%s", s.stderr.String())
	return 0
}
