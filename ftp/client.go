package ftp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// ClientConfig says how a Client connects and what it waits for. Zero
// durations take the defaults given on each field.
type ClientConfig struct {
	// Network makes the control and data connections. Required.
	Network Network
	// Active selects active mode (PORT/EPRT: the server connects to us, as
	// in the 2005 article). The default is passive mode (EPSV, then PASV).
	Active bool
	// UseEPRT sends EPRT instead of PORT on IPv4 in active mode; IPv6
	// always uses EPRT.
	UseEPRT bool
	// DisableEPSV goes straight to PASV in passive mode.
	DisableEPSV bool

	// ConnectTimeout bounds each TCP connect (0 means 30s).
	ConnectTimeout time.Duration
	// ReplyTimeout bounds the wait for each reply (0 means 60s).
	ReplyTimeout time.Duration
	// AcceptTimeout bounds the wait for the server's data connection in
	// active mode (0 means 30s).
	AcceptTimeout time.Duration
	// DataTimeout is the longest a data connection may go without moving a
	// byte (0 means 60s).
	DataTimeout time.Duration

	// TLSMode, with TLS, secures the session (FTPS, RFC 4217): explicit
	// AUTH TLS (TLSTry, TLSRequire) or implicit (TLSImplicit). TLS is the
	// configuration to verify the server with; its ServerName defaults to
	// the host dialled. Data connections resume the control connection's
	// TLS session, as servers that insist on it (vsftpd's
	// require_ssl_reuse) need.
	TLSMode TLSMode
	TLS     *tls.Config
	// ClearData keeps data connections in clear under TLS (PROT C): only
	// the control connection, with the password, is protected.
	ClearData bool

	// Observer, if set, receives an Event (Side "client") for every
	// command sent, reply received and data connection opened or closed.
	Observer trace.Observer
}

func (cfg *ClientConfig) fill() {
	cfg.ConnectTimeout = orDefault(cfg.ConnectTimeout, 30*time.Second)
	cfg.ReplyTimeout = orDefault(cfg.ReplyTimeout, 60*time.Second)
	cfg.AcceptTimeout = orDefault(cfg.AcceptTimeout, 30*time.Second)
	cfg.DataTimeout = orDefault(cfg.DataTimeout, 60*time.Second)
}

// maxPreliminary bounds the 120 "service ready in nnn minutes" replies a
// server may send before its 220 greeting.
const maxPreliminary = 16

// Client is one FTP session's control connection. It is not safe for
// concurrent use, except that Close may be called at any time.
type Client struct {
	cfg  ClientConfig
	conn net.Conn
	r    *bufio.Reader

	local, peer netip.AddrPort // the control connection's ends

	epsvFailed bool  // EPSV was refused once; use PASV from then on
	dead       error // set once the session can no longer be used

	tlsCfg *tls.Config // the session's TLS configuration, with its session cache
	secure bool        // the control connection runs over TLS
	protP  bool        // data connections run over TLS (PROT P)
}

// Dial connects to an FTP server at address ("host:port") and reads its
// greeting (any 120 replies, then 220). It does not log in.
func Dial(ctx context.Context, address string, cfg ClientConfig) (*Client, error) {
	if cfg.Network == nil {
		return nil, errors.New("ftp: ClientConfig.Network is nil")
	}
	cfg.fill()
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	conn, err := cfg.Network.DialContext(trace.WithLabel(dctx, trace.Control), "tcp", address)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", address, err)
	}
	c := &Client{cfg: cfg, conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}
	c.local = addrPortOf(conn.LocalAddr())
	c.peer = addrPortOf(conn.RemoteAddr())
	if err := c.setUp(ctx, address); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// setUp takes a new control connection to the point of logging in: TLS
// first when implicit, the greeting, then AUTH TLS when asked for.
func (c *Client) setUp(ctx context.Context, address string) error {
	if c.cfg.TLSMode != TLSOff {
		if err := c.prepareTLS(address); err != nil {
			return err
		}
	}
	if c.cfg.TLSMode == TLSImplicit {
		if err := c.startTLS(ctx); err != nil {
			return err
		}
	}
	if err := c.greeting(ctx); err != nil {
		return err
	}
	if c.cfg.TLSMode == TLSTry || c.cfg.TLSMode == TLSRequire {
		return c.authTLS(ctx)
	}
	return nil
}

func (c *Client) greeting(ctx context.Context) error {
	stop := c.watch(ctx, nil)
	defer stop()
	for i := 0; ; i++ {
		r, err := c.readReply(ctx)
		if err != nil {
			return fmt.Errorf("reading the server's greeting: %w", err)
		}
		switch {
		case r.Code == 120 && i < maxPreliminary:
			continue
		case r.Code == 220:
			return nil
		case r.Class() == 4 || r.Class() == 5:
			return &ReplyError{Reply: r}
		default:
			return &ReplyError{Reply: r, Want: "220"}
		}
	}
}

// LocalAddr returns the control connection's local address.
func (c *Client) LocalAddr() netip.AddrPort { return c.local }

// RemoteAddr returns the control connection's peer: the only address data
// connections are made to or accepted from.
func (c *Client) RemoteAddr() netip.AddrPort { return c.peer }

// Login sends USER and, when asked for, PASS. An empty user logs in as
// "anonymous" with the password "nsftp@" unless one is given.
func (c *Client) Login(ctx context.Context, user, password string) error {
	if user == "" {
		user = "anonymous"
		if password == "" {
			password = "nsftp@"
		}
	}
	r, err := c.cmd(ctx, "USER", user)
	if err != nil {
		return err
	}
	switch r.Code {
	case 230, 202:
		return c.protect(ctx)
	case 331, 332:
	default:
		return c.replyErr("USER "+user, r, "230 or 331")
	}
	r, err = c.cmd(ctx, "PASS", password)
	if err != nil {
		return err
	}
	switch r.Code {
	case 230, 202:
		return c.protect(ctx)
	case 332:
		return fmt.Errorf("%w: server wants an account (ACCT), which nsftp does not send", ErrLoginRefused)
	default:
		return c.replyErr("PASS ****", r, "230")
	}
}

// Type sets the representation type: "I" (binary, used for every
// transfer nsftp makes) or "A".
func (c *Client) Type(ctx context.Context, t string) error {
	_, err := c.expect(ctx, "TYPE", t, 200)
	return err
}

// Size returns a file's size from SIZE (RFC 3659 section 4).
func (c *Client) Size(ctx context.Context, path string) (int64, error) {
	r, err := c.expect(ctx, "SIZE", path, 213)
	if err != nil {
		return -1, err
	}
	return parseSizeReply(r)
}

// parseSizeReply parses a 213 reply to SIZE (RFC 3659 section 4): a
// decimal number of bytes, nothing else but surrounding spaces.
func parseSizeReply(r *Reply) (int64, error) {
	s := strings.TrimSpace(r.Lines[len(r.Lines)-1])
	n, ok := parseDecimal64(s)
	if !ok {
		return -1, &ProtocolError{Msg: "SIZE reply is not a number of bytes", Line: quoteLine([]byte(r.String()))}
	}
	return n, nil
}

// parseDecimal64 parses 1 to 19 ASCII digits that fit an int64; signs,
// spaces and anything else are refused.
func parseDecimal64(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 19 || !allDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ModTime returns a file's modification time from MDTM (RFC 3659
// section 3).
func (c *Client) ModTime(ctx context.Context, path string) (time.Time, error) {
	r, err := c.expect(ctx, "MDTM", path, 213)
	if err != nil {
		return time.Time{}, err
	}
	s := strings.TrimSpace(r.Lines[len(r.Lines)-1])
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	t, perr := time.Parse("20060102150405", s)
	if perr != nil {
		return time.Time{}, &ProtocolError{Msg: "MDTM reply is not YYYYMMDDHHMMSS", Line: quoteLine([]byte(r.String()))}
	}
	return t.UTC(), nil
}

// ChangeDir sends CWD.
func (c *Client) ChangeDir(ctx context.Context, dir string) error {
	_, err := c.expect(ctx, "CWD", dir, 250, 200)
	return err
}

// CurrentDir sends PWD and returns the quoted directory name (RFC 959
// appendix II: embedded quotes are doubled).
func (c *Client) CurrentDir(ctx context.Context) (string, error) {
	r, err := c.expect(ctx, "PWD", "", 257)
	if err != nil {
		return "", err
	}
	return parseQuoted(r)
}

// MakeDir sends MKD and returns the created directory's name.
func (c *Client) MakeDir(ctx context.Context, dir string) (string, error) {
	r, err := c.expect(ctx, "MKD", dir, 257)
	if err != nil {
		return "", err
	}
	name, perr := parseQuoted(r)
	if perr != nil {
		return dir, nil // the name is informational; MKD succeeded
	}
	return name, nil
}

// RemoveDir sends RMD.
func (c *Client) RemoveDir(ctx context.Context, dir string) error {
	_, err := c.expect(ctx, "RMD", dir, 250)
	return err
}

// Delete sends DELE.
func (c *Client) Delete(ctx context.Context, path string) error {
	_, err := c.expect(ctx, "DELE", path, 250)
	return err
}

// Rename sends RNFR then RNTO.
func (c *Client) Rename(ctx context.Context, from, to string) error {
	if _, err := c.expect(ctx, "RNFR", from, 350); err != nil {
		return err
	}
	_, err := c.expect(ctx, "RNTO", to, 250)
	return err
}

// Features sends FEAT (RFC 2389) and returns the features by upper-cased
// name with their parameters. A server without FEAT yields an empty map.
func (c *Client) Features(ctx context.Context) (map[string]string, error) {
	r, err := c.cmd(ctx, "FEAT", "")
	if err != nil {
		return nil, err
	}
	if r.Code != 211 {
		if r.Class() == 5 {
			return map[string]string{}, nil
		}
		return nil, c.replyErr("FEAT", r, "211")
	}
	return parseFeatures(r), nil
}

// parseFeatures reads the feature lines of a 211 reply to FEAT (RFC 2389
// section 3.2): the lines between the first and the last, each a name and
// optional parameters. A one-line 211 ("211 no features") has none.
func parseFeatures(r *Reply) map[string]string {
	feats := map[string]string{}
	if len(r.Lines) < 3 {
		return feats
	}
	for _, line := range r.Lines[1 : len(r.Lines)-1] {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, params, _ := strings.Cut(line, " ")
		feats[strings.ToUpper(name)] = params
	}
	return feats
}

// System sends SYST and returns the server's answer.
func (c *Client) System(ctx context.Context) (string, error) {
	r, err := c.expect(ctx, "SYST", "", 215)
	if err != nil {
		return "", err
	}
	return r.Text(), nil
}

// Noop sends NOOP.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.expect(ctx, "NOOP", "", 200)
	return err
}

// Quit sends QUIT, reads the 221 and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	if c.dead != nil {
		c.conn.Close()
		return nil
	}
	_, err := c.expect(ctx, "QUIT", "", 221)
	if err == nil {
		c.awaitClose(ctx)
	}
	c.Close()
	return err
}

// quitLinger bounds the wait for the server to close after its 221.
const quitLinger = 300 * time.Millisecond

// awaitClose waits briefly for the server to close the control
// connection, as RFC 959 has it do after QUIT's reply (section 4.1.1):
// its FIN then comes first and the connection ends in the order the
// protocol describes, the server in TIME-WAIT, rather than in a
// simultaneous close. A server that keeps the connection open is not
// waited for long, and anything it still sends is discarded.
func (c *Client) awaitClose(ctx context.Context) {
	deadline := time.Now().Add(quitLinger)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if c.conn.SetReadDeadline(deadline) != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(c.r, 64<<10))
}

// Close closes the control connection without QUIT.
func (c *Client) Close() error {
	if c.dead == nil {
		c.dead = ErrClientClosed
	}
	return c.conn.Close()
}

// cmd sends one command and reads its reply, honouring ctx. A 421 ends
// the session.
func (c *Client) cmd(ctx context.Context, verb, arg string) (*Reply, error) {
	if c.dead != nil {
		return nil, c.dead
	}
	line, err := FormatCommand(verb, arg)
	if err != nil {
		return nil, err
	}
	stop := c.watch(ctx, nil)
	defer stop()
	if err := c.send(ctx, line); err != nil {
		return nil, err
	}
	r, err := c.readReply(ctx)
	if err != nil {
		return nil, err
	}
	if r.Code == 421 {
		c.dead = &ReplyError{Command: shown(verb, arg), Reply: r}
		c.conn.Close()
		return nil, c.dead
	}
	if ctx.Err() != nil {
		// The reply came, so the session is in step; but the caller has
		// given up, and is told so rather than left to act on it.
		return nil, context.Cause(ctx)
	}
	return r, nil
}

// expect runs a command and requires one of the given reply codes.
func (c *Client) expect(ctx context.Context, verb, arg string, codes ...int) (*Reply, error) {
	r, err := c.cmd(ctx, verb, arg)
	if err != nil {
		return nil, err
	}
	for _, code := range codes {
		if r.Code == code {
			return r, nil
		}
	}
	want := make([]string, len(codes))
	for i, code := range codes {
		want[i] = strconv.Itoa(code)
	}
	return nil, c.replyErr(shown(verb, arg), r, strings.Join(want, " or "))
}

// replyErr builds the error for an unwanted reply: a refusal for 4xx/5xx,
// a protocol surprise otherwise.
func (c *Client) replyErr(command string, r *Reply, want string) error {
	if r.Class() == 4 || r.Class() == 5 {
		return &ReplyError{Command: command, Reply: r}
	}
	return &ReplyError{Command: command, Reply: r, Want: want}
}

// shown is a command as traces and errors may show it: never a password
// or an account (trace.RedactCommand).
func shown(verb, arg string) string {
	line := strings.ToUpper(verb)
	if arg != "" {
		line += " " + arg
	}
	return trace.RedactCommand(line)
}

func (c *Client) send(ctx context.Context, line string) error {
	text := strings.TrimSuffix(line, "\r\n")
	verb, arg, _ := strings.Cut(text, " ")
	c.event(event{Kind: trace.KindCommand, Conn: trace.Control, Text: shown(verb, arg)})
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.ReplyTimeout))
	if ctx.Err() != nil {
		// Nothing was sent: the session is still in step.
		return context.Cause(ctx)
	}
	if _, err := io.WriteString(c.conn, line); err != nil {
		return c.fail(ctx, fmt.Errorf("sending %s: %w", verb, err))
	}
	return nil
}

func (c *Client) readReply(ctx context.Context) (*Reply, error) {
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.ReplyTimeout))
	// A cancellation that came before the deadline was set has been
	// overwritten by it: the reply still gets its grace, no more.
	if ctx.Err() != nil {
		c.conn.SetReadDeadline(time.Now().Add(cancelGrace))
	}
	r, err := ReadReply(c.r)
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("server closed the control connection: %w", io.ErrUnexpectedEOF)
		}
		return nil, c.fail(ctx, err)
	}
	c.event(event{Kind: trace.KindReply, Conn: trace.Control, Code: r.Code, Text: r.Text()})
	return r, nil
}

// fail marks the session unusable after a control-connection error and
// returns the error, preferring ctx's reason when ctx caused it.
func (c *Client) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	if c.dead == nil {
		c.dead = err
	}
	c.conn.Close()
	return err
}

// watch makes ctx's cancellation cut short blocked I/O on the control
// connection (after cancelGrace) and on d, if given (at once). The
// returned function stops watching.
func (c *Client) watch(ctx context.Context, d *clientData) func() bool {
	return context.AfterFunc(ctx, func() {
		// A reply already on its way gets a moment to arrive, so that the
		// session stays in step and can still end with QUIT.
		c.conn.SetDeadline(time.Now().Add(cancelGrace))
		if d != nil {
			d.interrupt()
		}
	})
}

// cancelGrace is how long a cancelled command still waits for its reply.
const cancelGrace = 2 * time.Second

func (c *Client) event(e event) {
	if c.cfg.Observer == nil {
		return
	}
	if e.Local == "" && e.Conn == trace.Control {
		e.Local = c.local.String()
		e.Remote = c.peer.String()
	}
	c.cfg.Observer(e.traced(trace.Client))
}

// parseQuoted extracts the "quoted" name of a 257 reply.
func parseQuoted(r *Reply) (string, error) {
	s := r.Lines[0]
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", &ProtocolError{Msg: "257 reply has no quoted name", Line: quoteLine([]byte(r.String()))}
	}
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		if s[j] == '"' {
			if j+1 < len(s) && s[j+1] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			return b.String(), nil
		}
		b.WriteByte(s[j])
	}
	return "", &ProtocolError{Msg: "257 reply's quoted name is not closed", Line: quoteLine([]byte(r.String()))}
}

// isTimeout reports whether err is a deadline or context expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}
