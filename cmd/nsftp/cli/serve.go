package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/trace"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("serve", "nsftp serve [flags] DIR\n\nServes DIR until interrupted. Anonymous and read-only unless told otherwise.", e.stdout)
	var (
		nf          netFlags
		listen      string
		write       bool
		user        string
		password    string
		anonymous   bool
		lim         serveLimits
		quiet       bool
		see         seeFlags
		tlsCert     string
		tlsKey      string
		tlsRequired bool
		tlsImplicit bool
	)
	fs.group("Serving")
	fs.stringVar(&listen, "listen", "", "listen on `ADDR:PORT` (default 127.0.0.1:2121 with --net os, port 21 on --addr with --tap)")
	fs.boolVar(&write, "write", false, "allow uploads, deletes, renames and new directories")
	fs.stringVar(&user, "user", "", "accept this user name (with --password); turns anonymous login off unless --anonymous")
	fs.stringVar(&password, "password", "", "the user's password (or set NSFTP_PASSWORD)")
	fs.boolVar(&anonymous, "anonymous", false, "accept anonymous login (the default when no --user is given)")
	fs.boolVar(&quiet, "q", false, "print nothing but errors")
	lim.register(fs)
	fs.group("FTPS (TLS)")
	fs.stringVar(&tlsCert, "tls-cert", "", "offer AUTH TLS with the certificate (chain) in `FILE` (PEM)")
	fs.stringVar(&tlsKey, "tls-key", "", "the certificate's private key, in `FILE` (PEM)")
	fs.boolVar(&tlsRequired, "tls-required", false, "refuse logins and transfers without TLS, and data connections that do not resume the control connection's TLS session")
	fs.boolVar(&tlsImplicit, "tls-implicit", false, "implicit FTPS: TLS from the first byte (clients use ftps:// URLs, usually port 990)")
	see.register(fs)
	nf.register(fs)
	pos, err := fs.parse(args, 1, 1, "serve takes one DIR")
	if err != nil {
		return err
	}
	if err := nf.validate(); err != nil {
		return err
	}
	if err := see.validatePeer(nf.peerKernel); err != nil {
		return err
	}
	if err := see.validate(); err != nil {
		return err
	}
	if err := see.forNetwork(nf.kind()); err != nil {
		return err
	}
	if password == "" {
		password = os.Getenv("NSFTP_PASSWORD")
	}
	switch {
	case user == "" && password != "" && os.Getenv("NSFTP_PASSWORD") == "":
		return usagef("--password needs --user")
	case user != "" && password == "":
		return usagef("--user needs a password: --password or NSFTP_PASSWORD")
	case user == "":
		anonymous = true
	}
	if (tlsCert == "") != (tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if (tlsRequired || tlsImplicit) && tlsCert == "" {
		return usagef("--tls-required and --tls-implicit need --tls-cert and --tls-key")
	}
	if err := lim.validate(); err != nil {
		return err
	}
	if fi, err := os.Stat(pos[0]); err != nil {
		return &fileError{err}
	} else if !fi.IsDir() {
		return &fileError{fmt.Errorf("%s is not a directory", pos[0])}
	}
	ps, _ := nf.prefixes()
	switch {
	case listen != "":
	case nf.tap == "":
		listen = "127.0.0.1:2121"
	case len(ps) > 0:
		listen = netip.AddrPortFrom(ps[0].Addr(), 21).String()
	}
	if _, _, err := net.SplitHostPort(listen); listen != "" && err != nil {
		return usagef("--listen %q is not ADDR:PORT", listen)
	}

	if n, _ := parseSize(lim.memoryLimit); e.process && n > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A crowd's sessions and buffers are bounded; what the
		// collector lets grow above them between collections is not:
		// 10,000 clients fetching 100 kB at once peaked at 1,154 MB
		// without a limit, 970-1,000 MiB with 1 GiB, 837 MiB with 768
		// MiB (all served, in 40 s rather than 26-31 s).
		debug.SetMemoryLimit(n)
	}
	sg, err := see.start(e, e.stderr, trace.Server, e.stop)
	if err != nil {
		return err
	}
	title := "nsftp serve " + pos[0]
	defer sg.finish(title)
	sg.begin(title, "")
	nf.socketMemory = lim.bufferBytes() - lim.bufferBytes()/4
	nf.floodGuard = true
	n, err := nf.open(ctx, sg, trace.Server)
	if err != nil {
		return err
	}
	defer n.Close()
	if listen == "" {
		// On the address the network gave: DHCP's, or else SLAAC's.
		listen = ":21"
		if nc, ok := n.Network.(*netconf.Network); ok {
			for _, a := range nc.Addresses() {
				if !a.Addr().IsLinkLocalUnicast() {
					listen = netip.AddrPortFrom(a.Addr(), 21).String()
					break
				}
			}
		}
	}
	cfg := ftp.ServerConfig{
		Root: pos[0], Write: write, Anonymous: anonymous, User: user, Password: password,
		Network: n,
		Logf: func(format string, args ...any) {
			if !quiet {
				fmt.Fprintf(e.stderr, "nsftp: "+format+"\n", args...)
			}
		},
	}
	lim.apply(&cfg)
	cfg.Observer = sg.ftpObserver()
	if tlsCert != "" {
		if cfg.TLS, err = serveTLS(tlsCert, tlsKey); err != nil {
			return err
		}
		cfg.TLSRequired, cfg.TLSImplicit = tlsRequired, tlsImplicit
	}
	if see.stepping() {
		cfg.IdleTimeout, cfg.LoginTimeout, cfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout
	}
	srv, err := ftp.NewServer(cfg)
	if err != nil {
		return &setupError{err}
	}
	defer srv.Close()
	l, err := n.Listen(trace.WithBacklog(trace.WithLabel(ctx, trace.Control), lim.backlog), "tcp", listen)
	if err != nil {
		return &setupError{fmt.Errorf("listening on %s: %w", listen, err)}
	}
	if !quiet {
		access := "read-only"
		if write {
			access = "read-write"
		}
		who := "anonymous"
		if user != "" {
			who = "user " + user
			if anonymous {
				who += " and anonymous"
			}
		}
		if tlsCert != "" {
			switch {
			case tlsImplicit:
				access += ", implicit TLS"
			case tlsRequired:
				access += ", TLS required"
			default:
				access += ", TLS offered"
			}
		}
		fmt.Fprintf(e.stderr, "nsftp: serving %s on %s (%s, %s); interrupt to stop\n", pos[0], l.Addr(), access, who)
	}
	sctx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	if e.status != nil {
		go printStatus(sctx, e, srv, n)
	}
	go giveBackMemory(sctx)
	err = srv.Serve(ctx, l)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	srv.Close()
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	n.Leave(lctx)
	cancel()
	return errors.Join(err, sg.stopTrace(), n.Close(), sg.finish(title))
}

// serveLimits are the flags that bound what clients can take: sessions,
// time and data rate (README "Serving safely"). Zero counts take the
// server's defaults, which depend on --max-sessions.
type serveLimits struct {
	maxSessions, maxPerAddr, maxUnauth, minRate int
	idle, login, data, file                     time.Duration
	backlog                                     int
	bufferMemory, memoryLimit                   string
}

// bufferMemory is --buffer-memory in bytes.
func (l *serveLimits) bufferBytes() int {
	n, _ := parseSize(l.bufferMemory)
	return int(n)
}

// defaultBacklog is the control listener's backlog: Linux's
// net.core.somaxconn. With 64, 10,000 clients arriving at once overflowed
// the queue of connections waiting for accept, and SYNs and handshakes were
// dropped: some clients backed off past two minutes, others were reset.
const defaultBacklog = 4096

func (l *serveLimits) register(fs *flagSet) {
	fs.group("Limits")
	fs.intVar(&l.maxSessions, "max-sessions", 32, "most sessions at once")
	fs.intVar(&l.maxPerAddr, "max-per-addr", 0, "most sessions from one address (an IPv6 /64) (default 8, at most half of --max-sessions)")
	fs.intVar(&l.maxUnauth, "max-unauthenticated", 0, "most sessions not logged in yet, from all addresses (default 16, at most --max-sessions)")
	fs.durationVar(&l.login, "login-timeout", 20*time.Second, "end a session not logged in this long after connecting")
	fs.durationVar(&l.idle, "idle-timeout", 5*time.Minute, "end a session idle this long")
	fs.durationVar(&l.data, "data-timeout", 30*time.Second, "end a transfer whose data connection stalls this long")
	fs.intVar(&l.minRate, "min-rate", 1024, "end a transfer that moves fewer than `BYTES` per second over a --data-timeout")
	fs.durationVar(&l.file, "file-timeout", 30*time.Second, "end a session whose file system call takes this long (a hung mount)")
	fs.intVar(&l.backlog, "backlog", defaultBacklog, "queue up to `N` connections, and as many half-open ones, for accept; SYN cookies past that (as Linux's somaxconn)")
	fs.stringVar(&l.bufferMemory, "buffer-memory", "128MiB", "most memory all transfers together hold in buffers, `SIZE`: a quarter in the server's copy buffers, the rest in TCP's on nsftp's own stack (as Linux's tcp_mem); with more transfers at once each gets a share, and they are slower, not refused")
	fs.stringVar(&l.memoryLimit, "memory-limit", "768MiB", "the process's soft memory limit, `SIZE` (Go's GOMEMLIMIT, which takes precedence when set; 0 for none): its garbage collector works harder as memory nears it, and the bounds on buffers and sessions keep what is in use below it")
}

func (l *serveLimits) validate() error {
	switch {
	case l.maxSessions < 1:
		return usagef("--max-sessions must be at least 1")
	case l.maxPerAddr < 0, l.maxUnauth < 0:
		return usagef("--max-per-addr and --max-unauthenticated must not be negative (0 takes the default)")
	case l.minRate < 1:
		return usagef("--min-rate must be at least 1 byte per second")
	case l.idle <= 0, l.login <= 0, l.data <= 0, l.file <= 0:
		return usagef("--idle-timeout, --login-timeout, --data-timeout and --file-timeout must be positive")
	case l.backlog < 1 || l.backlog > 1<<20:
		return usagef("--backlog %d out of range 1-%d", l.backlog, 1<<20)
	}
	if n, err := parseSize(l.bufferMemory); err != nil || n < 1<<20 || n > 1<<40 {
		return usagef("--buffer-memory %q: want a size from 1MiB, like 256MiB", l.bufferMemory)
	}
	if n, err := parseSize(l.memoryLimit); err != nil || n != 0 && n < 64<<20 {
		return usagef("--memory-limit %q: want 0 or a size from 64MiB, like 1GiB", l.memoryLimit)
	}
	return nil
}

func (l *serveLimits) apply(cfg *ftp.ServerConfig) {
	cfg.MaxSessions, cfg.MaxPerAddr, cfg.MaxUnauthenticated = l.maxSessions, l.maxPerAddr, l.maxUnauth
	cfg.IdleTimeout, cfg.LoginTimeout, cfg.DataTimeout, cfg.FileTimeout = l.idle, l.login, l.data, l.file
	cfg.MinDataRate = l.minRate
	cfg.BufferMemory = l.bufferBytes() / 4
}

// printStatus answers each SIGUSR1 with one line on stderr: the sessions,
// the TCP connections of nsftp's own stack by state (SYN-RECEIVED are the
// half-open ones a listener holds), and the process's memory.
func printStatus(ctx context.Context, e *env, srv *ftp.Server, n *network) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.status:
		}
		running, unauth := srv.Sessions()
		line := fmt.Sprintf("nsftp: status: %d sessions (%d not logged in)", running, unauth)
		if nc, ok := n.Network.(*netconf.Network); ok {
			conns := nc.Host.Connections()
			states := make([]string, 0, len(conns))
			for st, k := range conns {
				states = append(states, fmt.Sprintf("%d %s", k, st))
			}
			slices.Sort(states)
			line += "; TCP: " + strings.Join(states, ", ")
			if g, ok := nc.Host.FloodGuard(); ok && (g.Dropped > 0 || g.Flood) {
				on := "over"
				if g.Flood {
					on = "on"
				}
				line += fmt.Sprintf("; SYN flood %s, %d SYNs dropped (%d addresses unreachable)", on, g.Dropped, g.Unreachable)
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		line += fmt.Sprintf("; Go heap %d MiB in use, %d goroutines' stacks %d MiB, %d MiB from the system",
			ms.HeapInuse>>20, runtime.NumGoroutine(), ms.StackInuse>>20, ms.Sys>>20)
		fmt.Fprintln(e.stderr, line)
	}
}

// giveBackMemory returns to the system, every giveBackEvery, the memory
// the Go heap holds free beyond giveBackOver: after a crowd or a flood a
// server's heap shrinks, but the runtime's own scavenger hands the pages
// back over minutes (1% of a CPU), and the process would keep the peak's
// resident memory long after.
func giveBackMemory(ctx context.Context) {
	const (
		giveBackEvery = 5 * time.Second
		giveBackOver  = 64 << 20
	)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	t := time.NewTicker(giveBackEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > giveBackOver {
			debug.FreeOSMemory()
		}
	}
}
