package trace_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
	"github.com/nsftp/nsftp/trace/tracetest"
)

// The recordings are real runs of `nsftp demo --record`, committed so that
// every view is tested exactly, with no network; demo-os-active is
// `nsftp demo --net os` as root: the kernel's TCP, traced.
var recordings = []string{"demo-active", "demo-passive", "demo-os-active"}

func load(t *testing.T, name string) []trace.Event {
	t.Helper()
	return testkit.ReadRecording(t, filepath.Join("testdata", name+".jsonl"))
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	testkit.Golden(t, path, got)
}

func text(evs []trace.Event, opt trace.TextOptions) []byte {
	var b bytes.Buffer
	tx := trace.NewText(&b, opt)
	for i := range evs {
		tx.Event(&evs[i])
	}
	tx.Flush()
	return b.Bytes()
}

// TestRecordings checks the committed runs are what a timeline promises:
// causal order, RFC 793 for every socket, and the whole life of a TCP
// connection between them.
func TestRecordings(t *testing.T) {
	for _, name := range recordings {
		t.Run(name, func(t *testing.T) {
			evs := load(t, name)
			tracetest.Causal(t, evs)
			seen := tracetest.RFC793(t, evs)
			for _, s := range tracetest.Lifecycle {
				if !seen[s] {
					t.Errorf("no socket passes through %s", s)
				}
			}
		})
	}
}

// TestTextGolden renders the recordings as text, full width and at 100
// columns.
func TestTextGolden(t *testing.T) {
	for _, name := range recordings {
		t.Run(name, func(t *testing.T) {
			evs := load(t, name)
			golden(t, filepath.Join("testdata", name+".txt"), text(evs, trace.TextOptions{}))
			narrow := text(evs, trace.TextOptions{Width: 100})
			golden(t, filepath.Join("testdata", name+"-100.txt"), narrow)
			for i, line := range strings.Split(string(narrow), "\n") {
				if n := len([]rune(line)); n > 100 {
					t.Errorf("line %d is %d columns wide at --width 100: %q", i+1, n, line)
				}
			}
		})
	}
}

// TestTextCausal checks the text view keeps the timeline's promises: the
// time column never decreases, a send's line comes before the segment it
// caused, and a FIN comes after the close() that sent it.
func TestTextCausal(t *testing.T) {
	for _, name := range recordings {
		t.Run(name, func(t *testing.T) {
			out := string(text(load(t, name), trace.TextOptions{}))
			var prev float64
			lastCall := map[string]string{} // host fd -> the last call begun there
			for i, line := range strings.Split(out, "\n") {
				var ms float64
				if _, err := fmt.Sscanf(strings.TrimSpace(line), "%fms", &ms); err != nil {
					continue
				}
				if ms < prev {
					t.Errorf("line %d goes back in time: %s", i+1, line)
				}
				prev = ms
				f := strings.Fields(line)
				if len(f) < 5 || !strings.HasPrefix(f[2], "fd") {
					continue
				}
				who := f[1] + " " + f[2]
				body := strings.Join(f[4:], " ")
				switch {
				case strings.HasPrefix(body, "send(") || strings.HasPrefix(body, "close(") || strings.HasPrefix(body, "connect("):
					lastCall[who] = body
				case strings.HasPrefix(body, "> ") && strings.Contains(body, "len=") && !strings.Contains(body, "len=0"):
					if !strings.HasPrefix(lastCall[who], "send(") {
						t.Errorf("line %d: data sent by %s without a send() before it: %s", i+1, who, line)
					}
				case strings.HasPrefix(body, "> FIN"):
					if !strings.HasPrefix(lastCall[who], "close(") {
						t.Errorf("line %d: FIN from %s without a close() before it: %s", i+1, who, line)
					}
				}
			}
		})
	}
}

// TestLadderGolden draws the recordings.
func TestLadderGolden(t *testing.T) {
	for _, name := range recordings {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := trace.WriteLadder(&b, load(t, name), trace.LadderOptions{}); err != nil {
				t.Fatal(err)
			}
			checkSVG(t, b.Bytes())
			golden(t, filepath.Join("testdata", name+".svg"), b.Bytes())
			for _, want := range []string{"SYN-SENT → ESTABLISHED", "LISTEN → SYN-RECEIVED", "FIN-WAIT-2 → TIME-WAIT",
				"TIME-WAIT → CLOSED", "LAST-ACK → CLOSED", "PASS ****", "226 Transfer complete."} {
				if want == "TIME-WAIT → CLOSED" && strings.Contains(name, "-os-") {
					continue // Linux's TIME-WAIT lasts longer than the run
				}
				if !strings.Contains(b.String(), want) {
					t.Errorf("diagram lacks %q", want)
				}
			}
		})
	}
}

// checkSVG fails unless b is an SVG document a browser opens: well-formed
// XML whose root is <svg> in the SVG namespace, with a viewBox.
func checkSVG(t *testing.T, b []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := true
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root {
				root = false
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element is %v, want svg in the SVG namespace", tok.Name)
				}
				hasViewBox := false
				for _, a := range tok.Attr {
					hasViewBox = hasViewBox || a.Name.Local == "viewBox"
				}
				if !hasViewBox {
					t.Errorf("<svg> has no viewBox")
				}
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root {
		t.Fatal("no root element")
	}
	return text.String()
}

// handBuilt is a run put together by hand: a reply with markup and a
// terminal escape, a command whose password an observer forgot to mask,
// invalid UTF-8, a bidi override, and a burst of data to collapse.
func handBuilt() ([]trace.Event, string) {
	t0 := time.Date(2005, 4, 1, 12, 0, 0, 0, time.UTC)
	var evs []trace.Event
	add := func(e trace.Event) {
		e.Seq = uint64(len(evs) + 1)
		e.Time = t0.Add(time.Duration(len(evs)) * 100 * time.Microsecond)
		evs = append(evs, e)
	}
	ap := netip.MustParseAddrPort
	var (
		cc = ap("192.0.2.1:40000")
		sc = ap("192.0.2.2:21")
		cd = ap("192.0.2.1:40001")
		sd = ap("192.0.2.2:20")
	)
	host := func(name string, role trace.Role, addr string) {
		add(trace.Event{Layer: trace.LayerStack, Host: name, Kind: trace.KindHost,
			HostInfo: &trace.HostInfo{Role: role, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}}})
	}
	call := func(ph trace.Phase, c trace.Call) {
		add(trace.Event{Layer: trace.LayerStack, Host: "client", Kind: trace.KindCall, Phase: ph, Call: &c})
	}
	seg := func(s trace.Segment) {
		s.Proto = "tcp"
		add(trace.Event{Layer: trace.LayerStack, Host: "client", Kind: trace.KindSegment, Segment: &s})
	}
	ftp := func(k trace.Kind, m trace.Message) {
		m.Side = trace.Client
		if m.Conn == "" {
			m.Conn = trace.Control
		}
		add(trace.Event{Layer: trace.LayerFTP, Kind: k, Message: &m})
	}
	hostile := "<script>&\x1b[31m red \xff \u202egnp.exe"
	host("client", trace.Client, "192.0.2.1/24")
	connect := trace.Call{Socket: 3, Label: trace.Control, Op: trace.OpConnect, Article: "sock->ops->connect", Local: cc, Remote: sc, StateBefore: trace.StateInitial}
	call(trace.Begin, connect)
	add(trace.Event{Layer: trace.LayerStack, Host: "client", Kind: trace.KindState,
		State: &trace.State{Socket: 3, Label: trace.Control, From: trace.StateInitial, To: trace.StateSynSent, Cause: "connect()", By: trace.ByCall}})
	seg(trace.Segment{Dir: trace.Out, Src: cc, Dst: sc, Flags: trace.SYN, Socket: 3, Label: trace.Control})
	connect.StateAfter = trace.StateEstablished
	call(trace.End, connect)
	call(trace.Begin, trace.Call{Socket: 3, Label: trace.Control, Op: trace.OpGetsockname})
	call(trace.End, trace.Call{Socket: 3, Label: trace.Control, Op: trace.OpGetsockname, Local: cc, Remote: sc})
	ftp(trace.KindReply, trace.Message{Code: 220, Text: hostile, Local: cc, Remote: sc})
	ftp(trace.KindCommand, trace.Message{Text: "PASS hunter2", Local: cc, Remote: sc})
	seg(trace.Segment{Dir: trace.In, Src: sc, Dst: cc, Flags: trace.PSH | trace.ACK, Len: 40, Socket: 3, Label: trace.Control})
	ftp(trace.KindDataOpen, trace.Message{Conn: trace.Data, Mode: trace.Active, Local: cd, Remote: sd})
	for i := range 10 {
		seg(trace.Segment{Dir: trace.In, Src: sd, Dst: cd, Flags: trace.ACK, Seq: uint32(1 + 1000*i), Len: 1000, Socket: 5, Label: trace.Data})
		recv := trace.Call{Socket: 5, Label: trace.Data, Op: trace.OpRecv, Article: "sock_recvmsg", Local: cd, Remote: sd}
		call(trace.Begin, recv)
		recv.Bytes = 1000
		call(trace.End, recv)
		if i%2 == 1 {
			seg(trace.Segment{Dir: trace.Out, Src: cd, Dst: sd, Flags: trace.ACK, Socket: 5, Label: trace.Data})
		}
	}
	seg(trace.Segment{Dir: trace.In, Src: sd, Dst: cd, Flags: trace.FIN | trace.ACK, Seq: 10001, Socket: 5, Label: trace.Data})
	eof := trace.Call{Socket: 5, Label: trace.Data, Op: trace.OpRecv, Article: "sock_recvmsg", Local: cd, Remote: sd, StateBefore: trace.StateCloseWait}
	call(trace.Begin, eof)
	eof.Err, eof.StateAfter = "EOF", trace.StateCloseWait
	call(trace.End, eof)
	ftp(trace.KindDataClose, trace.Message{Conn: trace.Data, Bytes: 10000, Local: cd, Remote: sd})
	seg(trace.Segment{Dir: trace.In, Src: sd, Dst: cd, Flags: trace.RST | trace.ACK, Socket: 5, Label: trace.Data})
	ftp(trace.KindNote, trace.Message{Text: hostile})
	add(trace.Event{Layer: trace.LayerStack, Host: "client", Kind: trace.KindSegment,
		Segment: &trace.Segment{Dir: trace.Out, Proto: "arp", Src: ap("192.0.2.1:0"), Dst: ap("192.0.2.2:0"), Info: "who-has 192.0.2.2 tell 192.0.2.1"}})
	return evs, hostile
}

// TestLadderHostile draws a hand-built run: nothing hostile gets into the
// drawing, the password is masked, bulk data is one band.
func TestLadderHostile(t *testing.T) {
	evs, hostile := handBuilt()
	draw := func(opt trace.LadderOptions) string {
		var b bytes.Buffer
		if err := trace.WriteLadder(&b, evs, opt); err != nil {
			t.Fatal(err)
		}
		checkSVG(t, b.Bytes())
		return b.String()
	}
	svg := draw(trace.LadderOptions{Title: "hand-built " + hostile})
	for _, bad := range []string{"<script", "\x1b", "hunter2", "\u202e", "\xff"} {
		if strings.Contains(svg, bad) {
			t.Errorf("diagram contains %q", bad)
		}
	}
	for _, want := range []string{
		"220 &lt;script&gt;&amp;?[31m red", "PASS ****", "SYN", "RST|ACK",
		"10 segments, 10.0 kB", "5 ACKs", "recv ×10, 10.0 kB", "recv() = 0, EOF", "INITIAL → SYN-SENT",
		"ARP who-has", "connect() = 0",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("diagram lacks %q", want)
		}
	}
	if strings.Contains(svg, "getsockname()") {
		t.Errorf("getsockname shown without Names")
	}
	if !strings.Contains(draw(trace.LadderOptions{Names: true}), "fd3 getsockname() = 192.0.2.1:40000") {
		t.Errorf("getsockname not shown with Names")
	}
	// Without collapsing, every segment is its own arrow.
	if flat := draw(trace.LadderOptions{BandMin: -1}); strings.Contains(flat, " segments, ") || strings.Count(flat, "ACK len=1000") != 10 {
		t.Errorf("BandMin -1 still collapsed segments")
	}
	// An empty run is still a document.
	draw(trace.LadderOptions{})
	var b bytes.Buffer
	trace.WriteLadder(&b, nil, trace.LadderOptions{})
	checkSVG(t, b.Bytes())
}

// TestTextHostile renders the hand-built run as text: the same rules.
func TestTextHostile(t *testing.T) {
	evs, _ := handBuilt()
	out := string(text(evs, trace.TextOptions{}))
	for _, bad := range []string{"\x1b", "hunter2", "\u202e", "\xff"} {
		if strings.Contains(out, bad) {
			t.Errorf("text contains %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{"PASS ****", "═ 10 segments 192.0.2.2 -> client", "10.0 kB", "recv() ×10", "5 ACKs back", "INITIAL -> SYN-SENT  connect()"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	every := string(text(evs, trace.TextOptions{Every: true}))
	if strings.Contains(every, "═") || strings.Count(every, "len=1000") != 10 {
		t.Errorf("Every still collapsed segments:\n%s", every)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":                  "plain text",
		"tab\there":                   "tab?here",
		"\x1b[31mred":                 "?[31mred",
		"abc\u202egnp.exe":            "abc?gnp.exe",
		"isolate\u2066x\u2069":        "isolate?x?",
		"bad \xff byte":               "bad ? byte",
		"line\u2028sep":               "line?sep",
		"C1 \u0085 control":           "C1 ? control",
		"é and 日本 stay":               "é and 日本 stay",
		"zero width joiner \u200d ok": "zero width joiner \u200d ok",
	} {
		if got := trace.Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTCPFlagsText(t *testing.T) {
	for _, f := range []trace.TCPFlags{0, trace.SYN, trace.SYN | trace.ACK, trace.FIN | trace.PSH | trace.ACK, trace.RST, 0xff} {
		b, _ := f.MarshalText()
		var g trace.TCPFlags
		if err := g.UnmarshalText(b); err != nil || g != f {
			t.Errorf("%08b -> %q -> %08b, %v", f, b, g, err)
		}
	}
	if s := (trace.SYN | trace.ACK).String(); s != "SYN|ACK" {
		t.Errorf("SYN|ACK is %q", s)
	}
	var g trace.TCPFlags
	if err := g.UnmarshalText([]byte("SYN|BOGUS")); err == nil {
		t.Error("an unknown flag was accepted")
	}
}

// TestAllowed checks the state diagram against RFC 793 page 23.
func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		from, to trace.TCPState
		ok       bool
	}{
		{trace.StateListen, trace.StateSynReceived, true},       // rcv SYN, snd SYN,ACK
		{trace.StateSynSent, trace.StateEstablished, true},      // rcv SYN,ACK, snd ACK
		{trace.StateSynSent, trace.StateSynReceived, true},      // rcv SYN (simultaneous open)
		{trace.StateEstablished, trace.StateCloseWait, true},    // rcv FIN
		{trace.StateFinWait1, trace.StateClosing, true},         // rcv FIN (simultaneous close)
		{trace.StateFinWait1, trace.StateTimeWait, true},        // rcv FIN,ACK
		{trace.StateFinWait2, trace.StateTimeWait, true},        // rcv FIN
		{trace.StateTimeWait, trace.StateClosed, true},          // 2MSL
		{trace.StateEstablished, trace.StateTimeWait, false},    // no FIN sent
		{trace.StateCloseWait, trace.StateFinWait1, false},      // the peer already closed
		{trace.StateLastAck, trace.StateTimeWait, false},        // LAST-ACK ends in CLOSED
		{trace.StateListen, trace.StateEstablished, false},      // not without SYN-RECEIVED
		{trace.StateClosed, trace.StateEstablished, false},      // a closed connection stays closed
		{trace.StateClosed, trace.StateSynSent, true},           // active OPEN (Linux: a new socket is TCP_CLOSE)
		{trace.StateClosed, trace.StateListen, true},            // passive OPEN
		{trace.StateFinWait2, trace.StateFinWait1, false},       // no way back
		{trace.StateSynReceived, trace.StateCloseWait, false},   // ESTABLISHED first
		{trace.StateInitial, trace.StateEstablished, false},     // no handshake
		{trace.StateEstablished, trace.StateEstablished, false}, // not a change
	} {
		if got := trace.Allowed(tc.from, tc.to); got != tc.ok {
			t.Errorf("Allowed(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
}

func TestReadJSONErrors(t *testing.T) {
	for in, want := range map[string]string{
		"{not json\n":                 "line 1",
		"{\"kind\":\"call\"}\n":       "no \"layer\"",
		"\n\n{\"layer\":\"stack\"}\n": "line 3",
		`{"layer":"stack","kind":"segment","segment":{"src":"nonsense"}}`: "address",
	} {
		_, err := trace.ReadJSON(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadJSON(%q) = %v, want an error mentioning %q", in, err, want)
		}
	}
}

// TestTAPRecording renders a real run on a TAP device with no address of
// its own (nsftp get ftp://ftp.nsftp.test/hello.txt, dnsmasq serving DHCP,
// DNS and router advertisements on the kernel's side): the DHCP exchange
// and the name lookup are UDP socket calls and datagrams with their
// sockets, and the address the host was leased is a config line, in the
// text and in the diagram.
func TestTAPRecording(t *testing.T) {
	evs := load(t, "tap-dhcp")
	tracetest.Causal(t, evs)
	full := text(evs, trace.TextOptions{})
	golden(t, filepath.Join("testdata", "tap-dhcp.txt"), full)
	narrow := text(evs, trace.TextOptions{Width: 100})
	golden(t, filepath.Join("testdata", "tap-dhcp-100.txt"), narrow)
	for i, line := range strings.Split(string(narrow), "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d is %d columns wide at --width 100: %q", i+1, n, line)
		}
	}
	for _, want := range []string{
		"fd3  dhcp    bind(0.0.0.0:68) = 0  sock->ops->bind -> inet_bind | udp.endpoint.Bind",
		"fd3  dhcp    sendto(300 bytes, 255.255.255.255:67)  sock_sendmsg -> udp_sendmsg | udp.endpoint.Write",
		"fd3  dhcp      > udp len=300  DHCP DISCOVER",
		"fd3  dhcp      < udp len=300  DHCP OFFER 192.0.2.81/24: router 192.0.2.1, DNS 192.0.2.1, lease 1h0m0s (server 192.0.2.1)",
		"fd3  dhcp    └ recvfrom() = 300 bytes from 192.0.2.1:67",
		"> arp who-has 192.0.2.81 tell 0.0.0.0",
		"== address 192.0.2.81/24, router 192.0.2.1, name server 192.0.2.1 (DHCP lease from 192.0.2.1 for 1h0m0s)",
		"(SLAAC: an advertised prefix and the interface's own identifier)",
		"dns     connect(192.0.2.1:53) = 0  sock->ops->connect -> ip4_datagram_connect | udp.endpoint.Connect",
		"> udp len=43  DNS query A ftp.nsftp.test.",
		"< udp len=59  DNS answer A ftp.nsftp.test. = 192.0.2.1",
		"dhcp      > udp len=300  DHCP RELEASE 192.0.2.81",
		"== gave up address 192.0.2.81/24, router 192.0.2.1, name server 192.0.2.1 (DHCP)",
	} {
		if !bytes.Contains(full, []byte(want)) {
			t.Errorf("the text view lacks %q", want)
		}
	}
	var b bytes.Buffer
	if err := trace.WriteLadder(&b, evs, trace.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	golden(t, filepath.Join("testdata", "tap-dhcp.svg"), b.Bytes())
	for _, want := range []string{"client 192.0.2.81", "DHCP DISCOVER", "DHCP ACK 192.0.2.81/24", "DNS query A ftp.nsftp.test.",
		"fd3 bind(0.0.0.0:68)", "client: address 192.0.2.81/24"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the diagram lacks %q", want)
		}
	}
}

// TestGraphLarge draws a 100 MB transfer's worth of segments: the graph
// stays small enough for a browser, every data segment is in a mark or a
// pixel column's band, every retransmission has its own mark, and the
// window line keeps every cut.
func TestGraphLarge(t *testing.T) {
	ap := netip.MustParseAddrPort
	srv, cli := ap("192.0.2.2:20"), ap("192.0.2.1:40000")
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var evs []trace.Event
	add := func(e trace.Event) {
		e.Seq = uint64(len(evs) + 1)
		e.Time = t0.Add(time.Duration(len(evs)) * 20 * time.Microsecond)
		evs = append(evs, e)
	}
	add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindHost,
		HostInfo: &trace.HostInfo{Role: trace.Server, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}})
	seg := func(s trace.Segment) {
		s.Proto, s.Label = "tcp", trace.Data
		add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindSegment, Segment: &s})
	}
	seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.SYN, Seq: 1000, Socket: 5, WindowScale: 7})
	seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.SYN | trace.ACK, Seq: 5000, Ack: 1001, Socket: 5, WindowScale: 7})
	const n = 70000
	rtx, cwnd, cuts := 0, 10, 0
	seq := uint32(1001)
	for i := range n {
		seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: seq, Ack: 5001, Len: 1448, Socket: 5})
		seq += 1448
		if i%1000 == 999 {
			seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: seq - 100*1448, Ack: 5001, Len: 1448, Socket: 5, Retransmit: true})
			rtx++
			cwnd /= 2
			cuts++
		}
		if i%2 == 1 {
			seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.ACK, Seq: 5001, Ack: seq, Window: 16384, Socket: 5})
			cwnd++
			add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindTCB,
				TCB: &trace.TCB{Socket: 5, Cwnd: cwnd, Ssthresh: 1 << 30, MSS: 1448, Congestion: "open"}})
		}
	}
	var b bytes.Buffer
	if err := trace.WriteGraph(&b, evs, trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	svg := b.String()
	if b.Len() > 600<<10 {
		t.Errorf("a graph of %d segments is %d bytes", n, b.Len())
	}
	marked := strings.Count(svg, `class="seg"`)
	for _, m := range regexp.MustCompile(`data-segments="(\d+)"`).FindAllStringSubmatch(svg, -1) {
		k, _ := strconv.Atoi(m[1])
		marked += k
	}
	if marked != n {
		t.Errorf("%d of %d data segments marked", marked, n)
	}
	if got := strings.Count(svg, `class="rtx"`); got != rtx {
		t.Errorf("%d retransmissions marked, %d sent", got, rtx)
	}
	// Every halving of the window is a step down on the line.
	vals := strings.Fields(regexp.MustCompile(`data-cwnd="([^"]*)"`).FindStringSubmatch(svg)[1])
	downs := 0
	for i := 1; i < len(vals); i++ {
		a, _ := strconv.Atoi(vals[i-1])
		c, _ := strconv.Atoi(vals[i])
		if c < a {
			downs++
		}
	}
	if downs < cuts {
		t.Errorf("the window line shows %d of the %d cuts", downs, cuts)
	}
	t.Logf("%d segments, %d retransmissions: a %d-byte graph", n, rtx, b.Len())
}

// TestLostOnTheWire: frames the wire lost show in every view.
func TestLostOnTheWire(t *testing.T) {
	evs, _ := handBuilt()
	ap := netip.MustParseAddrPort
	lost := trace.Segment{Dir: trace.Out, Proto: "tcp", Src: ap("192.0.2.2:20"), Dst: ap("192.0.2.1:40001"), Flags: trace.ACK, Seq: 9001, Len: 1000}
	host := trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindHost,
		HostInfo: &trace.HostInfo{Role: trace.Server, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}}
	drop := trace.Event{Seq: 99, Time: evs[len(evs)-1].Time, Layer: trace.LayerWire, Kind: trace.KindDrop, Segment: &lost,
		Drop: &trace.Drop{Reason: "queue full", From: 2, To: 1}}
	evs = append([]trace.Event{host}, append(evs, drop)...)
	out := string(text(evs, trace.TextOptions{}))
	if !strings.Contains(out, "✗ lost on the wire (queue full): ACK") {
		t.Errorf("text does not show the lost frame:\n%s", out)
	}
	var b bytes.Buffer
	trace.WriteLadder(&b, evs, trace.LadderOptions{})
	checkSVG(t, b.Bytes())
	if !strings.Contains(b.String(), "lost: queue full") {
		t.Error("the ladder does not show the lost frame")
	}

	// A lost control segment (the wire names no socket) is no reason to
	// graph the control connection: only the data connection is drawn.
	reply := trace.Segment{Dir: trace.Out, Proto: "tcp", Src: ap("192.0.2.2:21"), Dst: ap("192.0.2.1:40000"), Flags: trace.PSH | trace.ACK, Seq: 300, Len: 24}
	lostReply := trace.Event{Seq: 100, Time: evs[len(evs)-1].Time, Layer: trace.LayerWire, Kind: trace.KindDrop, Segment: &reply,
		Drop: &trace.Drop{Reason: "queue full", From: 2, To: 1}}
	b.Reset()
	if err := trace.WriteGraph(&b, append(evs, lostReply), trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	if strings.Contains(b.String(), ":21 →") || strings.Count(b.String(), `class="cwnd"`) > 1 {
		t.Errorf("a lost control segment made the control connection a graph")
	}
	if !strings.Contains(b.String(), "192.0.2.2:20 →") {
		t.Errorf("the data connection is not drawn")
	}
}

// TestLadderDataOpenPrecedesData: in active mode the client's FTP layer
// learns that its data connection is open when accept() returns, and the
// server may have sent the file and its FIN by then, so the recording can
// hold the data-open event after them. The diagram still opens the data
// connection (its label and its bar) above the first data arrow, with the
// handshake above it; and its times count from its first row.
func TestLadderDataOpenPrecedesData(t *testing.T) {
	evs := load(t, "demo-active")
	open := slices.IndexFunc(evs, func(e trace.Event) bool { return e.Kind == trace.KindDataOpen })
	data := slices.IndexFunc(evs, func(e trace.Event) bool {
		return e.Segment != nil && e.Segment.Label == trace.Data && e.Segment.Len > 0
	})
	if open < 0 || data < 0 || data > open {
		t.Fatalf("the recording has its data-open at %d and its first data at %d: it no longer shows a late data-open", open, data)
	}
	var b bytes.Buffer
	if err := trace.WriteLadder(&b, evs, trace.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	label := strings.Index(svg, ">data connection open (active)<")
	arrow := regexp.MustCompile(`PSH\|ACK seq=\d+ ack=\d+ win=\d+ len=[1-9]\d*</title><line x1="620"`).FindStringIndex(svg)
	if label < 0 || arrow == nil {
		t.Fatalf("no data-open label (%d) or data arrow from the server (%v)", label, arrow)
	}
	if label > arrow[0] {
		t.Error("the data connection opens below its first data arrow")
	}
	if syn := strings.LastIndex(svg[:label], "SYN seq="); syn < 0 {
		t.Error("the data connection opens above its handshake")
	}
	if first := regexp.MustCompile(`class="time" text-anchor="end">([0-9.]+)<`).FindStringSubmatch(svg); first == nil || first[1] != "0.000" {
		t.Errorf("the first row's time is %v, want 0.000 (ms since the first event)", first)
	}
}

// TestStampColumns: the text view's time column keeps its width however
// long a run: milliseconds below 10 s, seconds from there.
func TestStampColumns(t *testing.T) {
	tx := func(d time.Duration) string {
		var b bytes.Buffer
		text := trace.NewText(&b, trace.TextOptions{})
		t0 := time.Unix(1e9, 0)
		for _, at := range []time.Time{t0, t0.Add(d)} {
			text.Event(&trace.Event{Time: at, Layer: trace.LayerStack, Host: "client", Kind: trace.KindState,
				State: &trace.State{Socket: 3, Label: trace.Control, From: trace.StateTimeWait, To: trace.StateClosed, Cause: "2MSL timer", By: trace.ByTimer}})
		}
		text.Flush()
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		return lines[len(lines)-1]
	}
	for d, want := range map[time.Duration]string{
		2634 * time.Microsecond:     "    2.634ms client",
		9999999 * time.Microsecond:  " 9999.999ms client",
		12345678 * time.Microsecond: " 12.345678s client",
		150 * time.Second:           " 150.00000s client",
		3 * time.Hour:               " 10800.000s client",
	} {
		if got := tx(d); !strings.HasPrefix(got, want) {
			t.Errorf("after %v: %q, want it to begin %q", d, got, want)
		}
	}
}

// TestGraphTellsApart: a graph of a transfer that lost a segment on the
// wire (and resent it after SACKs told of the hole) draws the loss and the
// retransmission in different colours, every SACK block at least 3 pixels
// high, and its axes to round values in round steps, though the transfer
// took 3.39 s and moved 7.3 MB.
func TestGraphTellsApart(t *testing.T) {
	ap := netip.MustParseAddrPort
	srv, cli := ap("192.0.2.2:20"), ap("192.0.2.1:40000")
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var evs []trace.Event
	at := t0
	add := func(e trace.Event) {
		e.Seq, e.Time = uint64(len(evs)+1), at
		evs = append(evs, e)
	}
	add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindHost,
		HostInfo: &trace.HostInfo{Role: trace.Server, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}})
	seg := func(s trace.Segment) {
		s.Proto, s.Label, s.Socket = "tcp", trace.Data, 5
		add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindSegment, Segment: &s})
	}
	seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.SYN, Seq: 1000, WindowScale: 7})
	seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.SYN | trace.ACK, Seq: 5000, Ack: 1001, WindowScale: 7})
	const n, mss = 5000, 1448
	lost := uint32(1001 + 2000*mss)
	for i := range n {
		at = t0.Add(time.Duration(i) * 3390 * time.Second / n / 1000)
		s := uint32(1001 + i*mss)
		if s == lost {
			l := trace.Segment{Dir: trace.Out, Proto: "tcp", Src: srv, Dst: cli, Flags: trace.ACK, Seq: s, Len: mss}
			add(trace.Event{Layer: trace.LayerWire, Kind: trace.KindDrop, Segment: &l, Drop: &trace.Drop{Reason: "queue full", From: 2, To: 1}})
		}
		seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: s, Ack: 5001, Len: mss})
		ack := s + mss
		var sack []trace.SACKBlock
		if s > lost && s < lost+5*mss {
			ack, sack = lost, []trace.SACKBlock{{Start: lost + mss, End: s + mss}}
		}
		if s == lost+5*mss {
			seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: lost, Ack: 5001, Len: mss, Retransmit: true})
		}
		seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.ACK, Seq: 5001, Ack: ack, Window: 16384, SACK: sack})
		add(trace.Event{Layer: trace.LayerStack, Host: "server", Kind: trace.KindTCB,
			TCB: &trace.TCB{Socket: 5, Cwnd: 10 + i%37, Ssthresh: 1 << 30, MSS: mss, Congestion: "open"}})
	}
	var b bytes.Buffer
	if err := trace.WriteGraph(&b, evs, trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	svg := b.String()

	colour := func(class string) string {
		m := regexp.MustCompile(`\.` + class + `\{stroke:(#[0-9a-f]+)`).FindStringSubmatch(svg)
		if m == nil {
			t.Fatalf("no colour for .%s", class)
		}
		return m[1]
	}
	if colour("rtx") == colour("drop") {
		t.Errorf("retransmissions and wire losses are both %s", colour("rtx"))
	}
	if strings.Count(svg, `class="rtx"`) != 1 || strings.Count(svg, `class="drop"`) != 1 {
		t.Errorf("%d retransmissions and %d losses drawn, want 1 of each", strings.Count(svg, `class="rtx"`), strings.Count(svg, `class="drop"`))
	}
	sacks := regexp.MustCompile(`<line class="sack" x1="[-0-9.]+" y1="([-0-9.]+)" x2="[-0-9.]+" y2="([-0-9.]+)"/>`).FindAllStringSubmatch(svg, -1)
	if len(sacks) == 0 {
		t.Error("no SACK block drawn")
	}
	for _, m := range sacks {
		y1, _ := strconv.ParseFloat(m[1], 64)
		y2, _ := strconv.ParseFloat(m[2], 64)
		if y1-y2 < 3 {
			t.Errorf("a SACK block %.1f pixels high", y1-y2)
		}
	}

	for _, class := range []string{"seq", "time", "cwnd"} {
		var ticks []float64
		for _, m := range regexp.MustCompile(`class="axis `+class+`"[^>]*>([0-9.]+)`).FindAllStringSubmatch(svg, -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			ticks = append(ticks, v)
		}
		if len(ticks) < 3 || ticks[0] != 0 {
			t.Fatalf("%s axis ticks %v", class, ticks)
		}
		step := ticks[1]
		mant := step / math.Pow(10, math.Floor(math.Log10(step)))
		if !slices.Contains([]float64{1, 2, 2.5, 5}, math.Round(mant*100)/100) {
			t.Errorf("%s axis ticked every %v: not a round step", class, step)
		}
		for i, v := range ticks {
			if math.Abs(v-float64(i)*step) > step/1e6 {
				t.Errorf("%s axis ticks %v are not even", class, ticks)
				break
			}
		}
		t.Logf("%s axis: %v", class, ticks)
	}
	for _, want := range []string{">4 s<", ">8 MB<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the axes do not run to a round %q", want)
		}
	}
}

// TestGraphCountsEachByteOnce: a graph's byte count is the sequence space
// the sender's data covered, each byte once, though the recording missed
// a segment's first sending (a kernel's capture is taken after its qdisc,
// which dropped it) and holds only its resend, and holds a resend of a
// segment it also saw sent.
func TestGraphCountsEachByteOnce(t *testing.T) {
	ap := netip.MustParseAddrPort
	srv, cli := ap("198.51.100.2:20"), ap("198.51.100.1:40000")
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var evs []trace.Event
	seg := func(s trace.Segment) {
		s.Proto, s.Label, s.Socket = "tcp", trace.Data, 5
		evs = append(evs, trace.Event{Seq: uint64(len(evs) + 1), Time: t0.Add(time.Duration(len(evs)) * time.Millisecond),
			Layer: trace.LayerKernel, Host: "server", Kind: trace.KindSegment, Segment: &s})
	}
	seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.SYN, Seq: 1000})
	seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.SYN | trace.ACK, Seq: 5000, Ack: 1001})
	const n, mss = 10, 1000
	for i := range n {
		s := uint32(1001 + i*mss)
		if i != 3 { // the qdisc dropped it: never captured
			seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: s, Ack: 5001, Len: mss})
		}
	}
	for _, i := range []int{3, 5} {
		seg(trace.Segment{Dir: trace.Out, Src: srv, Dst: cli, Flags: trace.ACK, Seq: uint32(1001 + i*mss), Ack: 5001, Len: mss, Retransmit: true})
	}
	seg(trace.Segment{Dir: trace.In, Src: cli, Dst: srv, Flags: trace.ACK, Seq: 5001, Ack: 1001 + n*mss, Window: 65535})
	var b bytes.Buffer
	if err := trace.WriteGraph(&b, evs, trace.GraphOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	want := fmt.Sprintf("%s in %s", trace.Bytes(n*mss), trace.Duration(evs[len(evs)-1].Time.Sub(evs[0].Time)))
	if !strings.Contains(b.String(), want) {
		m := regexp.MustCompile(`[^>]* in [^;]*; seen from`).FindString(b.String())
		t.Errorf("the graph says %q, want %q", m, want)
	}
	if !strings.Contains(b.String(), "11 segments, 2 retransmitted") {
		t.Errorf("the graph does not count 11 segments with 2 resends: %q", regexp.MustCompile(`\d+ segments[^;]*`).FindString(b.String()))
	}
}
