// Package cli is the nsftp command: flag parsing, wiring the FTP client and
// server to a network, and rendering what happened. Run is the whole
// program; main only calls it and maps its error to an exit code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/netconf"
	"github.com/nsftp/nsftp/stack"
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
  3  network or setup: connection refused, unreachable, no DHCP lease, a name
     not found or no name server, TAP device problem
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

// stoppedError is the end a person asked for in step mode's q: the run
// stopped where they were, and the FTP session ended with QUIT.
type stoppedError struct{ where string }

func (e *stoppedError) Error() string {
	return "stopped at your request " + e.where + " (QUIT sent)"
}

// fileError is a file of the command's own that it could not read or
// write: a pcap, a diagram, a certificate, a file to upload.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// ExitCode maps an error from Run to the process exit code: the
// command's own errors first, then the kind of failure the FTP layer says
// an error is.
func ExitCode(err error) int {
	var ue *usageError
	var se *setupError
	var stopped *stoppedError
	var fe *fileError
	var ne *netconf.Error
	switch {
	case err == nil, errors.As(err, &stopped):
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &fe):
		return ExitLocal
	case errors.As(err, &ne):
		// No lease, no name server, no such host, no route: the
		// network's, even where the cause was a timeout.
		return ExitNetwork
	case errors.As(err, &se):
		// A setup failure is the network's, unless it says more.
		if c := ftp.Classify(err); c != ftp.ClassOther {
			return exitCodes[c]
		}
		return ExitNetwork
	}
	return exitCodes[ftp.Classify(err)]
}

// exitCodes are the exit codes of the FTP layer's classes of failure.
var exitCodes = map[ftp.Class]int{
	ftp.ClassNone:        ExitOK,
	ftp.ClassBadArgument: ExitUsage,
	ftp.ClassLocalFile:   ExitLocal,
	ftp.ClassTLS:         ExitTLS,
	ftp.ClassTimeout:     ExitTimeout,
	ftp.ClassLogin:       ExitLogin,
	ftp.ClassIncomplete:  ExitIncomplete,
	ftp.ClassProtocol:    ExitProtocol,
	ftp.ClassServer:      ExitServer,
	ftp.ClassNetwork:     ExitNetwork,
	ftp.ClassOther:       ExitFailure,
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
	// clockReady, if set, is given the run's network clock as soon as
	// it is made: tests hold it or move it on.
	clockReady func(*stack.Clock)
	// guardExe is the program to run as a TAP device's guard (see
	// startGuard): nsftp itself, when run by Main; "" for none.
	guardExe string
	// status delivers the process's SIGUSR1s (Main): serve answers each
	// with a line on its state. Nil in-process.
	status <-chan os.Signal
	// process says the run owns the process (Main): settings that are the
	// whole process's, such as the Go runtime's memory limit, are the
	// run's to make.
	process bool
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
		{"show", "render a recorded run: nsftp show RUN.jsonl", runShow},
	}
}

// Run runs the nsftp command line args (without the program name).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runCommand(ctx, &env{stdin: stdin, stdout: stdout, stderr: stderr}, args)
}

// runCommand is Run with the environment given.
func runCommand(ctx context.Context, e *env, args []string) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	e.stop = stop
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage())
		return usagef("no command given")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return runCommand(ctx, e, []string{rest[0], "--help"})
		}
		fmt.Fprint(e.stdout, mainUsage())
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, e, rest)
			if err == errHelp {
				return nil
			}
			// A stop asked for in step mode shows as what it is, not as
			// the cancelled context the FTP layer saw.
			var stopped *stoppedError
			if err != nil && errors.As(context.Cause(ctx), &stopped) {
				return stopped
			}
			return err
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
  --tap NAME [--addr CIDR] [--gateway IP] [--dns IP] [--mtu N]
                                    nsftp's own stack on a TAP device; without
                                    --addr, DHCP and router advertisements
                                    configure it

`)
	b.WriteString(exitCodeHelp)
	return b.String()
}
