package tap_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsftp/nsftp/tap"
)

// helperEnv selects a helper role: the test binary re-executed inside a
// test namespace (see netns.startHelper) plays the kernel's side of a
// test, as a separate process like the user's own programs.
const helperEnv = "NSFTP_TAP_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		if err := runHelperRole(role); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	removeStaleNetNS()
	os.Exit(m.Run())
}

func runHelperRole(role string) error {
	switch role {
	case "serve":
		return helperServe(os.Getenv("ADDR"))
	case "client":
		return helperClient(os.Getenv("ADDR"), os.Getenv("OPS"))
	case "open":
		return helperOpen()
	}
	return fmt.Errorf("unknown role")
}

// helperServe serves the stream protocol on addr until killed, printing
// "ready" once it listens.
func helperServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go serveStream(c)
	}
}

// helperClient runs stream operations against addr, one connection each,
// and prints one line per operation: "put SHA", "get SHA NANOS", or for
// the unhashed variants "getx BYTES NANOS" and "putx BYTES NANOS".
func helperClient(addr, ops string) error {
	for _, op := range strings.Split(ops, ",") {
		verb, arg, _ := strings.Cut(op, ":")
		n, err := strconv.ParseInt(arg, 10, 64)
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		start := time.Now()
		switch verb {
		case "put":
			sum, err := putStream(c, n)
			if err != nil {
				return err
			}
			fmt.Println("put", sum)
		case "putx":
			if err := putDiscard(c, n); err != nil {
				return err
			}
			fmt.Println("putx", n, time.Since(start).Nanoseconds())
		case "get", "getx":
			sum, got, err := getStream(c, n, verb == "get")
			if err != nil {
				return err
			}
			if verb == "get" {
				fmt.Println("get", sum, time.Since(start).Nanoseconds())
			} else {
				fmt.Println("getx", got, time.Since(start).Nanoseconds())
			}
		default:
			return fmt.Errorf("unknown op %q", op)
		}
		c.Close()
	}
	return nil
}

// helperOpen opens a TAP device as told by its environment and prints "ok"
// or the error followed by the sentinels it matches. With HIDE_TUN set it
// first hides /dev/net/tun under a tmpfs, in a mount namespace of its own
// (the test starts it with CLONE_NEWNS, so the mount is private).
// With TUN_MODE set (0600, 0666) it puts a /dev/net/tun of that mode
// there instead. With AS_NOBODY set it drops to uid and gid 65534 first.
func helperOpen() error {
	mode := os.Getenv("TUN_MODE")
	if os.Getenv("HIDE_TUN") != "" || mode != "" {
		if err := syscall.Mount("none", "/dev/net", "tmpfs", 0, ""); err != nil {
			return fmt.Errorf("hiding /dev/net: %w", err)
		}
	}
	if mode != "" {
		// A /dev/net/tun of the mode the test asks for: some systems
		// ship it 0600, most 0666.
		perm, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			return err
		}
		if err := syscall.Mknod("/dev/net/tun", syscall.S_IFCHR|uint32(perm), 10<<8|200); err != nil {
			return fmt.Errorf("making /dev/net/tun: %w", err)
		}
		if err := os.Chmod("/dev/net/tun", os.FileMode(perm)); err != nil { // past the umask
			return err
		}
	}
	if os.Getenv("AS_NOBODY") != "" {
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setgid(65534); err != nil {
			return err
		}
		if err := syscall.Setuid(65534); err != nil {
			return err
		}
	}
	dev, err := tap.Open(tap.Config{Name: os.Getenv("DEV"), Offload: os.Getenv("OFFLOAD") != ""})
	if err != nil {
		fmt.Println(err)
		for _, s := range []struct {
			name string
			err  error
		}{{"ErrNoTun", tap.ErrNoTun}, {"ErrPermission", tap.ErrPermission}, {"ErrBusy", tap.ErrBusy}} {
			if errors.Is(err, s.err) {
				fmt.Println(s.name)
			}
		}
		return nil
	}
	fmt.Println("ok")
	return dev.Close()
}

// The stream protocol: a client sends "GET n\n" and reads n bytes of the
// test stream until EOF, or "PUT n\n" and n bytes of it, and reads back the
// SHA-256 of what the server received ("PUTX n\n": "done", for benchmarks).

func serveStream(c net.Conn) error {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	var verb string
	var n int64
	if _, err := fmt.Sscanf(line, "%s %d\n", &verb, &n); err != nil {
		return err
	}
	switch verb {
	case "GET":
		return writeStream(c, n)
	case "PUTX":
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(br, n), make([]byte, 256<<10)); err != nil {
			return err
		}
		_, err := io.WriteString(c, "done\n")
		return err
	case "PUT":
		h := sha256.New()
		if _, err := io.CopyN(h, br, n); err != nil {
			return err
		}
		_, err := fmt.Fprintf(c, "%x\n", h.Sum(nil))
		return err
	}
	return fmt.Errorf("unknown request %q", line)
}

// getStream asks for n bytes and reads to EOF; hashing is optional so that
// benchmarks measure the network, not SHA-256.
func getStream(c net.Conn, n int64, hashIt bool) (sum string, got int64, err error) {
	if _, err := fmt.Fprintf(c, "GET %d\n", n); err != nil {
		return "", 0, err
	}
	// Read straight into one large buffer: io.Discard would read through
	// a small buffer of its own.
	buf := make([]byte, 256<<10)
	var h hash.Hash
	if hashIt {
		h = sha256.New()
	}
	for {
		m, err := c.Read(buf)
		got += int64(m)
		if h != nil {
			h.Write(buf[:m])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", got, err
		}
	}
	if got != n {
		return "", got, fmt.Errorf("received %d bytes, want %d", got, n)
	}
	if h != nil {
		sum = hex.EncodeToString(h.Sum(nil))
	}
	return sum, got, nil
}

// putStream sends n bytes and returns the server's SHA-256 of them.
func putStream(c net.Conn, n int64) (string, error) {
	if _, err := fmt.Fprintf(c, "PUT %d\n", n); err != nil {
		return "", err
	}
	if err := writeStream(c, n); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// putDiscard sends n bytes for the server to discard unhashed, and waits
// until it has them all.
func putDiscard(c net.Conn, n int64) error {
	if _, err := fmt.Fprintf(c, "PUTX %d\n", n); err != nil {
		return err
	}
	if err := writeStream(c, n); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "done\n" {
		err = fmt.Errorf("server said %q", line)
	}
	return err
}

// The test stream: 1 MiB blocks of fixed pseudo-random bytes, each
// starting with its own index so that no two blocks are alike.
const blockSize = 1 << 20

var block = sync.OnceValue(func() []byte {
	b := make([]byte, blockSize)
	r := rand.New(rand.NewPCG(0x6e736674, 0x746170))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
})

func writeStream(w io.Writer, n int64) error {
	buf := make([]byte, blockSize)
	copy(buf, block())
	for i := int64(0); n > 0; i++ {
		binary.BigEndian.PutUint64(buf, uint64(i))
		m := min(n, blockSize)
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

// streamSHA is the SHA-256 of the first n bytes of the test stream.
func streamSHA(n int64) string {
	h := sha256.New()
	writeStream(h, n)
	return hex.EncodeToString(h.Sum(nil))
}
