package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/tap"
)

// Main is nsftp as a process: Run on the process's arguments and standard
// files, ended cleanly by the signals that end a command-line program,
// with a guard process for a TAP device; it returns the exit code. main
// only calls it.
//
// SIGINT, SIGTERM and SIGHUP (a terminal closing) cancel the run: the FTP
// session ends, the TAP device is put back, and nsftp exits 128 plus the
// signal's number (or 0 when the run ends well anyway, as serve does). A
// second one exits at once, leaving the device to the guard. A reader of
// standard output that goes away (nsftp get URL - | head -c 10) ends the
// run the same way, and nsftp then dies of SIGPIPE as a pipeline expects,
// saying nothing. SIGUSR1 has serve print a line on its state.
func Main() int {
	if os.Getenv(guardEnv) != "" {
		return runGuard()
	}
	sigs := make(chan os.Signal, 4)
	// SIGPIPE is asked for so that a write to a closed standard output
	// fails with EPIPE instead of killing nsftp on the spot, with the
	// device still changed.
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	ctx, cancel := context.WithCancelCause(context.Background())
	caught := make(chan os.Signal, 1)
	go watchSignals(sigs, cancel, caught)

	status := make(chan os.Signal, 1)
	signal.Notify(status, syscall.SIGUSR1)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, guardExe: selfPath(), status: status, process: true}
	err := runCommand(ctx, e, os.Args[1:])
	signal.Stop(sigs)
	signal.Stop(status)
	cancel(nil)

	var sig os.Signal
	select {
	case sig = <-caught:
	default:
	}
	switch {
	case sig == syscall.SIGPIPE:
		// Die of it, as a pipeline's member does: the shell sees 141.
		// With no one asking for SIGPIPE any more, Go's runtime dies of
		// it when a write to standard output or error meets EPIPE
		// (kill(2) of our own would be ignored).
		signal.Reset(syscall.SIGPIPE)
		if f := goneOutput(); f != nil {
			f.Write([]byte{'\n'})
		}
		return 128 + int(syscall.SIGPIPE) // if it did not kill us
	case sig != nil && err != nil:
		fmt.Fprintf(os.Stderr, "nsftp: stopped by %s\n", signalName(sig))
		return 128 + int(sig.(syscall.Signal))
	case err != nil:
		fmt.Fprintln(os.Stderr, ErrorLine(err))
	}
	return ExitCode(err)
}

// watchSignals cancels the run on the first signal that ends it and
// reports that signal on caught; a second ends the process at once.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, caught chan<- os.Signal) {
	first := true
	for s := range sigs {
		if s == syscall.SIGPIPE && !outputGone() {
			// A socket of the kernel's (--net os) whose peer went away:
			// the write that met it fails with EPIPE and says so.
			continue
		}
		if !first {
			if s != syscall.SIGPIPE {
				// The guard puts a TAP device back.
				os.Exit(128 + int(s.(syscall.Signal)))
			}
			continue
		}
		first = false
		caught <- s
		cancel(fmt.Errorf("stopped by %s", signalName(s)))
	}
}

// outputGone reports whether standard output or standard error is a pipe
// or socket whose reader has gone.
func outputGone() bool { return goneOutput() != nil }

// goneOutput returns standard output or standard error if it is a pipe or
// socket whose reader has gone: poll(2) says POLLERR (or POLLHUP) for its
// writing end. It returns nil if neither is.
func goneOutput() *os.File {
	fds := []unix.PollFd{{Fd: 1, Events: unix.POLLOUT}, {Fd: 2, Events: unix.POLLOUT}}
	if _, err := unix.Poll(fds, 0); err != nil {
		return nil
	}
	for i, f := range fds {
		if f.Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			return []*os.File{os.Stdout, os.Stderr}[i]
		}
	}
	return nil
}

func signalName(s os.Signal) string {
	if n := unix.SignalName(s.(syscall.Signal)); n != "" {
		return n
	}
	return s.String()
}

// selfPath is the running program, which a guard runs a copy of, or ""
// when it cannot be found (no guard then). /proc/self/exe is the program
// itself, however it was started: a user who may not reach its directory
// by name (nsftp run as nobody from root's temporary directory) may still
// run it again.
func selfPath() string {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe"
	}
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

// guardEnv, set in a copy of nsftp's environment, makes it a TAP device's
// guard (see tap.Guard) instead of a command.
const guardEnv = "NSFTP_TAP_GUARD"

// startGuard starts a copy of nsftp as the guard of the TAP device this
// run opens, or returns nil when the run has no program to copy (Run
// called from tests or another program, where the device is put back by
// Close alone) or the copy cannot be started: the guard is a safety net
// for when nsftp is killed, and the run goes on without it. The guard
// shares nsftp's standard error, to say if it could not put the device
// back.
func startGuard(e *env) *tap.Guard {
	if e.guardExe == "" {
		return nil
	}
	cmd := exec.Command(e.guardExe)
	cmd.Args = []string{"nsftp (TAP device guard)"}
	cmd.Env = append(os.Environ(), guardEnv+"=1")
	cmd.Stderr = e.stderr
	g, err := tap.StartGuard(cmd)
	if err != nil {
		return nil
	}
	return g
}

// runGuard is the guard's process: it stays through the signals a
// terminal sends nsftp's whole process group, and puts back what nsftp
// left changed once nsftp's end of the pipe closes.
func runGuard() int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGQUIT)
	if err := tap.ServeGuard(os.Stdin); err != nil {
		for _, e := range unwrapAll(err) {
			fmt.Fprintln(os.Stderr, "nsftp: "+e.Error())
		}
		return ExitNetwork
	}
	return ExitOK
}

// unwrapAll splits a joined error into its parts, one line each.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
