package ftp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// This file is the scripted server the hostile-server tests drive the real
// client against: a server that says exactly what each test case tells it
// to, byte for byte, garbage included.

// hostileNet is a network for the scripted server's tests: the client's
// and the server's sockets, and a third address for whoever attacks them.
type hostileNet struct {
	name           string
	client, server ftp.Network
	serverIP       netip.Addr
	third          ftp.Network // dials from, and listens on, thirdIP
	thirdIP        netip.Addr
}

// hostileNets returns nsftp's virtual wire with three hosts on it
// (192.0.2.1 the client, .2 the server, .3 a third party) and the kernel's
// loopback (127.0.0.1, with 127.0.0.2 as the third party).
func hostileNets(t *testing.T) []hostileNet {
	t.Helper()
	hosts := threeHosts(t, stack.WireConfig{}, stack.HostConfig{})
	wire := hostileNet{
		name: "wire", client: hosts[0], server: hosts[1], third: hosts[2],
		serverIP: netip.MustParseAddr("192.0.2.2"), thirdIP: netip.MustParseAddr("192.0.2.3"),
	}
	loop := hostileNet{
		name: "loopback", client: &ftp.OSNetwork{}, server: &ftp.OSNetwork{},
		third:    &ftp.OSNetwork{Dialer: net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}},
		serverIP: netip.MustParseAddr("127.0.0.1"), thirdIP: netip.MustParseAddr("127.0.0.2"),
	}
	return []hostileNet{wire, loop}
}

// threeHosts builds a virtual wire with hosts 192.0.2.1, .2 and .3 on it,
// named client, server and third, each configured like base; they are
// closed when the test ends.
func threeHosts(t testing.TB, wcfg stack.WireConfig, base stack.HostConfig) []*stack.Host {
	t.Helper()
	w, err := stack.NewWire(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*stack.Host
	t.Cleanup(func() {
		for _, h := range hosts {
			h.Close()
		}
		w.Close()
	})
	for i, name := range []string{"client", "server", "third"} {
		port, err := w.NewPort()
		if err != nil {
			t.Fatal(err)
		}
		cfg := base
		cfg.Name, cfg.Link = name, port
		cfg.Addrs = []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i+1))}
		h, err := stack.NewHost(cfg)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// script is what a scripted server says. Every command has a default
// answer, that of a well-behaved server serving one file; on replaces it
// per verb.
type script struct {
	// greet sends the greeting; nil sends "220 Scripted server ready.".
	greet func(s *sess)
	// slow writes every reply one byte at a time.
	slow bool
	// on overrides the answer to a verb (upper case).
	on map[string]func(s *sess, arg string)
}

// scriptServer plays a script to each connection it accepts.
type scriptServer struct {
	t    *testing.T
	n    hostileNet
	sc   script
	file []byte // what RETR sends and SIZE counts
	ln   net.Listener
	addr string

	mu       sync.Mutex
	lines    []string // raw command lines received, CRLF included
	stored   []byte   // what the last STOR received
	sessions []*sess
	traps    []net.Listener
	trapHits int
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// startScript serves sc on n's server address until the test ends. Call it
// after stacktest.CheckGoroutines, so that it is stopped before the check.
func startScript(t *testing.T, n hostileNet, sc script, file []byte) *scriptServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := n.server.Listen(trace.WithLabel(ctx, "control"), "tcp", netip.AddrPortFrom(n.serverIP, 0).String())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := &scriptServer{t: t, n: n, sc: sc, file: file, ln: ln, addr: ln.Addr().String(), ctx: ctx, cancel: cancel}
	srv.wg.Go(srv.serve)
	t.Cleanup(srv.close)
	return srv
}

func (srv *scriptServer) serve() {
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			return
		}
		s := &sess{srv: srv, conn: c, r: bufio.NewReader(c)}
		srv.mu.Lock()
		srv.sessions = append(srv.sessions, s)
		srv.mu.Unlock()
		srv.wg.Go(s.run)
	}
}

// close stops the server and every session, and waits for them. It may
// be called more than once.
func (srv *scriptServer) close() {
	srv.cancel()
	srv.ln.Close()
	srv.mu.Lock()
	for _, s := range srv.sessions {
		s.closeAll()
	}
	for _, l := range srv.traps {
		l.Close()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
}

// trap counts the connections made to ln, which nobody should make.
func (srv *scriptServer) trap(ln net.Listener) {
	srv.mu.Lock()
	srv.traps = append(srv.traps, ln)
	srv.mu.Unlock()
	srv.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.mu.Lock()
			srv.trapHits++
			srv.mu.Unlock()
			c.Close()
		}
	})
}

func (srv *scriptServer) trapped() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.trapHits
}

// received returns the command lines received so far.
func (srv *scriptServer) received() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]string(nil), srv.lines...)
}

// sess is one control connection of a scripted server.
type sess struct {
	srv  *scriptServer
	conn net.Conn
	r    *bufio.Reader

	mu   sync.Mutex // guards pasv, data and closed, which close touches
	pasv net.Listener
	data net.Conn
	port netip.AddrPort // from PORT or EPRT
	done bool
}

func (s *sess) run() {
	defer s.closeAll()
	if s.srv.sc.greet != nil {
		s.srv.sc.greet(s)
	} else {
		s.send("220 Scripted server ready.\r\n")
	}
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		s.srv.mu.Lock()
		s.srv.lines = append(s.srv.lines, line)
		s.srv.mu.Unlock()
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		if h, ok := s.srv.sc.on[verb]; ok {
			h(s, arg)
		} else {
			defaultAnswer(s, verb, arg)
		}
		if s.closed() {
			return
		}
	}
}

// defaultAnswer is a well-behaved server's answer.
func defaultAnswer(s *sess, verb, arg string) {
	file := s.srv.file
	switch verb {
	case "USER":
		s.send("331 Password please.\r\n")
	case "PASS":
		s.send("230 Logged in.\r\n")
	case "TYPE":
		s.send("200 Type set to " + arg + ".\r\n")
	case "SIZE":
		s.send(fmt.Sprintf("213 %d\r\n", len(file)))
	case "EPSV":
		if p := s.listen(); p != 0 {
			s.send(fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)\r\n", p))
		}
	case "PASV":
		if p := s.listen(); p != 0 {
			s.send(pasvReply(s.srv.n.serverIP, p))
		}
	case "PORT":
		ap, err := ftp.ParsePORT(arg)
		if err != nil {
			s.send("501 Bad PORT.\r\n")
			return
		}
		s.port = ap
		s.send("200 PORT ok.\r\n")
	case "EPRT":
		ap, err := ftp.ParseEPRT(arg)
		if err != nil {
			s.send("501 Bad EPRT.\r\n")
			return
		}
		s.port = ap
		s.send("200 EPRT ok.\r\n")
	case "RETR":
		s.send(fmt.Sprintf("150 Opening BINARY mode data connection for %s (%d bytes).\r\n", arg, len(file)))
		s.sendData(file)
		s.send("226 Transfer complete.\r\n")
	case "STOR":
		s.send("150 Ok to send data.\r\n")
		s.receiveData()
		s.send("226 Transfer complete.\r\n")
	case "LIST", "NLST":
		s.send("150 Here comes the directory listing.\r\n")
		s.sendData([]byte("file.bin\r\n"))
		s.send("226 Directory send OK.\r\n")
	case "FEAT":
		s.send("211-Features:\r\n SIZE\r\n EPSV\r\n211 End\r\n")
	case "NOOP":
		s.send("200 NOOP ok.\r\n")
	case "ABOR":
		s.send("225 No transfer to abort.\r\n")
	case "QUIT":
		s.send("221 Goodbye.\r\n")
		s.hangup()
	default:
		s.send("502 Command not implemented.\r\n")
	}
}

func pasvReply(ip netip.Addr, port uint16) string {
	b := ip.As4()
	return fmt.Sprintf("227 Entering Passive Mode (%d,%d,%d,%d,%d,%d).\r\n", b[0], b[1], b[2], b[3], port>>8, port&0xff)
}

// send writes raw bytes on the control connection, one at a time if the
// script is slow. Errors are ignored: the client may have gone.
func (s *sess) send(raw string) {
	s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if !s.srv.sc.slow {
		io.WriteString(s.conn, raw)
		return
	}
	for i := 0; i < len(raw); i++ {
		if _, err := s.conn.Write([]byte{raw[i]}); err != nil {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// sendForever writes head and then line after line until the client stops
// reading, the server stops, or limit bytes have gone.
func (s *sess) sendForever(head, line string, limit int) {
	s.send(head)
	// Lines in 16 KiB writes, as a real server's buffered writer sends
	// them: a write a line is a segment a line, slow for no purpose.
	chunk := strings.Repeat(line, max(1, (16<<10)/len(line)))
	for sent := 0; sent < limit && s.srv.ctx.Err() == nil; sent += len(chunk) {
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(s.conn, chunk); err != nil {
			return
		}
	}
}

// listen opens the passive data listener on the server's address and
// returns its port, or 0 after telling the client it failed.
func (s *sess) listen() uint16 {
	ln, err := s.srv.n.server.Listen(trace.WithBacklog(trace.WithLabel(s.srv.ctx, "data"), 1), "tcp", netip.AddrPortFrom(s.srv.n.serverIP, 0).String())
	if err != nil {
		s.send("425 Cannot listen.\r\n")
		return 0
	}
	s.mu.Lock()
	if s.pasv != nil {
		s.pasv.Close()
	}
	s.pasv = ln
	s.mu.Unlock()
	ap, _ := netip.ParseAddrPort(ln.Addr().String())
	return ap.Port()
}

// openData makes the data connection: accepts the client's (passive) or
// connects to its PORT (active). It returns nil if that fails.
func (s *sess) openData() net.Conn {
	s.mu.Lock()
	ln := s.pasv
	s.pasv = nil
	s.mu.Unlock()
	var c net.Conn
	var err error
	if ln != nil {
		stop := context.AfterFunc(s.srv.ctx, func() { ln.Close() })
		if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
			dl.SetDeadline(time.Now().Add(5 * time.Second))
		}
		c, err = ln.Accept()
		stop()
		ln.Close()
	} else if s.port.IsValid() {
		ctx, cancel := context.WithTimeout(s.srv.ctx, 5*time.Second)
		c, err = s.srv.n.server.DialContext(trace.WithLabel(ctx, "data"), "tcp", s.port.String())
		cancel()
	} else {
		return nil
	}
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		c.Close()
		return nil
	}
	s.data = c
	return c
}

// sendData opens the data connection, writes b and closes it.
func (s *sess) sendData(b []byte) {
	c := s.openData()
	if c == nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(b)
	s.closeData()
}

// receiveData opens the data connection and reads it to the end into
// srv.stored.
func (s *sess) receiveData() {
	c := s.openData()
	if c == nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	s.srv.mu.Lock()
	s.srv.stored = b
	s.srv.mu.Unlock()
	s.closeData()
}

func (s *sess) closeData() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data != nil {
		s.data.Close()
		s.data = nil
	}
}

// hangup closes the control connection; the session ends.
func (s *sess) hangup() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.conn.Close()
}

func (s *sess) closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// closeAll closes everything the session has open.
func (s *sess) closeAll() {
	s.mu.Lock()
	s.done = true
	if s.pasv != nil {
		s.pasv.Close()
	}
	if s.data != nil {
		s.data.Close()
	}
	s.mu.Unlock()
	s.conn.Close()
}
