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
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"nsftp/ftp"
	"nsftp/stack"
	"nsftp/trace"
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

func runDemo(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet("demo", `nsftp demo [flags]

Runs an FTP server and client as two hosts on a virtual Ethernet wire
inside this process - no root, no TAP device, no files needed - and has the
client download hello.txt in active mode, the 2005 article's way: the
client listens, sends PORT and RETR, and the server connects back.

With --size the file is N bytes of generated data instead, and the path
flags make the wire a slow, lossy or congested link, to watch TCP's
congestion control at work (--graph draws it).`, e.stdout)
	var (
		passive bool
		quiet   bool
		size    string
		see     seeFlags
		mtu     int
		offload offloadFlag
		path    pathFlags
	)
	fset.group("Demo")
	fset.boolVar(&passive, "passive", false, "use passive mode (EPSV) instead of the article's active mode")
	fset.boolVar(&quiet, "q", false, "print only the result (and what --trace, --pcap, --diagram ask for)")
	fset.stringVar(&size, "size", "", "download `SIZE` bytes of generated data (32MiB, 1GiB) instead of hello.txt")
	see.register(fset)
	fset.group("Virtual wire")
	fset.intVar(&mtu, "mtu", 1500, "the wire's MTU `N` (576-65000)")
	fset.varFlag(&offload, "offload", "let the stacks hand the wire 64 KiB segments: --offload passes them whole (as veth and loopback do; fastest), --offload=tso cuts them into MTU-sized frames at the wire and merges them again at the receiver (GRO), so the wire and its capture carry real frames")
	path.register(fset)
	_, err := fset.parse(args, 0, 0, "demo takes no arguments")
	if err != nil {
		return err
	}
	if mtu < 576 || mtu > stack.MaxMTU {
		return usagef("--mtu %d out of range 576-%d", mtu, stack.MaxMTU)
	}
	up, down, err := path.paths()
	if err != nil {
		return err
	}
	if offload.mode == stack.OffloadGSO && (up.Corrupt > 0 || down.Corrupt > 0) {
		return usagef("--corrupt needs checksums, which --offload leaves out (as veth does): use --offload=tso")
	}
	file := demoFile
	var fileSize int64
	if size != "" {
		if fileSize, err = parseSize(size); err != nil {
			return usagef("--size %v", err)
		}
		file = "data.bin"
	}

	// The demo is a lesson: without -q it traces as --trace would.
	if see.trace.format == "" && !quiet {
		see.trace.format = "text"
	}
	if err := see.validate(true); err != nil {
		return err
	}
	format := see.trace.format
	sg, err := see.start(e, e.stdout, trace.Client, e.stop)
	if err != nil {
		return err
	}
	mode, how := "active", "active mode (PORT): the server connects back to the client"
	if passive {
		mode, how = "passive", "passive mode (EPSV): the client connects to the server's data port"
	}
	what := file
	if size != "" {
		what += " (" + trace.Bytes(fileSize) + ")"
	}
	title := "nsftp demo: " + mode + "-mode download of " + what
	defer sg.finish(title)
	off := ""
	switch offload.mode {
	case stack.OffloadGSO:
		off = ", 64 KiB segments passed whole"
	case stack.OffloadTSO:
		off = ", 64 KiB segments cut into frames at the wire and merged at the receiver"
	}
	sg.begin("nsftp demo", fmt.Sprintf("client %s and server %s on a virtual wire (MTU %d%s%s), %s",
		stack.ClientAddr4.Addr(), stack.ServerAddr4.Addr(), mtu, off, pathSummary(up, down), how))

	root, err := os.MkdirTemp("", "nsftp-demo-")
	if err != nil {
		return &fileError{err}
	}
	defer os.RemoveAll(root)
	if err := writeDemoTree(root); err != nil {
		return &fileError{err}
	}
	var want []byte // the file's sha256
	if size != "" {
		if want, err = writeGenerated(filepath.Join(root, file), fileSize); err != nil {
			return &fileError{err}
		}
	} else {
		b, _ := demoTree.ReadFile("demotree/" + demoFile)
		sum := sha256.Sum256(b)
		want = sum[:]
	}

	// The capture is the wire's: every frame once, as its sender sent it,
	// whatever the path then does to it. TIME-WAIT is short, so the lesson
	// can show it end.
	clientCfg := sg.hostConfig("client", trace.Client, false)
	serverCfg := sg.hostConfig("server", trace.Server, false)
	clientCfg.TimeWait, serverCfg.TimeWait = demoTimeWait, demoTimeWait
	// A lesson's capture should show the checksums a real NIC would.
	wire := stack.WireConfig{MTU: mtu, Path: up, Offload: offload.mode, PCAP: sg.wireCapture(), Observer: sg.wireObserver()}
	// A lesson's capture shows the checksums a real NIC would; with the
	// stacks' segments passed whole there are none to show, as on veth.
	wire.Checksums = offload.mode != stack.OffloadGSO
	if !reflect.DeepEqual(up, down) {
		wire.Out = map[int]stack.Path{stack.ClientPort: up, stack.ServerPort: down}
	}
	p, err := stack.NewPair(stack.PairConfig{Wire: wire, Client: clientCfg, Server: serverCfg})
	if err != nil {
		return &setupError{err}
	}
	defer p.Close()
	sg.hostStarted(p.Client)
	sg.hostStarted(p.Server)

	scfg := ftp.ServerConfig{Root: root, Anonymous: true, Network: p.Server}
	if see.step {
		scfg.IdleTimeout, scfg.LoginTimeout, scfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout
	}
	srv, err := ftp.NewServer(scfg)
	if err != nil {
		return &setupError{err}
	}
	defer srv.Close()
	serverAddr := netip.AddrPortFrom(stack.ServerAddr4.Addr(), 21).String()
	l, err := p.Server.Listen(ctx, trace.Control, serverAddr, 8)
	if err != nil {
		return &setupError{err}
	}
	serveErr := make(chan error, 1)
	// The server outlives the client: step mode's q, or Ctrl-C, stops the
	// client, which still ends its session with QUIT; srv.Close follows.
	go func() { serveErr <- srv.Serve(context.WithoutCancel(ctx), l) }()

	// A small file is kept to print; a large one only hashed.
	var kept bytes.Buffer
	h := sha256.New()
	dst := io.Writer(h)
	if size == "" {
		dst = io.MultiWriter(h, &kept)
	}
	n, took, err := demoDownload(ctx, p.Client, serverAddr, file, !passive, sg.ftpObserver(), see.step, dst)
	srv.Close()
	if serr := <-serveErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	// The lesson ends when every connection has: last ACKs in, TIME-WAIT
	// over. What follows is teardown, and the trace ends here.
	sg.settle(ctx, demoTimeWait+2*time.Second)
	trErr := sg.stopTrace()
	if err != nil {
		return err
	}
	p.Close()
	if err := sg.finish(title); err != nil {
		return err
	}
	got := h.Sum(nil)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s arrived with %d bytes that differ from those served", ftp.ErrIncomplete, file, n)
	}
	if trErr != nil {
		return trErr
	}
	if format != "json" {
		if format == "text" {
			fmt.Fprintln(e.stdout) // after the trace
		}
		fmt.Fprintf(e.stdout, "%s: %d bytes, sha256 %x, identical to the file served", file, n, got[:8])
		if size != "" && took > 0 {
			fmt.Fprintf(e.stdout, ", in %v (%s, %s/s)", took.Round(time.Millisecond),
				trace.BitRate(float64(n)*8/took.Seconds()), humanBytes(float64(n)/took.Seconds()))
		}
		fmt.Fprintln(e.stdout, ".")
		if !quiet && size == "" {
			fmt.Fprintf(e.stdout, "\n%s", kept.Bytes())
		}
	}
	return nil
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
func demoDownload(ctx context.Context, network ftp.Network, addr, name string, active bool, obs trace.Observer, step bool, dst io.Writer) (n int64, took time.Duration, err error) {
	cfg := ftp.ClientConfig{Network: network, Active: active, Observer: obs}
	if step {
		cfg.ConnectTimeout, cfg.ReplyTimeout, cfg.AcceptTimeout, cfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout, stepTimeout
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
