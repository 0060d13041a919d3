package ftp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// quotePath renders a path for a 257 reply: in double quotes, with quotes
// inside doubled (RFC 959 appendix II).
func quotePath(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

func handlePWD(s *session, _ string) {
	s.reply(257, quotePath(s.cwd)+" is the current directory")
}

func handleCWD(s *session, arg string) {
	virtual, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid directory name.")
		return
	}
	fi, err := s.fs.Stat(rel)
	if err != nil {
		s.replyFSError(err)
		return
	}
	if !fi.IsDir() {
		s.reply(550, "Not a directory.")
		return
	}
	s.cwd = virtual
	s.reply(250, "Directory successfully changed.")
}

func handleCDUP(s *session, _ string) { handleCWD(s, "..") }

func handleMKD(s *session, arg string) {
	virtual, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid directory name.")
		return
	}
	if err := s.fs.Mkdir(rel, 0o755); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(257, quotePath(virtual)+" directory created")
}

func handleRMD(s *session, arg string) {
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid directory name.")
		return
	}
	if rel == "." {
		s.reply(550, "Cannot remove the root directory.")
		return
	}
	// Lstat: a symbolic link to a directory is not a directory to remove.
	fi, err := s.fs.Lstat(rel)
	if err != nil {
		s.replyFSError(err)
		return
	}
	if !fi.IsDir() {
		s.reply(550, "Not a directory.")
		return
	}
	if err := s.fs.Remove(rel); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(250, "Directory removed.")
}

// listFormat renders one listing line, without its line end.
type listFormat func(it listItem) string

func handleLIST(s *session, arg string) {
	now := time.Now()
	list(s, listArg(arg), "LIST", func(it listItem) string { return FormatListLine(s.listEntry(it), now) })
}

func handleNLST(s *session, arg string) {
	list(s, listArg(arg), "NLST", func(it listItem) string { return it.name })
}

// handleMLSD lists a directory in RFC 3659 section 7 form.
func handleMLSD(s *session, arg string) {
	if fi, ok := s.stat(arg); !ok {
		return
	} else if !fi.IsDir() {
		// RFC 3659 section 7.2.1: MLSD of anything but a directory is 501.
		s.reply(501, "Not a directory.")
		return
	}
	list(s, arg, "MLSD", func(it listItem) string { return FormatMLSDLine(s.mlsdEntry(it)) })
}

// listArg drops the "-la"-style options that clients send with LIST and
// NLST as if to ls; the listing is the same whatever they say.
func listArg(arg string) string {
	for strings.HasPrefix(arg, "-") {
		_, arg, _ = strings.Cut(arg, " ")
		arg = strings.TrimLeft(arg, " ")
	}
	return arg
}

// list sends a listing of arg (a directory's entries, or one entry for
// anything else) over the data connection, a line per entry with CRLF.
func list(s *session, arg, verb string, format listFormat) {
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if _, err := s.fs.Stat(rel); err != nil {
		s.replyFSError(err)
		return
	}
	p := s.takePlan()
	if p == nil {
		s.reply(425, "Use PASV, EPSV, PORT or EPRT first.")
		return
	}
	s.reply(150, "Here comes the directory listing.")
	r := s.transfer(p, verb, func(data io.ReadWriter) error {
		n, done := s.srv.bufferShare(dataBufferSize - 1)
		defer done()
		w := bufio.NewWriterSize(data, n)
		err := s.entries(rel, func(it listItem) error {
			_, err := w.WriteString(format(it) + "\r\n")
			return err
		})
		if err != nil {
			return err
		}
		return w.Flush()
	})
	s.finish(r, "Directory send OK.")
}

// listItem is one file to list: its name in the listing, its name for
// os.Root, and what Lstat said about it.
type listItem struct {
	name, rel string
	fi        fs.FileInfo
}

// maxReadDir is how many directory entries are read at a time, so memory
// does not grow with the directory.
const maxReadDir = 256

// entries calls each for the entries of the directory rel, in the order
// the file system gives, or once for rel itself if it is not a directory.
// Names that contain CR or LF are skipped: they would break the line
// structure of every listing format. Errors of each are returned as they
// are; errors reading the directory are local.
func (s *session) entries(rel string, each func(listItem) error) error {
	fi, err := s.fs.Lstat(rel)
	if err != nil {
		return &localError{err}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := s.fs.Stat(rel); err == nil && t.IsDir() {
			fi = t // a link to a directory: list the directory
		}
	}
	if !fi.IsDir() {
		if !listable(rel) {
			return nil
		}
		return each(listItem{name: path.Base(rel), rel: rel, fi: fi})
	}
	d, err := s.fs.openDir(rel)
	if err != nil {
		return &localError{err}
	}
	defer d.Close()
	for {
		batch, err := d.readDir(maxReadDir)
		for _, info := range batch {
			if err := each(listItem{name: info.Name(), rel: path.Join(rel, info.Name()), fi: info}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &localError{err}
		}
	}
}

func listable(name string) bool { return !strings.ContainsAny(name, "\r\n") }

// listEntry describes it for LIST: ls's mode string and, for a symbolic
// link, the link itself with its target text.
func (s *session) listEntry(it listItem) Entry {
	m := it.fi.Mode()
	e := Entry{Name: it.name, Size: it.fi.Size(), ModTime: it.fi.ModTime(), Perm: lsMode(m)}
	switch {
	case m.IsDir():
		e.Type = "dir"
	case m&fs.ModeSymlink != 0:
		e.Type = "link"
		if t, err := s.fs.Readlink(it.rel); err == nil && listable(t) {
			e.Target = t
		}
	case m.IsRegular():
		e.Type = "file"
	}
	return e
}

// lsMode renders m as ls -l does ("drwxr-xr-x"); fs.FileMode.String uses
// other letters for some types ("L" for links).
func lsMode(m fs.FileMode) string {
	t := byte('-')
	switch {
	case m.IsDir():
		t = 'd'
	case m&fs.ModeSymlink != 0:
		t = 'l'
	case m&fs.ModeNamedPipe != 0:
		t = 'p'
	case m&fs.ModeSocket != 0:
		t = 's'
	case m&fs.ModeCharDevice != 0:
		t = 'c'
	case m&fs.ModeDevice != 0:
		t = 'b'
	}
	return string(t) + m.Perm().String()[1:]
}

// mlsdEntry describes it for MLSD and MLST (RFC 3659 section 7.5). A
// symbolic link that leads to a file or directory inside the root is
// described as what it leads to, which a client can fetch or enter; one
// that does not is "OS.unix=slink", without the target.
func (s *session) mlsdEntry(it listItem) Entry {
	fi := it.fi
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := s.fs.Stat(it.rel)
		if err != nil {
			return Entry{Name: it.name, Type: "OS.unix=slink", Size: -1, ModTime: fi.ModTime()}
		}
		fi = t
	}
	e := Entry{Name: it.name, Size: fi.Size(), ModTime: fi.ModTime()}
	switch {
	case fi.IsDir():
		e.Type, e.Perm = "dir", "el"
		if s.cfg.Write {
			e.Perm += "cdfmp"
		}
	case fi.Mode().IsRegular():
		e.Type, e.Perm = "file", "r"
		if s.cfg.Write {
			e.Perm += "adfw"
		}
	default:
		e.Type, e.Size = "OS.unix="+lsMode(fi.Mode())[:1], -1
	}
	return s.factsOff.strip(e)
}

// handleMLST describes one file on the control connection (RFC 3659
// section 7.2): the facts line starts with a space and names the path.
func handleMLST(s *session, arg string) {
	virtual, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	fi, err := s.fs.Stat(rel)
	if err != nil {
		s.replyFSError(err)
		return
	}
	e := s.mlsdEntry(listItem{name: virtual, rel: rel, fi: fi})
	s.reply(250, "Listing "+virtual, " "+FormatMLSDLine(e), "End")
}

// maxStatLines bounds a STAT listing, which travels in one reply.
const maxStatLines = 500

// statPath answers STAT with a path: its LIST lines on the control
// connection (RFC 959 section 4.1.3).
func statPath(s *session, arg string) {
	virtual, rel, ok := s.resolve(listArg(arg))
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if _, err := s.fs.Stat(rel); err != nil {
		s.replyFSError(err)
		return
	}
	now := time.Now()
	lines := []string{"Status of " + virtual + ":"}
	errFull := errors.New("full")
	err := s.entries(rel, func(it listItem) error {
		if len(lines) > maxStatLines {
			return errFull
		}
		lines = append(lines, FormatListLine(s.listEntry(it), now))
		return nil
	})
	switch {
	case errors.Is(err, errFull):
		lines = append(lines, fmt.Sprintf(" ... more than %d entries; use LIST.", maxStatLines))
	case err != nil:
		s.replyFSError(err)
		return
	}
	s.reply(213, append(lines, "End of status")...)
}
