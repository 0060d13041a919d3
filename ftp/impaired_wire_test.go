package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsftp/nsftp/ftp"
	"github.com/nsftp/nsftp/stack"
	"github.com/nsftp/nsftp/stack/stacktest"
	"github.com/nsftp/nsftp/trace"
)

// impairedSize is how much each transfer of TestImpairedWire moves.
var impairedSize = flag.Int("impaired-size", 512<<10, "bytes per transfer in TestImpairedWire")

// TestImpairedWire moves files both ways, passive and active, over a
// virtual wire that loses, duplicates, reorders and corrupts frames, with a
// few seeds. TCP must hide all of it: every transfer ends byte-identical,
// or, if it fails, fails cleanly (an incomplete transfer or a timeout) and
// leaves the destination as it was. Both ends give up after 5s without
// progress, which bounds the test when the stack's retransmission timer
// has backed off for longer than that. Bigger transfers:
//
//	go test ./ftp/ -run ImpairedWire -v -impaired-size 4194304
func TestImpairedWire(t *testing.T) {
	if testing.Short() {
		t.Skip("moves megabytes over a lossy wire")
	}
	// The settings run in parallel, since they spend most of their time
	// waiting for retransmission timers; so the goroutine check is the
	// parent's.
	stacktest.CheckGoroutines(t)
	size := *impairedSize
	for _, wc := range []stack.WireConfig{
		{Path: stack.Path{Loss: 5, Duplicate: 2, Reorder: 2, Corrupt: 1}, Seed: 2},
		{Path: stack.Path{Loss: 10, Duplicate: 2, Reorder: 2, Corrupt: 1}, Seed: 3},
		{Path: stack.Path{Loss: 10, Duplicate: 2, Reorder: 2, Corrupt: 1}, Seed: 4},
	} {
		w := wc.Path
		name := fmt.Sprintf("loss=%v,dup=%v,reorder=%v,corrupt=%v,seed=%d", w.Loss, w.Duplicate, w.Reorder, w.Corrupt, wc.Seed)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// A short minimum RTO keeps retransmissions quick on a wire
			// whose round trip is microseconds; it changes how long TCP
			// waits, not what it does.
			fast := stack.HostConfig{MinRTO: 10 * time.Millisecond}
			p := stacktest.Pair(t, stack.PairConfig{Wire: wc, Client: fast, Server: fast})
			root := t.TempDir()
			want := randomData(size, wc.Seed)
			if err := os.WriteFile(filepath.Join(root, "big"), want, 0o644); err != nil {
				t.Fatal(err)
			}
			addr := serveImpaired(t, p, root)
			ok, failed := 0, 0
			count := func(err error) {
				if err == nil {
					ok++
				} else {
					failed++
				}
			}
			for _, active := range []bool{false, true} {
				mode := map[bool]string{false: "passive", true: "active"}[active]
				cfg := ftp.ClientConfig{Network: p.Client, Active: active,
					ConnectTimeout: 10 * time.Second, ReplyTimeout: 10 * time.Second,
					AcceptTimeout: 10 * time.Second, DataTimeout: 5 * time.Second}
				c, err := ftp.Dial(context.Background(), addr, cfg)
				if err == nil {
					err = c.Login(context.Background(), "", "")
				}
				if err != nil {
					// Even the control connection may fail on such a
					// wire; it must say why.
					if !cleanFailure(err) && ftp.Classify(err) == ftp.ClassOther {
						t.Errorf("%s: session failed with an unclassified error: %v", mode, err)
					}
					t.Logf("%s: no session: %v", mode, err)
					continue
				}
				start := time.Now()
				err = getChecked(t, c, "big", want)
				count(err)
				t.Logf("%s RETR %d bytes in %v: %v", mode, size, time.Since(start).Round(time.Millisecond), errOrOK(err))

				start = time.Now()
				up := randomData(size, wc.Seed+100)
				name := "up-" + mode
				_, err = c.Store(context.Background(), name, bytes.NewReader(up))
				count(err)
				stored, _ := os.ReadFile(filepath.Join(root, name))
				switch {
				case err == nil && !bytes.Equal(stored, up):
					t.Errorf("%s STOR succeeded but the server holds %d different bytes", mode, len(stored))
				case err != nil && !cleanFailure(err):
					t.Errorf("%s STOR failed uncleanly: %v", mode, err)
				}
				t.Logf("%s STOR %d bytes in %v: %v", mode, size, time.Since(start).Round(time.Millisecond), errOrOK(err))
				qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c.Quit(qctx)
				cancel()
			}
			st := p.Wire.Stats()
			t.Logf("%d of %d transfers byte-identical, %d failed cleanly; wire: %d frames, %d lost, %d duplicated, %d reordered, %d corrupted",
				ok, ok+failed, failed, st.Frames, st.Lost, st.Duplicated, st.Reordered, st.Corrupted)
			if st.Lost == 0 || st.Corrupted == 0 {
				t.Errorf("the wire impaired nothing: %+v", st)
			}
		})
	}
}

// serveImpaired serves root anonymously on p's server host, giving up on
// a data connection after 5s without progress.
func serveImpaired(t *testing.T, p *stack.Pair, root string) string {
	t.Helper()
	srv, err := ftp.NewServer(ftp.ServerConfig{Root: root, Write: true, Anonymous: true, Network: p.Server, DataTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Server.Listen(trace.WithLabel(context.Background(), "control"), "tcp", "192.0.2.2:21")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "192.0.2.2:21"
}

func errOrOK(err error) string {
	if err == nil {
		return "byte-identical"
	}
	return "failed cleanly: " + err.Error()
}

// getChecked downloads remote into a destination that holds older
// contents and checks the outcome: the exact bytes, or a clean failure
// with the old contents intact and nothing left beside them. It returns
// the download's error.
func getChecked(t *testing.T, c *ftp.Client, remote string, want []byte) error {
	t.Helper()
	dir := t.TempDir()
	destPath := filepath.Join(dir, remote)
	old := []byte("the previous version\n")
	os.WriteFile(destPath, old, 0o644)
	d, err := ftp.CreateDest(destPath, remote, ftp.DestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Retrieve(context.Background(), remote, 0, d)
	if err == nil {
		err = d.Commit()
	} else {
		d.Abort()
	}
	got, _ := os.ReadFile(destPath)
	switch {
	case err == nil && !bytes.Equal(got, want):
		t.Errorf("RETR succeeded with %d bytes that differ from the %d served", len(got), len(want))
	case err != nil && !cleanFailure(err):
		t.Errorf("RETR failed uncleanly: %v", err)
	case err != nil && !bytes.Equal(got, old):
		t.Errorf("RETR failed (%v) and changed the destination", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries beside the destination", len(entries)-1)
	}
	return err
}

// cleanFailure: the failures a lossy wire may cause, each with its exit
// code.
func cleanFailure(err error) bool {
	return errors.Is(err, ftp.ErrIncomplete) || ftp.Classify(err) == ftp.ClassTimeout
}
