package trace_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nsftp/nsftp/trace"
)

// TestRedactCommand: RFC 959 section 4.1.1's PASS ("the user's password")
// and ACCT ("the user's account") lose their argument, in any case,
// without one, and on a line that only starts like them; other commands
// keep theirs.
func TestRedactCommand(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"PASS hunter2", "PASS ****"},
		{"pass hunter2", "pass ****"},
		{"ACCT s3cr3t", "ACCT ****"},
		{"Acct s3cr3t with spaces ", "Acct ****"},
		{"PASS", "PASS ****"},
		{"PASS ", "PASS ****"},
		{"PASS ****", "PASS ****"},
		{"  PASS hunter2", "  PASS ****"},
		{"PASShunter2", "PASS ****"},
		{"ACCT\x00s3cr3t", "ACCT ****"},
		{"USER alice", "USER alice"},
		{"PASV", "PASV"},
		{"PAS", "PAS"},
		{"RETR PASS hunter2", "RETR PASS hunter2"},
		{"", ""},
	} {
		if got := trace.RedactCommand(tc.in); got != tc.want {
			t.Errorf("RedactCommand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestViewsRedact: a command recorded with its secret in clear, by a
// recorder that forgot to mask it, is masked in every view: the JSON
// lines, the text view, the diagram and compare.
func TestViewsRedact(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 21, 46, 47, 0, time.UTC)
	var evs []trace.Event
	for i, text := range []string{"USER alice", "PASS hunter2", "acct s3cr3t"} {
		for _, side := range []trace.Role{trace.Client, trace.Server} {
			evs = append(evs, trace.Event{Seq: uint64(len(evs) + 1), Time: t0.Add(time.Duration(i) * time.Millisecond), Layer: trace.LayerFTP,
				Kind: trace.KindCommand, Message: &trace.Message{Side: side, Conn: trace.Control, Text: text}})
		}
	}
	var jsonl, text, svg, cmp bytes.Buffer
	jw := trace.NewJSONWriter(&jsonl)
	tv := trace.NewText(&text, trace.TextOptions{})
	for i := range evs {
		jw.Event(&evs[i])
		tv.Event(&evs[i])
	}
	jw.Flush()
	tv.Flush()
	if err := trace.WriteLadder(&svg, evs, trace.LadderOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := trace.WriteCompare(&cmp, evs, evs, trace.CompareOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"JSON": jsonl.String(), "text": text.String(), "diagram": svg.String(), "compare": cmp.String()} {
		for _, secret := range []string{"hunter2", "s3cr3t"} {
			if strings.Contains(out, secret) {
				t.Errorf("the %s view shows %q:\n%s", name, secret, out)
			}
		}
		if !strings.Contains(out, "alice") || !strings.Contains(out, "****") {
			t.Errorf("the %s view lost the commands:\n%s", name, out)
		}
	}
	if evs[2].Text != "PASS hunter2" {
		t.Errorf("writing JSON changed the event it was given: %q", evs[2].Text)
	}
}
