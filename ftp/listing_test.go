package ftp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func date(y int, m time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, m, d, h, mi, s, ns, time.UTC)
}

func TestParseMLSDLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Entry
	}{
		// RFC 3659 section 7.2: facts separated by ';', then SP, then the name.
		{"basic", "type=file;size=12;modify=20260102150405;perm=r; name",
			Entry{Name: "name", Type: "file", Size: 12, ModTime: date(2026, 1, 2, 15, 4, 5, 0), Perm: "r",
				Facts: map[string]string{"type": "file", "size": "12", "modify": "20260102150405", "perm": "r"}}},
		// RFC 3659 section 7.1: fact names are case-insensitive; section 2.3: optional fraction.
		{"case and fraction", "Type=DIR;Modify=20260102150405.123;UNIX.mode=0755; my dir",
			Entry{Name: "my dir", Type: "dir", Size: -1, ModTime: date(2026, 1, 2, 15, 4, 5, 123000000),
				Facts: map[string]string{"type": "DIR", "modify": "20260102150405.123", "unix.mode": "0755"}}},
		// RFC 3659 section 7.2: the name is everything after the first space, spaces and ';' included.
		{"name with ; and spaces", "type=file;size=1; a;b c=d;  e ",
			Entry{Name: "a;b c=d;  e ", Type: "file", Size: 1, Facts: map[string]string{"type": "file", "size": "1"}}},
		// RFC 3659 section 7.2: facts are optional.
		{"no facts", " lonely",
			Entry{Name: "lonely", Size: -1, Facts: map[string]string{}}},
		// Lenient: the final ';' is sometimes missing.
		{"no final semicolon", "type=file;size=3 x",
			Entry{Name: "x", Type: "file", Size: 3, Facts: map[string]string{"type": "file", "size": "3"}}},
		// RFC 3659 section 7.5.1: cdir and pdir; OS-specific types keep their detail.
		{"cdir", "type=cdir;perm=el; .",
			Entry{Name: ".", Type: "cdir", Size: -1, Perm: "el", Facts: map[string]string{"type": "cdir", "perm": "el"}}},
		{"os type", "type=OS.unix=slink:/Some/Target;size=0; link",
			Entry{Name: "link", Type: "os.unix=slink:/Some/Target", Size: 0,
				Facts: map[string]string{"type": "OS.unix=slink:/Some/Target", "size": "0"}}},
		// RFC 3659 section 2.3: fractions beyond nanoseconds are cut.
		{"long fraction", "modify=19991231235959.1234567891; y",
			Entry{Name: "y", Size: -1, ModTime: date(1999, 12, 31, 23, 59, 59, 123456789),
				Facts: map[string]string{"modify": "19991231235959.1234567891"}}},
		// Empty values are allowed (value = *SCHAR).
		{"empty value", "perm=;unique=; z",
			Entry{Name: "z", Size: -1, Facts: map[string]string{"perm": "", "unique": ""}}},
	}
	for _, tt := range tests {
		got, err := ParseMLSDLine(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseMLSDLine(%q) =\n %+v, %v\nwant\n %+v", tt.name, tt.in, got, err, tt.want)
		}
	}
}

func TestParseMLSDLineErrors(t *testing.T) {
	// RFC 3659 section 7.2 grammar violations, and values that break section 2.3 / 7.5.
	for _, in := range []string{
		"type=file;size=1;name",                  // no space before the name
		"type=file;size=1; ",                     // empty name
		"",                                       // empty line
		"type=file;size=-1; x",                   // negative size
		"type=file;size=+1; x",                   // signed size
		"type=file;size=1k; x",                   // non-numeric size
		"type=file;size=; x",                     // empty size
		"type=file;size=99999999999999999999; x", // overflow
		"modify=2026010215040; x",                // 13 digits
		"modify=20261302150405; x",               // month 13
		"modify=20260230150405; x",               // February 30th
		"modify=20260102250405; x",               // hour 25
		"modify=20260102150405.; x",              // empty fraction
		"modify=20260102150405.1a; x",            // bad fraction
		"modify=2026-01-02T15:04:05Z; x",         // wrong format
		"type;size=1; x",                         // fact without '='
		"=file; x",                               // empty fact name
		"type=file;;size=1; x",                   // empty fact
		"size=1;Size=2; x",                       // repeated fact
		"type=file; x\r",                         // CR
		"type=file; a\x00b",                      // NUL
		"type=file; a\nb",                        // LF
	} {
		got, err := ParseMLSDLine(in)
		if err == nil {
			t.Errorf("ParseMLSDLine(%q) = %+v, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseMLSDLine(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatMLSDLine(t *testing.T) {
	tests := []struct {
		in   Entry
		want string
	}{
		// RFC 3659 section 7.2.
		{Entry{Name: "name", Type: "file", Size: 12, ModTime: date(2026, 1, 2, 15, 4, 5, 0), Perm: "r"},
			"type=file;size=12;modify=20260102150405;perm=r; name"},
		{Entry{Name: "d", Type: "dir", Size: -1, ModTime: time.Date(2026, 1, 2, 16, 4, 5, 500000000, time.FixedZone("X", 3600))},
			"type=dir;modify=20260102150405.5; d"},
		{Entry{Name: "a b;c", Size: -1, Facts: map[string]string{"unique": "x1", "type": "ignored", "bad;": "v", "k": "a b", "unix.mode": "0644"}},
			"unique=x1;unix.mode=0644; a b;c"},
		{Entry{Name: "n", Size: 0}, "size=0; n"},
	}
	for _, tt := range tests {
		got := FormatMLSDLine(tt.in)
		if got != tt.want {
			t.Errorf("FormatMLSDLine(%+v) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParseMLSDLine(got)
		if err != nil || back.Name != tt.in.Name || back.Size != tt.in.Size || !back.ModTime.Equal(tt.in.ModTime) {
			t.Errorf("ParseMLSDLine(%q) = %+v, %v", got, back, err)
		}
	}
}

// listNow is the "now" of the LIST tests: 2026-03-15 12:00 UTC.
var listNow = date(2026, 3, 15, 12, 0, 0, 0)

func TestParseListLineUnix(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Entry
	}{
		{"dir with time", "drwxr-xr-x    2 user     group        4096 Jan  2 15:04 name",
			Entry{Name: "name", Type: "dir", Size: 4096, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "drwxr-xr-x"}},
		{"file with year and spaces in name", "-rw-r--r--   1 user group 1234 Jan  2  2024 file name.txt",
			Entry{Name: "file name.txt", Type: "file", Size: 1234, ModTime: date(2024, 1, 2, 0, 0, 0, 0), Perm: "-rw-r--r--"}},
		{"leading and trailing spaces in name", "-rw-r--r--   1 user group 1 Jan  2  2024  sp ",
			Entry{Name: " sp ", Type: "file", Size: 1, ModTime: date(2024, 1, 2, 0, 0, 0, 0), Perm: "-rw-r--r--"}},
		{"no group column", "-rw-r--r-- 1 user 1234 Jan  2 15:04 f",
			Entry{Name: "f", Type: "file", Size: 1234, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
		{"no link count", "-rw-r--r-- user group 1234 Jan  2 15:04 f",
			Entry{Name: "f", Type: "file", Size: 1234, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
		{"numeric owner", "-rw-r--r-- 1 1000 1000 5 Mar 15 11:59 f",
			Entry{Name: "f", Type: "file", Size: 5, ModTime: date(2026, 3, 15, 11, 59, 0, 0), Perm: "-rw-r--r--"}},
		{"owner named like a month", "-rw-r--r-- 1 jan 12 100 Feb  3 09:00 f",
			Entry{Name: "f", Type: "file", Size: 100, ModTime: date(2026, 2, 3, 9, 0, 0, 0), Perm: "-rw-r--r--"}},
		{"date-like name", "-rw-r--r-- 1 u g 5 Jan  2 15:04 Feb  3 12:00 x",
			Entry{Name: "Feb  3 12:00 x", Type: "file", Size: 5, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
		{"symlink", "lrwxrwxrwx 1 root root 7 Jan  2 15:04 bin -> usr/bin",
			Entry{Name: "bin", Type: "link", Size: 7, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "lrwxrwxrwx", Target: "usr/bin"}},
		{"symlink with spaces", "lrwxrwxrwx 1 root root 7 Jan  2 15:04 my link -> my target -> x",
			Entry{Name: "my link", Type: "link", Size: 7, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "lrwxrwxrwx", Target: "my target -> x"}},
		{"arrow in a file name is kept", "-rw-r--r-- 1 u g 5 Jan  2 15:04 a -> b",
			Entry{Name: "a -> b", Type: "file", Size: 5, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
		{"char device", "crw-rw---- 1 root disk 8, 1 Jan  2 15:04 sda1",
			Entry{Name: "sda1", Size: -1, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "crw-rw----"}},
		{"block device", "brw-rw---- 1 root disk 8,1 Jan  2 15:04 sda1",
			Entry{Name: "sda1", Size: -1, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "brw-rw----"}},
		{"ACL marker", "-rw-r--r--+ 1 u g 1 Jan  2 15:04 f",
			Entry{Name: "f", Type: "file", Size: 1, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--+"}},
		{"setuid sticky", "drwxrwxrwt 9 root root 180 Mar  1 10:00 tmp",
			Entry{Name: "tmp", Type: "dir", Size: 180, ModTime: date(2026, 3, 1, 10, 0, 0, 0), Perm: "drwxrwxrwt"}},
		{"long-iso", "drwxr-xr-x 2 u g 4096 2024-01-02 15:04 d",
			Entry{Name: "d", Type: "dir", Size: 4096, ModTime: date(2024, 1, 2, 15, 4, 0, 0), Perm: "drwxr-xr-x"}},
		{"dot", "drwxr-xr-x 2 u g 4096 Jan  2 15:04 .",
			Entry{Name: ".", Type: "cdir", Size: 4096, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "drwxr-xr-x"}},
		{"dotdot", "drwxr-xr-x 2 u g 4096 Jan  2 15:04 ..",
			Entry{Name: "..", Type: "pdir", Size: 4096, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "drwxr-xr-x"}},
		{"trailing CR", "-rw-r--r-- 1 u g 1 Jan  2 15:04 f\r",
			Entry{Name: "f", Type: "file", Size: 1, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
		{"huge size", "-rw-r--r-- 1 u g 9223372036854775807 Jan  2 15:04 big",
			Entry{Name: "big", Type: "file", Size: 1<<63 - 1, ModTime: date(2026, 1, 2, 15, 4, 0, 0), Perm: "-rw-r--r--"}},
	}
	for _, tt := range tests {
		got, err := ParseListLine(tt.in, listNow)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseListLine(%q) =\n %+v, %v\nwant\n %+v", tt.name, tt.in, got, err, tt.want)
		}
	}
}

func TestParseListLineYear(t *testing.T) {
	// ls shows a time instead of a year for recent files; the year is the
	// latest that puts the date no more than six months after now.
	tests := []struct {
		now  time.Time
		in   string
		want time.Time
	}{
		{listNow, "Mar 15 11:00", date(2026, 3, 15, 11, 0, 0, 0)},
		{listNow, "Sep  1 10:00", date(2026, 9, 1, 10, 0, 0, 0)},  // 5.5 months ahead: this year
		{listNow, "Oct  1 10:00", date(2025, 10, 1, 10, 0, 0, 0)}, // 6.5 months ahead: last year
		{date(2026, 1, 1, 0, 30, 0, 0), "Dec 31 23:59", date(2025, 12, 31, 23, 59, 0, 0)},
		{date(2025, 12, 31, 23, 0, 0, 0), "Jan  1 00:10", date(2026, 1, 1, 0, 10, 0, 0)}, // server clock ahead
		{listNow, "Feb 29 12:00", date(2024, 2, 29, 12, 0, 0, 0)},                        // latest leap year
		{date(2028, 3, 1, 0, 0, 0, 0), "Feb 29 12:00", date(2028, 2, 29, 12, 0, 0, 0)},
	}
	for _, tt := range tests {
		got, err := ParseListLine("-rw-r--r-- 1 u g 1 "+tt.in+" f", tt.now)
		if err != nil || !got.ModTime.Equal(tt.want) {
			t.Errorf("now %v: %q gives %v, %v; want %v", tt.now, tt.in, got.ModTime, err, tt.want)
		}
	}
}

func TestParseListLineDOS(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
	}{
		// Windows/IIS "MS-DOS" listing style.
		{"01-02-26  03:04PM       <DIR>          name",
			Entry{Name: "name", Type: "dir", Size: -1, ModTime: date(2026, 1, 2, 15, 4, 0, 0)}},
		{"01-02-2026  15:04  1234 name with  spaces ",
			Entry{Name: "name with  spaces ", Type: "file", Size: 1234, ModTime: date(2026, 1, 2, 15, 4, 0, 0)}},
		{"12-31-99  12:00AM                   10 old.txt",
			Entry{Name: "old.txt", Type: "file", Size: 10, ModTime: date(1999, 12, 31, 0, 0, 0, 0)}},
		{"07-04-69  12:30pm                    0 noon",
			Entry{Name: "noon", Type: "file", Size: 0, ModTime: date(2069, 7, 4, 12, 30, 0, 0)}},
		{"02/29/2024  11:59PM       <dir>          ..",
			Entry{Name: "..", Type: "pdir", Size: -1, ModTime: date(2024, 2, 29, 23, 59, 0, 0)}},
	}
	for _, tt := range tests {
		got, err := ParseListLine(tt.in, listNow)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseListLine(%q) =\n %+v, %v\nwant\n %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseListLineSkip(t *testing.T) {
	// "total N" (ls -l's block count) and blank lines are not entries.
	for _, in := range []string{"total 12", "total 0", "TOTAL 5", "", "   ", "\t", "\r"} {
		got, err := ParseListLine(in, listNow)
		if !errors.Is(err, ErrSkipLine) {
			t.Errorf("ParseListLine(%q) = %+v, %v; want ErrSkipLine", in, got, err)
		}
	}
}

func TestParseListLineErrors(t *testing.T) {
	for _, in := range []string{
		"hello world",
		"total",
		"total 12 x",
		"-rw-r--r-- 1 u g x Jan  2 15:04 f",                    // non-numeric size
		"-rw-r--r-- 1 u g -1 Jan  2 15:04 f",                   // negative size
		"-rw-r--r-- 1 u g 1 Foo  2 15:04 f",                    // bad month
		"-rw-r--r-- 1 u g 1 Jan 32 15:04 f",                    // bad day
		"-rw-r--r-- 1 u g 1 Feb 30  2024 f",                    // bad day for the month
		"-rw-r--r-- 1 u g 1 Jan  2 24:00 f",                    // bad hour
		"-rw-r--r-- 1 u g 1 Jan  2 15:04",                      // no name
		"-rw-r--r-- 1 u g 1 Jan  2 15:04 ",                     // no name
		"-rw-r--r-- 1 u g 1 Jan  2 15:04 a\x00b",               // NUL
		"-rw-r--r-- 1 u g 1 Jan  2 15:04 a\rb",                 // CR
		"-rw-r--r-- 2 Jan  2 15:04 f",                          // nothing before the size but the mode
		"-rw-r--r-- a b c d 1 Jan  2 15:04 f",                  // too many owner fields
		"-rwxrwxrwxrwx 1 u g 1 Jan  2 15:04 f",                 // not a mode
		"xrw-r--r-- 1 u g 1 Jan  2 15:04 f",                    // not a mode
		"-rw-r--r-- 1 u g 99999999999999999999 Jan  2 15:04 f", // overflow
		"13-01-26  03:04PM  <DIR>  name",                       // month 13
		"02-30-26  03:04PM  <DIR>  name",                       // February 30th
		"01-02-26  13:04PM  <DIR>  name",                       // 13 PM
		"01-02-26  25:04  1 name",                              // hour 25
		"01-02-26  03:04PM  <DIR>",                             // no name
		"01-02-26  03:04PM  12k  name",                         // bad size
		"01.02.26  03:04PM  1  name",                           // bad date separator
		"01-02/26  03:04PM  1  name",                           // mixed separators
	} {
		got, err := ParseListLine(in, listNow)
		if err == nil {
			t.Errorf("ParseListLine(%q) = %+v, want error", in, got)
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseListLine(%q): %v does not wrap ErrProtocol", in, err)
		}
	}
}

func TestFormatListLine(t *testing.T) {
	tests := []struct {
		in   Entry
		want string
	}{
		{Entry{Name: "f.txt", Type: "file", Size: 12, ModTime: date(2026, 1, 2, 15, 4, 5, 0)},
			"-rw-r--r-- 1 ftp ftp           12 Jan  2 15:04 f.txt"},
		{Entry{Name: "old dir", Type: "dir", Size: -1, ModTime: date(2024, 11, 20, 8, 0, 0, 0)},
			"drwxr-xr-x 1 ftp ftp            0 Nov 20  2024 old dir"},
		{Entry{Name: "x", Perm: "-rwx------", Type: "dir", Size: 1, ModTime: date(2026, 3, 15, 11, 0, 0, 0)},
			"-rwx------ 1 ftp ftp            1 Mar 15 11:00 x"},
		{Entry{Name: "l", Type: "link", Target: "/etc", Size: 4, ModTime: date(2026, 3, 1, 0, 0, 0, 0)},
			"lrwxrwxrwx 1 ftp ftp            4 Mar  1 00:00 l -> /etc"},
		{Entry{Name: "z", Perm: "adfr", Size: 0},
			"-rw-r--r-- 1 ftp ftp            0 Jan  1  1970 z"},
		// More than six months in the future: shown with its year.
		{Entry{Name: "future", Size: 0, ModTime: date(2026, 10, 1, 0, 0, 0, 0)},
			"-rw-r--r-- 1 ftp ftp            0 Oct  1  2026 future"},
	}
	for _, tt := range tests {
		got := FormatListLine(tt.in, listNow)
		if got != tt.want {
			t.Errorf("FormatListLine(%+v) =\n %q, want\n %q", tt.in, got, tt.want)
		}
		back, err := ParseListLine(got, listNow)
		if err != nil || back.Name != tt.in.Name || back.Target != tt.in.Target {
			t.Errorf("ParseListLine(%q) = %+v, %v", got, back, err)
		}
		if !tt.in.ModTime.IsZero() && strings.Contains(got, ":") && !back.ModTime.Equal(tt.in.ModTime.Truncate(time.Minute)) {
			t.Errorf("ParseListLine(%q) time %v, want %v", got, back.ModTime, tt.in.ModTime)
		}
	}
}
