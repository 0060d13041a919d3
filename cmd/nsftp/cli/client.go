package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/trace"
)

// clientFlags are the flags get, put and ls share.
type clientFlags struct {
	netFlags
	active, passive bool
	eprt            bool
	timeout         time.Duration
	connectTimeout  time.Duration
	quiet           bool
	see             seeFlags
	tls             tlsFlags
}

func (cf *clientFlags) register(fs *flagSet) {
	fs.group("Transfer")
	fs.boolVar(&cf.passive, "passive", false, "passive mode: the client connects to the server's data port (the default)")
	fs.boolVar(&cf.active, "active", false, "active mode: the server connects back to the client (PORT/EPRT), as in the 2005 article")
	fs.boolVar(&cf.eprt, "eprt", false, "in active mode, send EPRT even on IPv4")
	fs.durationVar(&cf.timeout, "timeout", 60*time.Second, "longest wait for a reply, the data connection, or data to move")
	fs.durationVar(&cf.connectTimeout, "connect-timeout", 30*time.Second, "longest wait for a TCP connection to open")
	fs.boolVar(&cf.quiet, "q", false, "print nothing but errors and what was asked for")
	cf.tls.register(fs)
	cf.see.register(fs)
	cf.netFlags.register(fs)
}

func (cf *clientFlags) validate() error {
	if cf.active && cf.passive {
		return usagef("--active and --passive are mutually exclusive")
	}
	if cf.timeout <= 0 || cf.connectTimeout <= 0 {
		return usagef("--timeout and --connect-timeout must be positive")
	}
	if cf.eprt && !cf.active {
		return usagef("--eprt applies only with --active")
	}
	if err := cf.netFlags.validate(); err != nil {
		return err
	}
	if err := cf.tls.validate(); err != nil {
		return err
	}
	if err := cf.see.validatePeer(cf.peerKernel); err != nil {
		return err
	}
	if err := cf.see.validate(); err != nil {
		return err
	}
	return cf.see.forNetwork(cf.netFlags.kind())
}

// session is a logged-in client on an opened network.
type session struct {
	net   *network
	c     *ftp.Client
	see   *seeing
	title string // what the run did, for the diagram
}

// connect opens the network, connects, logs in and sets binary mode.
// The trace, if any, goes to stderr: stdout may be the file itself.
func (cf *clientFlags) connect(ctx context.Context, e *env, u *ftp.URL, title string) (*session, error) {
	if err := credentials(e, u); err != nil {
		return nil, err
	}
	mode, tlsCfg, err := cf.tls.client(e, u)
	if err != nil {
		return nil, err
	}
	see, err := cf.see.start(e, e.stderr, trace.Client, e.stop)
	if err != nil {
		return nil, err
	}
	see.begin(title, "")
	n, err := cf.open(ctx, see, trace.Client)
	if err != nil {
		see.finish(title)
		return nil, err
	}
	timeout, connectTimeout := cf.timeout, cf.connectTimeout
	if cf.see.stepping() {
		timeout, connectTimeout = stepTimeout, stepTimeout
	}
	cfg := ftp.ClientConfig{
		Network:        n,
		Active:         cf.active,
		UseEPRT:        cf.eprt,
		ConnectTimeout: connectTimeout,
		ReplyTimeout:   timeout,
		AcceptTimeout:  timeout,
		DataTimeout:    timeout,
		Observer:       see.ftpObserver(),
		TLSMode:        mode,
		TLS:            tlsCfg,
		ClearData:      cf.tls.controlOnly,
	}
	s := &session{net: n, see: see, title: title}
	c, err := ftp.Dial(ctx, u.Address(), cfg)
	if err != nil {
		n.Close()
		see.finish(title)
		return nil, err
	}
	s.c = c
	if err := c.Login(ctx, u.User, u.Password); err != nil {
		s.end(ctx)
		return nil, err
	}
	if err := c.Type(ctx, "I"); err != nil {
		s.end(ctx)
		return nil, err
	}
	return s, nil
}

// end says QUIT (with a budget of its own, so it goes out even after ctx
// was cancelled) and closes everything.
func (s *session) end(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	s.c.Quit(qctx)
	s.c.Close()
	// Give back the DHCP lease while the trace still runs: the release
	// is part of the story.
	s.net.Leave(qctx)
	traceErr := s.see.stopTrace()
	err := s.net.Close()
	return errors.Join(traceErr, err, s.see.finish(s.title))
}

// report prints a one-line summary of a transfer to w.
func report(w io.Writer, verb, name string, n int64, d time.Duration) {
	rate := float64(n) / d.Seconds()
	fmt.Fprintf(w, "%s %s: %s in %v (%s/s)\n", verb, name, humanBytes(float64(n)), d.Round(time.Millisecond), humanBytes(rate))
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// parseURL parses a URL argument; its mistakes are usage errors.
func parseURL(raw string) (*ftp.URL, error) {
	u, err := ftp.ParseURL(raw)
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	return u, nil
}
