package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
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

func runDemo(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet("demo", `nsftp demo [flags]

Runs an FTP server and client as two hosts on a virtual Ethernet wire
inside this process - no root, no TAP device, no files needed - and has the
client download hello.txt in active mode, the 2005 article's way: the
client listens, sends PORT and RETR, and the server connects back.`, e.stdout)
	var (
		passive bool
		quiet   bool
		see     seeFlags
		mtu     int
		loss    float64
		delay   time.Duration
	)
	fset.group("Demo")
	fset.boolVar(&passive, "passive", false, "use passive mode (EPSV) instead of the article's active mode")
	fset.boolVar(&quiet, "q", false, "print only the result (and what --trace, --pcap, --diagram ask for)")
	see.register(fset)
	fset.group("Virtual wire")
	fset.intVar(&mtu, "mtu", 1500, "the wire's MTU `N` (576-65000)")
	fset.floatVar(&loss, "loss", 0, "`PERCENT` of frames the wire drops")
	fset.durationVar(&delay, "delay", 0, "delay every frame on the wire by `DURATION`")
	_, err := fset.parse(args, 0, 0, "demo takes no arguments")
	if err != nil {
		return err
	}
	if mtu < 576 || mtu > stack.MaxMTU {
		return usagef("--mtu %d out of range 576-%d", mtu, stack.MaxMTU)
	}
	if loss < 0 || loss > 50 {
		return usagef("--loss %v out of range 0-50", loss)
	}
	if delay < 0 || delay > 10*time.Second {
		return usagef("--delay %v out of range 0-10s", delay)
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
	title := "nsftp demo: " + mode + "-mode download of " + demoFile
	defer sg.finish(title)
	sg.begin("nsftp demo", fmt.Sprintf("client %s and server %s on a virtual wire (MTU %d), %s",
		stack.ClientAddr4.Addr(), stack.ServerAddr4.Addr(), mtu, how))

	root, err := os.MkdirTemp("", "nsftp-demo-")
	if err != nil {
		return &fileError{err}
	}
	defer os.RemoveAll(root)
	if err := writeDemoTree(root); err != nil {
		return &fileError{err}
	}

	// On one wire the client's link sees every frame: capture it there
	// only. TIME-WAIT is short, so the lesson can show it end.
	clientCfg := sg.hostConfig("client", trace.Client, true)
	serverCfg := sg.hostConfig("server", trace.Server, false)
	clientCfg.TimeWait, serverCfg.TimeWait = demoTimeWait, demoTimeWait
	p, err := stack.NewPair(stack.PairConfig{
		// A lesson's capture should show the checksums a real NIC would.
		Wire:   stack.WireConfig{MTU: mtu, Loss: loss, Delay: delay, Checksums: true},
		Client: clientCfg,
		Server: serverCfg,
	})
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

	got, err := demoDownload(ctx, p.Client, serverAddr, !passive, sg.ftpObserver(), see.step)
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
	want, _ := demoTree.ReadFile("demotree/" + demoFile)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s arrived with %d bytes that differ from the %d served", ftp.ErrIncomplete, demoFile, len(got), len(want))
	}
	if trErr != nil {
		return trErr
	}
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
