package packet

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/trace"
)

// countingWriter counts the Writes it is given.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(b)
}

// TestPCAPRoundTrip writes frames, among them one larger than 64 KiB as
// a wire with GSO hands over, and reads them back whole: the snap length
// is tcpdump's 262,144, and each record is one Write.
func TestPCAPRoundTrip(t *testing.T) {
	var w countingWriter
	p, err := NewPCAPWriter(&w, LinkEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	gso := tcpFrame(cli4, srv4, TCPFields{Seq: 1, Flags: trace.ACK}, bytes.Repeat([]byte{'g'}, 1<<16-IPv4HeaderLen-TCPHeaderLen-1), 0, nil)
	arp := AppendARP(AppendEthernet(nil, macB, macA, EtherTypeARP), ARPRequest, macA, ip4A, MAC{}, ip4B)
	t0 := time.Date(2026, 12, 1, 21, 46, 47, 714197123, time.UTC)
	p.WriteFrame(t0, len(arp), arp)
	p.WriteFrame(t0.Add(time.Millisecond), len(gso), gso[:100], gso[100:200], gso[200:]) // scattered
	p.WriteFrame(t0.Add(2*time.Millisecond), 70000, arp)                                 // cut short before it got here
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if w.writes != 4 {
		t.Errorf("%d writes, want 4: the header and one a record", w.writes)
	}
	r, err := NewPCAPReader(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != LinkEthernet || r.SnapLen() != SnapLen {
		t.Errorf("link type %d, snap length %d", r.LinkType(), r.SnapLen())
	}
	for i, want := range []PCAPRecord{
		{Time: t0, Data: arp, Size: len(arp)},
		{Time: t0.Add(time.Millisecond), Data: gso, Size: len(gso)},
		{Time: t0.Add(2 * time.Millisecond), Data: arp, Size: 70000},
	} {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !got.Time.Equal(want.Time) || !bytes.Equal(got.Data, want.Data) || got.Size != want.Size {
			t.Errorf("record %d: time %v size %d, %d bytes; want %v, %d, %d", i, got.Time, got.Size, len(got.Data), want.Time, want.Size, len(want.Data))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

// TestPCAPSnapLen: a smaller snap length cuts frames and says so in the
// header and each record.
func TestPCAPSnapLen(t *testing.T) {
	var b bytes.Buffer
	p, _ := NewPCAPWriter(&b, LinkRaw, 64)
	f := make([]byte, 1500)
	p.WriteFrame(time.Unix(1, 0), len(f), f)
	r, err := NewPCAPReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Next()
	if err != nil || r.SnapLen() != 64 || r.LinkType() != LinkRaw || len(rec.Data) != 64 || rec.Size != 1500 {
		t.Errorf("snap length %d, link %d: record of %d bytes of %d (%v)", r.SnapLen(), r.LinkType(), len(rec.Data), rec.Size, err)
	}
}

// failingWriter fails every write after the first n.
type failingWriter struct{ n int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(b), nil
}

// TestPCAPWriteError: the first error is kept and later frames are
// dropped, not written after a hole.
func TestPCAPWriteError(t *testing.T) {
	w := &failingWriter{n: 2}
	p, err := NewPCAPWriter(w, LinkEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 60)
	p.WriteFrame(time.Now(), len(f), f)
	if p.Err() != nil {
		t.Fatalf("error before the disk filled: %v", p.Err())
	}
	p.WriteFrame(time.Now(), len(f), f)
	w.n = 100 // room again: nothing more may be written
	p.WriteFrame(time.Now(), len(f), f)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Err = %v, want the disk-full error", err)
	}
	if w.n != 100 {
		t.Errorf("%d records written after the error", 100-w.n)
	}
	if _, err := NewPCAPWriter(&failingWriter{}, LinkEthernet, 0); err == nil {
		t.Error("no error when the header cannot be written")
	}
	var nilWriter *PCAPWriter
	if nilWriter.Err() != nil {
		t.Error("a nil writer has an error")
	}
}

// TestPCAPConcurrent: records written from many goroutines stay whole.
func TestPCAPConcurrent(t *testing.T) {
	var b bytes.Buffer
	p, _ := NewPCAPWriter(&b, LinkEthernet, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := bytes.Repeat([]byte{byte(g)}, 100+g)
			for range 100 {
				p.WriteFrame(time.Now(), len(f), f[:10], f[10:])
			}
		}()
	}
	wg.Wait()
	r, err := NewPCAPReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		g := rec.Data[0]
		if len(rec.Data) != 100+int(g) || !bytes.Equal(rec.Data, bytes.Repeat([]byte{g}, len(rec.Data))) {
			t.Fatalf("record %d mixes frames", n)
		}
		n++
	}
	if n != 800 {
		t.Errorf("%d records, want 800", n)
	}
}

// TestPCAPReaderHostile: a file that lies is an error, never a panic or
// a huge allocation.
func TestPCAPReaderHostile(t *testing.T) {
	var good bytes.Buffer
	p, _ := NewPCAPWriter(&good, LinkEthernet, 0)
	p.WriteFrame(time.Unix(1, 0), 60, make([]byte, 60))
	g := good.Bytes()
	huge := append([]byte(nil), g...)
	huge[24+8], huge[24+9], huge[24+10], huge[24+11] = 0xff, 0xff, 0xff, 0x7f // a 2 GiB record
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not pcap", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"record cut short", g[:len(g)-1]},
		{"record header cut short", g[:24+10]},
		{"huge record", huge},
	} {
		r, err := NewPCAPReader(bytes.NewReader(tc.b))
		if err == nil {
			for {
				if _, err = r.Next(); err != nil {
					break
				}
			}
		}
		if err == nil || err == io.EOF {
			t.Errorf("%s: %v, want an error", tc.name, err)
		}
	}
}

// TestPCAPTshark has tshark read what the writer and the emitters made:
// every frame whole (the 65,550-byte one too), in the right link type,
// and every checksum right, as tshark checks them itself.
func TestPCAPTshark(t *testing.T) {
	tshark := testkit.NeedPeer(t, "tshark")
	frames := [][]byte{
		tcpFrame(cli4, srv4, TCPFields{Seq: 1000, Flags: trace.SYN, Window: 64240, Options: synOpts()}, nil, 0, nil),
		tcpFrame(cli4, srv4, TCPFields{Seq: 1001, Ack: 1, Flags: trace.ACK, Options: tsOpts()}, bytes.Repeat([]byte{'d'}, 1<<16-IPv4HeaderLen-32-1), 0, nil),
		tcpFrame(cli6, srv6, TCPFields{Seq: 5, Flags: trace.ACK, Options: sackOpts(trace.SACKBlock{Start: 10, End: 20})}, []byte("x"), ProtoHopByHop,
			AppendIPv6Options(nil, ProtoTCP, []byte{5, 2, 0, 0})),
		udpFrame(netip.AddrPortFrom(ip6A, 33000), netip.AddrPortFrom(ip6B, 53), dnsMessage(t, "ftp.example.org.", false, 0)),
		ipFrame(ip4B, ip4A, ProtoICMPv4, AppendICMPv4(nil, ICMPv4Echo, 0, []byte{0, 1, 0, 1, 'p'}), 0, nil),
		ipFrame(ip6A, ip6B, ProtoICMPv6, AppendICMPv6(nil, ICMPv6NeighborSolicit, 0, append(make([]byte, 4), ip6B.AsSlice()...), ip6A, ip6B), 0, nil),
	}
	var b bytes.Buffer
	p, _ := NewPCAPWriter(&b, LinkEthernet, 0)
	for i, f := range frames {
		p.WriteFrame(time.Unix(int64(i), 0), len(f), f)
	}
	path := filepath.Join(t.TempDir(), "frames.pcap")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Output, not CombinedOutput: as root tshark warns on stderr.
	out, err := exec.Command(tshark, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-o", "udp.check_checksum:TRUE", "-T", "fields",
		"-e", "frame.cap_len", "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
		"-e", "udp.checksum.status", "-e", "icmp.checksum.status", "-e", "icmpv6.checksum.status", "-e", "_ws.expert.severity").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("tshark read %d frames, want %d:\n%s", len(lines), len(frames), out)
	}
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			t.Fatalf("tshark's line %q has %d fields", l, len(f))
		}
		if f[0] != strconv.Itoa(len(frames[i])) {
			t.Errorf("frame %d: tshark captured %s bytes of %d", i, f[0], len(frames[i]))
		}
		for _, status := range f[2:7] {
			if status != "" && status != "1" { // 1: good
				t.Errorf("frame %d: a checksum tshark finds wrong: %s", i, l)
			}
		}
		// Wireshark's expert severities: chat, note and warning below
		// error (8388608), which marks a malformed frame.
		for _, sev := range strings.Split(f[7], ",") {
			if n, _ := strconv.Atoi(sev); n >= 8388608 {
				t.Errorf("frame %d: tshark finds an error: %s", i, l)
			}
		}
	}
	t.Logf("tshark:\n%s", out)
}
