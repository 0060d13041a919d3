package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
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

// demoRun is one run of the demo's session: how, and the tree it serves.
type demoRun struct {
	passive bool
	mtu     int
	loss    float64
	delay   time.Duration
	step    bool
	root    string
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

With --net os the same session runs on the kernel's TCP, over loopback
(in a network namespace made for the run when root); with --compare it
runs on both, and shows them side by side with what differs.`, e.stdout)
	var (
		d       demoRun
		quiet   bool
		see     seeFlags
		netOS   string
		compare bool
	)
	fset.group("Demo")
	fset.boolVar(&d.passive, "passive", false, "use passive mode (EPSV) instead of the article's active mode")
	fset.boolVar(&quiet, "q", false, "print only the result (and what --trace, --pcap, --diagram ask for)")
	fset.stringVar(&netOS, "net", "", "run on the operating system's TCP (the only value is `os`): nsftp's socket calls on the kernel's stack, over loopback")
	fset.boolVar(&compare, "compare", false, "run the session on nsftp's stack and on the kernel's, and show both side by side with what differs")
	see.register(fset)
	fset.group("Virtual wire")
	fset.intVar(&d.mtu, "mtu", 1500, "the wire's MTU `N` (576-65000); with --net os, loopback's in the run's namespace")
	fset.floatVar(&d.loss, "loss", 0, "`PERCENT` of frames the wire drops")
	fset.durationVar(&d.delay, "delay", 0, "delay every frame on the wire by `DURATION`")
	_, err := fset.parse(args, 0, 0, "demo takes no arguments")
	if err != nil {
		return err
	}
	switch {
	case d.mtu < 576 || d.mtu > stack.MaxMTU:
		return usagef("--mtu %d out of range 576-%d", d.mtu, stack.MaxMTU)
	case d.loss < 0 || d.loss > 50:
		return usagef("--loss %v out of range 0-50", d.loss)
	case d.delay < 0 || d.delay > 10*time.Second:
		return usagef("--delay %v out of range 0-10s", d.delay)
	case netOS != "" && netOS != "os":
		return usagef("--net takes only \"os\"")
	case (netOS != "" || compare) && (d.loss != 0 || d.delay != 0):
		return usagef("--loss and --delay impair nsftp's virtual wire; the kernel's loopback has none (--net os, --compare)")
	case compare && netOS != "":
		return usagef("--compare runs on both stacks: leave out --net os")
	case compare && (see.trace.format != "" || see.record != "" || see.step || see.pcap != "" || see.diagram != "" || see.stats || see.explain || see.verbose):
		return usagef("--compare shows its own view: it takes --passive, --mtu and -q only")
	}
	if compare {
		return runCompare(ctx, e, &d, quiet)
	}

	// The demo is a lesson: without -q it traces as --trace would.
	if see.trace.format == "" && !quiet {
		see.trace.format = "text"
	}
	if err := see.validate(); err != nil {
		return err
	}
	d.step = see.step
	sg, err := see.start(e, e.stdout, trace.Client, e.stop)
	if err != nil {
		return err
	}
	mode, _ := d.mode()
	title := "nsftp demo: " + mode + "-mode download of " + demoFile
	if netOS != "" {
		title += " on the kernel's TCP"
	}
	defer sg.finish(title)
	if d.root, err = os.MkdirTemp("", "nsftp-demo-"); err != nil {
		return &fileError{err}
	}
	defer os.RemoveAll(d.root)
	if err := writeDemoTree(d.root); err != nil {
		return &fileError{err}
	}

	var got []byte
	var trErr error
	if netOS != "" {
		got, trErr, err = d.onKernel(ctx, e, sg)
	} else {
		got, trErr, err = d.onNetstack(ctx, sg)
	}
	if err != nil {
		return err
	}
	if err := sg.finish(title); err != nil {
		return err
	}
	if err := checkDemoFile(got); err != nil {
		return err
	}
	if trErr != nil {
		return trErr
	}
	format := see.trace.format
	if format != "json" {
		sum := sha256.Sum256(got)
		if format == "text" {
			fmt.Fprintln(e.stdout) // after the trace
		}
		fmt.Fprintf(e.stdout, "%s: %d bytes, sha256 %x, identical to the file served.\n", demoFile, len(got), sum[:8])
		if !quiet {
			fmt.Fprintf(e.stdout, "\n%s", got)
		}
	}
	return nil
}

// checkDemoFile checks the download against the file served.
func checkDemoFile(got []byte) error {
	want, _ := demoTree.ReadFile("demotree/" + demoFile)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s arrived with %d bytes that differ from the %d served", ftp.ErrIncomplete, demoFile, len(got), len(want))
	}
	return nil
}

// demoDownload logs in anonymously and downloads demoFile. A stop asked
// for in step mode still ends the session with QUIT.
func demoDownload(ctx context.Context, network ftp.Network, addr string, active bool, obs trace.Observer, step bool) (data []byte, err error) {
	cfg := ftp.ClientConfig{Network: network, Active: active, Observer: obs}
	if step {
		cfg.ConnectTimeout, cfg.ReplyTimeout, cfg.AcceptTimeout, cfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout, stepTimeout
	}
	c, err := ftp.Dial(ctx, addr, cfg)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	if err := c.Type(ctx, "I"); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := c.Retrieve(ctx, demoFile, 0, &buf); err != nil {
		return nil, err
	}
	if err := c.Quit(ctx); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// serveAndDownload serves the demo's tree on l, through server, while
// the client downloads from addr through client; it returns what the
// download got once the session is over.
func (d *demoRun) serveAndDownload(ctx context.Context, server, client ftp.Network, l net.Listener, addr string, obs trace.Observer) ([]byte, error) {
	scfg := ftp.ServerConfig{Root: d.root, Anonymous: true, Network: server}
	if d.step {
		scfg.IdleTimeout, scfg.LoginTimeout, scfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout
	}
	srv, err := ftp.NewServer(scfg)
	if err != nil {
		l.Close()
		return nil, &setupError{err}
	}
	defer srv.Close()
	serveErr := make(chan error, 1)
	// The server outlives the client: step mode's q, or Ctrl-C, stops the
	// client, which still ends its session with QUIT; srv.Close follows.
	go func() { serveErr <- srv.Serve(context.WithoutCancel(ctx), l) }()
	got, err := demoDownload(ctx, client, addr, !d.passive, obs, d.step)
	srv.Close()
	if serr := <-serveErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	return got, err
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
