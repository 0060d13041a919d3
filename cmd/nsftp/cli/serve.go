package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"nsftp/ftp"
	"nsftp/netconf"
	"nsftp/trace"
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
		maxSessions int
		idle        time.Duration
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
	fs.intVar(&maxSessions, "max-sessions", 32, "most sessions at once")
	fs.durationVar(&idle, "idle-timeout", 5*time.Minute, "end a session idle this long")
	fs.boolVar(&quiet, "q", false, "print nothing but errors")
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
	if err := see.validate(nf.tap != ""); err != nil {
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
	if maxSessions < 1 || idle <= 0 {
		return usagef("--max-sessions and --idle-timeout must be positive")
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

	sg, err := see.start(e, e.stderr, trace.Server, e.stop)
	if err != nil {
		return err
	}
	title := "nsftp serve " + pos[0]
	defer sg.finish(title)
	sg.begin(title, "")
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
		MaxSessions: maxSessions, IdleTimeout: idle, Network: n,
		Logf: func(format string, args ...any) {
			if !quiet {
				fmt.Fprintf(e.stderr, "nsftp: "+format+"\n", args...)
			}
		},
	}
	cfg.Observer = sg.ftpObserver()
	if tlsCert != "" {
		if cfg.TLS, err = serveTLS(tlsCert, tlsKey); err != nil {
			return err
		}
		cfg.TLSRequired, cfg.TLSImplicit = tlsRequired, tlsImplicit
	}
	if see.step {
		cfg.IdleTimeout, cfg.LoginTimeout, cfg.DataTimeout = stepTimeout, stepTimeout, stepTimeout
	}
	srv, err := ftp.NewServer(cfg)
	if err != nil {
		return &setupError{err}
	}
	defer srv.Close()
	l, err := n.Listen(ctx, trace.Control, listen, 64)
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
