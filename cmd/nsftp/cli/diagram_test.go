package cli

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"nsftp/ftp"
	"nsftp/stack"
	"nsftp/stack/stacktest"
)

var diagramOut = flag.String("diagram-out", "", "also write the diagrams the tests draw to `DIR`, to look at")

// diagramRun serves the demo tree (plus extra files) over a virtual wire
// with every event kept, as the demo does, and has the client log in
// anonymously and download name. It returns the records of the run.
func diagramRun(t *testing.T, extra map[string][]byte, name string, active bool) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The tracer a --diagram run sets up, wired to the hosts as commands
	// wire it.
	sf := &seeFlags{diagram: filepath.Join(t.TempDir(), "unused.svg")}
	sg, err := sf.start(&env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := sg.tr
	root := t.TempDir()
	if err := writeDemoTree(root); err != nil {
		t.Fatal(err)
	}
	for name, b := range extra {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	clientCfg := sg.hostConfig("client", true)
	serverCfg := sg.hostConfig("server", false) // the client's link shows every frame
	p := stacktest.Pair(t, stack.PairConfig{Client: clientCfg, Server: serverCfg})
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Anonymous: true, Network: p.Server})
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(stack.ServerAddr4.Addr(), 21).String()
	l, err := p.Server.Listen(ctx, "control", addr, 8)
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, l) }()

	err = diagramFetch(ctx, p.Client, addr, name, active, tr.ftpEvent)
	if cerr := tr.close(); err == nil {
		err = cerr
	}
	srv.Close()
	if serr := <-serveErr; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	if err != nil {
		t.Fatal(err)
	}
	return tr.records
}

// diagramFetch is the demo's dialogue: log in anonymously (the client's
// password is "nsftp@"), binary type, RETR, QUIT.
func diagramFetch(ctx context.Context, network ftp.Network, addr, name string, active bool, obs ftp.Observer) error {
	c, err := ftp.Dial(ctx, addr, ftp.ClientConfig{Network: network, Active: active, Observer: obs})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(ctx, "", ""); err != nil {
		return err
	}
	if err := c.Type(ctx, "I"); err != nil {
		return err
	}
	if _, err := c.Retrieve(ctx, name, 0, io.Discard); err != nil {
		return err
	}
	return c.Quit(ctx)
}

// checkDiagram draws recs and checks the result is an SVG document a
// browser will open: well-formed XML whose root is <svg> in the SVG
// namespace, with a viewBox.
func checkDiagram(t *testing.T, name string, recs []record, opt diagramOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := writeDiagram(&buf, recs, opt); err != nil {
		t.Fatal(err)
	}
	if *diagramOut != "" {
		if err := os.WriteFile(filepath.Join(*diagramOut, name+".svg"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	root := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: the SVG is not well-formed XML: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root {
			root = false
			if se.Name.Local != "svg" || se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("%s: root element is %v, want svg in the SVG namespace", name, se.Name)
			}
			hasViewBox := false
			for _, a := range se.Attr {
				hasViewBox = hasViewBox || a.Name.Local == "viewBox"
			}
			if !hasViewBox {
				t.Errorf("%s: <svg> has no viewBox", name)
			}
		}
	}
	if root {
		t.Fatalf("%s: no root element", name)
	}
	return buf.String()
}

func diagramEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func TestDiagramDemo(t *testing.T) {
	stacktest.CheckGoroutines(t)
	for _, active := range []bool{true, false} {
		name := map[bool]string{true: "active", false: "passive"}[active]
		t.Run(name, func(t *testing.T) {
			recs := diagramRun(t, nil, demoFile, active)
			svg := checkDiagram(t, "diagram-demo-"+name, recs, diagramOptions{Title: "nsftp demo: " + name + "-mode download of hello.txt"})

			var dialogue int
			for _, r := range recs {
				ev := r.FTP
				if ev == nil {
					continue
				}
				var want string
				switch ev.Kind {
				case ftp.EventCommand:
					want = ev.Text
				case ftp.EventReply:
					want = fmt.Sprintf("%d %s", ev.Code, ev.Text)
				default:
					continue
				}
				dialogue++
				if !strings.Contains(svg, diagramEscape(want)) {
					t.Errorf("diagram lacks %q", want)
				}
			}
			if dialogue < 10 {
				t.Errorf("only %d FTP commands and replies recorded", dialogue)
			}
			for _, want := range []string{
				"SYN", "SYN|ACK", "FIN|ACK", "PASS ****", "RETR hello.txt", "226 Transfer complete.",
				"connect(192.0.2.2:21)", diagramEscape("sock->ops->connect"), "listen()", "accept() = fd",
				"192.0.2.1", "192.0.2.2", "data connection open (" + name + ")", "ESTABLISHED",
				"ARP who-has 192.0.2.2",
			} {
				if !strings.Contains(svg, want) {
					t.Errorf("diagram lacks %q", want)
				}
			}
			if active && !strings.Contains(svg, "PORT 192,0,2,1,") {
				t.Errorf("active diagram lacks PORT")
			}
			if !active && !strings.Contains(svg, "EPSV") {
				t.Errorf("passive diagram lacks EPSV")
			}
			// The demo logs in anonymously with this password.
			if strings.Contains(svg, "nsftp@") {
				t.Errorf("diagram shows the password")
			}
		})
	}
}

func TestDiagramBigTransfer(t *testing.T) {
	stacktest.CheckGoroutines(t)
	big := bytes.Repeat([]byte("nsftp diagram band "), 4<<20/19+1)[:4<<20]
	recs := diagramRun(t, map[string][]byte{"big.bin": big}, "big.bin", true)
	var segments int
	for _, r := range recs {
		if r.Stack != nil && r.Stack.Segment != nil {
			segments++
		}
	}
	if segments < 2000 {
		t.Fatalf("only %d segments recorded for a 4 MiB transfer", segments)
	}
	svg := checkDiagram(t, "diagram-big", recs, diagramOptions{Title: "nsftp: 4 MiB download"})
	if len(svg) > 200<<10 {
		t.Errorf("diagram of %d segments is %d bytes, want under 200 KB", segments, len(svg))
	}
	// The server's close() and its 226 reply can come while data is still
	// in flight, so the transfer may be drawn as more than one band.
	banded := 0
	for _, m := range regexp.MustCompile(`>([0-9,]+) segments, [0-9.]+ (?:kB|MB), `).FindAllStringSubmatch(svg, -1) {
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		banded += n
	}
	if banded < 4<<20/1500 {
		t.Errorf("bands hold %d data segments, want all %d or so of the transfer", banded, 4<<20/1460)
	}
	for _, want := range []string{"server → client", "recv ×", "send ×", "RETR big.bin", "226 "} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q", want)
		}
	}
}

// TestDiagramRecords draws a hand-built run: a reply with markup and a
// terminal escape, a command whose password an observer forgot to mask,
// invalid UTF-8, a bidi override, and a burst of data to collapse.
func TestDiagramRecords(t *testing.T) {
	t0 := time.Date(2005, 4, 1, 12, 0, 0, 0, time.UTC)
	n := 0
	at := func() time.Time { n++; return t0.Add(time.Duration(n) * 100 * time.Microsecond) }
	call := func(host string, c stack.Call) record {
		return record{Stack: &stack.Event{Time: at(), Host: host, Kind: stack.KindCall, Call: &c}}
	}
	seg := func(s stack.Segment) record {
		s.Proto = "tcp"
		return record{Stack: &stack.Event{Time: at(), Host: "client", Kind: stack.KindSegment, Segment: &s}}
	}
	ftpEv := func(e ftp.Event) record {
		e.Time, e.Side = at(), "client"
		if e.Conn == "" {
			e.Conn = "control"
		}
		return record{FTP: &e}
	}
	const (
		cc = "192.0.2.1:40000"
		sc = "192.0.2.2:21"
		cd = "192.0.2.1:40001"
		sd = "192.0.2.2:20"
	)
	hostile := "<script>&\x1b[31m red \xff \u202egnp.exe"
	recs := []record{
		call("client", stack.Call{Socket: 3, Label: "control", Op: stack.OpConnect, Article: "sock->ops->connect", Local: cc, Remote: sc, StateBefore: "INITIAL", StateAfter: "ESTABLISHED"}),
		seg(stack.Segment{Dir: "out", Src: cc, Dst: sc, Flags: "SYN"}),
		call("client", stack.Call{Socket: 3, Label: "control", Op: stack.OpGetsockname, Local: cc, Remote: sc}),
		ftpEv(ftp.Event{Kind: ftp.EventReply, Code: 220, Text: hostile, Local: cc, Remote: sc}),
		ftpEv(ftp.Event{Kind: ftp.EventCommand, Text: "PASS hunter2", Local: cc, Remote: sc}),
		seg(stack.Segment{Dir: "in", Src: sc, Dst: cc, Flags: "PSH|ACK", Len: 40}),
		ftpEv(ftp.Event{Kind: ftp.EventDataOpen, Conn: "data", Mode: "active", Local: cd, Remote: sd}),
	}
	for i := range 10 {
		recs = append(recs, seg(stack.Segment{Dir: "in", Src: sd, Dst: cd, Flags: "ACK", Len: 1000}))
		recs = append(recs, call("client", stack.Call{Socket: 5, Label: "data", Op: stack.OpRecv, Article: "sock_recvmsg", Local: cd, Remote: sd, Bytes: 1000, StateBefore: "ESTABLISHED", StateAfter: "ESTABLISHED"}))
		if i%2 == 1 {
			recs = append(recs, seg(stack.Segment{Dir: "out", Src: cd, Dst: sd, Flags: "ACK"}))
		}
	}
	recs = append(recs,
		seg(stack.Segment{Dir: "in", Src: sd, Dst: cd, Flags: "FIN|ACK"}),
		call("client", stack.Call{Socket: 5, Label: "data", Op: stack.OpRecv, Article: "sock_recvmsg", Local: cd, Remote: sd, Err: "EOF", StateBefore: "ESTABLISHED", StateAfter: "CLOSE-WAIT"}),
		ftpEv(ftp.Event{Kind: ftp.EventDataClose, Conn: "data", Bytes: 10000, Local: cd, Remote: sd}),
		seg(stack.Segment{Dir: "in", Src: sd, Dst: cd, Flags: "RST|ACK", Len: 0}),
		ftpEv(ftp.Event{Kind: ftp.EventNote, Text: hostile}),
		record{Stack: &stack.Event{Time: at(), Host: "client", Kind: stack.KindSegment,
			Segment: &stack.Segment{Dir: "out", Proto: "arp", Src: "192.0.2.1", Dst: "192.0.2.2", Info: "who-has 192.0.2.2 tell 192.0.2.1"}}},
	)

	svg := checkDiagram(t, "diagram-records", recs, diagramOptions{Title: "hand-built " + hostile})
	for _, bad := range []string{"<script", "\x1b", "hunter2", "\u202e", "\xff"} {
		if strings.Contains(svg, bad) {
			t.Errorf("diagram contains %q", bad)
		}
	}
	for _, want := range []string{
		"220 &lt;script&gt;&amp;?[31m red", "PASS ****", "SYN", "RST|ACK",
		"10 segments, 10.0 kB", "5 ACKs", "recv ×10, 10.0 kB", "recv() = 0, EOF", "ESTABLISHED → CLOSE-WAIT",
		"ARP who-has", "INITIAL → ESTABLISHED",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q", want)
		}
	}

	if strings.Contains(svg, "getsockname()") {
		t.Errorf("getsockname shown without Names")
	}
	if named := checkDiagram(t, "diagram-records-names", recs, diagramOptions{Names: true}); !strings.Contains(named, "fd3 getsockname() = "+cc) {
		t.Errorf("getsockname not shown with Names")
	}

	// Without collapsing, every segment is its own arrow.
	flat := checkDiagram(t, "diagram-records-flat", recs, diagramOptions{BandMin: -1})
	if strings.Contains(flat, " segments, ") || strings.Count(flat, "ACK len=1000") != 10 {
		t.Errorf("BandMin -1 still collapsed segments")
	}

	// An empty run is still a document.
	checkDiagram(t, "diagram-empty", nil, diagramOptions{})
}
