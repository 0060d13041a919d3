package ftp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want URL
	}{
		// RFC 1738 section 3.2: ftp://<user>:<password>@<host>:<port>/<cwd1>/.../<name>;type=<typecode>.
		{"ftp://example.com/a/b.txt", URL{Scheme: "ftp", Host: "example.com", Port: 21, Path: "a/b.txt"}},
		{"FTP://Example.COM", URL{Scheme: "ftp", Host: "Example.COM", Port: 21}},
		{"ftp://h/", URL{Scheme: "ftp", Host: "h", Port: 21}},
		// RFC 1738 section 3.2.2: an empty first segment makes the path absolute.
		{"ftp://h//etc/x", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "/etc/x"}},
		{"ftp://h/dir/", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "dir/"}},
		// ftps:// (implicit TLS, RFC 4217 section 7 mentions port 990) defaults to 990.
		{"ftps://h/x", URL{Scheme: "ftps", Host: "h", Port: 990, Path: "x"}},
		{"ftps://h:2121/x", URL{Scheme: "ftps", Host: "h", Port: 2121, Path: "x"}},
		{"ftp://h:/x", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "x"}},
		// RFC 3986 section 3.2.1: userinfo, percent-encoded.
		{"ftp://user:p%40ss@h/", URL{Scheme: "ftp", User: "user", Password: "p@ss", HasPassword: true, Host: "h", Port: 21}},
		{"ftp://us%3Aer%40x:p%3as:s@h", URL{Scheme: "ftp", User: "us:er@x", Password: "p:s:s", HasPassword: true, Host: "h", Port: 21}},
		{"ftp://user:@h", URL{Scheme: "ftp", User: "user", HasPassword: true, Host: "h", Port: 21}},
		{"ftp://user@h", URL{Scheme: "ftp", User: "user", Host: "h", Port: 21}},
		{"ftp://me@example.com:pw@h", URL{Scheme: "ftp", User: "me@example.com", Password: "pw", HasPassword: true, Host: "h", Port: 21}},
		// '+' is not a space in a URL path.
		{"ftp://h/a+b%20c", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "a+b c"}},
		// RFC 3986 section 3.2.2: IPv6 literals in brackets; RFC 6874 zones.
		{"ftp://[2001:db8::1]:2121/f", URL{Scheme: "ftp", Host: "2001:db8::1", Port: 2121, Path: "f"}},
		{"ftp://[::1]/", URL{Scheme: "ftp", Host: "::1", Port: 21}},
		{"ftp://[fe80::1%25eth0]/", URL{Scheme: "ftp", Host: "fe80::1%eth0", Port: 21}},
		{"ftp://192.0.2.1:21/", URL{Scheme: "ftp", Host: "192.0.2.1", Port: 21}},
		// RFC 1738 section 3.2.2: ;type=a / ;type=i is stripped.
		{"ftp://h/file.bin;type=i", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "file.bin"}},
		{"ftp://h/file.txt;TYPE=A", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "file.txt"}},
		{"ftp://h/a;b%3Btype=i", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "a;b;type=i"}}, // encoded: part of the name
		{"ftp://h/dir;type=d", URL{Scheme: "ftp", Host: "h", Port: 21, Path: "dir;type=d"}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil || !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		in     string
		badArg bool // wraps ErrBadArgument
	}{
		// Command injection through decoded CR/LF/NUL (RFC 959 section 5.3: CRLF ends a command).
		{"ftp://h/x%0d%0aDELE%20y", true},
		{"ftp://h/x%0aDELE y", true},
		{"ftp://h/x%00", true},
		{"ftp://us%0d%0aer:pw@h/", true},
		{"ftp://user:s3cr3t%0d%0aDELE@h/", true},
		{"ftp://h/x\r\nDELE y", true},
		{"ftp://h/x\x00", true},
		// Other schemes.
		{"http://h/", false},
		{"sftp://h/", false},
		{"h/x", false},
		{"ftp:/h/x", false},
		{"", false},
		// Missing or bad host.
		{"ftp:///x", false},
		{"ftp://user:pw@/x", false},
		{"ftp://:21/x", false},
		{"ftp://h h/x", false},
		{"ftp://h%41/x", false},
		{"ftp://[::1/x", false},
		{"ftp://[1.2.3.4]/x", false},
		{"ftp://[::1]x/", false},
		{"ftp://[fe80::1%eth0]/", false},
		// Bad ports (RFC 3986 section 3.2.3).
		{"ftp://h:0/", false},
		{"ftp://h:65536/", false},
		{"ftp://h:99999999999/", false},
		{"ftp://h:x/", false},
		{"ftp://h:-1/", false},
		{"ftp://h:21:21/", false},
		// Bad percent-escapes (RFC 3986 section 2.1).
		{"ftp://h/a%2", false},
		{"ftp://h/a%zz", false},
		{"ftp://u%:p@h/", false},
		{"ftp://u:p%g0@h/", false},
		// Query and fragment.
		{"ftp://h/a?b", false},
		{"ftp://h/a#b", false},
		// Other control characters.
		{"ftp://h/a\tb", false},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err == nil {
			t.Errorf("ParseURL(%q) = %+v, want error", tt.in, got)
			continue
		}
		if tt.badArg != errors.Is(err, ErrBadArgument) {
			t.Errorf("ParseURL(%q): %v; wrapping ErrBadArgument: %v, want %v", tt.in, err, !tt.badArg, tt.badArg)
		}
		if !strings.HasPrefix(err.Error(), "ftp: ") {
			t.Errorf("ParseURL(%q): message %q", tt.in, err)
		}
	}
}

func TestParseURLHidesPassword(t *testing.T) {
	// No error message ever shows the password, whatever is wrong.
	for _, in := range []string{
		"ftp://user:s3cr3t%0d%0a@h/",
		"ftp://user:s3cr3t%zz@h/",
		"ftp://user:s3cr3t@/x",
		"ftp://user:s3cr3t@h:bad/x",
		"ftp://user:s3cr3t@h/%0a",
		"ftp://user:s3cr3t/x@h/", // unencoded '/': the password reads as a port
		"ftp://user:s3cr3t?x@h/", // unencoded '?'
		"ftp://user:s3cr3t@h h/",
		"user:s3cr3t://h/",
		"ftp://user:s3cr3t\n@h/",
	} {
		_, err := ParseURL(in)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", in)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseURL(%q): error %q shows the password", in, err)
		}
	}
}

func TestURLMethods(t *testing.T) {
	tests := []struct {
		in       string
		addr     string
		isDir    bool
		redacted string
	}{
		{"ftp://user:s3cr3t@h/a/b.txt", "h:21", false, "ftp://user:****@h/a/b.txt"},
		{"ftp://user:@h/", "h:21", true, "ftp://user:****@h/"},
		{"ftp://h", "h:21", true, "ftp://h/"},
		{"ftp://h/dir/", "h:21", true, "ftp://h/dir/"},
		{"ftps://u@[2001:db8::1]:2121//etc/", "[2001:db8::1]:2121", true, "ftps://u@[2001:db8::1]:2121//etc/"},
		{"ftps://h:990/x", "h:990", false, "ftps://h/x"},
		{"ftp://[fe80::1%25eth0]/", "[fe80::1%eth0]:21", true, "ftp://[fe80::1%25eth0]/"},
		{"ftp://a%40b:p@h/a%20b%3Btype=i;type=i", "h:21", false, "ftp://a%40b:****@h/a%20b%3Btype=i"},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", tt.in, err)
		}
		if u.Address() != tt.addr || u.IsDir() != tt.isDir || u.Redacted() != tt.redacted || u.String() != tt.redacted {
			t.Errorf("%q: Address %q IsDir %v Redacted %q; want %q %v %q", tt.in, u.Address(), u.IsDir(), u.Redacted(), tt.addr, tt.isDir, tt.redacted)
		}
		// The redacted URL parses back to the same URL but for the password.
		back, err := ParseURL(u.Redacted())
		want := *u
		if want.HasPassword {
			want.Password = "****"
		}
		if err != nil || !reflect.DeepEqual(*back, want) {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", u.Redacted(), back, err, want)
		}
	}
}
