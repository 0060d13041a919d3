package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// Bad local input: what CreateDest must refuse, and what a download must
// leave behind when the local side fails. Every refusal wraps ErrLocalFile
// (exit code 7) and reads as one line.

// wantLocalError fails unless err is a one-line local-file error that
// mentions msg.
func wantLocalError(t *testing.T, err error, msg string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("succeeded, want a local file error mentioning %q", msg)
	case !errors.Is(err, ftp.ErrLocalFile) || ftp.Classify(err) != ftp.ClassLocalFile:
		t.Errorf("error %q is not a local file error (class %s)", err, ftp.Classify(err))
	case strings.ContainsAny(err.Error(), "\r\n"):
		t.Errorf("error is not one line: %q", err)
	case !strings.Contains(err.Error(), msg):
		t.Errorf("error %q does not mention %q", err, msg)
	}
}

// wantOnly fails unless dir holds exactly the names given.
func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "/") != strings.Join(names, "/") {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestCreateDestDirectory(t *testing.T) {
	dir := t.TempDir()
	// cp-like: a directory destination receives the remote file's name.
	d, err := ftp.CreateDest(dir, "pub/readme.txt", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Path() != filepath.Join(dir, "readme.txt") {
		t.Errorf("Path() = %q", d.Path())
	}
	io.WriteString(d, "hello")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "readme.txt")); string(b) != "hello" {
		t.Errorf("got %q", b)
	}
	// Remote names that name no file to put in the directory.
	for _, remote := range []string{"", ".", "..", "/", "a/..", "pub/"} {
		d, err := ftp.CreateDest(dir, remote, ftp.DestOptions{})
		if remote == "pub/" {
			// path.Base("pub/") is "pub": a name, so it is allowed.
			if err != nil {
				t.Errorf("remote %q: %v", remote, err)
			} else {
				d.Abort()
			}
			continue
		}
		wantLocalError(t, err, "directory")
	}
	// The name inside the directory is itself a directory.
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	_, err = ftp.CreateDest(dir, "x/sub", ftp.DestOptions{})
	wantLocalError(t, err, "is a directory")
	wantOnly(t, dir, "readme.txt", "sub")
}

func TestCreateDestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ftp.CreateDest(fifo, "x", ftp.DestOptions{})
	wantLocalError(t, err, "named pipe")

	for name, target := range map[string]string{
		"null-link": "/dev/null",
		"link-link": "null-link",
	} {
		os.Symlink(target, filepath.Join(dir, name))
	}
	// The null device, even through links, takes a download without
	// Force, as curl and wget let it; any other device needs Force.
	null, err := ftp.CreateDest(filepath.Join(dir, "link-link"), "x", ftp.DestOptions{})
	if err != nil {
		t.Errorf("/dev/null through two links refused: %v", err)
	} else {
		if _, err := null.Write([]byte("gone")); err != nil {
			t.Error(err)
		}
		if err := null.Commit(); err != nil {
			t.Errorf("committing a download to /dev/null: %v", err)
		}
	}
	_, err = ftp.CreateDest("/dev/zero", "x", ftp.DestOptions{Resume: true})
	wantLocalError(t, err, "character device")

	// A loop of links, and a link into a directory that does not exist.
	os.Symlink("loop-b", filepath.Join(dir, "loop-a"))
	os.Symlink("loop-a", filepath.Join(dir, "loop-b"))
	_, err = ftp.CreateDest(filepath.Join(dir, "loop-a"), "x", ftp.DestOptions{})
	wantLocalError(t, err, "symbolic links")
	os.Symlink(filepath.Join(dir, "missing", "f"), filepath.Join(dir, "dangling"))
	_, err = ftp.CreateDest(filepath.Join(dir, "dangling"), "x", ftp.DestOptions{})
	wantLocalError(t, err, "no such file or directory")

	// A file where a directory should be.
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	_, err = ftp.CreateDest(filepath.Join(dir, "plain", "f"), "x", ftp.DestOptions{})
	wantLocalError(t, err, "not a directory")

	wantOnly(t, dir, "dangling", "fifo", "link-link", "loop-a", "loop-b", "null-link", "plain")
}

// TestCreateDestSymlinkToFile: a link to a regular file is followed, so the
// file it points to is replaced and the link stays a link.
func TestCreateDestSymlinkToFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("old"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink("target", link)
	d, err := ftp.CreateDest(link, "x", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(d, "new")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced")
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o600 {
		t.Errorf("target's mode changed to %v", fi.Mode())
	}
}

func TestCreateDestControlCharacters(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a\nb", "a\rb", "\x1b[31mred", "del\x7f", "tab\there", "nul\x00"} {
		_, err := ftp.CreateDest(filepath.Join(dir, name), "x", ftp.DestOptions{})
		wantLocalError(t, err, "control characters")
	}
	// The same names coming from the server, into a directory.
	for _, remote := range []string{"pub/a\nb", "evil\x1b]0;owned\x07", "x\r"} {
		_, err := ftp.CreateDest(dir, remote, ftp.DestOptions{})
		wantLocalError(t, err, "control characters")
	}
	// Not control characters: UTF-8 and spaces are fine.
	d, err := ftp.CreateDest(filepath.Join(dir, "résumé 2024.txt"), "x", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Abort()
	wantOnly(t, dir)
}

// TestCreateDestLongName: a name as long as the file system allows still
// gets a temporary file beside it.
func TestCreateDestLongName(t *testing.T) {
	dir := t.TempDir()
	name := strings.Repeat("é", 127) // 254 bytes
	d, err := ftp.CreateDest(filepath.Join(dir, name), "x", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(d, "long")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	wantOnly(t, dir, name)
}

func TestDestResume(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "part")
	os.WriteFile(p, []byte("12345"), 0o644)
	d, err := ftp.CreateDest(p, "x", ftp.DestOptions{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Offset() != 5 {
		t.Errorf("Offset() = %d, want 5", d.Offset())
	}
	io.WriteString(d, "67")
	d.Abort() // a resumed file keeps what arrived
	if b, _ := os.ReadFile(p); string(b) != "1234567" {
		t.Errorf("after Abort: %q", b)
	}
	wantOnly(t, dir, "part")
}

// mountTmpfs mounts a tmpfs with the given options on a fresh directory,
// unmounted when the test ends. It needs root; the test is skipped, with
// the reason, otherwise.
func mountTmpfs(t *testing.T, flags uintptr, data string) string {
	t.Helper()
	testkit.NeedRoot(t, "mounts a tmpfs")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, data); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// TestCreateDestReadOnly: a read-only place is refused before anything
// goes over the network, and an existing file there is left alone. As
// root, permission bits stop nothing, so a read-only tmpfs stands in.
func TestCreateDestReadOnly(t *testing.T) {
	var dir string
	if os.Geteuid() == 0 {
		dir = mountTmpfs(t, 0, "size=1m")
		os.WriteFile(filepath.Join(dir, "old"), []byte("old"), 0o644)
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Skipf("cannot remount read-only: %v", err)
		}
	} else {
		dir = t.TempDir()
		os.WriteFile(filepath.Join(dir, "old"), []byte("old"), 0o644)
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	for _, name := range []string{"new", "old"} {
		_, err := ftp.CreateDest(filepath.Join(dir, name), "x", ftp.DestOptions{})
		wantLocalError(t, err, "cannot create a file in "+dir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "old")); string(b) != "old" {
		t.Errorf("old file holds %q", b)
	}
	wantOnly(t, dir, "old")
}

// TestDownloadDiskFull downloads 4 MiB into a 1 MiB tmpfs that already holds
// a file of the same name: the error names the destination and wraps
// ErrLocalFile, no temporary file is left, the old file is intact, and the
// session goes on.
func TestDownloadDiskFull(t *testing.T) {
	stacktest.CheckGoroutines(t)
	dir := mountTmpfs(t, 0, "size=1m")
	p := stacktest.Pair(t, stack.PairConfig{})
	n := netCase{name: "wire", client: p.Client, server: p.Server, listen: "192.0.2.2:21"}
	root := t.TempDir()
	big := randomData(4<<20, 5)
	os.WriteFile(filepath.Join(root, "big"), big, 0o644)
	addr := serve(t, n, root, nil)
	c := login(t, n.client, addr, ftp.ClientConfig{})

	dest := filepath.Join(dir, "big")
	old := bytes.Repeat([]byte("old "), 16<<10/4)
	if err := os.WriteFile(dest, old, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := ftp.CreateDest(dest, "big", ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Retrieve(context.Background(), "big", 0, d)
	d.Abort()
	wantLocalError(t, err, "writing "+dest+": no space left on device")
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, old) {
		t.Errorf("the old file changed: %d bytes", len(got))
	}
	wantOnly(t, dir, "big")
	// The failed transfer was aborted in step: the session goes on.
	if err := c.Noop(context.Background()); err != nil {
		t.Errorf("NOOP after the failed download: %v", err)
	}
}

// TestUploadLocalReadError: a local file that fails half-way through an
// upload is reported as a local error, and the server does not keep a
// truncated file (the data connection is reset, not closed).
func TestUploadLocalReadError(t *testing.T) {
	stacktest.CheckGoroutines(t)
	for _, n := range netCases(t, false) {
		t.Run(n.name, func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			root := t.TempDir()
			addr := serve(t, n, root, nil)
			c := login(t, n.client, addr, ftp.ClientConfig{})
			r := io.MultiReader(bytes.NewReader(randomData(1<<20, 3)), errReader{syscall.EIO})
			_, err := c.Store(context.Background(), "up", r)
			wantLocalError(t, err, "input/output error")
			if _, serr := os.Stat(filepath.Join(root, "up")); serr == nil {
				t.Errorf("the server kept the broken upload")
			}
			if err := c.Noop(context.Background()); err != nil {
				t.Errorf("NOOP after the failed upload: %v", err)
			}
			wantOnly(t, root)
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
