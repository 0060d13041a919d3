package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// demoTree is the small tree `nsftp demo` serves.
//
//go:embed demotree
var demoTree embed.FS

const demoFile = "hello.txt"

// demoTimeWait is how long TIME-WAIT lasts on the demo's hosts: long
// enough to see, short enough to wait for (RFC 793's 2 MSL is 4 minutes,
// Linux's 60s).
const demoTimeWait = 50 * time.Millisecond

// demoRun is one run of the demo's session: how, and what it serves.
type demoRun struct {
	passive  bool
	mtu      int
	offload  stack.Offload
	up, down stack.Path
	step     bool
	slow     float64 // the network runs this many times slower than real time
	root     string  // the tree served
	file     string  // the file downloaded
	network  runNet  // what the session runs on (netBoth: --compare)
	sized    bool    // the file is generated (--size), of size bytes: 0 too
	size     int64   // its size, when it is generated
	want     []byte  // its sha256
}

// demoResult is what a run's download got.
type demoResult struct {
	n    int64
	took time.Duration
	sum  []byte // sha256
	kept []byte // the file itself, when small enough to print
}

// impairedDataTimeout is how long the demo's client and server wait for
// a stalled data connection, or a reply, on an impaired wire: vsftpd's
// data_connection_timeout (300 s). On a bursty wire (--burst 2,20) a lost
// retransmission is resent once a second at the RTO's cap, and a Bad
// state that lasts through thirty of them stalls the transfer 30 s: the
// server's own default (--data-timeout 30s, made against clients that
// hold a session by not reading) ended 2 of 6 runs of demo --size 8MiB
// --burst 2,20 with 426 where TCP, giving up only after RetryBudget
// (15 minutes, as Linux), would have carried on.
const impairedDataTimeout = 5 * time.Minute

// impaired reports whether the wire does anything to frames.
func (d *demoRun) impaired() bool {
	return !reflect.ValueOf(d.up).IsZero() || !reflect.ValueOf(d.down).IsZero()
}

func (d *demoRun) mode() (mode, how string) {
	if d.passive {
		return "passive", "passive mode (EPSV): the client connects to the server's data port"
	}
	return "active", "active mode (PORT): the server connects back to the client"
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet("demo", `nsftp demo [flags]

Runs an FTP server and client as two hosts on a virtual Ethernet wire
inside this process - no root, no TAP device, no files needed - and has the
client download hello.txt in active mode, the 2005 article's way: the
client listens, sends PORT and RETR, and the server connects back.

With --size the file is N bytes of generated data instead, and the path
flags make the wire a slow, lossy or congested link, to watch TCP's
congestion control at work (--graph draws it).

With --net os the same session runs on the kernel's TCP, over loopback
(in a network namespace made for the run when root); with --compare it
runs on both, and shows them side by side with what differs. There
--rate and --queue shape the kernel's loopback too (a tbf qdisc, as root),
so that both stacks' congestion control meet the same bottleneck.`, e.stdout)
	var (
		d       demoRun
		quiet   bool
		size    string
		see     seeFlags
		offload offloadFlag
		path    pathFlags
		onOS    string
		compare bool
	)
	fset.group("Demo")
	fset.boolVar(&d.passive, "passive", false, "use passive mode (EPSV) instead of the article's active mode")
	fset.boolVar(&quiet, "q", false, "print only the result (and what --trace, --pcap, --diagram ask for)")
	fset.stringVar(&size, "size", "", "download `SIZE` bytes of generated data (32MiB, 1GiB) instead of hello.txt")
	fset.stringVar(&onOS, "net", "", "run on the operating system's TCP (the only value is `os`): nsftp's socket calls on the kernel's stack, over loopback")
	fset.boolVar(&compare, "compare", false, "run the session on nsftp's stack and on the kernel's, and show both side by side with what differs")
	see.register(fset)
	fset.group("Virtual wire")
	fset.intVar(&d.mtu, "mtu", 1500, "the wire's MTU `N` (576-65000); with --net os, loopback's in the run's namespace")
	fset.varFlag(&offload, "offload", "let the stacks hand the wire 64 KiB segments: --offload passes them whole (as veth and loopback do; fastest), --offload=tso cuts them into MTU-sized frames at the wire and merges them again at the receiver (GRO), so the wire and its capture carry real frames")
	path.register(fset)
	_, err := fset.parse(args, 0, 0, "demo takes no arguments")
	if err != nil {
		return err
	}
	if d.mtu < 576 || d.mtu > stack.MaxMTU {
		return usagef("--mtu %d out of range 576-%d", d.mtu, stack.MaxMTU)
	}
	if d.up, d.down, err = path.paths(); err != nil {
		return err
	}
	d.offload = offload.mode
	switch {
	case offload.mode == stack.OffloadGSO && (d.up.Corrupt > 0 || d.down.Corrupt > 0):
		return usagef("--corrupt needs checksums, which --offload leaves out (as veth does): use --offload=tso")
	case onOS != "" && onOS != "os":
		return usagef("--net takes only \"os\"")
	case (onOS != "" || compare) && offload.mode != stack.OffloadNone:
		return usagef("--offload shapes nsftp's virtual wire; the kernel's loopback has its own (--net os, --compare)")
	case (onOS != "" || compare) && !onlyBottleneck(d.up, d.down):
		return usagef("--delay, --jitter, --loss, --burst, --down, --duplicate, --reorder and --corrupt are netem's, and this kernel has no netem qdisc: with --net os and --compare, only --rate and --queue (a tbf qdisc) shape the kernel's loopback")
	case (onOS != "" || compare) && !reflect.DeepEqual(d.up, d.down):
		return usagef("the kernel's loopback carries both directions through one qdisc: with --net os and --compare, give --rate and --queue one value for both")
	case (onOS != "" || compare) && d.up.Rate == 0 && (d.up.Queue > 0 || d.up.QueueBytes > 0):
		return usagef("--queue and --queue-bytes are the queue of a bottleneck: give its --rate")
	case compare && onOS != "":
		return usagef("--compare runs on both stacks: leave out --net os")
	case compare && (see.trace.format == "text" || see.step || see.web.set || see.pcap != "" || see.stats || see.explain || see.verbose || see.every):
		return usagef("--compare shows its own view: with --passive, --size, --mtu, --rate, --queue and -q, it takes --trace=json, --record, --diagram, --graph and --html only")
	case compare && see.slow != 0:
		return usagef("--slow slows nsftp's virtual wire; --compare runs the kernel's TCP too, which runs at its own speed")
	case compare && see.graph != "" && size == "":
		return usagef("--graph draws data connections' time-sequence graphs: with --compare give a --size to download")
	}
	d.file = demoFile
	if size != "" {
		if d.size, err = parseSize(size); err != nil {
			return usagef("--size %v", err)
		}
		d.sized = true
		d.file = "data.bin"
	}
	if d.root, err = os.MkdirTemp("", "nsftp-demo-"); err != nil {
		return &fileError{err}
	}
	defer os.RemoveAll(d.root)
	switch {
	case compare:
		d.network = netBoth
	case onOS != "":
		d.network = netOS
	}
	if err := d.writeTree(); err != nil {
		return &fileError{err}
	}
	if compare {
		return runCompare(ctx, e, &d, &see, quiet)
	}

	// The demo is a lesson: without -q it traces as --trace would.
	if see.trace.format == "" && !quiet {
		see.trace.format = "text"
	}
	if err := see.validate(); err != nil {
		return err
	}
	kind := netWire
	if onOS != "" {
		kind = netOS
	}
	if err := see.forNetwork(kind); err != nil {
		return err
	}
	d.step, d.slow = see.stepping(), max(see.slow, 1)
	format := see.trace.format
	sg, err := see.start(e, e.stdout, trace.Client, e.stop)
	if err != nil {
		return err
	}
	mode, _ := d.mode()
	what := d.file
	if d.sized {
		what += " (" + trace.Bytes(d.size) + ")"
	}
	title := "nsftp demo: " + mode + "-mode download of " + what
	if onOS != "" {
		title += " on the kernel's TCP"
	}
	defer sg.finish(title)

	var res demoResult
	var trErr error
	if onOS != "" {
		res, trErr, err = d.onKernel(ctx, e, sg)
	} else {
		res, trErr, err = d.onNetstack(ctx, sg)
	}
	if err != nil {
		return err
	}
	if err := sg.finish(title); err != nil {
		return err
	}
	if err := d.check(res); err != nil {
		return err
	}
	if trErr != nil {
		return trErr
	}
	if format != "json" {
		if format == "text" {
			fmt.Fprintln(e.stdout) // after the trace
		}
		fmt.Fprintf(e.stdout, "%s: %d bytes, sha256 %x, identical to the file served", d.file, res.n, res.sum[:8])
		if d.size > 0 && res.took > 0 {
			fmt.Fprintf(e.stdout, ", in %v (%s, %s/s)", res.took.Round(time.Millisecond),
				trace.BitRate(float64(res.n)*8/res.took.Seconds()), humanBytes(float64(res.n)/res.took.Seconds()))
		}
		fmt.Fprintln(e.stdout, ".")
		if !quiet && !d.sized {
			fmt.Fprintf(e.stdout, "\n%s", res.kept)
		}
	}
	return nil
}

// onlyBottleneck reports whether the paths ask for nothing but a
// bottleneck (a rate and a queue): what a tbf qdisc does.
func onlyBottleneck(up, down stack.Path) bool {
	for _, p := range []stack.Path{up, down} {
		p.Rate, p.Queue, p.QueueBytes = 0, 0, 0
		if !reflect.DeepEqual(p, stack.Path{}) {
			return false
		}
	}
	return true
}

// writeTree writes the tree the demo serves, and the generated file when
// there is one, noting the sha256 of the file to download.
func (d *demoRun) writeTree() error {
	if err := writeDemoTree(d.root); err != nil {
		return err
	}
	if d.sized {
		var err error
		d.want, err = writeGenerated(filepath.Join(d.root, d.file), d.size)
		return err
	}
	b := []byte(d.hello())
	sum := sha256.Sum256(b)
	d.want = sum[:]
	return os.WriteFile(filepath.Join(d.root, demoFile), b, 0o644)
}

// hello is hello.txt, the file the demo downloads and prints at its end:
// it says what the file crossed, and how it was asked for, in this run.
func (d *demoRun) hello() string {
	crossed := "a virtual Ethernet wire between two TCP/IP stacks that live inside one process (gVisor's netstack, twice)"
	switch d.network {
	case netOS:
		crossed = "the loopback interface of a Linux kernel, between two sockets of the kernel's own TCP"
	case netBoth:
		crossed = "twice: a virtual Ethernet wire between two netstack hosts inside one process, then the kernel's loopback between two of its own sockets"
	}
	how := "PORT and RETR, and the server connected back to the client's data socket"
	if d.passive {
		how = "EPSV and RETR, and connected to the server's data port"
	}
	return "Hello from nsftp's FTP server.\n\n" + wrapWords("This file crossed "+crossed+": the client asked for it with "+how+".", 72)
}

// wrapWords breaks text into lines of at most width columns, between
// words.
func wrapWords(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		switch {
		case col == 0:
		case col+1+len(w) > width:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteByte('\n')
	return b.String()
}

// check checks the download against the file served.
func (d *demoRun) check(res demoResult) error {
	if !bytes.Equal(res.sum, d.want) {
		return fmt.Errorf("%w: %s arrived with %d bytes that differ from those served", ftp.ErrIncomplete, d.file, res.n)
	}
	return nil
}

// serveAndDownload serves the demo's tree on l, through server, while
// the client downloads the file from addr through client; it returns what
// the download got once the session is over.
func (d *demoRun) serveAndDownload(ctx context.Context, server, client ftp.Network, l net.Listener, addr string, obs trace.Observer) (demoResult, error) {
	scfg := ftp.ServerConfig{Root: d.root, Anonymous: true, Network: server}
	switch {
	case d.step:
		scfg.IdleTimeout, scfg.LoginTimeout, scfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout
	case d.slow > 1 || d.impaired():
		data := 30 * time.Second
		if d.impaired() {
			data = impairedDataTimeout
		}
		// The FTP layer's waits are real time; the network's are slowed.
		scfg.IdleTimeout, scfg.LoginTimeout, scfg.DataTimeout = slowed(5*time.Minute, d.slow), slowed(20*time.Second, d.slow), slowed(data, d.slow)
	}
	srv, err := ftp.NewServer(scfg)
	if err != nil {
		l.Close()
		return demoResult{}, &setupError{err}
	}
	defer srv.Close()
	serveErr := make(chan error, 1)
	// The server outlives the client: step mode's q, or Ctrl-C, stops the
	// client, which still ends its session with QUIT; srv.Close follows.
	go func() { serveErr <- srv.Serve(context.WithoutCancel(ctx), l) }()
	// A small file is kept to print; a large one only hashed.
	var kept bytes.Buffer
	h := sha256.New()
	dst := io.Writer(h)
	if !d.sized {
		dst = io.MultiWriter(h, &kept)
	}
	n, took, err := demoDownload(ctx, client, addr, d.file, !d.passive, obs, d.step, d.slow, d.impaired(), dst)
	srv.Close()
	if serr := <-serveErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	return demoResult{n: n, took: took, sum: h.Sum(nil), kept: kept.Bytes()}, err
}

// pathSummary describes the wire's path for the run's heading.
func pathSummary(up, down stack.Path) string {
	describe := func(p stack.Path) string {
		var parts []string
		if p.Rate > 0 {
			q := "1000 frames"
			switch {
			case p.QueueBytes > 0:
				q = trace.Bytes(int64(p.QueueBytes))
			case p.Queue > 0:
				q = fmt.Sprintf("%d frames", p.Queue)
			}
			parts = append(parts, fmt.Sprintf("%s with a queue of %s", trace.BitRate(float64(p.Rate)), q))
		}
		if p.Delay > 0 {
			d := "delay " + p.Delay.String()
			if p.Jitter > 0 {
				d += " ± " + p.Jitter.String()
			}
			parts = append(parts, d)
		}
		if p.Loss > 0 {
			parts = append(parts, fmt.Sprintf("%v%% loss", p.Loss))
		}
		if b := p.Burst; b != nil {
			parts = append(parts, fmt.Sprintf("bursty loss (p %v%%, r %v%%)", b.P, b.R))
		}
		for _, o := range p.Down {
			parts = append(parts, fmt.Sprintf("down from %v for %v", o.At, o.For))
		}
		for _, x := range []struct {
			v    float64
			name string
		}{{p.Duplicate, "duplicated"}, {p.Reorder, "reordered"}, {p.Corrupt, "corrupted"}} {
			if x.v > 0 {
				parts = append(parts, fmt.Sprintf("%v%% %s", x.v, x.name))
			}
		}
		return strings.Join(parts, ", ")
	}
	u, d := describe(up), describe(down)
	switch {
	case u == "" && d == "":
		return ""
	case u == d:
		return "; " + u
	}
	if u == "" {
		u = "clean"
	}
	if d == "" {
		d = "clean"
	}
	return "; client to server " + u + "; server to client " + d
}

// writeGenerated writes n bytes of repeatable pseudo-random data to path
// and returns their sha256.
func writeGenerated(path string, n int64) ([]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	src := rand.NewChaCha8([32]byte{'n', 's', 'f', 't', 'p'})
	if _, err := io.CopyN(w, src, n); err != nil {
		f.Close()
		return nil, err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return h.Sum(nil), f.Close()
}

// demoDownload logs in anonymously and downloads name into dst, returning
// how many bytes came and how long the transfer took. A stop asked for in
// step mode still ends the session with QUIT.
func demoDownload(ctx context.Context, network ftp.Network, addr, name string, active bool, obs trace.Observer, step bool, slow float64, impaired bool, dst io.Writer) (n int64, took time.Duration, err error) {
	cfg := ftp.ClientConfig{Network: network, Active: active, Observer: obs}
	switch {
	case step:
		cfg.ConnectTimeout, cfg.ReplyTimeout, cfg.AcceptTimeout, cfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout, stepTimeout
	case slow > 1 || impaired:
		connect, reply := 30*time.Second, 60*time.Second
		if impaired {
			connect, reply = impairedDataTimeout, impairedDataTimeout
		}
		cfg.ConnectTimeout, cfg.ReplyTimeout = slowed(connect, slow), slowed(reply, slow)
		cfg.AcceptTimeout, cfg.DataTimeout = slowed(connect, slow), slowed(reply, slow)
	}
	c, err := ftp.Dial(ctx, addr, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			c.Quit(qctx)
			cancel()
		}
		c.Close()
	}()
	if err := c.Login(ctx, "", ""); err != nil {
		return 0, 0, err
	}
	if err := c.Type(ctx, "I"); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if n, err = c.Retrieve(ctx, name, 0, dst); err != nil {
		return n, 0, err
	}
	took = time.Since(start)
	if err := c.Quit(ctx); err != nil {
		return n, took, err
	}
	return n, took, nil
}

// slowed is a wait of d on a network that runs slow times slower than
// real time.
func slowed(d time.Duration, slow float64) time.Duration {
	return time.Duration(float64(d) * slow)
}

func writeDemoTree(root string) error {
	return fs.WalkDir(demoTree, "demotree", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("demotree", p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := demoTree.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
