package ftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// URL is an ftp:// or ftps:// URL as curl takes them,
// scheme://[user[:password]@]host[:port]/path, percent-decoded. No field
// ever contains a CR, LF or NUL byte.
type URL struct {
	// Scheme is "ftp" or "ftps" (lower-cased). ftps means implicit TLS.
	Scheme string
	// User is the decoded user name, "" when absent.
	User string
	// Password is the decoded password, "" when absent.
	Password string
	// HasPassword reports whether the userinfo had a ':', even with an
	// empty password.
	HasPassword bool
	// Host is the host name or IP address, without brackets; an IPv6 zone
	// is kept, decoded ("fe80::1%eth0").
	Host string
	// Port is the port, 21 by default for ftp and 990 for ftps.
	Port int
	// Path is the decoded path after the "/" that ends the authority,
	// relative to the login directory (RFC 1738 section 3.2.2):
	// "ftp://h/a/b.txt" gives "a/b.txt", "ftp://h//etc/x" gives "/etc/x",
	// "ftp://h/" and "ftp://h" give "".
	Path string
}

// ParseURL parses an ftp:// or ftps:// URL (RFC 1738 section 3.2, with
// RFC 3986 syntax): scheme://[user[:password]@]host[:port]/path. The user,
// password and path are percent-decoded ('+' is not a space); an IPv6
// literal host is written in brackets; a ";type=a" or ";type=i" suffix on
// the path (RFC 1738 section 3.2.2) is accepted and stripped. A query or a
// fragment is refused, since '?' and '#' in a name must be written %3F and
// %23.
//
// It returns an error, one sentence that never includes the password, for
// another scheme, a missing or malformed host, a bad port (not a number, 0
// or above 65535), a malformed percent-escape, or a control byte in the raw
// URL. A CR, LF or NUL byte in the raw URL or in a decoded user, password or
// path (such as "%0d%0aDELE") wraps ErrBadArgument: it must never reach the
// wire.
func ParseURL(raw string) (*URL, error) {
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f {
			if c == '\r' || c == '\n' || c == 0 {
				return nil, fmt.Errorf("%w: the URL contains a CR, LF or NUL byte", ErrBadArgument)
			}
			return nil, errors.New("ftp: the URL contains a control character")
		}
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		return nil, errors.New("ftp: the URL does not start with ftp:// or ftps://")
	}
	u := &URL{Scheme: strings.ToLower(raw[:i])}
	switch u.Scheme {
	case "ftp":
		u.Port = 21
	case "ftps":
		u.Port = 990
	default:
		if validScheme(u.Scheme) {
			return nil, fmt.Errorf("ftp: the URL scheme %q is not ftp or ftps", u.Scheme)
		}
		return nil, errors.New("ftp: the URL does not start with ftp:// or ftps://")
	}
	rest := raw[i+3:]
	if strings.ContainsAny(rest, "?#") {
		return nil, errors.New("ftp: the URL has a query or fragment; write '?' as %3F and '#' as %23 in names")
	}
	authority, path := rest, ""
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		authority, path = rest[:j], rest[j+1:]
	}
	hostport := authority
	if j := strings.LastIndexByte(authority, '@'); j >= 0 {
		userinfo := authority[:j]
		hostport = authority[j+1:]
		user, pass := userinfo, ""
		if k := strings.IndexByte(userinfo, ':'); k >= 0 {
			user, pass, u.HasPassword = userinfo[:k], userinfo[k+1:], true
		}
		var err error
		if u.User, err = decodeURLPart(user, "user name"); err != nil {
			return nil, err
		}
		if u.Password, err = decodeURLPart(pass, "password"); err != nil {
			return nil, err
		}
	}
	portStr, hasPort := "", false
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return nil, errors.New("ftp: the URL has a '[' without a matching ']' around its host")
		}
		host, err := parseIPv6Host(hostport[1:end])
		if err != nil {
			return nil, err
		}
		u.Host = host
		switch after := hostport[end+1:]; {
		case after == "":
		case after[0] == ':':
			portStr, hasPort = after[1:], true
		default:
			return nil, errors.New("ftp: the URL has something other than a port after its IPv6 host")
		}
	} else {
		u.Host = hostport
		if k := strings.IndexByte(hostport, ':'); k >= 0 {
			u.Host, portStr, hasPort = hostport[:k], hostport[k+1:], true
		}
		if u.Host == "" {
			return nil, errors.New("ftp: the URL has no host")
		}
		if !validHostName(u.Host) {
			return nil, errors.New("ftp: the URL host is not a valid host name or IP address")
		}
	}
	if hasPort && portStr != "" {
		p, ok := parseDecimal(portStr, 5, 65535)
		if !ok || p == 0 {
			return nil, errors.New("ftp: the URL port is not a number from 1 to 65535")
		}
		u.Port = p
	}
	if j := strings.LastIndex(path, ";"); j >= 0 {
		if s := strings.ToLower(path[j:]); s == ";type=a" || s == ";type=i" {
			path = path[:j]
		}
	}
	var err error
	if u.Path, err = decodeURLPart(path, "path"); err != nil {
		return nil, err
	}
	return u, nil
}

// validScheme reports whether s is a short, well-formed URL scheme, safe to
// show in an error message.
func validScheme(s string) bool {
	if s == "" || len(s) > 16 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validHostName reports whether s is made of the characters of a DNS name
// or an IPv4 address.
func validHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// parseIPv6Host parses the inside of "[...]": an IPv6 address with an
// optional zone written "%25zone" (RFC 6874).
func parseIPv6Host(s string) (string, error) {
	bad := errors.New("ftp: the URL host in brackets is not an IPv6 address")
	addr, zone := s, ""
	if k := strings.IndexByte(s, '%'); k >= 0 {
		if !strings.HasPrefix(s[k:], "%25") || len(s) == k+3 {
			return "", bad
		}
		z, err := percentDecode(s[k+3:])
		if err != nil || !validHostName(z) {
			return "", bad
		}
		addr, zone = s[:k], z
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() {
		return "", bad
	}
	if zone != "" {
		return addr + "%" + zone, nil
	}
	return addr, nil
}

// decodeURLPart percent-decodes one part of a URL, refusing a malformed
// escape and, wrapping ErrBadArgument, a decoded CR, LF or NUL. Messages
// name the part but never show it.
func decodeURLPart(s, what string) (string, error) {
	d, err := percentDecode(s)
	if err != nil {
		return "", fmt.Errorf("ftp: the URL %s has a malformed percent-escape", what)
	}
	if strings.ContainsAny(d, "\r\n\x00") {
		return "", fmt.Errorf("%w: the URL %s contains an encoded CR, LF or NUL byte", ErrBadArgument, what)
	}
	return d, nil
}

// percentDecode decodes %XX escapes; '+' stays '+'.
func percentDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", errors.New("malformed percent-escape")
		}
		b = append(b, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Address returns "host:port" for dialling, with brackets around an IPv6
// host: net.JoinHostPort(Host, strconv.Itoa(Port)).
func (u *URL) Address() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// IsDir reports whether the URL names a directory: Path is "" or ends in
// "/".
func (u *URL) IsDir() bool { return u.Path == "" || strings.HasSuffix(u.Path, "/") }

// defaultPort returns the scheme's default port.
func (u *URL) defaultPort() int {
	if u.Scheme == "ftps" {
		return 990
	}
	return 21
}

// Redacted returns the URL for messages, with any password shown as "****"
// (also when it is empty but a ':' was given). The port appears only when it
// is not the scheme's default. Parsing the result gives back the same URL
// except for the password.
func (u *URL) Redacted() string {
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != "" || u.HasPassword {
		b.WriteString(escapeURLPart(u.User, false))
		if u.HasPassword {
			b.WriteString(":****")
		}
		b.WriteByte('@')
	}
	if strings.IndexByte(u.Host, ':') >= 0 {
		b.WriteString("[" + strings.Replace(u.Host, "%", "%25", 1) + "]")
	} else {
		b.WriteString(u.Host)
	}
	if u.Port != u.defaultPort() {
		b.WriteString(":" + strconv.Itoa(u.Port))
	}
	b.WriteByte('/')
	b.WriteString(escapeURLPart(u.Path, true))
	return b.String()
}

// String returns Redacted, so that printing a URL never shows the password.
func (u *URL) String() string { return u.Redacted() }

// escapeURLPart percent-encodes s for a userinfo (path false) or a path
// (path true), keeping only characters that read back unchanged.
func escapeURLPart(s string, path bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		keep := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~!$&'()*+,=", c) >= 0 ||
			path && strings.IndexByte("/:@", c) >= 0
		if keep {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
