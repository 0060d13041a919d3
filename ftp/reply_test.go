package ftp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

func TestReadReplyValid(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		code  int
		lines []string
		rest  string // what must stay buffered after the reply
	}{
		// RFC 959 section 4.2: a single-line reply is "NNN<SP>text<CRLF>".
		{"single", "230 OK\r\n", 230, []string{"OK"}, ""},
		{"single with spaces", "530 Login  incorrect. \r\n", 530, []string{"Login  incorrect. "}, ""},
		// RFC 959 section 4.2: the code alone, or the code and a space with no text.
		{"code only", "200\r\n", 200, []string{""}, ""},
		{"code and space", "200 \r\n", 200, []string{""}, ""},
		// RFC 959 section 4.2: "NNN-" opens a multi-line reply closed by "NNN<SP>".
		{"multi", "211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n", 211, []string{"Features:", " MDTM", " SIZE", "End"}, ""},
		// RFC 959 section 4.2: inner lines may start with digits, even "123 ".
		{"inner digits", "220-Welcome\r\n123 not the end\r\n220 ready\r\n", 220, []string{"Welcome", "123 not the end", "ready"}, ""},
		// RFC 959 section 4.2: an inner line with the same code and '-' is text.
		{"inner same code dash", "220-a\r\n220-b\r\n220 c\r\n", 220, []string{"a", "220-b", "c"}, ""},
		// RFC 959 section 4.2: only the same code followed by a space ends it.
		{"inner other code space", "220-a\r\n230 b\r\n220c\r\n220 d\r\n", 220, []string{"a", "230 b", "220c", "d"}, ""},
		// RFC 959 section 4.2: the last line may be the bare code.
		{"multi bare end", "220-a\r\n220\r\n", 220, []string{"a", ""}, ""},
		{"multi empty first", "220-\r\n\r\n220 x\r\n", 220, []string{"", "", "x"}, ""},
		// RFC 959 section 4.2: codes 100..599.
		{"lowest", "100 x\r\n", 100, []string{"x"}, ""},
		{"highest", "599 x\r\n", 599, []string{"x"}, ""},
		// Two replies in one read: exactly one is returned, the rest stays buffered.
		{"two replies", "331 pass?\r\n230 in\r\n", 331, []string{"pass?"}, "230 in\r\n"},
		{"multi then single", "150-a\r\n150 b\r\n226 done\r\n", 150, []string{"a", "b"}, "226 done\r\n"},
		// Non-ASCII text (UTF-8 file names, RFC 2640) passes through.
		{"utf8", "257 \"/héllo\" created\r\n", 257, []string{"\"/héllo\" created"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "onebyte", "small"} {
				var src io.Reader = strings.NewReader(tt.in)
				size := 4096
				switch mode {
				case "onebyte":
					src = iotest.OneByteReader(src)
				case "small":
					size = 16
				}
				br := bufio.NewReaderSize(src, size)
				r, err := ReadReply(br)
				if err != nil {
					t.Fatalf("%s: ReadReply(%q): %v", mode, tt.in, err)
				}
				if r.Code != tt.code || !reflect.DeepEqual(r.Lines, tt.lines) {
					t.Fatalf("%s: ReadReply(%q) = %d %q, want %d %q", mode, tt.in, r.Code, r.Lines, tt.code, tt.lines)
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != tt.rest {
					t.Fatalf("%s: left %q buffered, want %q", mode, rest, tt.rest)
				}
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	tests := []struct {
		name    string
		in      string
		wantErr error
		msg     string // substring of the error message
	}{
		// RFC 959 section 4.2: the reply starts with a three-digit code, first digit 1-5.
		{"http greeting", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", ErrProtocol, `three-digit code from 100 to 599 in "H`},
		{"ssh greeting", "SSH-2.0-OpenSSH_9.6\r\n", ErrProtocol, "three-digit code"},
		{"first digit 6", "600 x\r\n", ErrProtocol, "three-digit code"},
		{"first digit 0", "099 x\r\n", ErrProtocol, "three-digit code"},
		{"two digits", "22 x\r\n", ErrProtocol, "three-digit code"},
		{"four digits", "2200 x\r\n", ErrProtocol, "three-digit code"},
		{"letter after code", "220x\r\n", ErrProtocol, "three-digit code"},
		{"empty line", "\r\n", ErrProtocol, "three-digit code"},
		{"leading space", " 220 x\r\n", ErrProtocol, "three-digit code"},
		// RFC 959 section 4.2 / RFC 854: lines end in CRLF.
		{"bare LF", "220 hi\n", ErrProtocol, "bare LF"},
		{"bare LF inner", "220-hi\r\nmore\n220 x\r\n", ErrProtocol, "bare LF"},
		{"bare LF after code", "220\n", ErrProtocol, "bare LF"},
		{"CR alone", "220 a\rb\r\n", ErrProtocol, "CR not followed by LF"},
		{"NUL", "220 a\x00b\r\n", ErrProtocol, "NUL"},
		{"NUL inner", "220-a\r\nb\x00\r\n220 c\r\n", ErrProtocol, "NUL"},
		// Limits: a 100 KB line.
		{"100KB line", "220 " + long + "\r\n", ErrProtocol, "longer than 8192 bytes"},
		{"100KB inner line", "220-a\r\n" + long + "\r\n220 b\r\n", ErrProtocol, "longer than 8192 bytes"},
		{"line just over", "220 " + strings.Repeat("y", MaxLineLength-3) + "\r\n", ErrProtocol, "longer than"},
		// EOF inside a reply.
		{"EOF mid line", "220 hel", io.ErrUnexpectedEOF, "closed"},
		{"EOF mid code", "22", io.ErrUnexpectedEOF, "closed"},
		{"EOF after code", "220", io.ErrUnexpectedEOF, "closed"},
		{"EOF mid multi", "220-a\r\nb\r\n", io.ErrUnexpectedEOF, "multi-line"},
		{"EOF mid multi line", "220-a\r\n220 b", io.ErrUnexpectedEOF, "multi-line"},
		{"EOF before LF", "220 a\r", io.ErrUnexpectedEOF, "closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096, 1 << 20} {
				for _, oneByte := range []bool{false, true} {
					var src io.Reader = strings.NewReader(tt.in)
					if oneByte {
						src = iotest.OneByteReader(src)
					}
					r, err := ReadReply(bufio.NewReaderSize(src, size))
					if err == nil {
						t.Fatalf("size %d: ReadReply(%.40q) = %v, want error", size, tt.in, r)
					}
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("size %d: ReadReply(%.40q) error %v, want %v", size, tt.in, err, tt.wantErr)
					}
					if !strings.Contains(err.Error(), tt.msg) {
						t.Fatalf("size %d: error %q does not mention %q", size, err, tt.msg)
					}
					if len(err.Error()) > 300 {
						t.Fatalf("size %d: error message is %d bytes long", size, len(err.Error()))
					}
				}
			}
		})
	}
}

func TestReadReplyLineLimit(t *testing.T) {
	// A line of exactly MaxLineLength bytes is accepted.
	text := strings.Repeat("z", MaxLineLength-4)
	for _, size := range []int{16, 4096, 1 << 20} {
		r, err := ReadReply(bufio.NewReaderSize(strings.NewReader("220 "+text+"\r\n"), size))
		if err != nil || r.Lines[0] != text {
			t.Fatalf("size %d: MaxLineLength line: %v", size, err)
		}
	}
}

// TestReadReplyHTTPFailsFast checks that an HTTP response is refused from its
// first bytes, without waiting for a line end that may never come.
func TestReadReplyHTTPFailsFast(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("HTTP/1.1 400 Bad Request")) // no CRLF, then silence
	done := make(chan error, 1)
	go func() {
		_, err := ReadReply(bufio.NewReader(pr))
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReadReply waited for the end of an HTTP status line")
	}
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want a protocol error", err)
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Line != "HTTP/1.1 400 Bad Request" {
		t.Fatalf("got %#v, want the HTTP status line in the error", err)
	}
}

func TestReadReplyEOF(t *testing.T) {
	// io.EOF before any byte is returned unwrapped.
	_, err := ReadReply(bufio.NewReader(strings.NewReader("")))
	if err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF itself", err)
	}
	// After one full reply, the next call sees a clean EOF.
	br := bufio.NewReader(strings.NewReader("221 bye\r\n"))
	if _, err := ReadReply(br); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadReply(br); err != io.EOF {
		t.Fatalf("after last reply: got %v, want io.EOF", err)
	}
}

func TestReadReplyReadError(t *testing.T) {
	// A timeout (or any read error) is wrapped, not hidden.
	for _, in := range []string{"", "22", "220-a\r\n"} {
		src := io.MultiReader(strings.NewReader(in), iotest.ErrReader(os.ErrDeadlineExceeded))
		_, err := ReadReply(bufio.NewReader(src))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after %q: got %v, want it to wrap os.ErrDeadlineExceeded", in, err)
		}
	}
}

// endless produces prefix once, then line forever, counting the bytes it
// hands out.
type endless struct {
	prefix, line []byte
	pos          int
	n            int64
}

func (e *endless) Read(p []byte) (int, error) {
	k := 0
	for k < len(p) {
		src := e.line
		if len(e.prefix) > 0 {
			src = e.prefix
		}
		c := copy(p[k:], src[e.pos:])
		k += c
		e.pos += c
		if e.pos == len(src) {
			e.pos = 0
			e.prefix = nil
		}
	}
	e.n += int64(k)
	return k, nil
}

func TestReadReplyEndless(t *testing.T) {
	tests := []struct {
		name         string
		prefix, line string
		msg          string
	}{
		// RFC 959 section 4.2: a multi-line reply that never sends its last line.
		{"endless multi-line", "220-hello\r\n", "220-still going\r\n", "longer than 65536"},
		{"endless tiny lines", "220-hello\r\n", "\r\n", "longer than 65536"},
		// A line that never ends.
		{"endless line", "220 ", "x", "longer than 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096, 1 << 20} {
				src := &endless{prefix: []byte(tt.prefix), line: []byte(tt.line)}
				_, err := ReadReply(bufio.NewReaderSize(src, size))
				if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("size %d: got %v, want a protocol error about %q", size, err, tt.msg)
				}
				if max := int64(MaxReplyLength + MaxLineLength + size + 64); src.n > max {
					t.Fatalf("size %d: read %d bytes before giving up, want at most %d", size, src.n, max)
				}
			}
		})
	}
}

func TestReadReplyTotalLimit(t *testing.T) {
	// RFC 959 section 4.2 sets no limit; ours is MaxReplyLength bytes on the wire.
	var b strings.Builder
	b.WriteString("220-a\r\n")
	for b.Len() < MaxReplyLength-100 {
		b.WriteString(strings.Repeat("m", 98) + "\r\n")
	}
	b.WriteString("220 end\r\n")
	if b.Len() > MaxReplyLength {
		t.Fatalf("test reply is %d bytes", b.Len())
	}
	if _, err := ReadReply(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		t.Fatalf("reply of %d bytes: %v", b.Len(), err)
	}
	over := strings.Replace(b.String(), "220-a\r\n", "220-a\r\n"+strings.Repeat("n", 200)+"\r\n", 1)
	if _, err := ReadReply(bufio.NewReader(strings.NewReader(over))); !errors.Is(err, ErrProtocol) {
		t.Fatalf("reply of %d bytes: got %v, want a protocol error", len(over), err)
	}
}

func TestProtocolError(t *testing.T) {
	e := &ProtocolError{Msg: "bad thing", Line: "a\x00b\r\n\xff"}
	want := `ftp: protocol violation: bad thing in "a\x00b\r\n\xff"`
	if e.Error() != want {
		t.Fatalf("Error() = %q, want %q", e.Error(), want)
	}
	if !errors.Is(e, ErrProtocol) {
		t.Fatal("errors.Is(ProtocolError, ErrProtocol) is false")
	}
	if got := (&ProtocolError{Msg: "m"}).Error(); got != "ftp: protocol violation: m" {
		t.Fatalf("Error() without line = %q", got)
	}
	// Line as built by the package is already escaped, and Error does not
	// escape it twice.
	_, err := ReadReply(bufio.NewReader(strings.NewReader("220 a\x00\\\"b\r\n")))
	if got, want := err.Error(), `ftp: protocol violation: NUL byte in line in "220 a\x00\\\"b"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// A hand-built ProtocolError with a huge raw Line still makes a short message.
	if got := (&ProtocolError{Msg: "m", Line: strings.Repeat("\x01", 10000)}).Error(); len(got) > 2000 {
		t.Fatalf("Error() is %d bytes long", len(got))
	}
	// Long lines are cut.
	_, err = ReadReply(bufio.NewReader(strings.NewReader("220 " + strings.Repeat("q", 500) + "\x00\r\n")))
	var pe *ProtocolError
	if !errors.As(err, &pe) || len(pe.Line) > 90 || !strings.HasSuffix(pe.Line, "...") {
		t.Fatalf("got %#v, want a line cut to about 80 bytes", err)
	}
}

func TestReplyMethods(t *testing.T) {
	r := &Reply{Code: 530, Lines: []string{"Login incorrect."}}
	if r.String() != "530 Login incorrect." || r.Text() != "Login incorrect." || r.Class() != 5 {
		t.Fatalf("got %q %q %d", r.String(), r.Text(), r.Class())
	}
	m := &Reply{Code: 211, Lines: []string{"Features:", " SIZE", "End"}}
	if m.Text() != "Features:\n SIZE\nEnd" || m.String() != "211 Features: /  SIZE / End" || m.Class() != 2 {
		t.Fatalf("got %q %q", m.Text(), m.String())
	}
	if s := (&Reply{Code: 200, Lines: []string{""}}).String(); s != "200" {
		t.Fatalf("empty text: String() = %q", s)
	}
}

func TestFormatReply(t *testing.T) {
	tests := []struct {
		code  int
		lines []string
		want  string
	}{
		// RFC 959 section 4.2: single line "NNN<SP>text<CRLF>".
		{220, []string{"ready"}, "220 ready\r\n"},
		{200, nil, "200 \r\n"},
		// RFC 959 section 4.2: multi-line, first "NNN-", last "NNN<SP>".
		{211, []string{"Features:", " SIZE", "End"}, "211-Features:\r\n SIZE\r\n211 End\r\n"},
		// RFC 959 section 4.2: inner lines starting with a digit get a leading space.
		{220, []string{"a", "220 trap", "9", "b"}, "220-a\r\n 220 trap\r\n 9\r\n220 b\r\n"},
		{220, []string{"a", "", "b"}, "220-a\r\n\r\n220 b\r\n"},
		// CR, LF and NUL in text (file names) become spaces: no reply injection.
		{550, []string{"evil\r\n230 name\x00"}, "550 evil  230 name \r\n"},
		{250, []string{"a\nb", "c\r", "d"}, "250-a b\r\nc \r\n250 d\r\n"},
	}
	for _, tt := range tests {
		got := string(FormatReply(tt.code, tt.lines...))
		if got != tt.want {
			t.Errorf("FormatReply(%d, %q) = %q, want %q", tt.code, tt.lines, got, tt.want)
			continue
		}
		// What FormatReply writes, ReadReply reads as one reply.
		br := bufio.NewReader(strings.NewReader(got + "200 next\r\n"))
		r, err := ReadReply(br)
		if err != nil || r.Code != tt.code {
			t.Errorf("ReadReply(FormatReply(%d, %q)) = %v, %v", tt.code, tt.lines, r, err)
		}
		if n, _ := io.Copy(io.Discard, br); n != int64(len("200 next\r\n")) {
			t.Errorf("ReadReply(FormatReply(%d, %q)) did not stop at the reply end", tt.code, tt.lines)
		}
	}
	for _, code := range []int{0, 99, 600, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("FormatReply(%d) did not panic", code)
				}
			}()
			FormatReply(code, "x")
		}()
	}
}

func TestReadReplySequence(t *testing.T) {
	// A whole dialogue in one buffer, read reply by reply.
	in := "220-Welcome\r\n220 ready\r\n331 pass\r\n230 in\r\n"
	br := bufio.NewReader(iotest.HalfReader(strings.NewReader(in)))
	var codes []int
	for {
		r, err := ReadReply(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, r.Code)
	}
	if !reflect.DeepEqual(codes, []int{220, 331, 230}) {
		t.Fatalf("codes %v", codes)
	}
}

// A reply carrying a very long name stays within what ReadReply accepts.
func TestFormatReplyCapsLines(t *testing.T) {
	long := strings.Repeat("é", MaxLineLength)
	b := FormatReply(550, long+": No such file.")
	r, err := ReadReply(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("our own reply does not read back: %v", err)
	}
	if !strings.HasSuffix(r.Lines[0], "...") || !utf8.ValidString(r.Lines[0]) {
		t.Errorf("cut line ends %q", r.Lines[0][len(r.Lines[0])-10:])
	}
}
