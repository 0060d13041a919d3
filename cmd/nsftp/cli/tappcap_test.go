package cli

// What nsftp's capture of a TAP device holds: every byte of every frame
// that crossed the device, as it crossed, checked with tshark; and the
// frames nsftp dropped among them, named in the trace.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsftp/nsftp/internal/testkit"
	"github.com/nsftp/nsftp/stack/stacktest"
)

func needTshark(tb testing.TB) {
	tb.Helper()
	testkit.NeedPeer(tb, "tshark")
}

// tshark runs tshark with args and returns its standard output.
func tshark(tb testing.TB, args ...string) string {
	tb.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// followRaw is what tshark reassembles of a TCP stream's bytes, both ways
// in order (-z follow,tcp,raw).
func followRaw(tb testing.TB, pcap string, stream int) []byte {
	tb.Helper()
	out := tshark(tb, "-r", pcap, "-q", "-z", fmt.Sprintf("follow,tcp,raw,%d", stream))
	var data []byte
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "=") || strings.Contains(line, ":") {
			continue // the header: Follow:, Filter:, Node 0:, Node 1:
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			tb.Fatalf("tshark's follow output has a line that is not hex: %.80q", line)
		}
		data = append(data, b...)
	}
	return data
}

// TestTAPPcapReassembles downloads a 1,000,000-byte file from vsftpd
// through tap0 on the offload path, where the kernel hands nsftp TCP
// segments of up to 64 KiB, and checks that tshark, following the data
// connection in nsftp's pcap, gets the file back byte for byte: no frame
// is cut short (a 65,226-byte frame needs a snap length above 65,128).
func TestTAPPcapReassembles(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	needTshark(t)
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP)
	const size = 1_000_000
	writeRandomFile(t, filepath.Join(srv.root, "m"), size, 6)
	want, err := os.ReadFile(filepath.Join(srv.root, "m"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pcap := filepath.Join(dir, "get.pcap")
	if _, errOut, code := ns.nsftp(t, "get", "ftp://"+kernelIP+"/m", filepath.Join(dir, "m"), "-q", "--pcap", pcap); code != 0 {
		t.Fatalf("get: exit %d: %s", code, errOut)
	}
	lens := tshark(t, "-r", pcap, "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len")
	largest := 0
	for _, line := range strings.Split(strings.TrimSpace(lens), "\n") {
		f := strings.Fields(line)
		n, _ := strconv.Atoi(f[0])
		largest = max(largest, n)
		if len(f) != 2 || f[0] != f[1] {
			t.Errorf("a frame cut short in the pcap: length %s, captured %s", f[0], f[len(f)-1])
			break
		}
	}
	t.Logf("largest frame in the pcap: %d bytes", largest)
	if largest <= 1514 {
		t.Errorf("no frame larger than the MTU: the offload path did not carry large segments")
	}
	// The data connection is the second TCP stream, after the control
	// connection.
	got := followRaw(t, pcap, 1)
	if !bytes.Equal(got, want) {
		t.Errorf("tshark reassembles %d bytes of the data connection that are not the %d-byte file", len(got), len(want))
	}
}

// TestTAPPcapNoOffload downloads through tap0 with --no-offload, where the
// kernel sends nsftp MTU-sized frames and nsftp merges them (GRO) before
// its TCP sees them, and checks that its pcap and its trace show the
// frames as they crossed the device: none over 1,514 bytes, and every
// checksum good.
func TestTAPPcapNoOffload(t *testing.T) {
	needTAPRoot(t, "vsftpd", "ss")
	needTshark(t)
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	srv := ns.startVsftpd(kernelIP)
	const size = 4 << 20
	sum := writeRandomFile(t, filepath.Join(srv.root, "m"), size, 7)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "get.pcap")
	dest := filepath.Join(dir, "m")
	_, errOut, code := ns.nsftp(t, "get", "ftp://"+kernelIP+"/m", dest, "-q", "--no-offload", "--pcap", pcap, "--trace=json")
	if code != 0 {
		t.Fatalf("get: exit %d: %.2000s", code, errOut)
	}
	if fileSHA(t, dest) != sum {
		t.Fatal("the download is not the file served")
	}
	out := tshark(t, "-r", pcap, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-e", "frame.len", "-e", "ip.checksum.status", "-e", "tcp.checksum.status")
	frames, bytesIn := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		n, _ := strconv.Atoi(f[0])
		frames++
		bytesIn += n
		if n > 1514 {
			t.Errorf("a frame of %d bytes in the pcap, over 1,514 (MTU 1500)", n)
		}
		for _, status := range f[1:] {
			// Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
			if status != "" && status != "1" {
				t.Errorf("a frame with checksum status %q in the pcap: %q", status, line)
			}
		}
	}
	if bytesIn < size {
		t.Errorf("the pcap holds %d bytes in %d frames, less than the %d-byte file", bytesIn, frames, size)
	}
	// The trace shows the same frames.
	traced := 0
	for _, line := range strings.Split(errOut, "\n") {
		if !strings.Contains(line, `"kind":"segment"`) {
			continue
		}
		traced++
		if i := strings.Index(line, `"frame":`); i >= 0 {
			n, _ := strconv.Atoi(strings.TrimRight(strings.SplitN(line[i+8:], ",", 2)[0], "}"))
			if n > 1514 {
				t.Errorf("the trace shows a frame of %d bytes: %.200s", n, line)
				break
			}
		}
	}
	// The trace ends as the session does; the pcap takes the last
	// frames (a FIN's ACK) until the device closes.
	if traced > frames || traced < frames-10 {
		t.Errorf("the trace shows %d frames, the pcap %d", traced, frames)
	}
}

// TestTAPDroppedFramesCaptured serves on tap0 and writes frames onto the
// device from the kernel's side: a TCP segment with a bad checksum and a
// SYN to a port where nothing listens. Both must be in the pcap, byte for
// byte, and the trace must name each as dropped, and why.
func TestTAPDroppedFramesCaptured(t *testing.T) {
	needTAPRoot(t, "ss")
	stacktest.CheckGoroutines(t)
	ns := newLabNS(t)
	ns.tap("tap0", kernelCIDR, 0)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "serve.pcap")
	const mac = "02:00:00:00:00:02"
	srv := startServeTAP(t, ns, t.TempDir(), "--mac", mac, "--pcap", pcap, "--trace")
	raw := ns.openRaw("tap0")
	defer raw.close()
	dst, _ := net.ParseMAC(mac)
	badSum := tcpFrame(raw.mac, dst, kernelIP, nsftpIP, 40001, 21, tcpSYN, 1)
	badSum[len(badSum)-1] ^= 0xff // a byte of the TCP options: only the checksum covers it
	noSocket := tcpFrame(raw.mac, dst, kernelIP, nsftpIP, 40002, 2121, tcpSYN, 2)
	for _, f := range [][]byte{badSum, noSocket} {
		if err := raw.send(f); err != nil {
			t.Fatal(err)
		}
	}
	// The SYN to port 2121 is answered with a reset: when it has gone
	// out, both frames are in.
	time.Sleep(500 * time.Millisecond)
	srv.stop(t)
	trace := srv.stderr.String()
	for _, want := range []string{"✗ dropped (bad TCP checksum): SYN", "✗ dropped (no socket): SYN"} {
		if !strings.Contains(trace, want) {
			t.Errorf("the trace does not say %q:\n%s", want, trace)
		}
	}
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string][]byte{"the bad checksum's": badSum, "the SYN to no socket's": noSocket} {
		if !bytes.Contains(b, f) {
			t.Errorf("%s frame is not in the pcap", name)
		}
	}
}

// rawLink writes Ethernet frames onto a device from the kernel's side, as
// if they came in from a network: a packet socket bound to the device,
// inside the namespace.
type rawLink struct {
	fd  int
	sa  unix.SockaddrLinklayer
	mac net.HardwareAddr
}

// openRaw opens a packet socket on name inside the namespace.
func (ns *labNS) openRaw(name string) *rawLink {
	ns.tb.Helper()
	r := &rawLink{fd: -1}
	err := ns.inside(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		// Protocol 0: the socket receives nothing. Bound to the device,
		// it sends there with write(2) and sendmmsg(2), straight to the
		// device's queue (no qdisc).
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		r.fd, r.mac = fd, ifi.HardwareAddr
		r.sa = unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		if err := unix.Bind(fd, &r.sa); err != nil {
			unix.Close(fd)
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		return nil
	})
	if err != nil {
		ns.tb.Fatalf("packet socket on %s: %v", name, err)
	}
	return r
}

func (r *rawLink) send(frame []byte) error { return unix.Sendto(r.fd, frame, 0, &r.sa) }

// sendBatch writes frames with one sendmmsg(2) call per batch of them,
// and returns how many of them the device's queue was too full to take
// (ENOBUFS): what a NIC drops when its reader falls behind.
func (r *rawLink) sendBatch(frames [][]byte) (dropped int, err error) {
	iov := make([]unix.Iovec, len(frames))
	msgs := make([]unix.Mmsghdr, len(frames))
	for i, f := range frames {
		iov[i] = unix.Iovec{Base: &f[0]}
		iov[i].SetLen(len(f))
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	for len(msgs) > 0 {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch {
		case errno == unix.ENOBUFS || errno == unix.EAGAIN:
			dropped++
			msgs = msgs[1:]
		case errno != 0:
			return dropped, errno
		default:
			msgs = msgs[n:]
		}
	}
	return dropped, nil
}

func (r *rawLink) close() { unix.Close(r.fd) }

const tcpSYN = 0x02

// inetSum is the Internet checksum's ones'-complement sum of b (RFC 1071).
func inetSum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// tcpFrame builds an Ethernet frame holding a TCP segment with no data
// and an MSS option, checksums filled in.
func tcpFrame(src, dst net.HardwareAddr, srcIP, dstIP string, sport, dport uint16, flags uint8, seq uint32) []byte {
	s4, d4 := net.ParseIP(srcIP).To4(), net.ParseIP(dstIP).To4()
	const ipLen, tcpLen = 20, 24
	b := make([]byte, 14+ipLen+tcpLen)
	copy(b[0:], dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14 : 14+ipLen]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], ipLen+tcpLen)
	ip[8], ip[9] = 64, 6
	copy(ip[12:], s4)
	copy(ip[16:], d4)
	binary.BigEndian.PutUint16(ip[10:], ^inetSum(ip))
	tcp := b[14+ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = tcpLen / 4 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	pseudo := slices.Concat(s4, d4, []byte{0, 6, 0, tcpLen})
	binary.BigEndian.PutUint16(tcp[16:], ^inetSum(slices.Concat(pseudo, tcp)))
	return b
}
