package ftp_test

// Tests against FTP peers that nobody here wrote: our client against
// vsftpd, our server against curl and lftp. They run on kernel loopback,
// start the peers themselves and skip with the reason when a peer is not
// installed (CI installs them: see .ci/run).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
)

func needPeer(t *testing.T, name string) string {
	t.Helper()
	return testkit.NeedPeer(t, name)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startVsftpd runs vsftpd on 127.0.0.1 with testdata/vsftpd.conf over a
// fresh tree, and returns its address and the tree's root.
func startVsftpd(t *testing.T) (addr, root string) {
	t.Helper()
	bin := needPeer(t, "vsftpd")
	testkit.NeedRoot(t, "vsftpd chroots anonymous sessions")
	ftpUser, err := user.Lookup("ftp")
	if err != nil {
		t.Skip("vsftpd needs the 'ftp' user, which its Debian package creates")
	}
	uid, _ := strconv.Atoi(ftpUser.Uid)
	gid, _ := strconv.Atoi(ftpUser.Gid)

	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "incoming"), 0o755)
	os.Chmod(root, 0o755)
	os.Chown(filepath.Join(root, "incoming"), uid, gid)
	os.Chmod(dir, 0o755)

	tmpl, err := os.ReadFile("../testdata/vsftpd.conf")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := strings.NewReplacer(
		"{{ADDRESS}}", "127.0.0.1", "{{PORT}}", strconv.Itoa(port),
		"{{ROOT}}", root, "{{LOG}}", filepath.Join(dir, "vsftpd.log"),
	).Replace(string(tmpl))
	confPath := filepath.Join(dir, "vsftpd.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)

	cmd := exec.Command(bin, confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vsftpd did not start: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, root
}

func TestClientAgainstVsftpd(t *testing.T) {
	addr, root := startVsftpd(t)
	sizes := []int{0, 1, 10 << 20}
	for i, size := range sizes {
		os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", size)), randomData(size, uint64(i)), 0o644)
	}
	for _, active := range []bool{false, true} {
		mode := map[bool]string{false: "passive", true: "active"}[active]
		t.Run(mode, func(t *testing.T) {
			stacktest.CheckGoroutines(t)
			ctx := context.Background()
			c := login(t, &ftp.OSNetwork{}, addr, ftp.ClientConfig{Active: active})
			for i, size := range sizes {
				var got bytes.Buffer
				if _, err := c.Retrieve(ctx, fmt.Sprintf("f%d", size), 0, &got); err != nil {
					t.Fatalf("RETR %d bytes: %v", size, err)
				}
				if sha256.Sum256(got.Bytes()) != sha256.Sum256(randomData(size, uint64(i))) {
					t.Fatalf("RETR %d bytes: content differs", size)
				}
				up := randomData(size, uint64(50+i))
				name := fmt.Sprintf("incoming/%s-%d", mode, size)
				if _, err := c.Store(ctx, name, bytes.NewReader(up)); err != nil {
					t.Fatalf("STOR %d bytes: %v", size, err)
				}
				onDisk, err := os.ReadFile(filepath.Join(root, name))
				if err != nil || !bytes.Equal(onDisk, up) {
					t.Fatalf("STOR %d bytes: stored file differs (%v)", size, err)
				}
			}
			var listing bytes.Buffer
			if err := c.List(ctx, "", &listing); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(listing.String(), "f10485760") {
				t.Errorf("LIST lacks f10485760:\n%s", listing.String())
			}
			if err := c.Quit(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// serveForPeers runs our server on loopback over the OS network.
func serveForPeers(t *testing.T) (addr, root string) {
	t.Helper()
	root = t.TempDir()
	n := netCase{name: "loopback", client: &ftp.OSNetwork{}, server: &ftp.OSNetwork{}, listen: "127.0.0.1:0"}
	return serve(t, n, root, nil), root
}

func TestServerWithCurl(t *testing.T) {
	curl := needPeer(t, "curl")
	stacktest.CheckGoroutines(t)
	addr, root := serveForPeers(t)
	data := randomData(3<<20, 77)
	os.WriteFile(filepath.Join(root, "file.bin"), data, 0o644)
	local := t.TempDir()
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"passive", nil},
		{"active", []string{"--ftp-port", "127.0.0.1"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(local, "got-"+mode.name)
			args := append([]string{"-sS", "--max-time", "60", "-o", out, "ftp://" + addr + "/file.bin"}, mode.args...)
			if b, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
				t.Fatalf("curl download: %v\n%s", err, b)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
				t.Fatalf("curl downloaded %d bytes that differ", len(got))
			}
			args = append([]string{"-sS", "--max-time", "60", "-T", out, "ftp://" + addr + "/up-" + mode.name}, mode.args...)
			if b, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
				t.Fatalf("curl upload: %v\n%s", err, b)
			}
			if got, _ := os.ReadFile(filepath.Join(root, "up-"+mode.name)); !bytes.Equal(got, data) {
				t.Fatalf("curl uploaded %d bytes that differ", len(got))
			}
			b, err := exec.Command(curl, append([]string{"-sS", "--max-time", "60", "ftp://" + addr + "/"}, mode.args...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(b), "file.bin") {
				t.Fatalf("curl listing: %v\n%s", err, b)
			}
		})
	}
}

func TestServerWithLftp(t *testing.T) {
	lftp := needPeer(t, "lftp")
	stacktest.CheckGoroutines(t)
	addr, root := serveForPeers(t)
	data := randomData(3<<20, 78)
	os.WriteFile(filepath.Join(root, "file.bin"), data, 0o644)
	local := t.TempDir()
	src := filepath.Join(local, "src.bin")
	os.WriteFile(src, data, 0o644)
	host, port, _ := net.SplitHostPort(addr)
	for _, mode := range []struct{ name, passive string }{{"passive", "on"}, {"active", "off"}} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(local, "got-"+mode.name)
			script := fmt.Sprintf("set ftp:passive-mode %s; set net:max-retries 1; set net:timeout 20; set xfer:clobber on; "+
				"get file.bin -o %s; put %s -o up-%s; cls -1; bye", mode.passive, out, src, mode.name)
			cmd := exec.Command(lftp, "-u", "anonymous,nsftp@", "-p", port, "-e", script, host)
			cmd.Env = append(os.Environ(), "HOME="+local)
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("lftp: %v\n%s", err, b)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
				t.Fatalf("lftp downloaded %d bytes that differ", len(got))
			}
			if got, _ := os.ReadFile(filepath.Join(root, "up-"+mode.name)); !bytes.Equal(got, data) {
				t.Fatalf("lftp uploaded %d bytes that differ", len(got))
			}
			if !strings.Contains(string(b), "file.bin") {
				t.Errorf("lftp listing lacks file.bin:\n%s", b)
			}
		})
	}
}
