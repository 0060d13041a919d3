package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
)

// testCerts writes a CA and a server certificate it signed (for the given
// IP addresses) as PEM files, and returns their paths.
func testCerts(t *testing.T, ips ...string) (caFile, certFile, keyFile string) {
	t.Helper()
	return testkit.NewCA(t).ServerFiles(t, ips...)
}

// startServe runs `nsftp serve` in-process with args until the test ends,
// on a loopback port it chooses itself, and returns the port, read from
// the line serve prints when it listens. (Choosing a free port first and
// handing it to serve leaves a moment in which another test may be given
// that port: the kernel hands a port out again as soon as it is free.)
func startServe(t *testing.T, dir string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errOut syncBuffer
	go func() {
		done <- Run(ctx, append([]string{"serve", dir, "--net", "os", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, errOut.String())
		}
	})
	serving := regexp.MustCompile(`nsftp: serving .* on 127\.0\.0\.1:(\d+) `)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m := serving.FindStringSubmatch(errOut.String()); m != nil {
			port, _ := strconv.Atoi(m[1])
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFTPSCommands runs nsftp serve with TLS required and nsftp get, put
// and ls with --ssl-reqd against it; an untrusted certificate and a
// server without TLS end with exit code 10.
func TestFTPSCommands(t *testing.T) {
	stacktest.CheckGoroutines(t)
	caFile, certFile, keyFile := testCerts(t, "127.0.0.1")
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.txt"), []byte("over TLS\n"), 0o644)
	port := startServe(t, root, "--write", "--tls-cert", certFile, "--tls-key", keyFile, "--tls-required")
	url := "ftp://127.0.0.1:" + strconv.Itoa(port) + "/"
	local := t.TempDir()

	for _, mode := range []string{"--passive", "--active"} {
		dest := filepath.Join(local, "f"+mode)
		out, errOut, err := runIn(t, "", "get", url+"f.txt", dest, "--net", "os", "--ssl-reqd", "--cacert", caFile, mode, "-v")
		if err != nil {
			t.Fatalf("get %s: %v\n%s", mode, err, errOut)
		}
		if b, _ := os.ReadFile(dest); string(b) != "over TLS\n" {
			t.Errorf("get %s wrote %q", mode, b)
		}
		if !strings.Contains(errOut, "-> AUTH TLS") || !strings.Contains(errOut, "-> PROT P") || !strings.Contains(out+errOut, "session resumed") {
			t.Errorf("get %s -v does not show AUTH TLS, PROT P and a resumed data session:\n%s", mode, errOut)
		}
	}
	up := filepath.Join(local, "up.txt")
	os.WriteFile(up, []byte("uploaded over TLS\n"), 0o644)
	if _, errOut, err := runIn(t, "", "put", up, url, "--net", "os", "--ssl-reqd", "--cacert", caFile); err != nil {
		t.Fatalf("put: %v\n%s", err, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "up.txt")); string(b) != "uploaded over TLS\n" {
		t.Errorf("put stored %q", b)
	}
	if out, errOut, err := runIn(t, "", "ls", url, "--net", "os", "--ssl-reqd", "--cacert", caFile); err != nil || !strings.Contains(out, "f.txt") {
		t.Errorf("ls: %v\n%s%s", err, out, errOut)
	}

	// Not trusted: the system's roots do not know the test CA.
	_, errOut, err := runIn(t, "", "get", url+"f.txt", filepath.Join(local, "x"), "--net", "os", "--ssl-reqd")
	if ExitCode(err) != ExitTLS || !strings.Contains(ErrorLine(err), "certificate") {
		t.Errorf("untrusted certificate: exit %d, %v\n%s", ExitCode(err), err, errOut)
	}
	// --insecure skips the check, with a warning.
	_, errOut, err = runIn(t, "", "get", url+"f.txt", filepath.Join(local, "y"), "--net", "os", "--ssl-reqd", "--insecure")
	if err != nil || !strings.Contains(errOut, "warning: --insecure") {
		t.Errorf("--insecure: %v\n%s", err, errOut)
	}

	// A server without TLS: --ssl-reqd stops before USER; --ssl goes on.
	plain := startServe(t, root)
	plainURL := "ftp://127.0.0.1:" + strconv.Itoa(plain) + "/f.txt"
	_, errOut, err = runIn(t, "", "get", plainURL, filepath.Join(local, "z"), "--net", "os", "--ssl-reqd", "-v")
	if ExitCode(err) != ExitTLS || strings.Contains(errOut, "-> USER") || strings.Contains(errOut, "-> PASS") {
		t.Errorf("--ssl-reqd against a plain server: exit %d, %v\n%s", ExitCode(err), err, errOut)
	}
	if _, errOut, err := runIn(t, "", "get", plainURL, filepath.Join(local, "w"), "--net", "os", "--ssl"); err != nil {
		t.Errorf("--ssl against a plain server: %v\n%s", err, errOut)
	}
	if entries, _ := os.ReadDir(local); len(entries) != 5 {
		t.Errorf("local files: %v", entries)
	}
}

// TestFTPSImplicit: nsftp serve --tls-implicit and an ftps:// URL.
func TestFTPSImplicit(t *testing.T) {
	stacktest.CheckGoroutines(t)
	caFile, certFile, keyFile := testCerts(t, "127.0.0.1")
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.txt"), []byte("implicit\n"), 0o644)
	port := startServe(t, root, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-implicit")
	dest := filepath.Join(t.TempDir(), "f")
	if _, errOut, err := runIn(t, "", "get", "ftps://127.0.0.1:"+strconv.Itoa(port)+"/f.txt", dest, "--net", "os", "--cacert", caFile); err != nil {
		t.Fatalf("get ftps://: %v\n%s", err, errOut)
	}
	if b, _ := os.ReadFile(dest); string(b) != "implicit\n" {
		t.Errorf("got %q", b)
	}
}

// TestFTPSVsftpdOverTAP runs nsftp's own stack on a TAP device against
// vsftpd with TLS forced for logins and data and require_ssl_reuse, in a
// network namespace: passive and active, each data connection resuming
// the control connection's session. Then --ssl-reqd against a vsftpd
// without TLS: no PASS crosses the wire (checked in the capture).
func TestFTPSVsftpdOverTAP(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	stacktest.CheckGoroutines(t)
	caFile, certFile, keyFile := testCerts(t, kernelIP)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP,
		"ssl_enable=YES", "allow_anon_ssl=YES", "force_anon_logins_ssl=YES", "force_anon_data_ssl=YES",
		"require_ssl_reuse=YES", "ssl_ciphers=HIGH", "ssl_tlsv1=NO", "ssl_sslv2=NO", "ssl_sslv3=NO",
		"rsa_cert_file="+certFile, "rsa_private_key_file="+keyFile)
	sum := writeRandomFile(t, filepath.Join(srv.root, "big.bin"), 8<<20, 3)
	for _, mode := range []string{"--passive", "--active"} {
		dest := filepath.Join(t.TempDir(), "big.bin")
		_, errOut, code := ns.nsftp(t, "get", "ftp://"+kernelIP+"/big.bin", dest, mode, "--ssl-reqd", "--cacert", caFile, "-v")
		if code != 0 {
			t.Fatalf("get %s: exit %d\n%s", mode, code, errOut)
		}
		if got := fileSHA(t, dest); got != sum {
			t.Fatalf("get %s: sha256 differs", mode)
		}
		if !strings.Contains(errOut, "session resumed") {
			t.Errorf("get %s: the data connection did not resume the TLS session:\n%s", mode, errOut)
		}
		name := "up" + mode + ".bin"
		if _, errOut, code := ns.nsftp(t, "put", dest, "ftp://"+kernelIP+"/incoming/"+name, mode, "--ssl-reqd", "--cacert", caFile, "-v"); code != 0 {
			t.Fatalf("put %s: exit %d\n%s", mode, code, errOut)
		}
		if got := fileSHA(t, filepath.Join(srv.incoming, name)); got != sum {
			t.Fatalf("put %s: vsftpd stored a different file", mode)
		}
	}
}

// TestFTPSRequiredNoPassOnWire: --ssl-reqd against vsftpd without TLS, on
// nsftp's own stack over a TAP: the capture shows AUTH TLS refused, and no
// USER or PASS.
func TestFTPSRequiredNoPassOnWire(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	ns.startVsftpd(kernelIP)
	pcap := filepath.Join(t.TempDir(), "run.pcap")
	_, errOut, code := ns.nsftp(t, "get", "ftp://user:hunter2@"+kernelIP+"/x", filepath.Join(t.TempDir(), "x"), "--ssl-reqd", "--pcap", pcap)
	if code != ExitTLS {
		t.Fatalf("exit %d, want %d\n%s", code, ExitTLS, errOut)
	}
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "AUTH TLS") {
		t.Fatal("the capture has no AUTH TLS: it did not record the control connection")
	}
	// vsftpd's answer to AUTH mentions USER and PASS; what must not be on
	// the wire is the client sending them.
	for _, s := range []string{"USER user", "PASS ", "hunter2"} {
		if strings.Contains(string(b), s) {
			t.Errorf("%q crossed the wire", s)
		}
	}
}
