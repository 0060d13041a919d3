package ftp

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServerMLSTFacts: OPTS MLST chooses the facts MLSD and MLST send
// (RFC 3659 section 7.9): the reply names those the server will use, FEAT
// stars them, facts it does not know are ignored, and an empty list sends
// none.
func TestServerMLSTFacts(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	writeTree(t, ts.root, map[string]string{"f": "12345"})
	mtime := time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)
	os.Chtimes(filepath.Join(ts.root, "f"), mtime, mtime)
	c := dialRaw(t, ts.addr)
	c.login()
	for _, tc := range []struct {
		rfc, opts, reply, feat, mlst string
	}{
		{"RFC 3659 7.9", "OPTS MLST type;size;", "200 MLST OPTS type;size;", " MLST type*;size*;modify;perm;", " type=file;size=5; /f"},
		{"RFC 3659 7.9: any case, order and unknown facts", "OPTS MLST Modify;UNIX.mode;TYPE;", "200 MLST OPTS type;modify;",
			" MLST type*;size;modify*;perm;", " type=file;modify=20220304050607; /f"},
		{"RFC 3659 7.9: none", "OPTS MLST", "200 MLST OPTS", " MLST type;size;modify;perm;", "  /f"},
		{"RFC 3659 7.9: all again", "OPTS MLST type;size;modify;perm;", "200 MLST OPTS type;size;modify;perm;",
			" MLST type*;size*;modify*;perm*;", " type=file;size=5;modify=20220304050607;perm=r; /f"},
	} {
		if r := c.cmd(tc.opts); r.String() != tc.reply {
			t.Errorf("%s: %s: %q, want %q", tc.rfc, tc.opts, r.String(), tc.reply)
		}
		if r := c.want("FEAT", 211); !slices.Contains(r.Lines, tc.feat) {
			t.Errorf("%s: after %s, FEAT lacks %q: %q", tc.rfc, tc.opts, tc.feat, r.Lines)
		}
		if r := c.want("MLST f", 250); len(r.Lines) != 3 || r.Lines[1] != tc.mlst {
			t.Errorf("%s: after %s, MLST f: %q, want %q", tc.rfc, tc.opts, r.Lines, tc.mlst)
		}
		data, _, final := c.retrieve("EPSV", "MLSD")
		want := strings.TrimPrefix(tc.mlst, " ")
		want = strings.Replace(want, "/f", "f", 1) + "\r\n"
		if string(data) != want || final.Code != 226 {
			t.Errorf("%s: after %s, MLSD: %q, want %q", tc.rfc, tc.opts, data, want)
		}
	}
}

// TestServerMFMT: MFMT and MFF (draft-somers-ftp-mfxx) set a file's
// modification time, in UTC, as mirroring clients do after an upload, and
// MDTM shows it after; both need a valid time and a name in the root.
func TestServerMFMT(t *testing.T) {
	ts := startTestServer(t, ServerConfig{Write: true})
	writeTree(t, ts.root, map[string]string{"f": "x", "with space": "y"})
	c := dialRaw(t, ts.addr)
	c.login()
	if r := c.want("FEAT", 211); !slices.Contains(r.Lines, " MFMT") {
		t.Errorf("FEAT lacks MFMT: %q", r.Lines)
	}
	for _, tc := range []struct {
		line, want string
		mtime      time.Time // of the file named, after; zero if unchanged
		name       string
	}{
		{"MFMT 20200102030405 f", "213 Modify=20200102030405; /f", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), "f"},
		{"MFMT 20190807060504.25 with space", "213 Modify=20190807060504; /with space", time.Date(2019, 8, 7, 6, 5, 4, 250e6, time.UTC), "with space"},
		{"MFF modify=20180101000000; f", "213 modify=20180101000000; /f", time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC), "f"},
		{"MFF modify=20170101000000;perm=r; f", "504", time.Time{}, ""},
		{"MFMT 2020010203040 f", "501", time.Time{}, ""},
		{"MFMT 20201302030405 f", "501", time.Time{}, ""},
		{"MFMT 20200102030405", "501", time.Time{}, ""},
		{"MFMT 20200102030405 nothere", "550", time.Time{}, ""},
		{"MFMT 20200102030405 ../../etc/passwd", "550", time.Time{}, ""},
	} {
		r := c.cmd(tc.line)
		if got := r.String(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.line, got, tc.want)
		}
		if tc.name == "" {
			continue
		}
		fi, err := os.Stat(filepath.Join(ts.root, tc.name))
		if err != nil || !fi.ModTime().Equal(tc.mtime) {
			t.Errorf("%s: the file's time is %v (%v), want %v", tc.line, fi.ModTime().UTC(), err, tc.mtime)
		}
	}
	if r := c.cmd("MDTM f"); r.String() != "213 20180101000000" {
		t.Errorf("MDTM f after MFF: %q", r.String())
	}

}

// TestServerMFMTReadOnly: a read-only server neither offers MFMT nor
// takes it, nor SITE CHMOD.
func TestServerMFMTReadOnly(t *testing.T) {
	ro := startTestServer(t, ServerConfig{})
	writeTree(t, ro.root, map[string]string{"f": "x"})
	c := dialRaw(t, ro.addr)
	c.login()
	if r := c.want("FEAT", 211); slices.Contains(r.Lines, " MFMT") {
		t.Errorf("a read-only server offers MFMT: %q", r.Lines)
	}
	c.want("MFMT 20200102030405 f", 550)
	c.want("SITE CHMOD 600 f", 550)
}

// TestServerOPTSBeforeLogin: clients send OPTS UTF8 ON before USER, and
// vsftpd accepts it (RFC 2640 section 3.3 has clients ask for UTF8 first
// thing); other commands still need a login.
func TestServerOPTSBeforeLogin(t *testing.T) {
	ts := startTestServer(t, ServerConfig{})
	c := dialRaw(t, ts.addr)
	c.want("OPTS UTF8 ON", 200)
	c.want("PWD", 530)
	c.login()
	c.want("PWD", 257)
}
