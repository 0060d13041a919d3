package ftp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/; the f.Add seeds below
// are a few more so that plain "go test" covers the basics even without
// them.

// errClass sorts an error into the classes that the readers promise.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case err == io.EOF:
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected-eof"
	case errors.Is(err, ErrProtocol):
		return "protocol"
	}
	return "other: " + err.Error()
}

func hasCRLFNUL(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 ready\r\n",
		"211-a\r\n123 b\r\n211-c\r\n211 d\r\n",
		"220\r\n230 next\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"220 a\nb\r\n",
	} {
		f.Add([]byte(s))
	}
	type result struct {
		r    *Reply
		err  error
		rest []byte
	}
	read := func(src io.Reader, size int) result {
		br := bufio.NewReaderSize(src, size)
		r, err := ReadReply(br)
		rest, _ := io.ReadAll(br)
		return result{r, err, rest}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := read(bytes.NewReader(data), 4096)
		// One byte per Read, or for long inputs (which make minimizing
		// slow) half of what is asked; both through a 16-byte buffer.
		var split io.Reader = iotest.OneByteReader(bytes.NewReader(data))
		if len(data) > 2048 {
			split = iotest.HalfReader(bytes.NewReader(data))
		}
		b := read(split, 16)
		// The outcome does not depend on how the bytes arrive.
		if errClass(a.err) != errClass(b.err) {
			t.Fatalf("whole: %v; one byte at a time: %v", a.err, b.err)
		}
		switch errClass(a.err) {
		case "ok":
		case "eof":
			if len(data) != 0 {
				t.Fatalf("io.EOF with %d bytes of input", len(data))
			}
			return
		case "unexpected-eof", "protocol":
			return
		default:
			t.Fatalf("unexpected error %v", a.err)
		}
		if !reflect.DeepEqual(a.r, b.r) || !bytes.Equal(a.rest, b.rest) {
			t.Fatalf("whole: %#v rest %q; one byte: %#v rest %q", a.r, a.rest, b.r, b.rest)
		}
		r := a.r
		if r.Code < 100 || r.Code > 599 || len(r.Lines) == 0 {
			t.Fatalf("bad reply %#v", r)
		}
		consumed := len(data) - len(a.rest)
		if consumed > MaxReplyLength || !bytes.HasSuffix(data[:consumed], []byte("\r\n")) ||
			!bytes.HasPrefix(data, []byte(strconv.Itoa(r.Code))) {
			t.Fatalf("consumed %d bytes: %.80q", consumed, data[:consumed])
		}
		size := 0
		for _, l := range r.Lines {
			if hasCRLFNUL(l) || len(l) > MaxLineLength {
				t.Fatalf("bad line %.80q", l)
			}
			size += len(l) + 2
		}
		if size > consumed {
			t.Fatalf("lines hold %d bytes, only %d consumed", size, consumed)
		}
		// FormatReply writes what ReadReply reads, inner lines starting with
		// a digit gaining a space.
		out := FormatReply(r.Code, r.Lines...)
		if len(out) > MaxReplyLength || len(r.Lines[0]) > MaxLineLength-5 {
			return
		}
		for _, l := range r.Lines {
			if len(l) >= MaxLineLength {
				return
			}
		}
		r2, err := ReadReply(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("ReadReply(FormatReply(%#v)): %v", r, err)
		}
		if r2.Code != r.Code || len(r2.Lines) != len(r.Lines) {
			t.Fatalf("round trip: %#v became %#v", r, r2)
		}
		for i, l := range r.Lines {
			if r2.Lines[i] != l && !(i > 0 && i < len(r.Lines)-1 && l != "" && isDigit(l[0]) && r2.Lines[i] == " "+l) {
				t.Fatalf("round trip: line %d %q became %q", i, l, r2.Lines[i])
			}
		}
	})
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"USER anonymous\r\n",
		"retr a b\n",
		"PASS s3cr3t\x00\r\n",
		"\r\n",
		"STOR x\ry\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		verb, arg, err := ReadCommand(br)
		var split io.Reader = iotest.OneByteReader(bytes.NewReader(data))
		if len(data) > 2048 {
			split = iotest.HalfReader(bytes.NewReader(data))
		}
		br1 := bufio.NewReaderSize(split, 16)
		verb1, arg1, err1 := ReadCommand(br1)
		if errClass(err) != errClass(err1) || verb != verb1 || arg != arg1 {
			t.Fatalf("whole: %q %q %v; one byte at a time: %q %q %v", verb, arg, err, verb1, arg1, err1)
		}
		// A PASS or ACCT argument never shows in an error.
		var pe *ProtocolError
		secret := len(data) > 4 && (strings.EqualFold(string(data[:4]), "PASS") || strings.EqualFold(string(data[:4]), "ACCT"))
		if errors.As(err, &pe) && secret && pe.Line != quoteLine(data[:4])+" ****" {
			t.Fatalf("error shows a secret: %v", err)
		}
		switch errClass(err) {
		case "ok":
		case "eof":
			if len(data) != 0 {
				t.Fatalf("io.EOF with %d bytes of input", len(data))
			}
			return
		case "unexpected-eof", "protocol":
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if !validVerb(verb) || verb != strings.ToUpper(verb) || hasCRLFNUL(arg) || len(verb)+1+len(arg) > MaxLineLength {
			t.Fatalf("bad command %q %q", verb, arg)
		}
		line, err := FormatCommand(verb, arg)
		if err != nil {
			t.Fatalf("FormatCommand(%q, %q): %v", verb, arg, err)
		}
		v2, a2, err := ReadCommand(bufio.NewReader(strings.NewReader(line)))
		if err != nil || v2 != verb || a2 != arg {
			t.Fatalf("round trip of %q %q: %q %q %v", verb, arg, v2, a2, err)
		}
	})
}

func FuzzParsePORT(f *testing.F) {
	for _, s := range []string{"132,235,1,2,24,131", "256,0,0,1,0,21", "1,2,3,4,0,0", "1,2,3,4,5", "01a,2,3,4,5,6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParsePORT(s)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if !ap.Addr().Is4() || ap.Port() == 0 {
			t.Fatalf("ParsePORT(%q) = %v", s, ap)
		}
		out, err := FormatPORT(ap)
		if err != nil {
			t.Fatalf("FormatPORT(%v): %v", ap, err)
		}
		if back, err := ParsePORT(out); err != nil || back != ap {
			t.Fatalf("ParsePORT(FormatPORT(%v)) = %v, %v", ap, back, err)
		}
		// The same numbers in a 227 reply give the same address.
		if back, err := ParsePASV("Entering Passive Mode (" + s + ")."); err != nil || back != ap {
			t.Fatalf("ParsePASV of PORT argument %q = %v, %v", s, back, err)
		}
	})
}

func FuzzParsePASV(f *testing.F) {
	for _, s := range []string{
		"Entering Passive Mode (132,235,1,2,24,131).",
		"=10,0,0,1,4,1",
		"Entering Passive Mode (256,0,0,1,4,1).",
		"v2 (1,2) (10,0,0,1,4,1)",
		"Entering Passive Mode (-1,2,3,4,5,6).",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParsePASV(s)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if !ap.Addr().Is4() || ap.Port() == 0 {
			t.Fatalf("ParsePASV(%q) = %v", s, ap)
		}
		out, err := FormatPASV(ap)
		if err != nil {
			t.Fatalf("FormatPASV(%v): %v", ap, err)
		}
		if back, err := ParsePASV(out); err != nil || back != ap {
			t.Fatalf("ParsePASV(FormatPASV(%v)) = %v, %v", ap, back, err)
		}
	})
}

func FuzzParseEPRT(f *testing.F) {
	for _, s := range []string{"|1|132.235.1.2|6275|", "|2|1080::8:800:200C:417A|5282|", "|1|::1|21|", "!2!::ffff:1.2.3.4!1!", "|2|fe80::1%eth0|21|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseEPRT(s)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		a := ap.Addr()
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() || ap.Port() == 0 {
			t.Fatalf("ParseEPRT(%q) = %v", s, ap)
		}
		out := FormatEPRT(ap)
		if back, err := ParseEPRT(out); err != nil || back != ap {
			t.Fatalf("ParseEPRT(FormatEPRT(%v) = %q) = %v, %v", ap, out, back, err)
		}
		if a.Is4() {
			if _, err := FormatPORT(ap); err != nil {
				t.Fatalf("FormatPORT(%v): %v", ap, err)
			}
		}
	})
}

func FuzzParseEPSV(f *testing.F) {
	for _, s := range []string{"Entering Extended Passive Mode (|||6446|)", "(|||70000|)", "(|!|6446|)", "(111123451)", "()))80))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseEPSV(s)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if p == 0 || !strings.Contains(s, strconv.Itoa(int(p))) {
			t.Fatalf("ParseEPSV(%q) = %d", s, p)
		}
		if back, err := ParseEPSV(FormatEPSV(p)); err != nil || back != p {
			t.Fatalf("ParseEPSV(FormatEPSV(%d)) = %d, %v", p, back, err)
		}
	})
}

func FuzzParseMLSDLine(f *testing.F) {
	for _, s := range []string{
		"type=file;size=12;modify=20260102150405;perm=r; name",
		"Type=DIR;Modify=20260102150405.123;UNIX.mode=0755; my dir",
		"type=file;size=1; a;b c=d;  e ",
		" lonely",
		"size=1;Size=2; x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseMLSDLine(line)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if e.Name == "" || hasCRLFNUL(e.Name) || e.Name != line[strings.IndexByte(line, ' ')+1:] ||
			e.Facts == nil || e.Size < -1 || e.Target != "" ||
			!e.ModTime.IsZero() && e.ModTime.Location() != time.UTC {
			t.Fatalf("ParseMLSDLine(%q) = %#v", line, e)
		}
		for k := range e.Facts {
			if k != strings.ToLower(k) {
				t.Fatalf("fact name %q is not lower-case", k)
			}
		}
		out := FormatMLSDLine(e)
		e2, err := ParseMLSDLine(out)
		if err != nil {
			t.Fatalf("ParseMLSDLine(FormatMLSDLine(%#v) = %q): %v", e, out, err)
		}
		if e2.Name != e.Name || e2.Type != e.Type || e2.Size != e.Size || !e2.ModTime.Equal(e.ModTime) || e2.Perm != e.Perm {
			t.Fatalf("round trip via %q: %#v became %#v", out, e, e2)
		}
		for k, v := range e.Facts {
			switch k {
			case "type", "size", "modify", "perm":
				continue
			}
			if e2.Facts[k] != v {
				t.Fatalf("round trip via %q: fact %q %q became %q", out, k, v, e2.Facts[k])
			}
		}
	})
}

func FuzzParseListLine(f *testing.F) {
	now := listNow.Unix()
	for _, s := range []string{
		"drwxr-xr-x 2 user group 4096 Jan  2 15:04 name",
		"lrwxrwxrwx 1 root root 7 Jan  2  2024 bin -> usr/bin",
		"crw-rw---- 1 root disk 8, 1 Feb 29 15:04 sda1",
		"01-02-26  03:04PM       <DIR>          name",
		"total 12",
	} {
		f.Add(s, now)
	}
	f.Fuzz(func(t *testing.T, line string, nowSec int64) {
		// Keep now between 1971 and 9000 so that years stay 4 digits.
		const lo, hi = 31536000, 221845392000
		if nowSec < lo || nowSec > hi {
			nowSec = lo + (nowSec%(hi-lo)+(hi-lo))%(hi-lo)
		}
		now := time.Unix(nowSec, 0).UTC()
		e, err := ParseListLine(line, now)
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrSkipLine) {
				t.Fatalf("error %v wraps neither ErrProtocol nor ErrSkipLine", err)
			}
			return
		}
		switch e.Type {
		case "file", "dir", "link", "cdir", "pdir", "":
		default:
			t.Fatalf("type %q", e.Type)
		}
		if e.Name == "" || hasCRLFNUL(e.Name) || hasCRLFNUL(e.Target) || e.Size < -1 || e.Facts != nil ||
			e.ModTime.Location() != time.UTC {
			t.Fatalf("ParseListLine(%q) = %#v", line, e)
		}
		// A date more than six months ahead must have had its year written out.
		if e.ModTime.After(recentLimit(now)) && !strings.Contains(line, strconv.Itoa(e.ModTime.Year()%100)) {
			t.Fatalf("ParseListLine(%q) = %#v", line, e)
		}
		out := FormatListLine(e, now)
		e2, err := ParseListLine(out, now)
		if err != nil {
			t.Fatalf("ParseListLine(FormatListLine(%#v) = %q): %v", e, out, err)
		}
		if e2.Name != e.Name || e2.Target != e.Target || e2.Type != e.Type && e.Type != "" {
			t.Fatalf("round trip via %q: %#v became %#v", out, e, e2)
		}
		if isMode(e.Perm) && e2.Perm != e.Perm {
			t.Fatalf("round trip via %q: perm %q became %q", out, e.Perm, e2.Perm)
		}
		if e.Size >= 0 && e.Perm != "" && e.Perm[0] != 'c' && e.Perm[0] != 'b' && e2.Size != e.Size {
			t.Fatalf("round trip via %q: size %d became %d", out, e.Size, e2.Size)
		}
		// (A listed "Jan  1  0001" is the zero time: unknown, shown as 1970.)
		if !e2.ModTime.Equal(e.ModTime) && !e.ModTime.IsZero() {
			y, m, d := e.ModTime.Date()
			fs := splitFields(out)
			clock := strings.Contains(out[fs[7].start:fs[7].end], ":") // "15:04", not "2006"
			if !e2.ModTime.Equal(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) || clock {
				t.Fatalf("round trip via %q: time %v became %v", out, e.ModTime, e2.ModTime)
			}
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"ftp://user:p%40ss@example.com:2121/a/b.txt;type=i",
		"ftps://[2001:db8::1]//etc/x",
		"ftp://h/x%0d%0aDELE%20y",
		"ftp://[fe80::1%25eth0]/",
		"ftp://u:s3cr3tpassword/x@h/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseURL(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ftp: ") {
				t.Fatalf("error %q", err)
			}
			// The password never shows in an error. Check it for userinfo
			// with a distinctive password.
			if i := strings.Index(raw, "://"); i >= 0 {
				rest := raw[i+3:]
				if at := strings.LastIndexByte(rest, '@'); at >= 0 {
					if c := strings.IndexByte(rest[:at], ':'); c >= 0 {
						pw := rest[c+1 : at]
						if len(pw) >= 8 && strings.Contains(err.Error(), pw) && !strings.Contains(raw[:i], pw) {
							t.Fatalf("error %q shows the password %q", err, pw)
						}
					}
				}
			}
			return
		}
		if u.Scheme != "ftp" && u.Scheme != "ftps" || u.Host == "" || u.Port < 1 || u.Port > 65535 ||
			hasCRLFNUL(u.User) || hasCRLFNUL(u.Password) || hasCRLFNUL(u.Host) || hasCRLFNUL(u.Path) ||
			u.Password != "" && !u.HasPassword {
			t.Fatalf("ParseURL(%q) = %#v", raw, u)
		}
		if _, _, err := netSplit(u.Address()); err != nil {
			t.Fatalf("Address() = %q: %v", u.Address(), err)
		}
		red := u.Redacted()
		back, err := ParseURL(red)
		want := *u
		if want.HasPassword {
			want.Password = "****"
		}
		if err != nil || !reflect.DeepEqual(*back, want) {
			t.Fatalf("ParseURL(Redacted() = %q) = %#v, %v; want %#v", red, back, err, want)
		}
	})
}

// netSplit checks that Address is a well-formed host:port with an IP or name.
func netSplit(addr string) (string, string, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().String(), strconv.Itoa(int(ap.Port())), nil
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", errors.New("no port")
	}
	if _, err := strconv.Atoi(addr[i+1:]); err != nil {
		return "", "", err
	}
	return addr[:i], addr[i+1:], nil
}
