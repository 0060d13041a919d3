package ftp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// TestServerACCTMasked: a client's ACCT argument (RFC 959 section 4.1.1,
// an account, which may be a secret) never shows on the server: not in its
// trace's command events, nor in the JSON lines, text view or diagram made
// from them, nor in its log lines or the errors a malformed ACCT or PASS
// line gives. The server's trace used to show ACCT's argument in clear.
func TestServerACCTMasked(t *testing.T) {
	secrets := []string{"acct-s3cr3t", "lower-s3cr3t", "nul-s3cr3t", "pw-hunter2", "bare-s3cr3t"}
	events := &eventLog{}
	var logMu sync.Mutex
	var logs []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Root: t.TempDir(), Network: &OSNetwork{}, User: "alice", Password: "pw-hunter2",
		FailDelay: time.Millisecond, Observer: events.add, Logf: func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			logs = append(logs, fmt.Sprintf(format, args...))
		}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()

	c := dialRaw(t, l.Addr().String())
	c.want("USER alice", 331)
	c.want("ACCT acct-s3cr3t", 502) // nsftp's server needs no account
	c.want("acct lower-s3cr3t", 502)
	c.want("ACCT nul\x00-s3cr3t", 500)
	c.want("ACCTbare-s3cr3t", 500)
	c.want("PASS pw-hunter2", 230)
	c.want("QUIT", 221)
	c.wantClosed()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	evs := events.all()
	var commands []string
	for _, e := range evs {
		if e.Kind == trace.KindCommand {
			commands = append(commands, e.Text)
		}
	}
	if want := []string{"USER alice", "ACCT ****", "ACCT ****", "PASS ****", "QUIT"}; strings.Join(commands, "|") != strings.Join(want, "|") {
		t.Errorf("the server's command events: %q, want %q", commands, want)
	}
	var jsonl, text, svg bytes.Buffer
	jw := trace.NewJSONWriter(&jsonl)
	tv := trace.NewText(&text, trace.TextOptions{})
	for i := range evs {
		evs[i].Time = time.Unix(0, int64(i))
		jw.Event(&evs[i])
		tv.Event(&evs[i])
	}
	jw.Flush()
	tv.Flush()
	if err := trace.WriteLadder(&svg, evs, trace.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	shown := map[string]string{"events": fmt.Sprintf("%+v", evs), "JSON lines": jsonl.String(), "text view": text.String(),
		"diagram": svg.String(), "log": strings.Join(logs, "\n")}
	logMu.Unlock()
	for where, out := range shown {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("the server's %s show %q:\n%s", where, s, out)
			}
		}
	}
	if !strings.Contains(text.String(), "<- ACCT ****") {
		t.Errorf("the text view does not show the masked ACCT:\n%s", text.String())
	}
}

// TestClientRedacts: wherever the client shows a command (its trace, a
// refusal's error, a refused argument's error), PASS's and ACCT's
// argument is masked.
func TestClientRedacts(t *testing.T) {
	for _, tc := range []struct{ verb, arg, want string }{
		{"pass", "hunter2", "PASS ****"},
		{"ACCT", "s3cr3t", "ACCT ****"},
		{"PASS", "", "PASS ****"},
		{"USER", "alice", "USER alice"},
	} {
		if got := shown(tc.verb, tc.arg); got != tc.want {
			t.Errorf("shown(%q, %q) = %q, want %q", tc.verb, tc.arg, got, tc.want)
		}
	}
	err := (&ReplyError{Command: shown("ACCT", "s3cr3t"), Reply: &Reply{Code: 530, Lines: []string{"Not logged in."}}}).Error()
	if strings.Contains(err, "s3cr3t") || !strings.Contains(err, "ACCT ****") {
		t.Errorf("a refused ACCT's error: %s", err)
	}
	for _, verb := range []string{"ACCT", "pass"} {
		_, err := FormatCommand(verb, "s3cr3t\r\nDELE x")
		if !errors.Is(err, ErrBadArgument) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("FormatCommand(%s) with CRLF: %v", verb, err)
		}
	}
	_, _, err2 := ReadCommand(bufio.NewReader(strings.NewReader("ACCT s3\x00cr3t\r\n")))
	if err2 == nil || strings.Contains(err2.Error(), "cr3t") {
		t.Errorf("a malformed ACCT line's error: %v", err2)
	}
}
