package stacktest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/trace"
)

// ArtifactsEnv names the environment variable that says where a failed
// test's recording goes: $NSFTP_ARTIFACTS/<test name>/. Unset, it goes to
// a new temporary directory.
const ArtifactsEnv = "NSFTP_ARTIFACTS"

// recording is a test network's run as it happens: every event of its
// hosts and wire as JSON lines, every frame on the wire as pcap, both in
// the test's temporary directory, which the testing package removes. A
// failed test's are copied out before that (save).
type recording struct {
	dir       string
	rec       *trace.Recorder
	jsonFile  *os.File
	pcapFile  *os.File
	pcapBuf   *bufio.Writer
	userPCAP  io.Writer
	recording bool
}

// newRecording starts recording a test network, its events stamped with
// the network's clock, unless tb is a benchmark, whose figures recording
// would change.
func newRecording(tb testing.TB, clock *stack.Clock) (*recording, error) {
	r := &recording{}
	if _, bench := tb.(*testing.B); bench {
		return r, nil
	}
	r.dir = tb.TempDir()
	var err error
	if r.jsonFile, err = os.Create(filepath.Join(r.dir, "run.jsonl")); err != nil {
		return nil, err
	}
	if r.pcapFile, err = os.Create(filepath.Join(r.dir, "run.pcap")); err != nil {
		r.jsonFile.Close()
		return nil, err
	}
	r.pcapBuf = bufio.NewWriterSize(r.pcapFile, 64<<10)
	r.rec = trace.NewRecorderOn(clock, trace.NewJSONWriter(r.jsonFile))
	r.rec.Record(trace.Event{Layer: trace.LayerRun, Kind: trace.KindRun, Run: &trace.Run{Title: tb.Name()}})
	r.recording = true
	return r, nil
}

// networkClock is the clock a test network will run on: the one its
// config names, or a new one at real speed, closed when the test ends,
// so that the recording's times are the network's.
func networkClock(tb testing.TB, given *stack.Clock, wire stack.WireConfig, hosts ...stack.HostConfig) *stack.Clock {
	c := given
	if c == nil {
		c = wire.Clock
	}
	for _, h := range hosts {
		if c == nil {
			c = h.Clock
		}
	}
	if c == nil {
		c, _ = stack.NewClock(stack.ClockConfig{})
		tb.Cleanup(c.Close) // after the network's own cleanup
	}
	return c
}

// wire makes cfg record into r as well as where it already goes.
func (r *recording) wire(cfg stack.WireConfig) stack.WireConfig {
	if !r.recording {
		return cfg
	}
	cfg.Observer = r.tee(cfg.Observer)
	if cfg.PCAP != nil {
		cfg.PCAP = io.MultiWriter(cfg.PCAP, r.pcapBuf)
	} else {
		cfg.PCAP = r.pcapBuf
	}
	return cfg
}

// host makes cfg record into r as well as where it already goes.
func (r *recording) host(cfg stack.HostConfig) stack.HostConfig {
	if r.recording {
		cfg.Observer = r.tee(cfg.Observer)
	}
	return cfg
}

func (r *recording) tee(obs trace.Observer) trace.Observer {
	if obs == nil {
		return r.rec.Record
	}
	return func(e trace.Event) {
		obs(e)
		r.rec.Record(e)
	}
}

// finish ends the recording once the network is closed and, if the test
// failed, copies it out of the temporary directory and says where.
func (r *recording) finish(tb testing.TB) {
	if !r.recording {
		return
	}
	r.rec.Record(trace.Event{Layer: trace.LayerRun, Kind: trace.KindEnd})
	err := errors.Join(r.rec.Stop(), r.pcapBuf.Flush(), r.jsonFile.Close(), r.pcapFile.Close())
	if !tb.Failed() {
		return
	}
	if err != nil {
		tb.Logf("stacktest: the run's recording is incomplete: %v", err)
	}
	dir, err := artifactDir(tb.Name())
	if err != nil {
		tb.Logf("stacktest: keeping the run's recording: %v", err)
		return
	}
	var paths []string
	for _, name := range []string{"run.pcap", "run.jsonl"} {
		to := filepath.Join(dir, name)
		if err := copyFile(filepath.Join(r.dir, name), to); err != nil {
			tb.Logf("stacktest: keeping the run's recording: %v", err)
			return
		}
		paths = append(paths, to)
	}
	tb.Logf("stacktest: the failed run is recorded:\n\tframes: %s\n\tevents: %s\n\tshow it: go run github.com/nsftp/nsftp/cmd/nsftp show %s",
		paths[0], paths[1], paths[1])
}

// unsafeName matches what a test name may hold that a file name should
// not (subtests are "Test/sub").
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir makes the directory a failed test's recording goes to.
func artifactDir(testName string) (string, error) {
	name := strings.Trim(unsafeName.ReplaceAllString(testName, "_"), "_")
	base := os.Getenv(ArtifactsEnv)
	if base == "" {
		return os.MkdirTemp("", "nsftp-"+name+"-")
	}
	dir := filepath.Join(base, name)
	return dir, os.MkdirAll(dir, 0o755)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", from, err)
	}
	return out.Close()
}
