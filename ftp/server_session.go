package ftp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// command is one row of the server's command table.
type command struct {
	handle     func(s *session, arg string)
	needsLogin bool // before login: 530
	needsArg   bool // empty argument: 501
	needsWrite bool // without ServerConfig.Write: 550
}

// newCommandTable is the one place that says which commands the server
// knows and what each needs. The X forms are RFC 775's, still sent by some
// clients.
func newCommandTable() map[string]command {
	const (
		login = 1 << iota
		arg
		write
	)
	row := func(h func(*session, string), flags int) command {
		return command{handle: h, needsLogin: flags&login != 0, needsArg: flags&arg != 0, needsWrite: flags&write != 0}
	}
	return map[string]command{
		// handle_auth.go: login and session settings.
		"USER": row(handleUSER, arg),
		"PASS": row(handlePASS, 0),
		"QUIT": row(handleQUIT, 0),
		"NOOP": row(handleNOOP, 0),
		"SYST": row(handleSYST, 0),
		"FEAT": row(handleFEAT, 0),
		"HELP": row(handleHELP, login),
		"AUTH": row(handleAUTH, 0),
		"PBSZ": row(handlePBSZ, arg),
		"PROT": row(handlePROT, arg),
		// Before login too: clients send OPTS UTF8 ON first thing, and
		// vsftpd takes it.
		"OPTS": row(handleOPTS, arg),
		"TYPE": row(handleTYPE, login|arg),
		"MODE": row(handleMODE, login|arg),
		"STRU": row(handleSTRU, login|arg),
		"ALLO": row(handleALLO, login),
		"STAT": row(handleSTAT, login),

		// handle_data.go: data connections.
		"PORT": row(handlePORT, login|arg),
		"EPRT": row(handleEPRT, login|arg),
		"PASV": row(handlePASV, login),
		"EPSV": row(handleEPSV, login),
		"ABOR": row(handleABOR, login),

		// handle_files.go: file transfer and file operations.
		"RETR": row(handleRETR, login|arg),
		"STOR": row(handleSTOR, login|arg|write),
		"APPE": row(handleAPPE, login|arg|write),
		"REST": row(handleREST, login|arg),
		"SIZE": row(handleSIZE, login|arg),
		"MDTM": row(handleMDTM, login|arg),
		"MFMT": row(handleMFMT, login|arg|write),
		"MFF":  row(handleMFF, login|arg|write),
		"SITE": row(handleSITE, login|arg),
		"DELE": row(handleDELE, login|arg|write),
		"RNFR": row(handleRNFR, login|arg|write),
		"RNTO": row(handleRNTO, login|arg|write),

		// handle_dirs.go: directories and listings.
		"PWD":  row(handlePWD, login),
		"XPWD": row(handlePWD, login),
		"CWD":  row(handleCWD, login|arg),
		"XCWD": row(handleCWD, login|arg),
		"CDUP": row(handleCDUP, login),
		"XCUP": row(handleCDUP, login),
		"MKD":  row(handleMKD, login|arg|write),
		"XMKD": row(handleMKD, login|arg|write),
		"RMD":  row(handleRMD, login|arg|write),
		"XRMD": row(handleRMD, login|arg|write),
		"LIST": row(handleLIST, login),
		"NLST": row(handleNLST, login),
		"MLSD": row(handleMLSD, login),
		"MLST": row(handleMLST, login),
	}
}

// commandLine is one line read from the control connection, or the error
// that ended reading.
type commandLine struct {
	verb, arg string
	err       error
}

// maxPending bounds the commands a client may queue behind a transfer; past
// it the session stops reading until the transfer ends.
const maxPending = 16

// session is one control connection. Its fields belong to the goroutine
// running run; the reader and transfer goroutines touch only cmds, the
// connection and what is passed to them.
type session struct {
	srv  *Server
	cfg  *ServerConfig
	ctrl net.Conn
	slot *slot // its place in the server's limits; released by Server.start
	fs   *tree // the served root; every file system call goes through it
	// local and remote are the control connection's addresses, with IPv4
	// in IPv6 unmapped: they decide PASV's reply and who may connect.
	local, remote netip.AddrPort

	ctx    context.Context // done when the session ends, for any reason
	cancel context.CancelFunc
	wg     sync.WaitGroup // the reader and any transfer goroutine

	cmds    chan commandLine // from readLoop
	pending []commandLine    // received during a transfer, not yet run
	quit    bool             // end the session after this command

	loggedIn   bool
	user       string    // as given to USER; cleared by a failed PASS
	failures   int       // failed PASS commands
	cwd        string    // virtual, "/"-rooted, clean
	rest       int64     // REST offset for the next RETR or STOR
	renameFrom string    // RNFR's name relative to the root; "" if none
	asciiType  bool      // TYPE A asked for; data still flows unconverted
	factsOff   mlstFacts // the MLST facts OPTS MLST turned off (RFC 3659 7.9)
	epsvAll    bool      // RFC 2428 EPSV ALL: no other data setup allowed
	plan       *dataPlan

	// FTPS (handle_tls.go).
	binding      *sessionBinding      // ties data connections to this session's TLS
	upgrade      chan upgradeDecision // dispatcher to reader, after each AUTH line
	authAnswered bool                 // the AUTH being dispatched has been answered
	secure       bool                 // the control connection runs over TLS
	protP        bool                 // data connections run over TLS
}

func newSession(ctx context.Context, srv *Server, c net.Conn, sl *slot) *session {
	ctx, cancel := context.WithCancel(ctx)
	var binding *sessionBinding
	if srv.tls != nil {
		binding = newSessionBinding()
	}
	remote := addrPortOf(c.RemoteAddr())
	return &session{
		binding: binding,
		srv:     srv,
		cfg:     &srv.cfg,
		ctrl:    c,
		slot:    sl,
		fs:      &tree{srv: srv, root: srv.root, ctx: ctx, timeout: srv.cfg.FileTimeout, remote: remote},
		local:   addrPortOf(c.LocalAddr()),
		remote:  remote,
		ctx:     ctx,
		cancel:  cancel,
		cmds:    make(chan commandLine),
		upgrade: make(chan upgradeDecision),
		cwd:     "/",
	}
}

// run greets the client and answers its commands until QUIT, a timeout, a
// broken connection or the server's shutdown.
func (s *session) run() {
	// Closing the connection is what stops the reader goroutine, and what
	// cuts short a reply write stalled on a client that does not read.
	stopClose := closeOnDone(s.ctx, s.ctrl)
	defer func() {
		s.cancel()
		s.wg.Wait()
		stopClose()
		s.ctrl.Close()
		s.setPlan(nil)
	}()

	if s.cfg.TLSImplicit && !s.startImplicitTLS() {
		return
	}
	s.reply(220, s.cfg.Greeting)
	s.wg.Go(s.readLoop)

	login := time.NewTimer(s.cfg.LoginTimeout)
	defer login.Stop()
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for !s.quit && s.ctx.Err() == nil {
		var c commandLine
		if len(s.pending) > 0 {
			c, s.pending = s.pending[0], s.pending[1:]
		} else {
			loginC := login.C
			if s.loggedIn {
				loginC = nil
			}
			select {
			case c = <-s.cmds:
			case <-loginC:
				s.reply(421, "Login timeout")
				return
			case <-idle.C:
				s.reply(421, "Idle timeout")
				return
			case <-s.ctx.Done():
				return
			}
		}
		if c.err != nil {
			if !s.readError(c.err) {
				return
			}
			continue
		}
		s.dispatch(c)
		// Idle time counts from the end of the last command, so a long
		// transfer is not cut off by the control connection's silence.
		idle.Reset(s.cfg.IdleTimeout)
	}
}

// controlReadBuffer is a control connection's read buffer. Command lines
// are short, and a longer one (up to MaxLineLength) is read in pieces; a
// server holding 10,000 sessions holds 10,000 of these (at 4 KiB, 40 MB).
const controlReadBuffer = 1 << 10

// readLoop reads commands from the control connection for run. It is a
// goroutine of its own so that ABOR, STAT and QUIT are seen while a
// transfer runs.
func (s *session) readLoop() {
	raw := s.ctrl
	r := bufio.NewReaderSize(&urgentABOR{r: raw}, controlReadBuffer)
	for {
		skipTelnet(r)
		verb, arg, err := ReadCommand(r)
		select {
		case s.cmds <- commandLine{verb: verb, arg: arg, err: err}:
		case <-s.ctx.Done():
			return
		}
		if err != nil && !lineConsumed(err) {
			return
		}
		if err == nil && verb == "AUTH" && s.srv.tls != nil {
			// What follows AUTH TLS on the wire is a TLS handshake, not a
			// command: wait for the dispatcher's answer before reading on.
			if r = s.awaitUpgrade(raw, r); r == nil {
				return
			}
		}
	}
}

// skipTelnet drops the Telnet commands a client may send before ABOR, the
// RFC 959 section 4.1.3 way: IP and Synch (IAC IP IAC DM, bytes 0xF0 and
// up, which no verb starts with).
func skipTelnet(r *bufio.Reader) {
	for {
		b, err := r.Peek(1)
		if err != nil || b[0] < 0xF0 {
			return
		}
		r.Discard(1)
	}
}

// urgentABOR restores the line end of an ABOR sent as urgent data. RFC 959
// section 4.1.3 has clients send ABOR with the Telnet Synch, and some
// (Python's ftplib) send "ABOR\r\n" itself as TCP urgent data. The urgent
// byte is the last one, the LF, and unless the socket has SO_OOBINLINE the
// kernel takes it out of the stream: "ABOR\r" arrives, then nothing until
// the server answers. A line that starts "ABOR\r" can only be that, so
// urgentABOR completes it, and drops the LF if it does arrive after all.
// (Lost Telnet bytes before ABOR, lftp's way, need no help: see skipTelnet.)
type urgentABOR struct {
	r      io.Reader
	buf    [512]byte
	in     []byte  // read from r, not yet passed on
	head   [5]byte // the current line's first bytes, Telnet bytes left out
	n      int     // how many of head are set
	addLF  bool    // an LF is owed to the reader
	dropLF bool    // an LF was added; drop the next byte if it is one
}

// Read implements io.Reader.
func (u *urgentABOR) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if u.addLF {
			p[n] = '\n'
			n++
			u.addLF, u.dropLF = false, true
			continue
		}
		if len(u.in) == 0 {
			if n > 0 {
				break // do not block with something to return
			}
			m, err := u.r.Read(u.buf[:])
			if m == 0 {
				return 0, err
			}
			// A connection's errors come back on the next Read.
			u.in = u.buf[:m]
		}
		b := u.in[0]
		u.in = u.in[1:]
		if u.dropLF {
			u.dropLF = false
			if b == '\n' {
				continue
			}
		}
		p[n] = b
		n++
		switch {
		case b == '\n':
			u.n = 0
		case b >= 0xF0 || u.n == len(u.head):
		default:
			u.head[u.n] = b
			u.n++
			if u.n == len(u.head) && strings.EqualFold(string(u.head[:]), "ABOR\r") {
				u.addLF = true
				u.n = 0
			}
		}
	}
	return n, nil
}

// lineConsumed reports whether ReadCommand failed on a complete line that
// it has consumed, so the next line can be read. Over-long lines and read
// errors leave the stream at an unknown place.
func lineConsumed(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && !errors.Is(err, ErrLineTooLong)
}

// readError handles a failure to read a command, and reports whether the
// session can go on.
func (s *session) readError(err error) bool {
	if errors.Is(err, ErrProtocol) {
		s.srv.emit(s.controlEvent(trace.KindNote, err.Error()))
		if lineConsumed(err) {
			// The client is told and may go on with the next line.
			s.reply(500, "Syntax error, command unrecognized.")
			return true
		}
		s.reply(500, "Command line too long.")
		return false
	}
	if !errors.Is(err, io.EOF) && s.ctx.Err() == nil {
		s.srv.emit(s.controlEvent(trace.KindNote, "control connection: "+err.Error()))
	}
	return false
}

// dispatch runs one command through the table's checks and its handler.
func (s *session) dispatch(c commandLine) {
	s.commandEvent(c)
	if c.verb == "AUTH" && s.srv.tls != nil {
		// The reader waits for an answer to every AUTH line, whatever
		// happens to the command below.
		s.authAnswered = false
		defer s.answerAUTH()
	}
	cmd, ok := s.srv.commands[c.verb]
	switch {
	case !ok:
		s.reply(502, "Command not implemented.")
		return
	case cmd.needsLogin && !s.loggedIn:
		s.reply(530, "Please login with USER and PASS.")
		return
	case cmd.needsArg && c.arg == "":
		s.reply(501, "Syntax error in parameters or arguments.")
		return
	case cmd.needsWrite && !s.cfg.Write:
		s.reply(550, "Permission denied.")
		return
	}
	if code, text := s.tlsRefusal(c.verb); code != 0 {
		s.reply(code, text)
		return
	}
	// RFC 959 section 4.1.3: RNTO must immediately follow RNFR.
	if c.verb != "RNFR" && c.verb != "RNTO" {
		s.renameFrom = ""
	}
	cmd.handle(s, c.arg)
	if s.fs.stuck() && !s.quit {
		// A call the handler could do without (a link's target in a
		// listing) did not return: the file system is not answering, and
		// the session ends all the same.
		s.fileSystemStuck()
	}
}

// reply sends one reply. A reply that cannot be written within DataTimeout
// ends the session: the client is gone or does not read.
func (s *session) reply(code int, lines ...string) {
	if s.ctx.Err() != nil {
		return
	}
	s.ctrl.SetWriteDeadline(time.Now().Add(s.cfg.DataTimeout))
	_, err := s.ctrl.Write(FormatReply(code, lines...))
	e := s.controlEvent(trace.KindReply, strings.Join(lines, "\n"))
	e.Code = code
	e.Err = errText(err)
	s.srv.emit(e)
	if err != nil {
		s.cancel()
	}
}

// commandEvent reports a command received, with a PASS or ACCT argument
// masked (trace.RedactCommand).
func (s *session) commandEvent(c commandLine) {
	text := c.verb
	if c.arg != "" {
		text += " " + c.arg
	}
	s.srv.emit(s.controlEvent(trace.KindCommand, trace.RedactCommand(text)))
}

func (s *session) controlEvent(kind trace.Kind, text string) event {
	return event{Kind: kind, Conn: trace.Control, Text: text,
		Local: s.local.String(), Remote: s.remote.String()}
}

// resolve maps a client's path to the session's virtual path ("/"-rooted,
// clean) and to the name os.Root expects ("." for the root). Lexically
// ".." stops at "/", and absolute paths start at the served root; symbolic
// links are left to os.Root, which refuses those that lead outside.
func (s *session) resolve(arg string) (virtual, rel string, ok bool) {
	if strings.ContainsAny(arg, "\x00\r\n") {
		return "", "", false
	}
	virtual = path.Clean(path.Join(s.cwd, arg))
	if strings.HasPrefix(arg, "/") {
		virtual = path.Clean(arg)
	}
	rel = strings.TrimPrefix(virtual, "/")
	if rel == "" {
		rel = "."
	}
	return virtual, rel, true
}

// addrPortOf returns a connection address as a netip.AddrPort, with IPv4
// in IPv6 unmapped; the zero AddrPort if it is not an IP address.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if a != nil {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
