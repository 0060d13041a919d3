package ftp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nsftp/nsftp/trace"
)

// ErrProtocol is wrapped by every error that reports malformed input from
// the peer: a bad reply or command line, an unparsable PORT/PASV/EPRT/EPSV
// argument, a bad listing line. Test for it with errors.Is.
var ErrProtocol = errors.New("ftp: protocol violation")

// ErrBadArgument is wrapped by every error that refuses to put a value on the
// wire: a CR, LF or NUL byte in a command argument or in a decoded URL, an
// invalid verb, an address that a command cannot carry. Test for it with
// errors.Is.
var ErrBadArgument = errors.New("ftp: invalid command argument")

// ProtocolError describes malformed input from the peer. errors.Is(err,
// ErrProtocol) holds for every *ProtocolError.
type ProtocolError struct {
	// Msg says what is wrong, as a sentence fragment without the "ftp:"
	// prefix, e.g. "line ends in a bare LF".
	Msg string
	// Line is the offending input, at most about 80 bytes of it (followed by
	// "..." when cut), with non-printable bytes escaped as strconv.Quote
	// does, without the surrounding quotes. It is "" when there is no
	// useful input to show. Error escapes any non-printable byte found here
	// and cuts a Line longer than 400 bytes, so that a hand-built
	// ProtocolError cannot smuggle control bytes or megabytes into logs
	// either.
	Line string
	// Err, if set, is a more specific sentinel the violation also
	// matches with errors.Is, such as ErrLineTooLong.
	Err error
}

// ErrLineTooLong: a reply or command line over MaxLineLength. The stream
// is then at an unknown place and the connection cannot go on.
var ErrLineTooLong = errors.New("ftp: line too long")

// Error returns "ftp: protocol violation: <Msg>", followed by
// ` in "<Line>"` when Line is not empty.
func (e *ProtocolError) Error() string {
	s := "ftp: protocol violation: " + e.Msg
	if e.Line != "" {
		s += ` in "` + escapeNonPrintable(truncate(e.Line, 400)) + `"`
	}
	return s
}

// Unwrap returns ErrProtocol, and Err when set, so that errors.Is(err,
// ErrProtocol) always holds.
func (e *ProtocolError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrProtocol, e.Err}
	}
	return []error{ErrProtocol}
}

// maxErrorLine is how much of an offending line a ProtocolError shows.
const maxErrorLine = 80

// newProtocolError returns a *ProtocolError showing the start of line.
func newProtocolError(msg string, line []byte) error {
	return &ProtocolError{Msg: msg, Line: quoteLine(line)}
}

// quoteLine escapes line for ProtocolError.Line, cutting it to maxErrorLine
// bytes.
func quoteLine(line []byte) string {
	cut := false
	if len(line) > maxErrorLine {
		line, cut = line[:maxErrorLine], true
	}
	q := strconv.Quote(string(line))
	q = q[1 : len(q)-1]
	if cut {
		q += "..."
	}
	return q
}

// escapeNonPrintable escapes, as strconv.Quote would, the runes of s that
// are not printable and the bytes that are not valid UTF-8, leaving
// printable text (including backslashes and quotes) as it is. Applied to the
// output of quoteLine it changes nothing.
func escapeNonPrintable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !strconv.IsPrint(r) {
			q := strconv.Quote(s[i : i+n])
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// MaxLineLength is the longest reply or command line, without its CRLF, that
// ReadReply and ReadCommand accept.
const MaxLineLength = 8 << 10

// MaxReplyLength is the largest whole (multi-line) reply, in bytes on the
// wire including every CRLF, that ReadReply accepts.
const MaxReplyLength = 64 << 10

// Reply is one server reply (RFC 959 section 4.2).
type Reply struct {
	// Code is the three-digit reply code, 100..599.
	Code int
	// Lines holds the text lines without CRLF; it always has at least one
	// element. For "230 OK", Lines is ["OK"]; for a bare "230", [""]. For a
	// multi-line reply, Lines[0] is the text after "NNN-" on the first
	// line, the middle lines are verbatim (they may start with digits or
	// spaces), and the last element is the text after "NNN " on the last
	// line. Lines read by ReadReply never contain CR, LF or NUL.
	Lines []string
}

// Text returns the reply's lines joined with "\n".
func (r *Reply) Text() string { return strings.Join(r.Lines, "\n") }

// String returns the reply on one line for error messages, such as
// "530 Login incorrect.": the code, a space and Text with each newline
// replaced by " / ". When the text is empty it is just the code.
func (r *Reply) String() string {
	t := strings.ReplaceAll(r.Text(), "\n", " / ")
	if t == "" {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + t
}

// Class returns the first digit of the code: 1 (preliminary), 2
// (completion), 3 (intermediate), 4 (transient failure) or 5 (permanent
// failure).
func (r *Reply) Class() int { return r.Code / 100 }

// errUnexpectedEOF is returned when the connection ends inside a line.
var errUnexpectedEOF = fmt.Errorf("ftp: connection closed in the middle of a line: %w", io.ErrUnexpectedEOF)

// readLine reads one line from r and returns it without its terminator. The
// line must end in CRLF, or, when command is true, also in a lone LF. A CR
// anywhere else, a NUL byte, or more than MaxLineLength bytes before the
// terminator is a *ProtocolError; at most about MaxLineLength bytes (plus
// r's buffer) are held in memory whatever the peer sends. io.EOF before any
// byte is returned as is; EOF later wraps io.ErrUnexpectedEOF; other read
// errors are wrapped.
//
// When command is true, error messages hide a PASS or ACCT argument.
//
// The returned slice may alias r's buffer: it is valid only until the next
// read from r.
func readLine(r *bufio.Reader, command bool) ([]byte, error) {
	show := func(b []byte) []byte {
		if command {
			return redactCommand(b)
		}
		return b
	}
	var acc []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(acc)+len(chunk) > MaxLineLength+2 {
			head := acc
			if len(head) < maxErrorLine {
				head = append(head[:len(head):len(head)], chunk[:min(len(chunk), maxErrorLine)]...)
			}
			return nil, &ProtocolError{Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength), Line: quoteLine(show(head)), Err: ErrLineTooLong}
		}
		if err == nil {
			if acc == nil {
				acc = chunk
			} else {
				acc = append(acc, chunk...)
			}
			break
		}
		acc = append(acc, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(acc) == 0 {
				return nil, io.EOF
			}
			return nil, errUnexpectedEOF
		}
		return nil, fmt.Errorf("ftp: read failed: %w", err)
	}
	// acc ends in '\n'.
	n := len(acc) - 1
	if n > 0 && acc[n-1] == '\r' {
		n--
	} else if !command {
		return nil, newProtocolError("line ends in a bare LF instead of CRLF", show(acc[:n]))
	}
	line := acc[:n]
	if n > MaxLineLength {
		return nil, &ProtocolError{Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength), Line: quoteLine(show(line)), Err: ErrLineTooLong}
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, newProtocolError("CR not followed by LF", show(line))
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, newProtocolError("NUL byte in line", show(line))
	}
	return line, nil
}

// redactCommand is a command line as an error may show it: with a PASS or
// ACCT argument masked (trace.RedactCommand).
func redactCommand(line []byte) []byte { return []byte(trace.RedactCommand(string(line))) }

// checkReplyStart looks at the first bytes of a reply, without waiting for
// the end of the line, so that a peer that is not an FTP server (an HTTP or
// SSH server, a TLS endpoint) is reported at once. It returns io.EOF when the
// stream ends before any byte.
func checkReplyStart(r *bufio.Reader) error {
	for i := 1; i <= 4; i++ {
		b, err := r.Peek(i)
		if len(b) < i {
			switch {
			case err == io.EOF && len(b) == 0:
				return io.EOF
			case err == io.EOF:
				return errUnexpectedEOF
			default:
				return fmt.Errorf("ftp: read failed: %w", err)
			}
		}
		c := b[i-1]
		ok := true
		switch i {
		case 1:
			ok = c >= '1' && c <= '5'
		case 2, 3:
			ok = c >= '0' && c <= '9'
		case 4:
			ok = c == ' ' || c == '-' || c == '\r' || c == '\n' // readLine reports a bare LF
		}
		if !ok {
			// Show what has already arrived, without waiting for more.
			buf, _ := r.Peek(r.Buffered())
			if j := bytes.IndexByte(buf, '\n'); j >= 0 {
				buf = buf[:j]
			}
			buf = bytes.TrimSuffix(buf, []byte("\r"))
			return newProtocolError("reply does not start with a three-digit code from 100 to 599", buf)
		}
	}
	return nil
}

// ReadReply reads exactly one reply (RFC 959 section 4.2) from r and leaves
// anything after it buffered in r.
//
// A reply is either one line, "NNN text" or just "NNN", or a multi-line
// reply that starts with "NNN-text" and ends only at a line that begins with
// the same three digits followed by a space, or that is exactly those three
// digits; lines in between are text whatever they start with. Every line
// must end in CRLF.
//
// Malformed input returns an error wrapping ErrProtocol (a *ProtocolError):
// a first line that does not start with a code from 100 to 599 followed by a
// space, a '-' or the end of the line (reported as soon as the first four
// bytes are seen, without waiting for a line end); a bare LF, a CR not
// followed by LF, or a NUL byte; a line longer than MaxLineLength; a reply
// longer than MaxReplyLength. Memory stays bounded by about those limits
// whatever the peer sends.
//
// If the stream ends before any byte, ReadReply returns io.EOF itself; if it
// ends within a reply, an error wrapping io.ErrUnexpectedEOF. Other read
// errors, such as timeouts, are returned wrapped (errors.Is and errors.As
// see them). After any error the position in r is unspecified: the
// connection should be closed.
func ReadReply(r *bufio.Reader) (*Reply, error) {
	if err := checkReplyStart(r); err != nil {
		return nil, err
	}
	first, err := readLine(r, false)
	if err != nil {
		if err == io.EOF {
			err = errUnexpectedEOF
		}
		return nil, err
	}
	total := len(first) + 2
	code, multi, ok := parseReplyStart(first)
	if !ok {
		return nil, newProtocolError("reply does not start with a three-digit code from 100 to 599", first)
	}
	if !multi {
		text := ""
		if len(first) > 4 {
			text = string(first[4:])
		}
		return &Reply{Code: code, Lines: []string{text}}, nil
	}
	var codeBuf [3]byte // first aliases r's buffer, which the next read reuses
	copy(codeBuf[:], first[:3])
	lines := []string{string(first[4:])}
	for {
		line, err := readLine(r, false)
		if err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("ftp: connection closed in the middle of a multi-line %d reply: %w", code, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		total += len(line) + 2
		if total > MaxReplyLength {
			return nil, newProtocolError(fmt.Sprintf("multi-line %d reply longer than %d bytes", code, MaxReplyLength), line)
		}
		if len(line) >= 3 && bytes.Equal(line[:3], codeBuf[:]) && (len(line) == 3 || line[3] == ' ') {
			text := ""
			if len(line) > 4 {
				text = string(line[4:])
			}
			lines = append(lines, text)
			return &Reply{Code: code, Lines: lines}, nil
		}
		lines = append(lines, string(line))
	}
}

// parseReplyStart parses the "NNN" and the following ' ', '-' or end of line
// of a reply's first line.
func parseReplyStart(line []byte) (code int, multi, ok bool) {
	if len(line) < 3 || line[0] < '1' || line[0] > '5' ||
		line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return 0, false, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	switch {
	case len(line) == 3 || line[3] == ' ':
		return code, false, true
	case line[3] == '-':
		return code, true, true
	}
	return 0, false, false
}

// FormatReply renders a reply as the server sends it. With zero or one line
// it is "NNN text\r\n". With more, it is a multi-line reply: "NNN-first\r\n",
// each inner line followed by CRLF (prefixed with a space if it starts with
// a digit, as RFC 959 section 4.2 advises, so that it can never be taken for
// the last line), and "NNN last\r\n". Any CR, LF or NUL inside a line is
// replaced by a space, since text often includes names from disk.
//
// FormatReply panics if code is not in 100..599: that is a programming error.
// It does not enforce MaxLineLength or MaxReplyLength.
func FormatReply(code int, lines ...string) []byte {
	if code < 100 || code > 599 {
		panic("ftp: FormatReply: reply code " + strconv.Itoa(code) + " is not in 100..599")
	}
	c := strconv.Itoa(code)
	if len(lines) <= 1 {
		text := ""
		if len(lines) == 1 {
			text = sanitizeText(lines[0])
		}
		return []byte(c + " " + text + "\r\n")
	}
	var b bytes.Buffer
	b.WriteString(c + "-" + sanitizeText(lines[0]) + "\r\n")
	for _, l := range lines[1 : len(lines)-1] {
		l = sanitizeText(l)
		if l != "" && l[0] >= '0' && l[0] <= '9' {
			b.WriteByte(' ')
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString(c + " " + sanitizeText(lines[len(lines)-1]) + "\r\n")
	return b.Bytes()
}

// sanitizeText replaces CR, LF and NUL with spaces.
func sanitizeText(s string) string {
	// A line our own client (any client keeping to MaxLineLength) would
	// refuse is cut: reply text often carries a file name from disk.
	if limit := MaxLineLength - 8; len(s) > limit {
		cut := limit - 3
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}
