package packet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsftp/nsftp/internal/testkit"
)

// TestSeeds checks that the committed seed corpora of FuzzDecode,
// FuzzPCAPReader and FuzzTCPRoundTrip are the frames of fuzzSeeds, in the
// go test fuzz v1 format, so the corpora follow the frames;
// with -update it writes them:
//
//	go test ./packet/ -run TestSeeds -update
func TestSeeds(t *testing.T) {
	names := []string{"syn", "sack", "ipv6-ext", "ipv6-fragment", "arp", "icmp-frag-needed", "ndp-ns", "dns", "dhcp"}
	var pcap bytes.Buffer
	p, _ := NewPCAPWriter(&pcap, LinkEthernet, 0)
	for i, f := range fuzzSeeds(t) {
		write(t, "FuzzDecode", "seed-"+names[i], fmt.Sprintf("[]byte(%q)\nbool(false)\n", f))
		write(t, "FuzzDecode", "seed-raw-"+names[i], fmt.Sprintf("[]byte(%q)\nbool(true)\n", f[EthernetHeaderLen:]))
		p.WriteFrame(time.Unix(int64(i), 0), len(f), f)
	}
	write(t, "FuzzPCAPReader", "seed-frames", fmt.Sprintf("[]byte(%q)\n", pcap.Bytes()))
	// FuzzTCPRoundTrip's fields: ports, seq, ack, flags, window, MSS,
	// window scale, SACK blocks, payload length, IPv6.
	write(t, "FuzzTCPRoundTrip", "seed-syn-v4", "uint16(40000)\nuint16(21)\nuint32(1000)\nuint32(0)\nbyte('\\x02')\nuint16(64240)\nuint16(1460)\nbyte('\\a')\nbyte('\\x00')\nuint16(0)\nbool(false)\n")
	write(t, "FuzzTCPRoundTrip", "seed-sack-v6", "uint16(20)\nuint16(40001)\nuint32(4294967000)\nuint32(5)\nbyte('\\x10')\nuint16(501)\nuint16(0)\nbyte('\\x00')\nbyte('\\x04')\nuint16(1400)\nbool(true)\n")
}

func write(t *testing.T, target, name, body string) {
	dir := filepath.Join("testdata", "fuzz", target)
	want := []byte("go test fuzz v1\n" + body)
	if !testkit.Updating() {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the seed %s/%s is not as fuzzSeeds makes it (%v): go test ./packet/ -run TestSeeds -update", target, name, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), want, 0o644); err != nil {
		t.Fatal(err)
	}
}
