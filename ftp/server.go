package ftp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// ServerConfig says what a Server serves and to whom. Zero durations and
// counts take the defaults given on each field.
type ServerConfig struct {
	// Root is the directory served. Every path a client names is resolved
	// inside it through os.Root, so neither "..", absolute paths nor
	// symbolic links reach anything outside.
	Root string
	// Write allows the commands that change the tree: STOR, APPE, MKD, RMD,
	// DELE, RNFR/RNTO. Without it they answer 550 Permission denied. It
	// applies to every account, anonymous included.
	Write bool
	// Anonymous accepts USER anonymous (or ftp) with any password.
	Anonymous bool
	// User and Password are one named account. Password must not be empty
	// when User is set. At least one of User and Anonymous must be set.
	User, Password string

	// MaxSessions bounds concurrent sessions (0 means 32). A connection
	// over the limit is told "421 Too many connections" and closed.
	MaxSessions int
	// MaxPerAddr bounds the sessions from one client address: one IPv4
	// address, or one IPv6 /64, which a single subscriber usually holds
	// whole (0 means 8, or half of MaxSessions rounded up if that is
	// less, so that one address never takes every slot). A connection
	// over it is told "421 Too many connections from your address".
	MaxPerAddr int
	// MaxUnauthenticated bounds the sessions that have not logged in yet,
	// from all addresses together (0 means 16, or MaxSessions if that is
	// less). Connections that never log in cost an attacker nothing; the
	// limit keeps the other slots for sessions that have. A connection
	// over it is told "421 Too many connections not logged in".
	MaxUnauthenticated int
	// IdleTimeout ends a session that sends no command for this long
	// (0 means 5 minutes), with "421 Idle timeout".
	IdleTimeout time.Duration
	// LoginTimeout ends a session not logged in within this long after
	// connecting (0 means 20 seconds), with "421 Login timeout". It is
	// how long an idle connection holds a slot of MaxUnauthenticated.
	LoginTimeout time.Duration
	// DataTimeout bounds the wait for a passive data connection, an active
	// connect, a stall of an open data connection, and how long writing
	// one reply may stall (0 means 30 seconds).
	DataTimeout time.Duration
	// MinDataRate is the least average rate, in bytes per second, that an
	// open data connection must keep over each DataTimeout (0 means 1024),
	// so that a client that reads or sends a byte now and then, which
	// resets no stall timer, cannot hold its session for good. Downloads
	// are sent in pieces of at least 4 KiB, so for them a rate below 4 KiB
	// per DataTimeout counts as that.
	MinDataRate int
	// FileTimeout bounds every file system call a session makes for its
	// client: an open, stat, read, write, close or directory read (0 means
	// 30 seconds). A call that overruns it, on a hung network mount for
	// instance, ends the session with "421 File system not responding"
	// and frees its slot; the call itself is left to return in its own
	// time (see Server.Close).
	FileTimeout time.Duration
	// BufferMemory bounds the copy buffers of all transfers together (0
	// means 32 MiB): a transfer gets a buffer sized to its file, up to 1
	// MiB, while they fit; past it, what is left, and at least 4 KiB, and
	// it moves its file in smaller pieces.
	BufferMemory int
	// FailDelay is the delay before the 530 reply to the second failed
	// login of a session; it doubles on each further failure, up to eight
	// times FailDelay (0 means 1 second). The third failure ends the
	// session with 421.
	FailDelay time.Duration

	// Network makes the data connections: Listen for PASV/EPSV, Dial for
	// PORT/EPRT, both with the label "data". It is required.
	Network Network
	// Observer, if set, receives an Event (Side "server") for every command
	// received, reply sent and data connection opened or closed. The server
	// serialises its calls, so it need not be safe for concurrent use, but
	// it must not block for long: every session waits for it.
	Observer trace.Observer
	// Logf, if set, receives errors worth a line in a log (failed accepts,
	// local I/O errors behind a 451 reply). Passwords never reach it.
	Logf func(format string, args ...any)
	// Greeting is the text of the 220 reply on connect (empty means
	// "nsftp ready").
	Greeting string

	// TLS, if set, offers FTPS (RFC 4217): AUTH TLS on the control
	// connection, PBSZ and PROT for the data connections. It needs a
	// certificate (Certificates or GetCertificate).
	TLS *tls.Config
	// TLSImplicit runs TLS from the first byte of every control
	// connection, before the greeting (implicit FTPS, port 990), instead
	// of waiting for AUTH TLS.
	TLSImplicit bool
	// TLSRequired refuses USER and PASS before AUTH TLS and data
	// transfers before PROT P, and refuses any data connection that does
	// not resume its control connection's TLS session, so that nobody
	// but the client that logged in can take a data connection.
	TLSRequired bool
}

// Defaults applied by NewServer to zero fields.
const (
	defaultMaxSessions        = 32
	defaultMaxPerAddr         = 8
	defaultMaxUnauthenticated = 16
	defaultIdleTimeout        = 5 * time.Minute
	defaultLoginTimeout       = 20 * time.Second
	defaultDataTimeout        = 30 * time.Second
	defaultMinDataRate        = 1024
	defaultFileTimeout        = 30 * time.Second
	defaultFailDelay          = time.Second
	defaultBufferMemory       = 32 << 20
	defaultGreeting           = "nsftp ready"
)

// Server is an FTP server over one directory tree. Its methods are safe for
// concurrent use.
type Server struct {
	cfg      ServerConfig // defaults applied; never changed after NewServer
	tls      *tls.Config  // cfg.TLS with session ticket keys of its own, or nil
	root     *os.Root
	commands map[string]command // the command table; read-only after NewServer

	// ctx is cancelled by Close; every Serve and session derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	obsMu sync.Mutex // serialises Observer calls

	mu       sync.Mutex // guards closed and the counts; never held while blocking
	closed   bool
	sessions int                  // sessions running, across every Serve
	unauth   int                  // of those, the ones not logged in yet
	perAddr  map[netip.Prefix]int // sessions by addrKey; no zero counts

	// stuck counts file system calls given up on (FileTimeout, or the
	// session ended) that have not returned yet, and stuckNames the
	// names they were made on; see bounded.
	stuck atomic.Int64
	// buffered is the bytes transfers hold in copy buffers; see
	// dataBuffer.
	buffered atomic.Int64
	// writesResumed counts data writes the end of a rate window cut short
	// and that went on (see dataConn.Write), for tests.
	writesResumed atomic.Int64
	stuckMu       sync.Mutex // guards stuckNames; never held while blocking
	stuckNames    map[string]int
	// testHookFS, if set, runs before every bounded file system call, on
	// the goroutine that makes it; tests use it to stand for a hung mount.
	testHookFS func(op, name string)

	// wg counts every Serve call in progress. Each Serve waits for the
	// sessions it started, and each session for its own goroutines, so
	// wg.Wait returning means no goroutine of the server is left but
	// file system calls stuck in the kernel (see bounded).
	wg sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// NewServer checks cfg and opens cfg.Root. It fails if Root is not a
// directory, if no account is configured, or if Network is nil.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Root == "":
		return nil, errors.New("ftp: ServerConfig.Root is empty")
	case cfg.Network == nil:
		return nil, errors.New("ftp: ServerConfig.Network is nil")
	case !cfg.Anonymous && cfg.User == "":
		return nil, errors.New("ftp: ServerConfig allows no login: set Anonymous or User")
	case cfg.User != "" && cfg.Password == "":
		return nil, fmt.Errorf("ftp: ServerConfig.User %q has an empty Password", cfg.User)
	case cfg.MaxSessions < 0, cfg.MaxPerAddr < 0, cfg.MaxUnauthenticated < 0, cfg.MinDataRate < 0, cfg.BufferMemory < 0,
		cfg.IdleTimeout < 0, cfg.LoginTimeout < 0, cfg.DataTimeout < 0, cfg.FileTimeout < 0, cfg.FailDelay < 0:
		return nil, errors.New("ftp: ServerConfig has a negative limit or timeout")
	}
	cfg.MaxSessions = orDefault(cfg.MaxSessions, defaultMaxSessions)
	cfg.MaxPerAddr = orDefault(cfg.MaxPerAddr, min(defaultMaxPerAddr, (cfg.MaxSessions+1)/2))
	cfg.MaxUnauthenticated = orDefault(cfg.MaxUnauthenticated, min(defaultMaxUnauthenticated, cfg.MaxSessions))
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, defaultIdleTimeout)
	cfg.LoginTimeout = orDefault(cfg.LoginTimeout, defaultLoginTimeout)
	cfg.DataTimeout = orDefault(cfg.DataTimeout, defaultDataTimeout)
	cfg.MinDataRate = orDefault(cfg.MinDataRate, defaultMinDataRate)
	cfg.FileTimeout = orDefault(cfg.FileTimeout, defaultFileTimeout)
	cfg.FailDelay = orDefault(cfg.FailDelay, defaultFailDelay)
	cfg.BufferMemory = orDefault(cfg.BufferMemory, defaultBufferMemory)
	cfg.Greeting = orDefault(cfg.Greeting, defaultGreeting)
	if (cfg.TLSRequired || cfg.TLSImplicit) && cfg.TLS == nil {
		return nil, errors.New("ftp: ServerConfig.TLSRequired and TLSImplicit need ServerConfig.TLS")
	}
	var tlsBase *tls.Config
	if cfg.TLS != nil {
		if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
			return nil, errors.New("ftp: ServerConfig.TLS has no certificate")
		}
		// Ticket keys of its own, set before any clone is made, so that
		// every session's control and data configurations (clones) can
		// read each other's tickets.
		tlsBase = cfg.TLS.Clone()
		var key [32]byte
		if _, err := rand.Read(key[:]); err != nil {
			return nil, err
		}
		tlsBase.SetSessionTicketKeys([][32]byte{key})
	}

	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("ftp: server root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("ftp: server root %s is not a directory", cfg.Root)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("ftp: server root: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, tls: tlsBase, root: root, commands: newCommandTable(), ctx: ctx, cancel: cancel,
		perAddr: map[netip.Prefix]int{}, stuckNames: map[string]int{}}, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Serve accepts control connections on l and runs each session in its own
// goroutine, until ctx is done or Close is called, and then returns nil. It
// returns an error if accepting fails for good, and at once if the server
// is already closed. Whatever the reason, before it returns it closes l,
// ends the sessions it started and waits for them. Serve may be called on
// several listeners at the same time.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return fmt.Errorf("ftp: serve on %s: %w", l.Addr(), net.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	stopMerge := afterDone(s.ctx, cancel)
	// Closing the listener is the only way to interrupt Accept.
	stopClose := afterDone(ctx, func() { l.Close() })
	var sessions sync.WaitGroup
	defer func() {
		cancel()
		sessions.Wait()
		stopClose()
		stopMerge()
		l.Close()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporaryAcceptError(err) {
				return fmt.Errorf("ftp: accept on %s: %w", l.Addr(), err)
			}
			// Running out of descriptors or a connection reset before
			// accept passes; back off as net/http does rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logf("ftp: accept on %s: %v; retrying in %v", l.Addr(), err, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		s.start(ctx, c, &sessions)
	}
}

// start runs a session for c, or turns c away if a limit is reached (see
// admit).
func (s *Server) start(ctx context.Context, c net.Conn, sessions *sync.WaitGroup) {
	sl, refusal := s.admit(addrPortOf(c.RemoteAddr()))
	if sl == nil {
		// Turned away in a goroutine: the write may stall, and the accept
		// loop must not.
		sessions.Go(func() { s.reject(c, refusal) })
		return
	}
	sessions.Go(func() {
		defer sl.release()
		newSession(ctx, s, c, sl).run()
	})
}

// rejectTimeout bounds the one reply written to a refused connection. A
// connection just accepted has an empty send buffer, so the line leaves at
// once unless the peer advertised no window at all; the bound keeps a
// flood of such peers from holding goroutines.
const rejectTimeout = time.Second

// reject tells c why it is refused, in one 421 line, and closes it.
func (s *Server) reject(c net.Conn, text string) {
	defer c.Close()
	const code = 421
	c.SetWriteDeadline(time.Now().Add(rejectTimeout))
	_, err := c.Write(FormatReply(code, text))
	s.emit(event{Kind: trace.KindReply, Conn: trace.Control, Code: code, Text: text,
		Local: addrText(c.LocalAddr()), Remote: addrText(c.RemoteAddr()), Err: errText(err)})
}

// Close stops every Serve, closes every session's connections, waits until
// every goroutine the server started has returned, and closes the root.
// The one exception is a file system call stuck in the kernel (a hung
// network mount): no goroutine can be made to leave it, so Close does not
// wait for it; it holds no session slot, and whatever it opens is closed
// as soon as the kernel lets it return. Calls after the first return the
// Sessions returns how many sessions are running, and how many of them
// have not logged in yet.
func (s *Server) Sessions() (running, unauthenticated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.unauth
}

// first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.closeErr = s.root.Close()
	})
	return s.closeErr
}

// emit sends e to the Observer, if any.
func (s *Server) emit(e event) {
	if s.cfg.Observer == nil {
		return
	}
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.cfg.Observer(e.traced(trace.Server))
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// temporaryAcceptError reports whether Accept may succeed if tried again.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// afterDone arranges for f to run in its own goroutine once ctx is done.
// The returned stop function cancels that if f has not started, and
// otherwise waits for f to return, so f never outlives stop's caller.
// Call stop exactly once.
func afterDone(ctx context.Context, f func()) (stop func()) {
	finished := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(finished)
		f()
	})
	return func() {
		if !stopAfter() {
			<-finished
		}
	}
}

// closeOnDone closes c once ctx is done; see afterDone for stop.
func closeOnDone(ctx context.Context, c io.Closer) (stop func()) {
	return afterDone(ctx, func() { c.Close() })
}

// addrText renders a connection's address for an event, "" if it has
// none: nsftp's stack answers nil once a connection has been reset, and a
// client can reset one at any moment.
func addrText(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
