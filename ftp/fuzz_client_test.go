package ftp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// Fuzz targets for the parsers of untrusted input that fuzz_test.go does
// not cover: the client's reading of SIZE, 150, 257 and FEAT replies, the
// server's path resolution, and both ends of a whole session fed arbitrary
// bytes. Seed corpora are in testdata/fuzz/<FuzzName>/.

func FuzzAnnouncedSize(f *testing.F) {
	f.Add("Opening BINARY mode data connection for a.txt (1234 bytes).", "a.txt", int64(1234))
	f.Add("Opening data connection for x (3 bytes) (99 bytes).", "x (3 bytes)", int64(99))
	f.Add("(99999999999999999999 bytes)", "(9223372036854775807 bytes)", int64(0))
	f.Fuzz(func(t *testing.T, text, name string, size int64) {
		n := announcedSize(&Reply{Code: 150, Lines: []string{text}})
		if n < -1 {
			t.Fatalf("announcedSize(%q) = %d", text, n)
		}
		if n >= 0 && !strings.Contains(text, strconv.FormatInt(n, 10)+" bytes)") {
			t.Fatalf("announcedSize(%q) = %d, which the text does not say", text, n)
		}
		// Whatever the name a server echoes, the size it puts after the
		// name is the one that counts.
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		line := FormatReply(150, fmt.Sprintf("Opening BINARY mode data connection for %s (%d bytes).", name, size))
		r, err := ReadReply(bufio.NewReader(bytes.NewReader(line)))
		if err != nil {
			return
		}
		if got := announcedSize(r); got != size {
			t.Fatalf("name %q, size %d: announcedSize = %d", name, size, got)
		}
	})
}

func FuzzParseSizeReply(f *testing.F) {
	for _, s := range []string{"1234", " 0 ", "+5", "-1", "99999999999999999999", "12 bytes", "", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSizeReply(&Reply{Code: 213, Lines: []string{s}})
		if err != nil {
			if !errors.Is(err, ErrProtocol) || n != -1 {
				t.Fatalf("parseSizeReply(%q) = %d, %v", s, n, err)
			}
			return
		}
		want, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if perr != nil || n != want || n < 0 || strings.ContainsAny(strings.TrimSpace(s), "+-") {
			t.Fatalf("parseSizeReply(%q) = %d", s, n)
		}
	})
}

func FuzzParseQuoted(f *testing.F) {
	for _, s := range []string{`"/" is the current directory`, `"/a""b" created`, `no quotes`, `"unterminated`, `""`, `x "y" "z"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := parseQuoted(&Reply{Code: 257, Lines: []string{s}})
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseQuoted(%q): %v", s, err)
			}
		} else if back, err := parseQuoted(&Reply{Code: 257, Lines: []string{quotePath(name) + " rest"}}); err != nil || back != name {
			t.Fatalf("parseQuoted(%q) = %q, which quotes and parses back as %q, %v", s, name, back, err)
		}
		// What the server sends, the client reads back.
		if hasCRLFNUL(s) {
			return
		}
		got, err := parseQuoted(&Reply{Code: 257, Lines: []string{quotePath(s) + " is the current directory"}})
		if err != nil || got != s {
			t.Fatalf("server's quotePath(%q) read back as %q, %v", s, got, err)
		}
	})
}

func FuzzParseFeatures(f *testing.F) {
	for _, s := range []string{
		"211-Features:\r\n EPSV\r\n MLST type*;size*;\r\n SIZE\r\n211 End\r\n",
		"211 No features\r\n",
		"211-x\r\n211 y\r\n",
		"211-x\r\n\r\n   \r\n211 End\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadReply(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		for name, params := range parseFeatures(r) {
			if name == "" || name != strings.ToUpper(name) || strings.ContainsAny(name, " \r\n") || hasCRLFNUL(params) {
				t.Fatalf("feature %q = %q from %q", name, params, data)
			}
		}
	})
}

// FuzzResolve: however a client spells a path, the server's resolution is
// inside the root: a clean virtual path starting with "/", and a relative
// name for os.Root with no "..", "." or empty element (fs.ValidPath's
// rules, less its demand for valid UTF-8: Unix names are bytes).
func FuzzResolve(f *testing.F) {
	for _, s := range [][2]string{
		{"/", "../../etc/passwd"}, {"/a/b", "..//../x"}, {"/", "/abs/../../y"},
		{"/", "%2e%2e/x"}, {"/sub", "."}, {"/", "a\x00b"}, {"/", `..\..\x`}, {"/x", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		s := &session{cwd: path.Clean("/" + cwd)}
		virtual, rel, ok := s.resolve(arg)
		if !ok {
			if !hasCRLFNUL(arg) {
				t.Fatalf("resolve(%q) refused a name without CR, LF or NUL", arg)
			}
			return
		}
		if hasCRLFNUL(arg) {
			t.Fatalf("resolve(%q) accepted it", arg)
		}
		if !strings.HasPrefix(virtual, "/") || path.Clean(virtual) != virtual {
			t.Fatalf("cwd %q, arg %q: virtual path %q", s.cwd, arg, virtual)
		}
		if !validRel(rel) || (rel != "." && "/"+rel != virtual) || (rel == "." && virtual != "/") {
			t.Fatalf("cwd %q, arg %q: name %q for os.Root (virtual %q)", s.cwd, arg, rel, virtual)
		}
	})
}

// validRel reports whether rel is "." or a relative slash-separated name
// whose every element is a name: not empty, ".", or "..".
func validRel(rel string) bool {
	if rel == "." {
		return true
	}
	for elem := range strings.SplitSeq(rel, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
	}
	return true
}

// fuzzNet is a Network for FuzzClientSession: every control dial reaches
// a fake server that sends ctrl and then ends its side, every data
// connection (passive dial or active listen) carries data and then ends,
// and everything the client sends is read and thrown away. Real loopback
// sockets carry it all, so the client sees ordinary TCP, half-closes
// included.
type fuzzNet struct {
	t          *testing.T
	ctrl, data []byte
	wg         sync.WaitGroup
	mu         sync.Mutex
	closers    []io.Closer
}

func (n *fuzzNet) track(c io.Closer) {
	n.mu.Lock()
	n.closers = append(n.closers, c)
	n.mu.Unlock()
}

// serve plays one fake peer on c: write out, end our side, read until the
// client closes.
func (n *fuzzNet) serve(c net.Conn, out []byte) {
	n.track(c)
	n.wg.Go(func() {
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(out)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
}

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(ctx context.Context) (client, server net.Conn, err error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	var d net.Dialer
	client, err = d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	server, err = l.Accept()
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, server, nil
}

// DialContext implements Network.
func (n *fuzzNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	label := trace.LabelOf(ctx)
	client, server, err := loopbackPair(ctx)
	if err != nil {
		return nil, err
	}
	n.track(client)
	out := n.data
	if label == "control" {
		out = n.ctrl
	}
	n.serve(server, out)
	return client, nil
}

// Listen implements Network: the fake server connects back at once.
func (n *fuzzNet) Listen(ctx context.Context, _, address string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n.track(l)
	n.wg.Go(func() {
		var d net.Dialer
		d.Timeout = 5 * time.Second
		c, err := d.Dial("tcp", l.Addr().String())
		if err == nil {
			n.serve(c, n.data)
		}
	})
	return l, nil
}

// close closes everything and waits for the fake peers.
func (n *fuzzNet) close() {
	n.mu.Lock()
	for _, c := range n.closers {
		c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// sizeCheckWriter records what Retrieve writes and the size it announces.
type sizeCheckWriter struct {
	bytes.Buffer
	want int64
}

func (w *sizeCheckWriter) ExpectSize(n int64) { w.want = n }

// FuzzClientSession feeds arbitrary server bytes to the real client: a
// control stream, a data stream and an operation. The client must not
// panic or hang, its errors must be one line, and a download must never
// write more than the size announced, nor anything but the bytes sent.
func FuzzClientSession(f *testing.F) {
	good := "220 hi\r\n331 pw\r\n230 ok\r\n200 type\r\n213 5\r\n229 (|||1234|)\r\n150 ok (5 bytes)\r\n226 done\r\n221 bye\r\n"
	f.Add([]byte(good), []byte("hello"), uint8(0))
	f.Add([]byte(good), []byte("hello, more than announced"), uint8(0))
	f.Add([]byte("220 hi\r\n331 pw\r\n230 ok\r\n200 type\r\n550 no\r\n227 (127,0,0,1,4,1)\r\n150 ok\r\n226 done\r\n"), []byte("abc"), uint8(16))
	f.Add([]byte("220 hi\r\n230 ok\r\n200 type\r\n213 6\r\n200 port\r\n150 ok\r\n226 done\r\n"), []byte("active"), uint8(8))
	f.Add([]byte("220 hi\r\n230 ok\r\n200 type\r\n229 (|||1|)\r\n150 go\r\n552 full\r\n"), []byte{}, uint8(1))
	f.Add([]byte("220 hi\r\n230 ok\r\n200 type\r\n229 (|||1|)\r\n150 here\r\n226 done\r\n"), []byte("type=file;size=3; a\r\ntype=dir; b\r\n"), uint8(3))
	f.Add([]byte("220 hi\r\n230 ok\r\n211 No features\r\n257 \"/a\"\"b\" is cwd\r\n213 7\r\n213 20240102030405\r\n"), []byte{}, uint8(4))
	f.Add([]byte("220-a\r\n123 b\r\n220 c\r\n230 ok\r\n200 t\r\n229 (|||1|)\r\n150 x\r\n226 y\r\n"), []byte("x\r\ny\r\n"), uint8(5))
	f.Fuzz(func(t *testing.T, ctrl, data []byte, op uint8) {
		n := &fuzzNet{t: t, ctrl: ctrl, data: data}
		defer n.close()
		cfg := ClientConfig{
			Network: n, Active: op&8 != 0, DisableEPSV: op&16 != 0,
			ConnectTimeout: time.Second, ReplyTimeout: time.Second,
			AcceptTimeout: time.Second, DataTimeout: time.Second,
		}
		w := &sizeCheckWriter{want: -1}
		done := make(chan error, 1)
		go func() { done <- fuzzSession(cfg, op&7, w) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("the client hung")
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Fatalf("error is not one line: %q", err)
		}
		if !bytes.HasPrefix(data, w.Bytes()) {
			t.Fatalf("wrote %q, which is not what the server sent (%q)", w.Bytes(), data)
		}
		if w.want >= 0 && int64(w.Len()) > w.want {
			t.Fatalf("wrote %d bytes, more than the %d announced", w.Len(), w.want)
		}
		if op&7 == 0 && err == nil && (w.Len() != len(data) || w.want >= 0 && int64(w.Len()) != w.want) {
			t.Fatalf("download succeeded with %d of %d bytes (announced %d)", w.Len(), len(data), w.want)
		}
	})
}

// fuzzSession logs in and runs one operation, as cmd/nsftp would: op 0
// (and 6, 7) downloads, 1 uploads, 2 lists, 3 reads MLSD, 4 asks FEAT,
// PWD, SIZE and MDTM, 5 reads NLST.
func fuzzSession(cfg ClientConfig, op uint8, w *sizeCheckWriter) error {
	ctx := context.Background()
	c, err := Dial(ctx, "127.0.0.1:21", cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, "user", "secret"); err != nil {
		return err
	}
	if op != 4 {
		if err := c.Type(ctx, "I"); err != nil {
			return err
		}
	}
	switch op {
	case 0, 6, 7:
		_, err = c.Retrieve(ctx, "f", 0, w)
	case 1:
		_, err = c.Store(ctx, "f", bytes.NewReader(bytes.Repeat([]byte("u"), 100<<10)))
	case 2:
		err = c.List(ctx, "", io.Discard)
	case 3:
		err = c.MLSD(ctx, "", func(Entry) error { return nil })
	case 4:
		var errs []error
		_, err = c.Features(ctx)
		errs = append(errs, err)
		_, err = c.CurrentDir(ctx)
		errs = append(errs, err)
		_, err = c.Size(ctx, "f")
		errs = append(errs, err)
		_, err = c.ModTime(ctx, "f")
		errs = append(errs, err)
		err = errors.Join(errs...)
		if err != nil {
			// Joined errors are one line each; keep the first.
			for _, e := range errs {
				if e != nil {
					return e
				}
			}
		}
	case 5:
		err = c.NameList(ctx, "", func(string) error { return nil })
	}
	if err == nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c.Quit(qctx)
	}
	return err
}

// FuzzServerSession feeds arbitrary client bytes to a real server session:
// it must not panic or hang, must end when the input does, and everything
// it sends must be well-formed replies.
func FuzzServerSession(f *testing.F) {
	for _, s := range []string{
		"USER anonymous\r\nPASS x\r\nPWD\r\nCWD sub\r\nSIZE f\r\nMDTM f\r\nQUIT\r\n",
		"USER alice\r\nPASS bad\r\nUSER alice\r\nPASS pw\r\nFEAT\r\nHELP\r\nSTAT\r\nSTAT /\r\nMLST f\r\n",
		"USER ftp\r\nPASS\r\nTYPE A N\r\nMODE S\r\nSTRU F\r\nOPTS UTF8 ON\r\nREST 5\r\nRETR f\r\nEPSV ALL\r\nPASV\r\n",
		"USER ftp\r\nPASS\r\nPORT 127,0,0,1,4,1\r\nEPRT |2|::1|5000|\r\nEPRT |3|x|1|\r\nLIST -la\r\nNLST\r\nMLSD\r\n",
		"\xff\xf4\xff\xf2ABOR\r\nABOR\rNOOP\r\nSITE x\r\n\r\nTOOLONGVERB\r\n",
		"USER ftp\r\nPASS\r\nRNFR f\r\nRNTO g\r\nDELE f\r\nMKD x\r\nRMD sub\r\nSTOR x\r\nAPPE x\r\n",
	} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("hello"), 0o644)
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.Symlink("..", filepath.Join(root, "up"))
	srv, err := NewServer(ServerConfig{
		Root: root, Anonymous: true, User: "alice", Password: "pw",
		Network: refusingNet{}, DataTimeout: 50 * time.Millisecond, FailDelay: time.Nanosecond,
		LoginTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, input []byte) {
		client, server, err := loopbackPair(context.Background())
		if err != nil {
			t.Skip(err)
		}
		defer client.Close()
		l := &oneConnListener{c: server, done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(context.Background(), l) }()
		var out []byte
		read := make(chan struct{})
		go func() {
			defer close(read)
			out, _ = io.ReadAll(client)
		}()
		client.SetWriteDeadline(time.Now().Add(10 * time.Second))
		client.Write(input)
		// End of input: the session ends at EOF, and Serve once it has.
		client.(*net.TCPConn).CloseWrite()
		select {
		case <-read:
		case <-time.After(20 * time.Second):
			t.Fatalf("the session did not end after the input did")
		}
		l.Close()
		<-served
		r := bufio.NewReader(bytes.NewReader(out))
		for {
			_, err := ReadReply(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the server sent a malformed reply: %v in %q", err, out)
			}
		}
	})
}

// oneConnListener hands out one connection, then waits until closed.
type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21} }

// refusingNet refuses every data connection at once.
type refusingNet struct{}

func (refusingNet) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("refused")
}

func (refusingNet) Listen(context.Context, string, string) (net.Listener, error) {
	return nil, errors.New("refused")
}
