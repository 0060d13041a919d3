package ftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// DestOptions says how CreateDest may treat what is already there.
type DestOptions struct {
	// Force allows writing straight into something that is not a regular
	// file: a device, a FIFO. Without it that is refused (the 2005
	// article's `./a.out foo_file /dev/hda1` wrote a file over a disk),
	// but for the null device.
	Force bool
	// Resume appends to an existing partial file instead of replacing it;
	// Offset says where the download must restart (REST).
	Resume bool
}

// Dest is a download's local destination. Bytes go to a temporary file in
// the destination's directory, which Commit syncs and renames over the
// destination, so a failed download never truncates or replaces an
// existing file and Abort leaves nothing behind. Resumed and forced
// downloads write in place.
type Dest struct {
	final  string
	f      *os.File
	temp   string // "" when writing in place
	offset int64
	done   bool
}

// CreateDest prepares the destination for a download of remoteName. If
// dest is an existing directory the file goes inside it under remoteName's
// last element, as cp does. Symbolic links are followed, so the file they
// point to is what gets replaced.
func CreateDest(dest, remoteName string, opt DestOptions) (*Dest, error) {
	if err := checkLocalName(dest); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		base := path.Base(remoteName)
		if base == "" || base == "." || base == "/" || base == ".." {
			return nil, localErrorf("%s is a directory and the remote path %q names no file to put in it", dest, remoteName)
		}
		if err := checkLocalName(base); err != nil {
			return nil, err
		}
		dest = filepath.Join(dest, base)
	}
	final, err := resolveLinks(dest)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(final)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, localErrorf("%v", err)
	}
	if exists && fi.IsDir() {
		return nil, localErrorf("%s is a directory", final)
	}
	if exists && !fi.Mode().IsRegular() {
		// The null device takes any download and keeps none, as curl and
		// wget let it; other devices need Force.
		if !opt.Force && !isDevNull(fi) {
			return nil, localErrorf("refusing to write to %s: it is a %s, not a regular file (use --force to write to it anyway)", final, kindOf(fi.Mode()))
		}
		f, err := os.OpenFile(final, os.O_WRONLY, 0)
		if err != nil {
			return nil, localErrorf("%v", err)
		}
		return &Dest{final: final, f: f}, nil
	}
	if opt.Resume && exists {
		f, err := os.OpenFile(final, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, localErrorf("%v", err)
		}
		return &Dest{final: final, f: f, offset: fi.Size()}, nil
	}
	dir, base := filepath.Split(final)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, localErrorf("cannot create a file in %s: %v", dir, err)
	}
	mode := fs.FileMode(0o644)
	if exists {
		mode = fi.Mode().Perm()
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, localErrorf("%v", err)
	}
	return &Dest{final: final, f: f, temp: f.Name()}, nil
}

// isDevNull reports whether fi is the null device, under whatever name.
func isDevNull(fi fs.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// Path returns the file the download ends up in.
func (d *Dest) Path() string { return d.final }

// Offset returns where a resumed download restarts: the partial file's
// size, or 0.
func (d *Dest) Offset() int64 { return d.offset }

// Write implements io.Writer. Its errors wrap ErrLocalFile and name the
// destination, not the temporary file the user never asked for.
func (d *Dest) Write(b []byte) (int, error) {
	n, err := d.f.Write(b)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return n, &localError{err: fmt.Errorf("writing %s: %w", d.final, err)}
	}
	return n, nil
}

// Commit makes the download the destination: sync, close, rename over
// the destination, sync the directory.
func (d *Dest) Commit() error {
	if d.done {
		return nil
	}
	d.done = true
	if err := d.f.Sync(); err != nil && d.temp != "" {
		d.f.Close()
		os.Remove(d.temp)
		return localErrorf("syncing %s: %v", d.final, err)
	}
	if err := d.f.Close(); err != nil {
		if d.temp != "" {
			os.Remove(d.temp)
		}
		return localErrorf("writing %s: %v", d.final, err)
	}
	if d.temp == "" {
		return nil
	}
	if err := os.Rename(d.temp, d.final); err != nil {
		os.Remove(d.temp)
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return localErrorf("replacing %s: %v", d.final, err)
	}
	if dir, err := os.Open(filepath.Dir(d.final)); err == nil {
		dir.Sync() // the rename itself must survive a crash too
		dir.Close()
	}
	return nil
}

// Abort abandons the download: the temporary file is removed and the
// destination is left as it was. A resumed file keeps the bytes that did
// arrive, so the download can be resumed again.
func (d *Dest) Abort() {
	if d.done {
		return
	}
	d.done = true
	d.f.Close()
	if d.temp != "" {
		os.Remove(d.temp)
	}
}

// tempPattern is the os.CreateTemp pattern for a download into base:
// hidden, recognisably nsftp's, and short enough for the file system's
// 255-byte name limit however long base is.
func tempPattern(base string) string {
	const maxBase = 200
	if len(base) > maxBase {
		cut := maxBase
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = base[:cut]
	}
	return "." + base + ".nsftp-*.part"
}

// resolveLinks follows symbolic links in p's last element, so writing
// replaces the file a link points to rather than the link.
func resolveLinks(p string) (string, error) {
	for i := 0; i < 40; i++ {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", localErrorf("%v", err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return "", localErrorf("%s: too many levels of symbolic links", p)
}

// checkLocalName refuses names with control characters: they are almost
// always a mistake or an attack (a name from a URL with %0a in it) and
// make a mess of every terminal that lists the directory.
func checkLocalName(name string) error {
	if name == "" {
		return localErrorf("empty file name")
	}
	if strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return localErrorf("refusing file name %q: it contains control characters", name)
	}
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	default:
		return "special file"
	}
}

func localErrorf(format string, args ...any) error {
	return &localError{err: fmt.Errorf(format, args...)}
}
