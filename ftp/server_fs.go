package ftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The served tree as a session sees it. Every file system call the server
// makes on a client's behalf goes through tree, for two reasons:
//
//   - Only regular files are transferred. Opening a FIFO waits for a peer
//     and reading a device may never end, so what is opened for a
//     transfer is opened without blocking and checked after opening (see
//     openRegular): nothing can be swapped in between check and open.
//   - No call may hold a session for good. A file on a hung network mount
//     blocks open, stat, read and close in the kernel, where no deadline
//     reaches, so each call runs on a goroutine of its own and the
//     session waits for it at most FileTimeout (see bounded).

// errFileSystemStuck: a file system call did not return within
// FileTimeout, or too many earlier ones are still stuck. The session ends
// with 421.
var errFileSystemStuck = errors.New("the file system did not answer in time")

// maxStuckCalls bounds the calls given up on that have not returned. Each
// holds an operating system thread while the kernel keeps it; past this
// many, new calls fail at once rather than let clients that keep asking
// for files on a hung mount pile up threads until the runtime's limit
// (10,000) ends the process.
const maxStuckCalls = 64

// tree is the served root as one session uses it.
type tree struct {
	srv     *Server
	root    *os.Root
	ctx     context.Context // the session's: once done, no call is waited for
	timeout time.Duration
	remote  netip.AddrPort // for the log
	// gaveUp is set once a call has overrun the timeout. Every later call
	// but close fails at once: the file system is not answering, and a
	// listing must not wait out the timeout once per entry.
	gaveUp atomic.Bool
}

// stuck reports whether a call of this session has overrun FileTimeout.
func (t *tree) stuck() bool { return t.gaveUp.Load() }

// The states of one bounded call; whichever side moves it from callPending
// first decides who owns the result.
const (
	callPending = iota
	callDelivered
	callAbandoned
)

// bounded runs call on a goroutine of its own and waits for it at most
// FileTimeout. A call in flight when the session ends is not waited for
// either, so that Server.Close is prompt; one made after that (the cleanup
// of a cut upload) is, up to FileTimeout, so that it is done by the time
// Close returns.
//
// If bounded gives up, the goroutine is left to finish in the kernel's own
// time, counted in Server.stuck until then. It holds no session slot, and
// release, if not nil, disposes of what call returns once it does (closes
// the file it opened). op and name say what the call was, for errors and
// the log; a name whose call overran FileTimeout is refused at once until
// that call returns (see stuckStart).
func bounded[T any](t *tree, op, name string, call func() (T, error), release func(T)) (T, error) {
	var zero T
	// Cleanups are never refused: refusing a close would leak the very
	// descriptor it was meant to close. (After gaveUp they do not come
	// here: see cleanup.)
	if !isCleanup(op) {
		if t.gaveUp.Load() {
			return zero, &fs.PathError{Op: op, Path: name, Err: errFileSystemStuck}
		}
		if n := t.srv.stuck.Load(); n >= maxStuckCalls {
			return zero, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w (%d earlier calls have not returned)", errFileSystemStuck, n)}
		}
		if t.srv.stuckOn(name) {
			return zero, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w (an earlier call on it has not returned)", errFileSystemStuck)}
		}
	}
	var (
		state     atomic.Int32
		v         T
		err       error
		done      = make(chan struct{})
		stuckName string // set before the state becomes callAbandoned
	)
	go func() {
		if h := t.srv.testHookFS; h != nil {
			h(op, name)
		}
		v, err = call()
		if state.CompareAndSwap(callPending, callDelivered) {
			close(done)
			return
		}
		// Given up on: nobody will look at the result.
		if err == nil && release != nil {
			release(v)
		}
		t.srv.stuckEnd(stuckName)
	}()
	ended := t.ctx.Done()
	if t.ctx.Err() != nil {
		ended = nil
	}
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	var why error
	select {
	case <-done:
		return v, err
	case <-timer.C:
		why = errFileSystemStuck
	case <-ended:
		why = context.Cause(t.ctx)
	}
	// Only a call that overran the timeout marks its name: one cut short
	// by the session's end has most likely just not finished yet, and
	// another session's call on the same file must not be refused for it.
	if errors.Is(why, errFileSystemStuck) {
		stuckName = name
	}
	// Counted before the hand-over, so the goroutine's stuckEnd can never
	// come first.
	t.srv.stuckStart(stuckName)
	if !state.CompareAndSwap(callPending, callAbandoned) {
		// The result arrived while the wait ended: take it after all.
		t.srv.stuckEnd(stuckName)
		<-done
		return v, err
	}
	if errors.Is(why, errFileSystemStuck) {
		t.gaveUp.Store(true)
		t.srv.logf("ftp: %s: %s %q did not return within %v; ending the session (%d file system calls stuck)",
			t.remote, op, name, t.timeout, t.srv.stuck.Load())
	}
	return zero, &fs.PathError{Op: op, Path: name, Err: why}
}

// stuckStart counts a call given up on; stuckEnd, when it returns. While a
// call on a name ("" for none) is stuck, further calls on that name fail at
// once: a client asking again and again for a file on a hung mount costs
// one thread, not one per request.
func (s *Server) stuckStart(name string) {
	s.stuck.Add(1)
	if name == "" {
		return
	}
	s.stuckMu.Lock()
	defer s.stuckMu.Unlock()
	s.stuckNames[name]++
}

func (s *Server) stuckEnd(name string) {
	if name != "" {
		s.stuckMu.Lock()
		if s.stuckNames[name]--; s.stuckNames[name] <= 0 {
			delete(s.stuckNames, name)
		}
		s.stuckMu.Unlock()
	}
	s.stuck.Add(-1)
}

// stuckOn reports whether a call on name is stuck.
func (s *Server) stuckOn(name string) bool {
	if s.stuck.Load() == 0 {
		return false // the common case, without the lock
	}
	s.stuckMu.Lock()
	defer s.stuckMu.Unlock()
	return s.stuckNames[name] > 0
}

// Cleanups: the calls that undo what a session did, which must happen even
// once the file system has stopped answering.
const (
	opClose      = "close"
	opRemoveTemp = "remove temporary"
)

func isCleanup(op string) bool { return op == opClose || op == opRemoveTemp }

// cleanup runs a cleanup call, bounded as any other; but once a call of
// the session has been given up on, the session does not wait for it at
// all: the call is left to run on its own, counted in Server.stuck until it
// returns, so that the descriptor is closed and the temporary file removed
// whenever the file system answers again.
func (t *tree) cleanup(op, name string, call func() error) error {
	if !t.gaveUp.Load() {
		return boundedErr(t, op, name, call)
	}
	t.srv.stuckStart("")
	go func() {
		defer t.srv.stuckEnd("")
		if h := t.srv.testHookFS; h != nil {
			h(op, name)
		}
		call()
	}()
	return nil
}

// boundedErr is bounded for calls that return only an error.
func boundedErr(t *tree, op, name string, call func() error) error {
	_, err := bounded(t, op, name, func() (struct{}, error) { return struct{}{}, call() }, nil)
	return err
}

// Stat is os.Root.Stat, bounded.
func (t *tree) Stat(name string) (fs.FileInfo, error) {
	return bounded(t, "stat", name, func() (fs.FileInfo, error) { return t.root.Stat(name) }, nil)
}

// Lstat is os.Root.Lstat, bounded.
func (t *tree) Lstat(name string) (fs.FileInfo, error) {
	return bounded(t, "lstat", name, func() (fs.FileInfo, error) { return t.root.Lstat(name) }, nil)
}

// Readlink is os.Root.Readlink, bounded.
func (t *tree) Readlink(name string) (string, error) {
	return bounded(t, "readlink", name, func() (string, error) { return t.root.Readlink(name) }, nil)
}

// Mkdir is os.Root.Mkdir, bounded.
func (t *tree) Mkdir(name string, perm fs.FileMode) error {
	return boundedErr(t, "mkdir", name, func() error { return t.root.Mkdir(name, perm) })
}

// Remove is os.Root.Remove, bounded.
func (t *tree) Remove(name string) error {
	return boundedErr(t, "remove", name, func() error { return t.root.Remove(name) })
}

// removeTemp removes an upload's temporary file, a cleanup.
func (t *tree) removeTemp(name string) error {
	return t.cleanup(opRemoveTemp, name, func() error { return t.root.Remove(name) })
}

// Chmod sets name's permission bits.
func (t *tree) Chmod(name string, mode fs.FileMode) error {
	return boundedErr(t, "chmod", name, func() error { return t.root.Chmod(name, mode) })
}

// Chtimes sets name's modification time (and its access time to now).
func (t *tree) Chtimes(name string, mtime time.Time) error {
	return boundedErr(t, "chtimes", name, func() error { return t.root.Chtimes(name, time.Now(), mtime) })
}

// Rename is os.Root.Rename, bounded.
func (t *tree) Rename(from, to string) error {
	return boundedErr(t, "rename", from, func() error { return t.root.Rename(from, to) })
}

// openFlags are added to every open: O_NONBLOCK so that opening a FIFO
// returns at once instead of waiting for a peer (or fails, ENXIO, when
// writing to one that has no reader), and O_NOCTTY so that opening a
// terminal never makes it the server's controlling terminal. os.Root adds
// O_NOFOLLOW and O_CLOEXEC itself.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY

// notRegularError refuses a transfer of anything but a regular file.
type notRegularError struct{ mode fs.FileMode }

func (e *notRegularError) Error() string {
	if e.mode.IsDir() {
		return "is a directory"
	}
	return "not a regular file: it is a " + kindOf(e.mode)
}

// openRegular opens name for a transfer, and only if it is a regular file.
// It stats name first, so that no device is ever opened in the ordinary
// case (opening some has effects of its own: a tape rewinds when closed, a
// watchdog starts counting), and then checks the descriptor it opened, so
// that a FIFO or device swapped in after the stat is refused all the same.
// The open cannot block (openFlags); for the regular file it returns,
// O_NONBLOCK is cleared again, since some network and FUSE file systems
// answer a non-blocking read with EAGAIN.
func (t *tree) openRegular(name string, flag int, perm fs.FileMode) (*treeFile, fs.FileInfo, error) {
	fi, err := t.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && flag&os.O_CREATE != 0:
	case err != nil:
		return nil, nil, err
	case !fi.Mode().IsRegular():
		return nil, nil, &notRegularError{fi.Mode()}
	}
	type opened struct {
		f  *os.File
		fi fs.FileInfo
	}
	o, err := bounded(t, "open", name, func() (opened, error) {
		f, err := t.root.OpenFile(name, flag|openFlags, perm)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				// A FIFO with no reader, or a socket: not a file either way.
				if fi, serr := t.root.Stat(name); serr == nil && !fi.Mode().IsRegular() {
					return opened{}, &notRegularError{fi.Mode()}
				}
			}
			return opened{}, err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = &notRegularError{fi.Mode()}
		}
		if err == nil {
			err = setBlocking(f)
		}
		if err != nil {
			f.Close()
			return opened{}, err
		}
		return opened{f, fi}, nil
	}, func(o opened) { o.f.Close() })
	if err != nil {
		return nil, nil, err
	}
	return &treeFile{t: t, f: o.f, name: name}, o.fi, nil
}

// setBlocking clears O_NONBLOCK on a regular file f. f is not in Go's
// poller (epoll refuses regular files), so the flag is the file's alone.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// createExcl creates name, which must not exist, for writing: an upload's
// temporary file. O_EXCL refuses anything already there, a link or a FIFO
// included, so what it opens is always a new regular file.
func (t *tree) createExcl(name string, perm fs.FileMode) (*treeFile, error) {
	f, err := bounded(t, "create", name, func() (*os.File, error) {
		return t.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	}, func(f *os.File) { f.Close() })
	if err != nil {
		return nil, err
	}
	return &treeFile{t: t, f: f, name: name}, nil
}

// openDir opens the directory name for reading. O_DIRECTORY makes the open
// itself refuse anything else, so a FIFO swapped in for a directory after
// a stat is never opened.
func (t *tree) openDir(name string) (*treeFile, error) {
	f, err := bounded(t, "open", name, func() (*os.File, error) {
		return t.root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|openFlags, 0)
	}, func(f *os.File) { f.Close() })
	if err != nil {
		return nil, err
	}
	return &treeFile{t: t, f: f, name: name}, nil
}

// treeFile is a file of the served tree, opened by a session; its calls
// are bounded as the tree's are. Read and Write errors (not io.EOF) are
// local errors, answered 451 rather than blamed on the data connection.
type treeFile struct {
	t    *tree
	f    *os.File
	name string
}

var _ io.ReadWriter = (*treeFile)(nil)

// Read implements io.Reader. If the call is given up on, p may still be
// written by it afterwards: the caller must drop p with the error, as
// copyData does.
func (tf *treeFile) Read(p []byte) (int, error) {
	n, err := bounded(tf.t, "read", tf.name, func() (int, error) { return tf.f.Read(p) }, nil)
	if err != nil && err != io.EOF {
		err = &localError{err}
	}
	return n, err
}

// Write implements io.Writer.
func (tf *treeFile) Write(p []byte) (int, error) {
	n, err := bounded(tf.t, "write", tf.name, func() (int, error) { return tf.f.Write(p) }, nil)
	if err != nil {
		err = &localError{err}
	}
	return n, err
}

// Seek is os.File.Seek, bounded.
func (tf *treeFile) Seek(offset int64, whence int) (int64, error) {
	return bounded(tf.t, "seek", tf.name, func() (int64, error) { return tf.f.Seek(offset, whence) }, nil)
}

// Chmod is os.File.Chmod, bounded.
func (tf *treeFile) Chmod(mode fs.FileMode) error {
	return boundedErr(tf.t, "chmod", tf.name, func() error { return tf.f.Chmod(mode) })
}

// Close is os.File.Close, a cleanup: closing can wait on a network file
// system too, to flush what was written. Calls after the first return an
// error, as os.File's do.
func (tf *treeFile) Close() error {
	return tf.t.cleanup(opClose, tf.name, tf.f.Close)
}

// readDir returns the next entries of a directory, at most n, with what
// Lstat says about each, leaving out names no listing can carry (see
// listable) and entries removed since the directory was read. It returns
// io.EOF at the end, as os.File.ReadDir does.
func (tf *treeFile) readDir(n int) ([]fs.FileInfo, error) {
	return bounded(tf.t, "readdir", tf.name, func() ([]fs.FileInfo, error) {
		des, err := tf.f.ReadDir(n)
		infos := make([]fs.FileInfo, 0, len(des))
		for _, de := range des {
			if !listable(de.Name()) {
				continue
			}
			if fi, err := de.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		return infos, err
	}, nil)
}
