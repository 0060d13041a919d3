package cli

// nsftp serve against clients nobody here wrote, for the FTP details they
// rely on: Python's ftplib over TLS (which does not resume the control
// connection's TLS session on data connections), and lftp's mirror -R
// (which keeps files' times with MFMT).

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/stack/stacktest"
)

// ftplibTLS downloads a file with Python's ftplib.FTP_TLS and prints the
// server's final reply to the transfer, however the data connection ended
// (ftplib reads it in retrbinary; when the connection was cut, the script
// reads it itself).
const ftplibTLS = `
import ftplib, ssl, sys
ca, port = sys.argv[1], int(sys.argv[2])
f = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=ca), timeout=20)
f.connect("127.0.0.1", port)
f.login()
f.prot_p()
try:
    f.retrbinary("RETR f.txt", lambda b: None)
    print("retrbinary: transfer complete")
except ftplib.Error as e:
    print("retrbinary:", e)
except OSError as e:
    print("data connection:", type(e).__name__, e)
    try:
        print("final reply:", f.voidresp())
    except ftplib.Error as e:
        print("final reply:", e)
`

// TestFTPSPythonFtplibTold: Python's ftplib.FTP_TLS against serve
// --tls-required, which demands that data connections resume the control
// connection's TLS session, as vsftpd's require_ssl_reuse does. ftplib does
// not; it must be told so as vsftpd tells it: 522 SSL connection failed:
// session reuse required.
func TestFTPSPythonFtplibTold(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipping: needs python3 (CI installs it)")
	}
	stacktest.CheckGoroutines(t)
	caFile, certFile, keyFile := testCerts(t, "127.0.0.1")
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.txt"), []byte("over TLS\n"), 0o644)
	port := startServe(t, root, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-required")
	out, err := exec.Command(python, "-c", ftplibTLS, caFile, strconv.Itoa(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	t.Logf("ftplib:\n%s", out)
	if !strings.Contains(string(out), "522 SSL connection failed: session reuse required") {
		t.Errorf("ftplib was not told 522 SSL connection failed: session reuse required:\n%s", out)
	}
}

// TestLftpMirrorKeepsTimes: lftp mirror -R uploads a tree to nsftp serve
// and keeps each file's modification time (it sets it with MFMT after the
// upload) and permissions (SITE CHMOD), and ends without an error; a
// second mirror -R then finds nothing to send.
func TestLftpMirrorKeepsTimes(t *testing.T) {
	lftp, err := exec.LookPath("lftp")
	if err != nil {
		t.Skip("skipping: needs lftp (CI installs it)")
	}
	stacktest.CheckGoroutines(t)
	local, root := t.TempDir(), t.TempDir()
	times := map[string]time.Time{
		"a.txt":     time.Date(2019, 4, 5, 6, 7, 8, 0, time.UTC),
		"sub/b.bin": time.Date(2021, 12, 31, 23, 59, 58, 0, time.UTC),
	}
	for name, mt := range times {
		p := filepath.Join(local, "tree", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("contents of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	os.Chmod(filepath.Join(local, "tree", "a.txt"), 0o600)
	port := startServe(t, root, "--write")
	mirror := func() string {
		t.Helper()
		script := "set net:max-retries 1; set net:timeout 20; mirror -R --verbose=1 " + filepath.Join(local, "tree") + " tree; bye"
		cmd := exec.Command(lftp, "-u", "anonymous,nsftp@", "-p", strconv.Itoa(port), "-e", script, "127.0.0.1")
		cmd.Env = append(os.Environ(), "HOME="+local)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lftp mirror -R: %v\n%s", err, out)
		}
		return string(out)
	}
	out := mirror()
	for name, mt := range times {
		fi, err := os.Stat(filepath.Join(root, "tree", name))
		if err != nil {
			t.Errorf("%s was not uploaded: %v\n%s", name, err, out)
			continue
		}
		if !fi.ModTime().Equal(mt) {
			t.Errorf("%s on the server has the time %v, the local file %v", name, fi.ModTime().UTC(), mt)
		}
	}
	// And the permissions, with SITE CHMOD.
	if fi, err := os.Stat(filepath.Join(root, "tree", "a.txt")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("a.txt on the server has mode %v, the local file 0600", fi.Mode().Perm())
	}
	if again := mirror(); strings.Contains(again, "Transferring file") {
		t.Errorf("a second mirror -R sent files again: the times did not match:\n%s", again)
	}
}
