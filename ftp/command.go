package ftp

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nsftp/nsftp/trace"
)

// validVerb reports whether verb is 3 or 4 ASCII letters.
func validVerb(verb string) bool {
	if len(verb) < 3 || len(verb) > 4 {
		return false
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// FormatCommand returns the command line "VERB\r\n", or "VERB arg\r\n" when
// arg is not empty, with verb upper-cased. It sends nothing: callers check
// the error before writing, so nothing is sent for a refused command.
//
// verb must be 3 or 4 ASCII letters, and arg must not contain CR, LF or NUL
// (which would let the argument end the line and inject another command);
// otherwise the error wraps ErrBadArgument. The error names the verb, and
// shows the argument except for PASS and ACCT, whose argument may be a
// secret.
func FormatCommand(verb, arg string) (string, error) {
	if !validVerb(verb) {
		return "", fmt.Errorf("%w: command verb %s is not 3 or 4 ASCII letters", ErrBadArgument, strconv.Quote(truncate(verb, maxErrorLine)))
	}
	verb = strings.ToUpper(verb)
	if strings.ContainsAny(arg, "\r\n\x00") {
		if line := verb + " " + arg; trace.RedactCommand(line) != line {
			return "", fmt.Errorf("%w: the %s argument contains a CR, LF or NUL byte", ErrBadArgument, verb)
		}
		return "", fmt.Errorf("%w: the %s argument %s contains a CR, LF or NUL byte", ErrBadArgument, verb, strconv.Quote(truncate(arg, maxErrorLine)))
	}
	if arg == "" {
		return verb + "\r\n", nil
	}
	return verb + " " + arg + "\r\n", nil
}

// truncate cuts s to at most n bytes, marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ReadCommand reads one command line (RFC 959 section 4.1) from r, for the
// server. It returns the verb upper-cased and the argument: everything after
// the first space, verbatim (it may contain or end in spaces), or "" if
// there is none.
//
// The line ends in CRLF; a lone LF is accepted as well, as vsftpd does. A CR
// anywhere else or a NUL anywhere, an empty line, a verb that is not 3 or 4
// ASCII letters, or a line longer than MaxLineLength returns an error
// wrapping ErrProtocol (a *ProtocolError whose Line never shows a PASS or
// ACCT argument). Unknown but well-formed verbs are not errors: the caller
// answers them with 502. Memory stays bounded by about MaxLineLength
// whatever the peer sends.
//
// After a *ProtocolError about a complete line (bad verb, CR, NUL, empty
// line), that line has been consumed and the next call reads the next line,
// so the server may reply 500 and carry on. After a line that is too long,
// or any other error, the position in r is unspecified: the connection
// should be closed.
//
// If the stream ends before any byte, ReadCommand returns io.EOF itself; if
// it ends within a line, an error wrapping io.ErrUnexpectedEOF. Other read
// errors, such as timeouts, are returned wrapped.
func ReadCommand(r *bufio.Reader) (verb, arg string, err error) {
	line, err := readLine(r, true)
	if err != nil {
		if err == io.EOF {
			return "", "", io.EOF
		}
		return "", "", err
	}
	if len(line) == 0 {
		return "", "", newProtocolError("empty command line", nil)
	}
	v, a := line, []byte(nil)
	for i, c := range line {
		if c == ' ' {
			v, a = line[:i], line[i+1:]
			break
		}
	}
	verb = string(v)
	if !validVerb(verb) {
		return "", "", newProtocolError("command verb is not 3 or 4 ASCII letters", redactCommand(line))
	}
	return strings.ToUpper(verb), string(a), nil
}
