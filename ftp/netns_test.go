package ftp

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/internal/testkit"
)

// Network namespaces for tests that need real, distinct addresses on a real
// link: a test creates its namespaces and removes them itself, and nothing
// is ever created in the namespace the tests run in. Sockets are opened in
// a namespace by a thread that has joined it; a socket keeps its namespace
// for life, so the rest of the test uses it from any goroutine.

// netnsPair is two network namespaces joined by a veth pair: the server's,
// with serverAddr, and the clients', with every address of clientAddrs.
type netnsPair struct {
	server, client string // paths to the namespaces, for setns
	serverAddr     string
	clientAddrs    []string
}

// newNetnsPair builds the namespaces, or skips the test if it cannot (not
// root, no ip command). They are removed when the test ends.
func newNetnsPair(t *testing.T, serverAddr string, clientAddrs ...string) *netnsPair {
	t.Helper()
	testkit.NeedRoot(t, "creates network namespaces")
	testkit.NeedPeer(t, "ip")
	tag := strings.ToLower(rand.Text()[:8])
	srv, cli := "nsftp-s-"+tag, "nsftp-c-"+tag
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srv, cli} {
		ip("netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("removing namespace %s: %v\n%s", ns, err, out)
			}
		})
		ip("-n", ns, "link", "set", "lo", "up")
	}
	// Both ends are made inside the namespaces, never in ours.
	ip("-n", srv, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cli)
	ip("-n", srv, "addr", "add", serverAddr+"/24", "dev", "vs")
	ip("-n", srv, "link", "set", "vs", "up")
	for _, a := range clientAddrs {
		ip("-n", cli, "addr", "add", a+"/24", "dev", "vc")
	}
	ip("-n", cli, "link", "set", "vc", "up")
	return &netnsPair{
		server: filepath.Join("/run/netns", srv), client: filepath.Join("/run/netns", cli),
		serverAddr: serverAddr, clientAddrs: clientAddrs,
	}
}

// inNetns runs f on a thread that has joined the network namespace at path.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: a thread whose namespace was changed must end
		// with this goroutine rather than go back to run others.
		runtime.LockOSThread()
		ns, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// netnsNetwork is a Network whose sockets live in one namespace, dialling
// from a chosen local address if one is set.
type netnsNetwork struct {
	path  string
	local string // "" for the kernel's choice
}

var _ Network = (*netnsNetwork)(nil)

// DialContext implements Network.
func (n *netnsNetwork) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	var d net.Dialer
	if n.local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(n.local)}
	}
	var c net.Conn
	err := inNetns(n.path, func() (err error) {
		c, err = d.DialContext(ctx, "tcp", address)
		return err
	})
	return c, err
}

// Listen implements Network.
func (n *netnsNetwork) Listen(ctx context.Context, _, address string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(n.path, func() (err error) {
		var lc net.ListenConfig
		l, err = lc.Listen(ctx, "tcp", address)
		return err
	})
	return l, err
}
