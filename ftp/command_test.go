package ftp

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFormatCommand(t *testing.T) {
	tests := []struct {
		verb, arg string
		want      string
	}{
		// RFC 959 section 5.3: <verb> [<SP> <argument>] <CRLF>.
		{"USER", "anonymous", "USER anonymous\r\n"},
		{"PASV", "", "PASV\r\n"},
		{"retr", "a b.txt", "RETR a b.txt\r\n"},
		{"CWD", " leading space", "CWD  leading space\r\n"},
		{"PASS", "", "PASS\r\n"},
		{"EPRT", "|1|1.2.3.4|80|", "EPRT |1|1.2.3.4|80|\r\n"},
	}
	for _, tt := range tests {
		got, err := FormatCommand(tt.verb, tt.arg)
		if err != nil || got != tt.want {
			t.Errorf("FormatCommand(%q, %q) = %q, %v; want %q", tt.verb, tt.arg, got, err, tt.want)
		}
	}
}

func TestFormatCommandErrors(t *testing.T) {
	tests := []struct {
		verb, arg string
		hide      string // must not appear in the message
		show      string // must appear in the message
	}{
		// RFC 959 section 5.3: <CRLF> ends the command; an embedded one would inject another.
		{"RETR", "x\r\nDELE y", "", "RETR"},
		{"RETR", "x\ny", "", `"x\ny"`},
		{"CWD", "a\rb", "", "CWD"},
		{"STOR", "a\x00b", "", "STOR"},
		// The PASS argument is a password: never shown.
		{"PASS", "s3cr3t\r\nDELE x", "s3cr3t", "PASS"},
		{"pass", "s3cr3t\x00", "s3cr3t", "PASS"},
		{"ACCT", "acc0unt\n", "acc0unt", "ACCT"},
		// RFC 959 section 5.3: verbs are 3 or 4 alphabetic characters.
		{"", "x", "", "verb"},
		{"RE", "x", "", "verb"},
		{"RETRX", "x", "", "verb"},
		{"RE1R", "x", "", "verb"},
		{"RE R", "x", "", "verb"},
		{"RETR\r\n", "", "", "verb"},
		{"ÀÉÎ", "", "", "verb"},
	}
	for _, tt := range tests {
		got, err := FormatCommand(tt.verb, tt.arg)
		if err == nil {
			t.Errorf("FormatCommand(%q, %q) = %q, want error", tt.verb, tt.arg, got)
			continue
		}
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("FormatCommand(%q, %q): %v does not wrap ErrBadArgument", tt.verb, tt.arg, err)
		}
		if tt.hide != "" && strings.Contains(err.Error(), tt.hide) {
			t.Errorf("FormatCommand(%q, ...): error %q shows the secret", tt.verb, err)
		}
		if !strings.Contains(err.Error(), tt.show) {
			t.Errorf("FormatCommand(%q, %q): error %q does not mention %q", tt.verb, tt.arg, err, tt.show)
		}
	}
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		in, verb, arg string
	}{
		// RFC 959 section 5.3: <verb> [<SP> <argument>] <CRLF>; verbs are case-insensitive.
		{"USER anonymous\r\n", "USER", "anonymous"},
		{"user anonymous\r\n", "USER", "anonymous"},
		{"PASV\r\n", "PASV", ""},
		{"Cwd\r\n", "CWD", ""},
		// The argument is everything after the first space, verbatim.
		{"STOR my file.txt\r\n", "STOR", "my file.txt"},
		{"STOR  two spaces \r\n", "STOR", " two spaces "},
		{"RETR a;b\r\n", "RETR", "a;b"},
		{"USER \r\n", "USER", ""},
		{"PASS p@ss word\r\n", "PASS", "p@ss word"},
		// A lone LF ends a line too (vsftpd accepts it).
		{"NOOP\n", "NOOP", ""},
		{"MKD x\n", "MKD", "x"},
		// Non-ASCII names (RFC 2640) pass through.
		{"RETR héllo\r\n", "RETR", "héllo"},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tt.in + "QUIT\r\n")
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			br := bufio.NewReaderSize(src, 16)
			verb, arg, err := ReadCommand(br)
			if err != nil || verb != tt.verb || arg != tt.arg {
				t.Errorf("ReadCommand(%q) = %q, %q, %v; want %q, %q", tt.in, verb, arg, err, tt.verb, tt.arg)
				continue
			}
			// Exactly one line is consumed.
			if verb, _, err := ReadCommand(br); err != nil || verb != "QUIT" {
				t.Errorf("after %q: next command %q, %v", tt.in, verb, err)
			}
			if _, _, err := ReadCommand(br); err != io.EOF {
				t.Errorf("after %q: got %v at the end, want io.EOF", tt.in, err)
			}
		}
	}
}

func TestReadCommandErrors(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  error
		msg      string
		// consumed: the bad line was consumed and the next command can be read.
		consumed bool
	}{
		// RFC 959 section 5.3: verbs are 3 or 4 alphabetic characters.
		{"empty line", "\r\n", ErrProtocol, "empty command line", true},
		{"empty LF line", "\n", ErrProtocol, "empty command line", true},
		{"leading space", " USER x\r\n", ErrProtocol, "verb", true},
		{"five letters", "HELLO x\r\n", ErrProtocol, "verb", true},
		{"two letters", "AB\r\n", ErrProtocol, "verb", true},
		{"digit", "US3R x\r\n", ErrProtocol, "verb", true},
		{"tab", "USER\tx\r\n", ErrProtocol, "verb", true},
		// RFC 959 section 5.3 / RFC 854: CR only in CRLF, no NUL.
		{"CR inside", "USER a\rb\r\n", ErrProtocol, "CR not followed by LF", true},
		{"CR CR LF", "USER a\r\r\n", ErrProtocol, "CR not followed by LF", true},
		{"NUL", "USER a\x00b\r\n", ErrProtocol, "NUL", true},
		{"NUL verb", "US\x00R\r\n", ErrProtocol, "NUL", true},
		// Limits.
		{"100KB line", "STOR " + strings.Repeat("x", 100<<10) + "\r\n", ErrProtocol, "longer than 8192", false},
		// EOF inside a line.
		{"EOF mid line", "USER x", io.ErrUnexpectedEOF, "closed", false},
		{"EOF after CR", "USER x\r", io.ErrUnexpectedEOF, "closed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} {
				br := bufio.NewReaderSize(strings.NewReader(tt.in+"NOOP\r\n"), size)
				if tt.wantErr == io.ErrUnexpectedEOF {
					br = bufio.NewReaderSize(strings.NewReader(tt.in), size)
				}
				verb, arg, err := ReadCommand(br)
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("size %d: ReadCommand(%.40q) = %q, %q, %v; want %v about %q", size, tt.in, verb, arg, err, tt.wantErr, tt.msg)
				}
				if tt.consumed {
					if verb, _, err := ReadCommand(br); err != nil || verb != "NOOP" {
						t.Fatalf("size %d: after the bad line, got %q, %v; want NOOP", size, verb, err)
					}
				}
			}
		})
	}
}

func TestReadCommandHidesPassword(t *testing.T) {
	for _, in := range []string{
		"PASS s3cr3t\x00\r\n",
		"pass s3cr3t\rx\r\n",
		"PASS s3cr3t\n\r\n", // fine, then "\r\n" is an empty line
		"PASS s3cr3t" + strings.Repeat("x", 9000) + "\r\n",
		"ACCT s3cr3t\x00\r\n",
		"PASS\ts3cr3t\r\n",
	} {
		br := bufio.NewReader(strings.NewReader(in))
		for {
			_, _, err := ReadCommand(br)
			if err == nil {
				continue
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("ReadCommand(%.20q): error %q shows the password", in, err)
			}
			break
		}
	}
}

func TestReadCommandEOF(t *testing.T) {
	if _, _, err := ReadCommand(bufio.NewReader(strings.NewReader(""))); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF itself", err)
	}
	src := io.MultiReader(strings.NewReader("US"), iotest.ErrReader(os.ErrDeadlineExceeded))
	if _, _, err := ReadCommand(bufio.NewReader(src)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("timeout: got %v, want it wrapped", err)
	}
}

func TestReadCommandEndless(t *testing.T) {
	// A client that sends one endless line is cut off with bounded reads.
	for _, size := range []int{16, 4096, 1 << 20} {
		src := &endless{prefix: []byte("STOR "), line: []byte("y")}
		_, _, err := ReadCommand(bufio.NewReaderSize(src, size))
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("size %d: got %v", size, err)
		}
		if max := int64(MaxLineLength + size + 64); src.n > max {
			t.Fatalf("size %d: read %d bytes, want at most %d", size, src.n, max)
		}
	}
}

func TestFormatReadCommandRoundTrip(t *testing.T) {
	for _, arg := range []string{"", "x", " a b ", "ünï", "|2|::1|21|", strings.Repeat("z", 1000)} {
		line, err := FormatCommand("stor", arg)
		if err != nil {
			t.Fatal(err)
		}
		verb, got, err := ReadCommand(bufio.NewReader(strings.NewReader(line)))
		if err != nil || verb != "STOR" || got != arg {
			t.Errorf("round trip of %q: %q %q %v", arg, verb, got, err)
		}
	}
}
