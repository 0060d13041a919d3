package ftp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseDecimal parses s as an unsigned decimal number of 1 to maxDigits ASCII
// digits (leading zeros allowed) whose value is at most max. Signs, spaces
// and any other byte are refused.
func parseDecimal(s string, maxDigits, max int) (int, bool) {
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// hostPort6 parses "h1,h2,h3,h4,p1,p2" (RFC 959 section 4.1.2), with exactly
// six fields of one to three digits, octets 0..255 and a non-zero port. It
// returns a message fragment on failure.
func hostPort6(s string) (netip.AddrPort, string) {
	var v [6]int
	for i := range v {
		field := s
		if i < 5 {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				return netip.AddrPort{}, "is not six comma-separated numbers"
			}
			field, s = s[:j], s[j+1:]
		} else if strings.IndexByte(s, ',') >= 0 {
			return netip.AddrPort{}, "is not six comma-separated numbers"
		}
		n, ok := parseDecimal(field, 3, 255)
		if !ok {
			return netip.AddrPort{}, "has a field that is not a number from 0 to 255"
		}
		v[i] = n
	}
	port := uint16(v[4]<<8 | v[5])
	if port == 0 {
		return netip.AddrPort{}, "has port 0"
	}
	addr := netip.AddrFrom4([4]byte{byte(v[0]), byte(v[1]), byte(v[2]), byte(v[3])})
	return netip.AddrPortFrom(addr, port), ""
}

// formatHostPort6 renders an IPv4 address and port as "h1,h2,h3,h4,p1,p2".
func formatHostPort6(ap netip.AddrPort, what string) (string, error) {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		return "", fmt.Errorf("%w: %s needs an IPv4 address, not %s", ErrBadArgument, what, ap.Addr())
	}
	if ap.Port() == 0 {
		return "", fmt.Errorf("%w: %s cannot carry port 0", ErrBadArgument, what)
	}
	b, p := a.As4(), ap.Port()
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d", b[0], b[1], b[2], b[3], p>>8, p&0xff), nil
}

// FormatPORT returns the argument of a PORT command (RFC 959 section 4.1.2),
// "h1,h2,h3,h4,p1,p2". An IPv4-mapped IPv6 address is unmapped. Any other
// IPv6 address, an invalid address or port 0 is an error wrapping
// ErrBadArgument (use EPRT for IPv6).
func FormatPORT(ap netip.AddrPort) (string, error) {
	return formatHostPort6(ap, "PORT")
}

// ParsePORT parses the argument of a PORT command (RFC 959 section 4.1.2):
// exactly six comma-separated decimal fields, octets 0..255, and a port
// p1*256+p2 from 1 to 65535. Spaces, signs, empty or extra fields are
// refused with an error wrapping ErrProtocol. The address is returned as the
// client sent it: checking that it is the client's own address, to refuse
// FTP bounce attacks, is the caller's job.
func ParsePORT(arg string) (netip.AddrPort, error) {
	ap, msg := hostPort6(arg)
	if msg != "" {
		return netip.AddrPort{}, &ProtocolError{Msg: "PORT argument " + msg, Line: quoteLine([]byte(arg))}
	}
	return ap, nil
}

// FormatEPRT returns the argument of an EPRT command (RFC 2428 section 2):
// "|1|132.235.1.2|6275|" for IPv4 (IPv4-mapped IPv6 addresses included) or
// "|2|1080::8:800:200c:417a|5282|" for IPv6. Any zone is dropped. ap must
// hold a valid address and a non-zero port, or the peer will refuse the
// result.
func FormatEPRT(ap netip.AddrPort) string {
	a := ap.Addr().WithZone("")
	if a.Is4In6() {
		a = a.Unmap()
	}
	proto := "2"
	if a.Is4() {
		proto = "1"
	}
	return "|" + proto + "|" + a.String() + "|" + strconv.Itoa(int(ap.Port())) + "|"
}

// ParseEPRT parses the argument of an EPRT command (RFC 2428 section 2),
// "<d><proto><d><addr><d><port><d>", where the delimiter d is the first byte
// and may be any ASCII character from 33 to 126. Protocol 1 must carry an
// IPv4 address in dotted-decimal form, protocol 2 an IPv6 address without a
// zone (an IPv4-mapped one is returned unmapped); the port must be 1..65535.
// Anything else is an error wrapping ErrProtocol. As with ParsePORT, checking
// the address against the client's is the caller's job.
func ParseEPRT(arg string) (netip.AddrPort, error) {
	fail := func(msg string) (netip.AddrPort, error) {
		return netip.AddrPort{}, &ProtocolError{Msg: "EPRT argument " + msg, Line: quoteLine([]byte(arg))}
	}
	if arg == "" {
		return fail("is empty")
	}
	d := arg[0]
	if d < 33 || d > 126 {
		return fail("does not start with a delimiter from ASCII 33 to 126")
	}
	parts := strings.SplitN(arg[1:], string(d), 5)
	if len(parts) != 4 || parts[3] != "" {
		return fail("is not <d>protocol<d>address<d>port<d>")
	}
	addr, err := netip.ParseAddr(parts[1])
	if err != nil || addr.Zone() != "" {
		return fail("has an invalid network address")
	}
	switch parts[0] {
	case "1":
		if !addr.Is4() {
			return fail("has protocol 1 but not an IPv4 address")
		}
	case "2":
		if !addr.Is6() {
			return fail("has protocol 2 but not an IPv6 address")
		}
		addr = addr.Unmap()
	default:
		return fail("has a network protocol other than 1 (IPv4) or 2 (IPv6)")
	}
	port, ok := parseDecimal(parts[2], 5, 65535)
	if !ok || port == 0 {
		return fail("has a port that is not a number from 1 to 65535")
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// FormatPASV returns the text of a 227 reply (RFC 959 section 4.1.2),
// "Entering Passive Mode (h1,h2,h3,h4,p1,p2).". The same rules as FormatPORT
// apply: IPv4 (or IPv4-mapped) only, port not 0, else an error wrapping
// ErrBadArgument.
func FormatPASV(ap netip.AddrPort) (string, error) {
	s, err := formatHostPort6(ap, "PASV")
	if err != nil {
		return "", err
	}
	return "Entering Passive Mode (" + s + ").", nil
}

// ParsePASV parses the text of a 227 reply. Since the format is not
// standardized, it scans the text for the first run of exactly six
// comma-separated numbers, with or without parentheses (RFC 1123 section
// 4.1.2.6); runs of another count of numbers are skipped. The run must not
// be glued to a letter, a sign or another number ("(-1,2,3,4,5,6)" and
// "(1,2,3,4,5,6a)" are refused), its octets must be 0..255 and its port
// 1..65535. Failures wrap ErrProtocol.
//
// Clients commonly ignore the returned address and connect to the control
// connection's peer instead, which is safer against a hostile server.
func ParsePASV(text string) (netip.AddrPort, error) {
	fail := func(msg string) (netip.AddrPort, error) {
		return netip.AddrPort{}, &ProtocolError{Msg: "227 reply " + msg, Line: quoteLine([]byte(text))}
	}
	for i := 0; i < len(text); i++ {
		if !isDigit(text[i]) {
			continue
		}
		// A run of comma-separated numbers starts at i.
		j, count := i, 0
		for {
			k := j
			for k < len(text) && isDigit(text[k]) {
				k++
			}
			count++
			if k+1 < len(text) && text[k] == ',' && isDigit(text[k+1]) {
				j = k + 1
				continue
			}
			j = k
			break
		}
		if count != 6 {
			i = j
			continue
		}
		if i > 0 && badPASVNeighbour(text[i-1], true) || j < len(text) && badPASVNeighbour(text[j], false) {
			return fail("has a malformed host and port")
		}
		ap, msg := hostPort6(text[i:j])
		if msg != "" {
			return fail("host and port " + msg)
		}
		return ap, nil
	}
	return fail("does not contain a host and port h1,h2,h3,h4,p1,p2")
}

// badPASVNeighbour reports whether c, just before (or after) a run of
// numbers in a 227 reply, makes the run malformed rather than delimited.
func badPASVNeighbour(c byte, before bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '+', c == '-', c == '_', c == ',':
		return true
	case c == '.':
		// "1.2,3,4,5,6,7" is garbage; a period after the run ends a sentence.
		return before
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// FormatEPSV returns the text of a 229 reply (RFC 2428 section 3),
// "Entering Extended Passive Mode (|||6446|)".
func FormatEPSV(port uint16) string {
	return "Entering Extended Passive Mode (|||" + strconv.Itoa(int(port)) + "|)"
}

// ParseEPSV parses the text of a 229 reply (RFC 2428 section 3) and returns
// the port. It looks for "(<d><d><d>port<d>)" where d is the same ASCII
// character from 33 to 126 four times; the first parenthesis that opens such
// a pattern is used. A port of 0 or above 65535 or a missing or malformed
// pattern is an error wrapping ErrProtocol.
func ParseEPSV(text string) (uint16, error) {
	fail := func(msg string) (uint16, error) {
		return 0, &ProtocolError{Msg: "229 reply " + msg, Line: quoteLine([]byte(text))}
	}
	for i := 0; i+6 < len(text); i++ {
		if text[i] != '(' {
			continue
		}
		d := text[i+1]
		if d < 33 || d > 126 || text[i+2] != d || text[i+3] != d {
			continue
		}
		// The port is the digits between the third and fourth delimiters;
		// the fourth is the d directly followed by ')'. Searching for "d)"
		// keeps a digit or ')' delimiter unambiguous.
		start := i + 4
		for k := start + 1; k+1 < len(text) && k <= start+10; k++ {
			if text[k] == d && text[k+1] == ')' {
				if !allDigits(text[start:k]) {
					break
				}
				port, ok := parseDecimal(text[start:k], 10, 65535)
				if !ok || port == 0 {
					return fail("has a port that is not a number from 1 to 65535")
				}
				return uint16(port), nil
			}
			if !isDigit(text[k]) {
				break
			}
		}
	}
	return fail("does not contain a port as (|||port|)")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
