// Package cli is the nsftp command: flag parsing, wiring the FTP client and
// server to a network, and rendering what happened. Run is the whole
// program; main only calls it and maps its error to an exit code.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"nsftp/ftp"
)

// Exit codes, distinct per kind of failure, listed in the help text and
// the README.
const (
	ExitOK         = 0
	ExitFailure    = 1  // anything not listed below
	ExitUsage      = 2  // bad command line
	ExitNetwork    = 3  // network or setup: connect refused, unreachable, TAP device
	ExitLogin      = 4  // server refused the login
	ExitServer     = 5  // server answered with an error reply
	ExitIncomplete = 6  // transfer incomplete: short, long or unconfirmed
	ExitLocal      = 7  // local file error
	ExitTimeout    = 8  // a timeout expired
	ExitProtocol   = 9  // the server broke the protocol
	ExitTLS        = 10 // TLS: certificate not trusted, or TLS required and refused
)

const exitCodeHelp = `Exit codes:
  0  success
  1  other failure
  2  usage: bad command line
  3  network or setup: connection refused, unreachable, TAP device problem
  4  login refused by the server
  5  the server answered with an error reply
  6  incomplete transfer: fewer or more bytes than announced, no final 226
  7  local file error: cannot read or write a local file, or refused to
  8  timeout
  9  the server broke the FTP protocol (malformed or oversized replies)
  10 TLS: the server's certificate is not trusted, or TLS was required and refused
`

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// setupError is a failure to set up the network (TAP device, stack).
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// errStopped is returned when the user stops a run (step mode's q).
var errStopped = errors.New("stopped")

// ExitCode maps an error from Run to the process exit code.
func ExitCode(err error) int {
	var ue *usageError
	var se *setupError
	var re *ftp.ReplyError
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, errStopped):
		return ExitOK
	case errors.As(err, &ue), errors.Is(err, ftp.ErrBadArgument):
		return ExitUsage
	case errors.Is(err, ftp.ErrLocalFile):
		return ExitLocal
	case errors.Is(err, ftp.ErrTLSRequired), isCertError(err):
		return ExitTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ExitTimeout
	case errors.Is(err, ftp.ErrLoginRefused):
		return ExitLogin
	case errors.Is(err, ftp.ErrIncomplete):
		return ExitIncomplete
	case errors.Is(err, ftp.ErrProtocol):
		return ExitProtocol
	case errors.As(err, &re):
		return ExitServer
	case errors.As(err, &se), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF): // the server hung up without a word
		return ExitNetwork
	case errors.As(err, new(*net.OpError)):
		return ExitNetwork
	default:
		return ExitFailure
	}
}

// isCertError reports a certificate that could not be verified.
func isCertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// ErrorLine renders err as the one line nsftp prints before exiting.
func ErrorLine(err error) string {
	msg := ftp.Sanitize(err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		return "nsftp: " + msg + " (see 'nsftp help')"
	}
	return "nsftp: " + msg
}

// env is what one run of the program talks to.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// stop ends the run early with a cause (step mode's q).
	stop context.CancelCauseFunc
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"get", "download a file: nsftp get URL [DEST]", runGet},
		{"put", "upload a file: nsftp put FILE URL", runPut},
		{"ls", "list a directory: nsftp ls URL", runLs},
		{"serve", "serve a directory: nsftp serve DIR", runServe},
		{"demo", "client and server on a virtual wire, in this process", runDemo},
	}
}

// Run runs the nsftp command line args (without the program name).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, stop: stop}
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return usagef("no command given")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return Run(ctx, []string{rest[0], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, mainUsage())
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			if err := c.run(ctx, e, rest); err != errHelp {
				return err
			}
			return nil
		}
	}
	return usagef("unknown command %q", name)
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`nsftp: FTP over a TCP/IP stack you can see into.

nsftp runs its FTP client and server on its own embedded TCP/IP stack
(gVisor's netstack), on a TAP device or on a virtual wire inside the
process, so that every socket call can be traced, stepped through and drawn.

Usage:
  nsftp <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-6s %s\n", c.name, c.summary)
	}
	b.WriteString(`  help   show this, or a command's flags: nsftp help get

Start with:
  nsftp demo            both hosts in this process, no root or TAP needed

Choose a network for get, put, ls and serve:
  --net os                          the operating system's sockets
  --tap NAME --addr CIDR [--gateway IP] [--mtu N]
                                    nsftp's own stack on a TAP device

`)
	b.WriteString(exitCodeHelp)
	return b.String()
}
