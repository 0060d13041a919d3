package ftp

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// handleRETR sends a regular file; anything else (a FIFO, a device, a
// socket) is refused with 550 before the data connection is touched, and
// without blocking (see tree.openRegular).
func handleRETR(s *session, arg string) {
	offset := s.takeRest()
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	f, fi, err := s.fs.openRegular(rel, os.O_RDONLY, 0)
	if err != nil {
		s.replyFSError(err)
		return
	}
	defer f.Close()
	if offset > fi.Size() {
		s.reply(554, "Restart offset is past the end of the file.")
		return
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		s.replyFSError(err)
		return
	}
	p := s.takePlan()
	if p == nil {
		s.reply(425, "Use PASV, EPSV, PORT or EPRT first.")
		return
	}
	// The size is what this transfer will send; some clients show it.
	s.reply(150, fmt.Sprintf("Opening BINARY mode data connection for %s (%d bytes).", arg, fi.Size()-offset))
	r := s.transfer(p, "RETR "+arg, func(data io.ReadWriter) error {
		_, err := s.copyData(data, f, fi.Size()-offset)
		return err
	})
	s.finish(r, "Transfer complete.")
}

func handleSTOR(s *session, arg string) { store(s, arg, false) }

func handleAPPE(s *session, arg string) { store(s, arg, true) }

// store receives a file for STOR or APPE. A plain STOR writes a temporary
// file in the same directory and renames it over the target only once the
// data connection has closed cleanly, so a broken upload never truncates
// what was there. APPE, and STOR after REST (RFC 3659 section 5), write the
// target in place: that is what resuming means. (So a plain STOR onto a
// symbolic link replaces the link, where APPE writes through it; a link
// that leads out of the root is refused either way.)
func store(s *session, arg string, appending bool) {
	offset := s.takeRest()
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	// Only a regular file or a new name: writing into a FIFO or a device
	// is not an upload. (The open below checks again what it opened.)
	old, err := s.fs.Stat(rel)
	switch {
	case err == nil && !old.Mode().IsRegular():
		s.replyFSError(&notRegularError{old.Mode()})
		return
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		s.replyFSError(err)
		return
	}
	if s.plan == nil {
		s.reply(425, "Use PASV, EPSV, PORT or EPRT first.")
		return
	}

	var f *treeFile
	tmp := "" // the temporary name, for a plain STOR
	switch {
	case appending:
		f, _, err = s.fs.openRegular(rel, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	case offset > 0:
		if old == nil || offset > old.Size() {
			s.reply(554, "Restart offset is past the end of the file.")
			return
		}
		f, _, err = s.fs.openRegular(rel, os.O_WRONLY, 0)
		if err == nil {
			if _, err = f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
			}
		}
	default:
		f, tmp, err = createTemp(s.fs, rel, old)
	}
	if err != nil {
		s.replyFSError(err)
		return
	}
	renamed := false
	defer func() {
		f.Close()
		if tmp != "" && !renamed {
			s.fs.removeTemp(tmp)
		}
	}()

	s.reply(150, fmt.Sprintf("Opening BINARY mode data connection for %s.", arg))
	r := s.transfer(s.takePlan(), "STOR "+arg, func(data io.ReadWriter) error {
		if _, err := s.copyData(f, data, -1); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return &localError{err}
		}
		if tmp != "" {
			if err := s.fs.Rename(tmp, rel); err != nil {
				return &localError{err}
			}
			renamed = true
		}
		return nil
	})
	s.finish(r, "Transfer complete.")
}

// createTemp creates an empty file next to rel to receive an upload, with
// the mode of the file it will replace, if any.
func createTemp(t *tree, rel string, old fs.FileInfo) (*treeFile, string, error) {
	perm := fs.FileMode(0o644)
	if old != nil {
		perm = old.Mode().Perm()
	}
	// rand.Text makes a collision with another upload out of the question;
	// O_EXCL would refuse it anyway.
	tmp := path.Join(path.Dir(rel), ".nsftp-upload-"+rand.Text())
	f, err := t.createExcl(tmp, perm)
	if err != nil {
		return nil, "", err
	}
	if old != nil {
		// The umask may have narrowed perm; the replacement keeps the
		// original's mode, as overwriting in place would have.
		f.Chmod(perm)
	}
	return f, tmp, nil
}

// handleREST sets the byte offset of the next RETR or STOR (RFC 3659
// section 5, stream mode).
func handleREST(s *session, arg string) {
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		s.reply(501, "REST needs a byte offset.")
		return
	}
	s.rest = n
	s.reply(350, fmt.Sprintf("Restarting at %d. Send RETR or STOR.", n))
}

// takeRest returns the REST offset and clears it: it applies to the next
// transfer only.
func (s *session) takeRest() int64 {
	n := s.rest
	s.rest = 0
	return n
}

// handleSIZE answers the size of a plain file (RFC 3659 section 4). Data is
// sent unconverted in every TYPE, so this is the number of bytes RETR sends.
func handleSIZE(s *session, arg string) {
	fi, ok := s.stat(arg)
	if !ok {
		return
	}
	if !fi.Mode().IsRegular() {
		s.replyFSError(&notRegularError{fi.Mode()})
		return
	}
	s.reply(213, strconv.FormatInt(fi.Size(), 10))
}

// handleMDTM answers the modification time in UTC (RFC 3659 section 3).
func handleMDTM(s *session, arg string) {
	fi, ok := s.stat(arg)
	if !ok {
		return
	}
	s.reply(213, fi.ModTime().UTC().Format(mdtmLayout))
}

// mdtmLayout is RFC 3659's time-val without fractions.
const mdtmLayout = "20060102150405"

// handleMFMT sets a file's modification time (draft-somers-ftp-mfxx,
// "MFMT time-val path"), as mirroring clients (lftp mirror -R) do after
// an upload, and answers the time now set.
func handleMFMT(s *session, arg string) {
	val, name, _ := strings.Cut(arg, " ")
	setModify(s, val, name, "Modify=%s; %s")
}

// handleMFF sets the facts given of a file (draft-somers-ftp-mfxx, "MFF
// fact=value;... path"); modify is the one that can be set.
func handleMFF(s *session, arg string) {
	facts, name, _ := strings.Cut(arg, " ")
	val := ""
	for _, f := range strings.Split(strings.TrimSuffix(facts, ";"), ";") {
		k, v, _ := strings.Cut(f, "=")
		if !strings.EqualFold(k, "modify") {
			s.reply(504, "Only the modify fact can be changed.")
			return
		}
		val = v
	}
	setModify(s, val, name, "modify=%s; %s")
}

// handleSITE runs the one SITE command the server has: SITE CHMOD mode
// path, as vsftpd and ProFTPD have it, which mirroring clients (lftp mirror
// -R) send after an upload to give the file its permissions. Only the
// permission bits may be set: no set-user-ID, set-group-ID or sticky bit.
func handleSITE(s *session, arg string) {
	sub, rest, _ := strings.Cut(strings.TrimSpace(arg), " ")
	if !strings.EqualFold(sub, "CHMOD") {
		s.reply(504, "SITE "+strings.ToUpper(sub)+" is not supported; SITE CHMOD is.")
		return
	}
	if !s.cfg.Write {
		s.reply(550, "Permission denied: the server is read-only.")
		return
	}
	modeText, name, _ := strings.Cut(strings.TrimSpace(rest), " ")
	mode, err := strconv.ParseUint(modeText, 8, 32)
	if err != nil || mode > 0o777 || name == "" {
		s.reply(501, "Give a mode in octal, at most 777, then the file's name.")
		return
	}
	_, rel, ok := s.resolve(name)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if err := s.fs.Chmod(rel, fs.FileMode(mode)); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(200, "SITE CHMOD command ok.")
}

// setModify sets the modification time of name to the time-val val, and
// replies 213 with the time set and the name, in the form given.
func setModify(s *session, val, name, form string) {
	t, ok := parseTimeVal(val)
	if !ok || name == "" {
		s.reply(501, "Give a time as YYYYMMDDHHMMSS (UTC), then the file's name.")
		return
	}
	virtual, rel, ok := s.resolve(name)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if _, err := s.fs.Stat(rel); err != nil {
		s.replyFSError(err)
		return
	}
	if err := s.fs.Chtimes(rel, t); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(213, fmt.Sprintf(form, t.UTC().Format(mdtmLayout), virtual))
}

// stat resolves arg and stats it, following symbolic links inside the
// root, or replies with the error.
func (s *session) stat(arg string) (fs.FileInfo, bool) {
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return nil, false
	}
	fi, err := s.fs.Stat(rel)
	if err != nil {
		s.replyFSError(err)
		return nil, false
	}
	return fi, true
}

func handleDELE(s *session, arg string) {
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	// Lstat: deleting a symbolic link deletes the link, not its target.
	fi, err := s.fs.Lstat(rel)
	if err != nil {
		s.replyFSError(err)
		return
	}
	if fi.IsDir() {
		s.reply(550, "Is a directory; use RMD.")
		return
	}
	if err := s.fs.Remove(rel); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(250, "File deleted.")
}

func handleRNFR(s *session, arg string) {
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if rel == "." {
		s.reply(550, "Cannot rename the root directory.")
		return
	}
	if _, err := s.fs.Lstat(rel); err != nil {
		s.replyFSError(err)
		return
	}
	s.renameFrom = rel
	s.reply(350, "Ready for RNTO.")
}

func handleRNTO(s *session, arg string) {
	from := s.renameFrom
	s.renameFrom = ""
	if from == "" {
		s.reply(503, "RNFR required first.")
		return
	}
	_, rel, ok := s.resolve(arg)
	if !ok {
		s.reply(501, "Invalid file name.")
		return
	}
	if rel == "." {
		s.reply(550, "Cannot rename over the root directory.")
		return
	}
	if err := s.fs.Rename(from, rel); err != nil {
		s.replyFSError(err)
		return
	}
	s.reply(250, "Rename successful.")
}

// replyFSError answers a failed file system operation with 550 and a reason
// that shows no path: the client knows which name it sent. A file system
// that did not answer in time ends the session instead (see bounded).
func (s *session) replyFSError(err error) {
	var notRegular *notRegularError
	switch {
	case s.ctx.Err() != nil:
		// The session is ending; nobody is left to answer.
	case errors.Is(err, errFileSystemStuck):
		s.fileSystemStuck()
	case errors.As(err, &notRegular):
		s.reply(550, capitalize(notRegular.Error())+".")
	case errors.Is(err, fs.ErrNotExist):
		s.reply(550, "No such file or directory.")
	case errors.Is(err, fs.ErrPermission):
		s.reply(550, "Permission denied.")
	case errors.Is(err, fs.ErrExist):
		s.reply(550, "File exists.")
	default:
		// Among these: a path that os.Root refuses because it leads out of
		// the root through a symbolic link.
		s.srv.logf("ftp: %s: %v", s.remote, err)
		s.reply(550, "Requested action not taken.")
	}
}

// fileSystemStuck ends the session after a file system call that did not
// return within FileTimeout. The slot is freed when run returns, which
// nothing stuck in the kernel can delay: the call runs on a goroutine of
// its own.
func (s *session) fileSystemStuck() {
	s.reply(421, "File system not responding; closing the session.")
	s.quit = true
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
