package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkTAPvsCurl compares nsftp get over a TAP device with curl over
// a veth pair, downloading the same 256 MiB file from the same vsftpd in
// one run, interleaved, so that both see the same machine load:
//
//	go test ./cmd/nsftp/cli/ -run '^$' -bench TAPvsCurl -benchtime 3x
//
// Namespace A holds vsftpd, listening on all its addresses: 192.0.2.1 on
// tap0, whose other side is nsftp's stack at 192.0.2.2 (nsftp itself runs
// in this process, in the benchmark's own namespace, with --tap-netns),
// and 198.51.100.1 on a veth pair whose other end, 198.51.100.2, is in
// namespace B, where curl runs. tap0 and the veth pair have the same MTU.
// Both write the file nowhere (nsftp to a discarding standard output, curl
// to /dev/null). Each iteration is one download each way; it reports both
// rates in MB/s, and nsftp's as a fraction of curl's. The rates are of the
// data phase, first byte to last, as curl's time_starttransfer and
// time_total measure it: what it takes to open the device, start the stack
// and log in is not throughput, and the kernel may drop the first frames
// it sends to a TAP device whose carrier has just come up, which can cost
// nsftp a second of ARP retry before the first connection (the log shows
// each run's whole time too). The offload sub-benchmarks run nsftp as it
// runs by default; plain is --no-offload.
func BenchmarkTAPvsCurl(b *testing.B) {
	needTAPRoot(b, "vsftpd", "curl", "ss")
	for _, mtu := range []int{1500, 65000} {
		for _, path := range []string{"offload", "plain"} {
			b.Run(fmt.Sprintf("mtu=%d/%s", mtu, path), func(b *testing.B) {
				benchTAPvsCurl(b, mtu, path == "plain")
			})
		}
	}
}

func benchTAPvsCurl(b *testing.B, mtu int, plain bool) {
	const size = 256 << 20
	srvNS, curlNS := newLabNS(b), newLabNS(b)
	m := strconv.Itoa(mtu)
	srvNS.tap("tap0", kernelCIDR, mtu)
	srvNS.ip("link", "add", "veth0", "mtu", m, "type", "veth", "peer", "name", "veth1", "mtu", m, "netns", curlNS.name)
	srvNS.ip("addr", "add", "198.51.100.1/24", "dev", "veth0")
	srvNS.ip("link", "set", "veth0", "up")
	curlNS.ip("addr", "add", "198.51.100.2/24", "dev", "veth1")
	curlNS.ip("link", "set", "veth1", "up")
	srv := srvNS.startVsftpd("0.0.0.0")
	writeRandomFile(b, filepath.Join(srv.root, "big.bin"), size, 1)
	writeRandomFile(b, filepath.Join(srv.root, "warm.bin"), size/16, 2)

	var extra []string
	if plain {
		extra = append(extra, "--no-offload")
	}
	// Each download returns how long its data phase took and how long
	// the whole run did.
	nsftp := func(name string, want int64) (data, whole time.Duration) {
		b.Helper()
		var out timedDiscard
		var errOut bytes.Buffer
		args := append([]string{"get", "ftp://" + kernelIP + "/" + name, "-", "-q"}, srvNS.tapFlags(extra...)...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		err := Run(ctx, args, strings.NewReader(""), &out, &errOut)
		whole = time.Since(start)
		if err != nil || out.n != want {
			b.Fatalf("nsftp %s: %d of %d bytes, %v\n%s", strings.Join(args, " "), out.n, want, err, errOut.String())
		}
		return out.last.Sub(out.first), whole
	}
	curl := func(name string, want int64) (data, whole time.Duration) {
		b.Helper()
		cmd := curlNS.command("curl", "-sS", "--max-time", "300", "-o", "/dev/null",
			"-w", "%{size_download} %{time_starttransfer} %{time_total}", "ftp://198.51.100.1/"+name)
		out, err := cmd.CombinedOutput()
		var n int64
		var first, total float64
		if err == nil {
			_, err = fmt.Sscan(string(out), &n, &first, &total)
		}
		if err != nil || n != want || total <= first {
			b.Fatalf("curl %s: %d of %d bytes, %v\n%s", name, n, want, err, out)
		}
		return seconds(total - first), seconds(total)
	}
	// Warm up: ARP, the page cache, the first connections.
	nsftp("warm.bin", size/16)
	curl("warm.bin", size/16)

	var nsftpTime, curlTime time.Duration
	rounds := 0
	for b.Loop() {
		var n, nWhole, c, cWhole time.Duration
		if rounds%2 == 0 {
			n, nWhole = nsftp("big.bin", size)
			c, cWhole = curl("big.bin", size)
		} else {
			c, cWhole = curl("big.bin", size)
			n, nWhole = nsftp("big.bin", size)
		}
		b.Logf("round %d: nsftp %.0f MB/s (whole run %v), curl %.0f MB/s (whole run %v)", rounds+1,
			size/n.Seconds()/1e6, nWhole.Round(time.Millisecond), size/c.Seconds()/1e6, cWhole.Round(time.Millisecond))
		nsftpTime += n
		curlTime += c
		rounds++
	}
	nsftpRate := float64(size) * float64(rounds) / nsftpTime.Seconds() / 1e6
	curlRate := float64(size) * float64(rounds) / curlTime.Seconds() / 1e6
	b.ReportMetric(nsftpRate, "nsftp-MB/s")
	b.ReportMetric(curlRate, "curl-MB/s")
	b.ReportMetric(nsftpRate/curlRate, "ratio")
	b.ReportMetric(0, "ns/op")
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// timedDiscard is a standard output that keeps nothing, and notes how much
// it was given and when the first and the last of it came.
type timedDiscard struct {
	n           int64
	first, last time.Time
}

func (d *timedDiscard) Write(p []byte) (int, error) {
	now := time.Now()
	if d.n == 0 {
		d.first = now
	}
	d.n += int64(len(p))
	d.last = now
	return len(p), nil
}

// BenchmarkTracedTAP measures what --trace costs a bulk download over a
// TAP device: the same 1 GiB file from the same vsftpd, untraced and with
// the text trace (to a buffer, as to a file), interleaved in one run:
//
//	go test ./cmd/nsftp/cli/ -run '^$' -bench TracedTAP -benchtime 4x
//
// It reports both rates of the data phase and the traced run's time as a
// multiple of the untraced one's (the target is at most 1.1), and logs how
// many lines the trace had: bulk data is collapsed into a line a second.
func BenchmarkTracedTAP(b *testing.B) {
	needTAPRoot(b, "vsftpd")
	const size = 1 << 30
	ns := newLabNS(b)
	ns.tap("tap0", kernelCIDR, 1500)
	srv := ns.startVsftpd(kernelIP)
	writeRandomFile(b, filepath.Join(srv.root, "big.bin"), size, 1)
	writeRandomFile(b, filepath.Join(srv.root, "warm.bin"), size/64, 2)

	var sample string
	get := func(name string, want int64, traced bool) (time.Duration, int) {
		b.Helper()
		var out timedDiscard
		var errOut bytes.Buffer
		args := append([]string{"get", "ftp://" + kernelIP + "/" + name, "-", "-q"}, ns.tapFlags()...)
		if traced {
			args = append(args, "--trace")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Labelled, so that a CPU profile of the benchmark
		// (-cpuprofile) can be split: pprof -tagfocus traced=true.
		var err error
		pprof.Do(ctx, pprof.Labels("traced", strconv.FormatBool(traced)), func(ctx context.Context) {
			err = Run(ctx, args, strings.NewReader(""), &out, &errOut)
		})
		if err != nil || out.n != want {
			b.Fatalf("nsftp %s: %d of %d bytes, %v\n%.2000s", strings.Join(args, " "), out.n, want, err, errOut.String())
		}
		if traced {
			sample = errOut.String()
		}
		return out.last.Sub(out.first), strings.Count(errOut.String(), "\n")
	}
	get("warm.bin", size/64, false)
	get("warm.bin", size/64, true)
	defer func() {
		// What the trace of a bulk download looks like: its bands.
		var bands []string
		lines := strings.Split(sample, "\n")
		for i, l := range lines {
			if strings.Contains(l, "═") {
				bands = append(bands, lines[max(0, i-2):min(len(lines), i+3)]...)
			}
		}
		b.Logf("the last traced run's bands:\n%s", strings.Join(bands, "\n"))
	}()

	var plain, traced time.Duration
	rounds, lines := 0, 0
	for b.Loop() {
		var p, t time.Duration
		var n int
		if rounds%2 == 0 {
			p, _ = get("big.bin", size, false)
			t, n = get("big.bin", size, true)
		} else {
			t, n = get("big.bin", size, true)
			p, _ = get("big.bin", size, false)
		}
		b.Logf("round %d: untraced %.0f MB/s, traced %.0f MB/s (%d trace lines): %.3fx", rounds+1,
			size/p.Seconds()/1e6, size/t.Seconds()/1e6, n, t.Seconds()/p.Seconds())
		plain += p
		traced += t
		lines = n
		rounds++
	}
	b.ReportMetric(float64(size)*float64(rounds)/plain.Seconds()/1e6, "untraced-MB/s")
	b.ReportMetric(float64(size)*float64(rounds)/traced.Seconds()/1e6, "traced-MB/s")
	b.ReportMetric(traced.Seconds()/plain.Seconds(), "traced/untraced")
	b.ReportMetric(float64(lines), "trace-lines")
	b.ReportMetric(0, "ns/op")
}
